"""Baseline encoder: model pieces, loss terms by hand, memory rule, sampler, schedule, training."""

import math
import warnings

import numpy as np
import open_clip
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from muse.config import from_section
from muse.data.formats import manifest
from muse.data.synthetic import Sizes, generate_domain
from muse.distance import base_distance_blocks
from muse.encoder import train as T
from muse.encoder.data import identity_batches
from muse.encoder.features import extract
from muse.encoder.model import ReIDEncoder, clip_config, load_clip_visual, resize_grid
from muse.errors import MuseError
from muse.evaluate import evaluate

from helpers import fails_with_one_line, muse

TINY = clip_config(
    None,
    image_size=(32, 16),
    embed_dim=32,
    vision_cfg={"patch_size": 8, "width": 32, "layers": 1, "head_width": 16},
    text_cfg={"context_length": 4, "vocab_size": 16, "width": 16, "heads": 1, "layers": 1},
)


def test_model_structure_and_round_trip(tmp_path):
    torch.manual_seed(0)
    m = ReIDEncoder(TINY, num_classes=7)
    assert not m.visual.conv1.weight.requires_grad and not m.bottleneck.bias.requires_grad
    assert m.classifier.bias is None and m.classifier.weight.std().item() == pytest.approx(0.001, rel=0.3)
    assert isinstance(m.visual, open_clip.transformer.VisionTransformer)
    x = torch.randn(4, 3, 32, 16)
    f, logits = m.train()(x)
    assert f.shape == (4, 32) and logits.shape == (4, 7)
    m.eval()
    feat = m(x)
    assert torch.allclose(feat.norm(dim=1), torch.ones(4))
    m.save_pretrained(tmp_path / "enc")
    again = ReIDEncoder.from_pretrained(tmp_path / "enc")
    assert torch.equal(again(x), feat)
    with pytest.raises(MuseError, match="config.json: missing"):
        ReIDEncoder.from_pretrained(tmp_path)


def test_resize_grid_bilinear_by_hand():
    """2×2 → 4×2: rows sample the source at −¼, ¼, ¾, 1¼ (clamped), columns stay."""
    pos = torch.tensor([[9.0], [0.0], [1.0], [2.0], [3.0]])  # class token, then [[0,1],[2,3]]
    out = resize_grid(pos, (4, 2))
    assert out[0, 0] == 9.0
    expected = [[0, 1], [0.5, 1.5], [1.5, 2.5], [2, 3]]
    assert torch.allclose(out[1:, 0].reshape(4, 2), torch.tensor(expected))


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_load_clip_checkpoint_resizes_positions(tmp_path, fmt):
    torch.manual_seed(1)
    square = open_clip.CLIP(
        **clip_config(None, image_size=(16, 16), **{k: TINY[k] for k in ("embed_dim", "vision_cfg", "text_cfg")})
    )
    sd = {k: v.contiguous() for k, v in square.state_dict().items()}
    path = tmp_path / f"clip.{fmt}"
    save_file(sd, path) if fmt == "safetensors" else torch.save({"state_dict": sd}, path)
    m = ReIDEncoder(TINY, num_classes=3)
    load_clip_visual(m.visual, path)
    assert torch.equal(m.visual.conv1.weight, square.visual.conv1.weight)
    assert torch.allclose(m.visual.positional_embedding, resize_grid(square.visual.positional_embedding, (4, 2)))
    with pytest.raises(MuseError, match="CLIP weights file not found"):
        load_clip_visual(m.visual, tmp_path / "none.pt")


@pytest.fixture(scope="module")
def openai_file(tmp_path_factory):
    """``muse encoder init``: a random-weight ViT-B/16 as OpenAI's ViT-B-16.pt (about 10 s)."""
    path = tmp_path_factory.mktemp("clip") / "ViT-B-16.pt"
    res = muse("encoder", "init", "--out", path)
    assert res.returncode == 0, res.stderr
    return path


def test_openai_archive_is_read_by_open_clips_openai_loader_as_by_ours(openai_file, tmp_path):
    """The file is a TorchScript archive with OpenAI's names, partly fp16 as OpenAI's; open_clip's
    OpenAI loader builds a ViT-B/16 from it; our loader gives the same image tower from it, from
    the same weights as a pickled state dict and as safetensors (the grid resized to 16 × 8)."""
    import zipfile

    names = zipfile.ZipFile(openai_file).namelist()
    assert any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated
        archive = torch.jit.load(openai_file, map_location="cpu").state_dict()
    assert archive["input_resolution"] == 224 and archive["context_length"] == 77 and archive["vocab_size"] == 49408
    assert archive["visual.conv1.weight"].dtype == torch.float16 and archive["visual.proj"].dtype == torch.float16
    assert archive["visual.ln_pre.weight"].dtype == torch.float32
    assert "visual.transformer.resblocks.11.attn.in_proj_weight" in archive and "attn_mask" not in archive
    reference = open_clip.load_openai_model(str(openai_file), device="cpu").visual
    assert reference.positional_embedding.shape == (197, 768) and reference.output_dim == 512
    sd = {k: v for k, v in archive.items() if k.startswith("visual.")}
    torch.save(sd, tmp_path / "plain.pt")
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "clip.safetensors")
    clip = clip_config("ViT-B-16-quickgelu", (256, 128))
    towers = []
    for path in (openai_file, tmp_path / "plain.pt", tmp_path / "clip.safetensors"):
        model = ReIDEncoder(clip, num_classes=2)
        load_clip_visual(model.visual, path)
        towers.append(model.visual.state_dict())
    for key, value in towers[0].items():
        assert all(torch.equal(value, t[key]) for t in towers[1:]), key
        if key != "positional_embedding":
            assert torch.equal(value, reference.state_dict()[key].float()), key
    assert torch.equal(towers[0]["positional_embedding"], resize_grid(reference.positional_embedding, (16, 8)))


def test_clip_files_that_are_not_a_vit_b16_are_refused_in_one_line(openai_file, tmp_path):
    """A TorchScript archive without a CLIP image tower, one of another shape, a file that is no
    checkpoint: one line naming the file, before any training."""
    clip = clip_config("ViT-B-16-quickgelu", (256, 128))
    model = ReIDEncoder(clip, num_classes=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2)).save(str(tmp_path / "linear.pt"))
    with pytest.raises(MuseError, match="linear.pt: no 'visual.\\*' weights"):
        load_clip_visual(model.visual, tmp_path / "linear.pt")
    small = ReIDEncoder(TINY, num_classes=2)
    with pytest.raises(MuseError, match=r"ViT-B-16.pt: weights do not fit encoder.clip \(.*(size mismatch|Unexpected)"):
        load_clip_visual(small.visual, openai_file)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MuseError, match="junk.pt: not a CLIP checkpoint"):
        load_clip_visual(model.visual, tmp_path / "junk.pt")
    fails_with_one_line(muse("encoder", "init", "--name", "ViT-X", "--out", tmp_path / "x.pt"), "'ViT-X': not an")
    assert not (tmp_path / "x.pt").exists()


def test_id_loss_label_smoothing_by_hand():
    logits, y, eps = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0]), 0.1
    logp = logits.log_softmax(1)[0]
    q = torch.tensor([1 - eps + eps / 3, eps / 3, eps / 3])
    assert T.id_loss(logits, y, eps).item() == pytest.approx(-(q * logp).sum().item(), rel=1e-6)


def test_pcl_loss_by_hand():
    f = torch.tensor([[1.0, 0.0]])
    memory = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert T.pcl_loss(f, torch.tensor([0]), memory, 0.5).item() == pytest.approx(-math.log(math.e**2 / (math.e**2 + 1)))
    assert T.pcl_loss(f, torch.tensor([1]), memory, 0.5).item() == pytest.approx(-math.log(1 / (math.e**2 + 1)))


def test_memory_update_uses_the_hardest_sample():
    memory = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    s = 1 / math.sqrt(2)
    f = torch.tensor([[1.0, 0.0], [s, s], [0.0, 1.0]])  # class 0: easy, hard; class 1: one
    T.update_memory(memory, f, torch.tensor([0, 0, 1]), gamma=0.2)
    m0 = torch.tensor([0.2 + 0.8 * s, 0.8 * s])
    assert torch.allclose(memory[0], m0 / m0.norm())
    assert torch.allclose(memory[1], torch.tensor([0.0, 1.0]))


def test_centroids():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    c = T.centroids(feats, torch.tensor([0, 0, 1]), 2)
    assert torch.allclose(c, torch.tensor([[s := 1 / math.sqrt(2), s], [0.0, 1.0]]))


def test_lr_schedule():
    """The release's scheduler, stepped with 1-based epochs: 0.19 in the first epoch, full from
    the 10th, ×0.1 from the 30th and again from the 50th."""
    cfg = T.TrainConfig()
    assert [round(T.lr_factor(e, cfg), 6) for e in (0, 5, 8, 9, 28, 29, 48, 49, 59)] == [
        0.19,
        0.64,
        0.91,
        1.0,
        1.0,
        0.1,
        0.1,
        0.01,
        0.01,
    ]


def test_training_images_bicubic_evaluation_bilinear(tmp_path):
    """The release resizes bicubically for training (with flips) and bilinearly for evaluation."""
    from PIL import Image

    from muse.encoder.data import Images, load_image

    path = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (37, 19, 3), dtype=np.uint8)).save(path)
    bilinear, bicubic = (load_image(str(path), (16, 8), r) for r in (Image.BILINEAR, Image.BICUBIC))
    assert not torch.equal(bilinear, bicubic)
    assert torch.equal(Images([str(path)], (16, 8))[0][0], bilinear)
    flips = [Images([str(path)], (16, 8), flip_seed=s)[0][0] for s in range(8)]
    assert all(torch.equal(x, bicubic) or torch.equal(x, bicubic.flip(-1)) for x in flips)
    assert any(torch.equal(x, bicubic.flip(-1)) for x in flips)


def test_pixel_cache_is_bit_identical_and_bounded(tmp_path, monkeypatch):
    """Cached pixels give the uncached tensors bit for bit, per filter, and decode each (path,
    filter) once; past the byte budget nothing more is kept, and the tensors stay the same."""
    from PIL import Image

    from muse.encoder import data as D

    paths = []
    for k in range(3):
        paths.append(str(tmp_path / f"{k}.png"))
        Image.fromarray(np.random.default_rng(k).integers(0, 255, (37, 19, 3), dtype=np.uint8)).save(paths[-1])
    decoded = []
    real = D.pixels
    monkeypatch.setattr(D, "pixels", lambda *a: decoded.append(a[0]) or real(*a))
    cache = D.PixelCache()
    for _ in range(3):
        for r in (Image.BILINEAR, Image.BICUBIC):
            for p in paths:
                assert torch.equal(D.load_image(p, (16, 8), r, cache), D.load_image(p, (16, 8), r))
    assert len(cache) == 6 and cache.bytes == 6 * 16 * 8 * 3
    assert decoded.count(paths[0]) == 2 * 3 + 2  # uncached: every call; cached: once per filter
    small = D.PixelCache(budget=2 * 16 * 8 * 3)
    x = [D.Images(paths, (16, 8), cache=small)[i][0] for i in range(3)]
    assert len(small) == 2 and small.bytes == small.budget
    assert all(torch.equal(a, D.load_image(p, (16, 8))) for a, p in zip(x, paths))


def test_identity_batches():
    labels = np.array([0] * 9 + [1] * 4 + [2] * 2 + [3] * 5 + [4] * 8 + [5] * 4 + [6] * 4 + [7] * 6 + [8] * 12)
    batches = identity_batches(labels, ids_per_batch=4, imgs_per_id=4, seed=3)
    assert batches == identity_batches(labels, 4, 4, seed=3) != identity_batches(labels, 4, 4, seed=4)
    for b in batches:
        ids = labels[b]
        assert len(b) == 16 and len(set(ids)) == 4
        assert all((ids[k * 4 : (k + 1) * 4] == ids[k * 4]).all() for k in range(4))
    used = np.concatenate(batches)
    assert (labels[used] == 2).sum() in (0, 4)  # 2 images, topped up to a group of 4
    assert len(batches) == 3  # 13 groups of 4: three batches at most


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("ma")
    generate_domain(
        "MA",
        root / "MA",
        Sizes(train_ids=10, test_ids=8, cameras=3, cams_per_id=(2, 2), images_per_camera=(2, 3)),
        seed=0,
        progress=False,
    )
    return manifest("market1501", root / "MA", progress=False)


CFG = dict(epochs=3, lr=1e-3, ids_per_batch=4, imgs_per_id=4, warmup_epochs=1, milestones=[2])


def test_resume_after_kill_gives_the_same_weights(small_world, tmp_path, monkeypatch, capsys):
    train = small_world[small_world.split == "train"]
    full = T.train_encoder(train, TINY, tmp_path / "full", T.TrainConfig(**CFG), progress=False)
    assert not (tmp_path / "full.ckpt").exists()

    real = T.identity_batches

    def killed_in_epoch_3(labels, p, k, seed):
        if seed % 100_003 == 2:
            raise KeyboardInterrupt
        return real(labels, p, k, seed)

    monkeypatch.setattr(T, "identity_batches", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        T.train_encoder(train, TINY, tmp_path / "again", T.TrainConfig(**CFG), progress=False)
    assert (tmp_path / "again.ckpt").exists() and not (tmp_path / "again").exists()
    monkeypatch.setattr(T, "identity_batches", real)
    resumed = T.train_encoder(train, TINY, tmp_path / "again", T.TrainConfig(**CFG), progress=False)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k

    # killed in epoch 3, then rerun with another learning rate: it starts over instead of mixing
    monkeypatch.setattr(T, "identity_batches", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        T.train_encoder(train, TINY, tmp_path / "changed", T.TrainConfig(**CFG), progress=False)
    monkeypatch.setattr(T, "identity_batches", real)
    other = T.TrainConfig(**{**CFG, "lr": 2e-3})
    changed = T.train_encoder(train, TINY, tmp_path / "changed", other, progress=False)
    assert "changed.ckpt: made from other inputs or parameters; starting over" in capsys.readouterr().err
    alone = T.train_encoder(train, TINY, tmp_path / "alone", other, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(changed.state_dict().values(), alone.state_dict().values()))


def test_pcl_and_memory_see_the_bnneck_output(small_world, tmp_path, monkeypatch):
    """L_pcl and the per-epoch centroids use the L2-normalised BNNeck output f_bn (as MUSE's and
    PCL-CLIP's code), not the image-encoder feature before it."""
    seen = {"bn_train": [], "bn_eval": [], "pcl": [], "centroids": []}

    class Hooked(ReIDEncoder):
        def __init__(self, *a):
            super().__init__(*a)
            self.bottleneck.register_forward_hook(
                lambda m, i, o: seen["bn_train" if m.training else "bn_eval"].append(o.detach().clone())
            )

    real_pcl, real_centroids = T.pcl_loss, T.centroids
    monkeypatch.setattr(T, "ReIDEncoder", Hooked)
    monkeypatch.setattr(T, "pcl_loss", lambda f, *a: seen["pcl"].append(f.detach().clone()) or real_pcl(f, *a))
    monkeypatch.setattr(T, "centroids", lambda f, *a: seen["centroids"].append(f.clone()) or real_centroids(f, *a))
    train = small_world[small_world.split == "train"]
    T.train_encoder(train, TINY, tmp_path / "enc", T.TrainConfig(**{**CFG, "epochs": 1}), progress=False)
    assert len(seen["pcl"]) == len(seen["bn_train"]) > 0
    for f, bn in zip(seen["pcl"], seen["bn_train"]):
        torch.testing.assert_close(f, torch.nn.functional.normalize(bn, dim=1))
    torch.testing.assert_close(seen["centroids"][0], torch.nn.functional.normalize(torch.cat(seen["bn_eval"]), dim=1))


def test_training_learns_identities(small_world, tmp_path):
    test = small_world[small_world.split.isin(["query", "gallery"])]
    train = small_world[small_world.split == "train"]

    def m_ap(model):
        f = extract(model, test, progress=False)
        q, g = f.subset("query"), f.subset("gallery")
        return evaluate(base_distance_blocks(q.feats, g.feats), q.pids, q.camids, g.pids, g.camids)["mAP"]

    torch.manual_seed(0)
    untrained = m_ap(ReIDEncoder(TINY, 10).eval())
    trained = T.train_encoder(
        train, TINY, tmp_path / "enc", T.TrainConfig(**{**CFG, "epochs": 16, "milestones": [14]}), progress=False
    )
    assert m_ap(trained) > untrained + 0.05


def test_extracted_features_file(small_world, tmp_path):
    torch.manual_seed(0)
    f = extract(ReIDEncoder(TINY, 3).eval(), small_world, progress=False)
    assert f.feats.shape == (len(small_world), 32) and f.feats.dtype == np.float32
    assert np.allclose(np.linalg.norm(f.feats, axis=1), 1, atol=1e-5)
    assert list(f.paths) == small_world.path.tolist() and set(f.split) == {"train", "query", "gallery"}


def test_config_errors():
    with pytest.raises(MuseError, match="encoder.train.epochz: unknown key"):
        from_section(T.TrainConfig, {"epochz": 3}, "encoder.train")
    with pytest.raises(MuseError, match="need at least ids_per_batch"):
        T.train_encoder(pd.DataFrame({"path": ["a"], "pid": [1], "camid": [1]}), TINY, "/tmp/x", T.TrainConfig())
