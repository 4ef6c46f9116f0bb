"""MLLM judge: prompt, tiny model, LoRA targets, answer-only loss, engine equality, shards, SFT."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from muse.errors import MuseError
from muse.io import Features, load_scores
from muse.mllm import model as M
from muse.mllm import prompt as P
from muse.mllm import score as S
from muse.mllm.losses import answer_loss
from muse.mllm.sft import SFTConfig, lora_model, read_pairs, sft

from helpers import muse

EPS32 = float(torch.finfo(torch.float32).eps)
PAPER = Path(__file__).resolve().parents[2] / "shared" / "paper" / "muse-arxiv-2606.16161.txt"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return M.init(tmp_path_factory.mktemp("mllm") / "tiny")


@pytest.fixture(scope="module")
def tiny25(tmp_path_factory):
    return M.init(tmp_path_factory.mktemp("mllm") / "tiny25", arch="qwen2_5_vl")


@pytest.fixture(scope="module")
def judge(tiny):
    return S.Judge(*M.load(tiny))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Eight small images of distinct colours and a stripe each."""
    root = tmp_path_factory.mktemp("img")
    paths = []
    for k in range(8):
        a = np.zeros((96, 48, 3), np.uint8)
        a[:] = [(37 * k) % 256, (91 * k) % 256, (151 * k) % 256]
        a[10 * k % 80 : 10 * k % 80 + 12] = 255
        paths.append(str(root / f"{k}.jpg"))
        Image.fromarray(a).save(paths[-1])
    return paths


@pytest.mark.skipif(not PAPER.exists(), reason="paper text not beside the repository")
def test_prompt_is_table_1_verbatim():
    paper = PAPER.read_text()
    for text in (P.TASK, P.RULE, P.RESPONSE):
        assert text in paper


def test_prompt_content_order_and_variants(judge):
    text = judge.text
    order = [
        text.index(s)
        for s in (
            P.TASK,
            "Query:<|vision_start|>",
            "<|vision_end|> Candidate:<|vision_start|>",
            P.RULE,
            P.RESPONSE,
            "<|im_start|>assistant\n",
        )
    ]
    assert order == sorted(order) and text.endswith("<|im_start|>assistant\n")
    assert [c["type"] for c in P.user_content("task_resp")] == ["text", "image", "text", "image", "text"]
    assert P.RULE not in P.user_content("task_resp")[-1]["text"]
    assert P.user_content("void") == [{"type": "image"}, {"type": "image"}]
    with pytest.raises(MuseError, match="unknown prompt variant 'long'"):
        P.user_content("long")


def test_release_prompt_variant():
    """The released prompt_template.json's text, as its dataset assembles it: straight quotes,
    rules and response format one per line after the candidate image."""
    items = P.user_content("release")
    assert items[0]["text"] == (
        "You are an expert in person recognition. I will give you a query and a candidate "
        'image, captioned by "Query:" and "Candidate:" independently. Please tell me whether '
        "the people in the two images have the same identity. Query:"
    )
    tail = items[-1]["text"].split("\n")
    assert len(tail) == 10 and tail[0].startswith(" You should") and tail[1].startswith("1. appearance (e.g., age")
    assert tail[-1] == (
        'Respond with "Yes" if the query and the candidate images have the same identity, otherwise respond with "No".'
    )
    assert all(ord(c) < 128 for item in items if item["type"] == "text" for c in item["text"])


def test_images_are_resized_to_280x140(images):
    assert P.load_pair_image(images[0]).size == (140, 280)


def test_tiny_model_layout(tiny, judge):
    tok = judge.processor.tokenizer
    assert M.answer_ids(tok) == tuple(tok.convert_tokens_to_ids(["Yes", "No"]))
    assert len(judge.query_pos) == len(judge.cand_pos) == 50  # 20×10 patches, 2×2 merge
    assert (Path(tiny) / "config.json").is_file() and (Path(tiny) / "tokenizer.json").is_file()
    assert type(judge.model).__name__ == "Qwen2VLForConditionalGeneration"


def test_tiny_qwen2_5_vl_is_the_real_class_with_window_attention(tiny25):
    model, processor, _ = M.load(tiny25)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert model.config.vision_config.fullatt_block_indexes == [1] and model.config.vision_config.window_size == 56
    with pytest.raises(MuseError, match="unknown MLLM architecture 'llava'"):
        M.init(Path(tiny25).parent / "x", arch="llava")


def test_one_record_per_architecture_everywhere_it_is_named():
    """The registry's keys are the light list muse --help reads, and every architecture has its
    published size and GPU plan."""
    from muse.bench.gpu import GPU_PLANS
    from muse.mllm import ARCHITECTURES

    assert tuple(M.ARCHS) == ARCHITECTURES
    assert {arch for arch, _ in M.PUBLISHED} == set(ARCHITECTURES)
    for judges, *_ in GPU_PLANS.values():
        assert [j[0] for j in judges] == list(ARCHITECTURES)


def test_multi_token_answer_is_refused(judge, monkeypatch):
    monkeypatch.setattr(M, "ANSWERS", ("Yes", "Perhaps"))
    with pytest.raises(MuseError, match="'Perhaps' is .* tokens"):
        M.answer_ids(judge.processor.tokenizer)


@pytest.mark.parametrize("vision_attention", [False, True])
@pytest.mark.parametrize(
    "arch, mlp", [("qwen2_vl", ("fc1", "fc2")), ("qwen2_5_vl", ("gate_proj", "up_proj", "down_proj"))]
)
def test_lora_targets_exactly_the_linear_layers(tiny, tiny25, arch, mlp, vision_attention):
    """The release's targets: vision MLPs and every language-model projection; the vision
    attention only when asked; never the patch embedding or the merger."""
    model, _, _ = M.load(tiny if arch == "qwen2_vl" else tiny25)
    peft_model = lora_model(model, SFTConfig(vision_attention=vision_attention))
    wrapped = sorted(
        n.removeprefix("base_model.model.")
        for n, m in peft_model.named_modules()
        if hasattr(m, "lora_A") and isinstance(m.lora_A, torch.nn.ModuleDict)
    )
    attention = ("attn.qkv", "attn.proj") if vision_attention else ()
    vision = [f"model.visual.blocks.{b}.{s}" for b in range(2) for s in (*attention, *(f"mlp.{m}" for m in mlp))]
    text = [
        f"model.language_model.layers.{b}.{s}"
        for b in range(2)
        for s in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
        )
    ]
    assert wrapped == sorted(vision + text)


def test_answer_loss_is_the_answer_token_only(judge, images):
    recs = [
        {"query": images[0], "candidate": images[1], "label": "Yes"},
        {"query": images[2], "candidate": images[2], "label": "No"},
    ]
    loss = answer_loss(judge, recs, P.PairImages())
    full = [judge.naive([P.load_pair_image(r["query"])], [P.load_pair_image(r["candidate"])]) for r in recs]
    enc = judge.processor(
        text=[judge.text], images=[P.load_pair_image(images[0]), P.load_pair_image(images[1])], return_tensors="pt"
    )
    logits0 = judge.model(**enc).logits[0, -1]
    manual = (
        F.cross_entropy(logits0[None], torch.tensor([judge.answer[0]]))
        + F.cross_entropy(
            judge.model(
                **judge.processor(text=[judge.text], images=[P.load_pair_image(images[2])] * 2, return_tensors="pt")
            ).logits[:, -1],
            torch.tensor([judge.answer[1]]),
        )
    ) / 2
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)
    assert torch.allclose(full[0][0], logits0[judge.answer], atol=1e-5)


def _adapter(tiny, out):
    model, _, _ = M.load(tiny)
    peft_model = lora_model(model, SFTConfig())
    torch.manual_seed(3)
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            p.data.normal_(std=0.2)
    peft_model.save_pretrained(out)
    return out


@pytest.mark.parametrize("arch, with_adapter", [("qwen2_vl", False), ("qwen2_vl", True), ("qwen2_5_vl", True)])
def test_engines_give_the_same_logits(tiny, tiny25, images, tmp_path, arch, with_adapter):
    tiny = tiny if arch == "qwen2_vl" else tiny25
    adapter = _adapter(tiny, tmp_path / "lora") if with_adapter else None
    judge = S.Judge(*M.load(tiny, adapter))
    cand = np.array([[0, 1, 2, 3, 4], [4, 5, 6, 7, 0]])
    g = np.array(images)
    for swap in (False, True):
        naive = S.score_queries(judge, images[:2], g, cand, "naive", batch=1, swap=swap, progress=False)
        batched = S.score_queries(judge, images[:2], g, cand, "naive", batch=3, swap=swap, progress=False)
        cached = S.score_queries(judge, images[:2], g, cand, "cached", batch=3, swap=swap, progress=False)
        for a, b in ((naive, cached), (naive, batched)):
            assert np.abs(a[0] - b[0]).max() <= 1e-4 and np.abs(a[1] - b[1]).max() <= 1e-4
    if with_adapter:
        plain = S.score_queries(S.Judge(*M.load(tiny)), images[:2], g, cand, "cached", progress=False)
        assert np.abs(plain[0] - cached[0]).max() > 1e-3  # the adapter is really applied


@pytest.mark.parametrize("arch", ["qwen2_vl", "qwen2_5_vl"])
@pytest.mark.parametrize("variant", ["dap", "void"])
def test_logits_from_visual_tokens_equal_the_full_forward(tiny, tiny25, images, arch, variant):
    """The pretraining's language-model stage feeds stored visual tokens: same logits as the images."""
    judge = S.Judge(*M.load(tiny if arch == "qwen2_vl" else tiny25), variant=variant)
    pil = [P.load_pair_image(p) for p in images[:6]]
    with torch.no_grad():
        full = judge.answer_logits(pil[:3], pil[3:])
        tokens = judge.visual(pil)
        stored = judge.logits_from_tokens(tokens[:3], tokens[3:])
    assert full.shape == stored.shape and torch.allclose(full, stored, atol=1e-4)


@pytest.mark.parametrize("variant", ["dap", "void"])
def test_generate_logits_are_the_releases_generate_scores(tiny, images, variant):
    """logits=generate stores what the release reads, generate(..., do_sample=False).scores[0] at
    Yes/No, under a repetition penalty; raw stores the model's logits; both engines agree."""
    model, processor, answer = M.load(tiny)
    model.generation_config.repetition_penalty = 1.7
    raw, gen = S.Judge(model, processor, answer, variant), S.Judge(model, processor, answer, variant, logits="generate")
    firsts, seconds = [P.load_pair_image(p) for p in images[:3]], [P.load_pair_image(p) for p in images[3:6]]
    enc = processor(
        text=[raw.text] * 3, images=[im for pair in zip(firsts, seconds) for im in pair], return_tensors="pt"
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=1, do_sample=False, output_scores=True, return_dict_in_generate=True)
    expected = out.scores[0][:, answer]
    torch.testing.assert_close(gen.naive(firsts, seconds), expected, atol=1e-5, rtol=1e-5)
    cached = gen.suffix(gen.prefix(gen.visual(firsts[:1])[0]), gen.visual(seconds))[:1]
    torch.testing.assert_close(cached, expected[:1], atol=1e-4, rtol=1e-4)
    plain = raw.naive(firsts, seconds)
    in_prompt = [bool((raw.input_ids == a).any()) for a in answer]
    assert in_prompt == ([True, True] if variant == "dap" else [False, False])  # DAP says: respond with "Yes"…"No"
    assert torch.equal(plain, expected) != any(in_prompt)
    with pytest.raises(MuseError, match="unknown logits 'sampled'"):
        S.Judge(model, processor, answer, variant, logits="sampled")


def _test_set(images, seed):
    """5 queries and 8 gallery images (the same files) with random features."""
    rng = np.random.default_rng(seed)
    paths = np.array(images[:5] + images)
    return Features(
        rng.normal(size=(13, 4)).astype(np.float32),
        np.arange(13) % 4,
        np.arange(13) % 2,
        paths,
        np.array(["query"] * 5 + ["gallery"] * 8),
    )


def test_shards_merge_in_row_order_and_refuse_foreign_gaps_and_overlaps(judge, images, tmp_path):
    f, other = _test_set(images, 0), _test_set(images, 1)
    assert S.score_features(judge, f, 3, tmp_path / "all.npz", "0/1") == slice(0, 5)
    single = load_scores(tmp_path / "all.npz", 5, 8, features=f)
    shards = [tmp_path / f"s{i}.npz" for i in range(3)]
    for i, path in enumerate(shards):
        S.score_features(judge, f, 3, path, f"{i}/3")
    merged = S.merge_shards(shards[::-1], tmp_path / "merged.npz", f)  # any order: by their rows
    assert merged.rows == (0, 5) and merged.features == f.fingerprint
    for name in ("cand", "s_yes", "s_no"):
        np.testing.assert_allclose(getattr(merged, name), getattr(single, name), atol=1e-6)
    with pytest.raises(MuseError, match="s0.npz: rows 0..1 overlaps the shard before it"):
        S.merge_shards([shards[0], shards[0], shards[1], shards[2]], tmp_path / "bad.npz", f)
    with pytest.raises(MuseError, match="s2.npz: rows 3..4 leaves queries 2..2 unscored"):
        S.merge_shards([shards[0], shards[2]], tmp_path / "bad.npz", f)
    with pytest.raises(MuseError, match="shards cover 2 queries, expected 5"):
        S.merge_shards(shards[:1], tmp_path / "bad.npz", f)
    S.score_features(judge, other, 3, tmp_path / "foreign.npz", "1/3")
    with pytest.raises(MuseError, match="foreign.npz: not a shard of these features"):
        S.merge_shards([shards[0], tmp_path / "foreign.npz", shards[2]], tmp_path / "bad.npz", f)
    assert not (tmp_path / "bad.npz").exists()
    with pytest.raises(MuseError, match="all.npz: scored on another features file"):
        load_scores(tmp_path / "all.npz", 5, 8, features=other)
    with pytest.raises(MuseError, match="s1.npz: covers queries 2..2 only, not all 5"):
        load_scores(shards[1], None, 8, features=f)
    assert S.shard_rows(5, "2/6") == slice(2, 2)
    with pytest.raises(MuseError, match="--shard 2/6: no queries in this shard of 5"):
        S.score_features(judge, f, 3, tmp_path / "empty.npz", "2/6")


def test_score_resumes_only_its_own_parts(tiny, images, tmp_path, monkeypatch, capsys):
    """A killed run resumes its finished chunks; a rerun with another judge (or pairs) on the
    same --out starts over instead of mixing; a second writer is refused."""
    judge, other = S.Judge(*M.load(tiny)), S.Judge(*M.load(tiny), variant="void")
    q, g = np.array(images[:5]), np.array(images)
    cand = np.array([[(i + k) % 8 for k in range(3)] for i in range(5)])
    single = S.score_file(judge, q, g, cand, tmp_path / "all.npz", slice(0, 5), chunk=2, progress=False)
    real, calls = S.score_queries, []

    def dies_on_second_chunk(*a, **k):
        calls.append(len(a[1]))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(S, "score_queries", dies_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        S.score_file(judge, q, g, cand, tmp_path / "again.npz", slice(0, 5), chunk=2, progress=False)
    assert len(list((tmp_path / "again.npz.parts").glob("*.npz"))) == 1 and not (tmp_path / "again.npz").exists()
    monkeypatch.setattr(S, "score_queries", lambda *a, **k: (calls.append(len(a[1])), real(*a, **k))[1])
    capsys.readouterr()
    again = S.score_file(judge, q, g, cand, tmp_path / "again.npz", slice(0, 5), chunk=2, progress=False)
    assert len(calls) == 4  # chunks 2 and 3 only, after the kill
    assert f"resuming {tmp_path / 'again.npz'}: 1 of 3 chunks scored" in capsys.readouterr().err
    np.testing.assert_array_equal(again.s_yes, single.s_yes)

    monkeypatch.setattr(S, "score_queries", dies_on_second_chunk)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        S.score_file(judge, q, g, cand, tmp_path / "mixed.npz", slice(0, 5), chunk=2, progress=False)
    monkeypatch.setattr(S, "score_queries", real)
    mixed = S.score_file(other, q, g, cand, tmp_path / "mixed.npz", slice(0, 5), chunk=2, progress=False)
    assert "mixed.npz.parts: made from other inputs or parameters; starting over" in capsys.readouterr().err
    alone = S.score_file(other, q, g, cand, tmp_path / "alone.npz", slice(0, 5), chunk=2, progress=False)
    np.testing.assert_array_equal(mixed.s_yes, alone.s_yes)
    assert not np.allclose(mixed.s_yes[:2], single.s_yes[:2])
    cut = tmp_path / "cut.npz.parts"  # what a full disk leaves: an empty fingerprint, an empty part
    cut.mkdir()
    (cut / "fingerprint").write_text("")
    (cut / "00000000-00000002.npz").write_bytes(b"")
    capsys.readouterr()
    rerun = S.score_file(other, q, g, cand, tmp_path / "cut.npz", slice(0, 5), chunk=2, progress=False)
    assert "other inputs" not in capsys.readouterr().err  # treated as absent: nothing to resume
    np.testing.assert_array_equal(rerun.s_yes, alone.s_yes)

    import fcntl

    with open(tmp_path / "busy.npz.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(MuseError, match="busy.npz.lock: another process is writing this output"):
            S.score_file(judge, q, g, cand, tmp_path / "busy.npz", slice(0, 5), progress=False)
    with pytest.raises(MuseError, match="--batch 0: expected a positive number"):
        S.score_file(judge, q, g, cand, tmp_path / "b.npz", slice(0, 5), batch=0, progress=False)
    assert not (tmp_path / "b.npz.parts").exists() and not (tmp_path / "b.npz").exists()
    with pytest.raises(MuseError, match="--shard '3'"):
        S.shard_rows(5, "3")


def test_sft_lowers_validation_loss_and_writes_a_peft_adapter(tiny, images, tmp_path):
    from peft import PeftModel

    same = [{"query": p, "candidate": p, "label": "Yes"} for p in images]
    other = [{"query": images[k], "candidate": images[(k + 3) % 8], "label": "No"} for k in range(8)]
    train, val = same[:6] + other[:6], same[6:] + other[6:]
    before = float(answer_loss(S.Judge(*M.load(tiny)), val, P.PairImages()))
    history = sft(
        tiny, train, tmp_path / "adapter", SFTConfig(epochs=4, lr=2e-3, batch=4, val_every=2), val=val, progress=False
    )
    assert ["val_loss" in h for h in history] == [False, True, False, True]  # every val_every epochs
    assert history[-1]["val_loss"] < before
    assert not (tmp_path / "adapter.ckpt").exists()
    model, _, _ = M.load(tiny, merge=False)
    assert isinstance(PeftModel.from_pretrained(model, tmp_path / "adapter"), PeftModel)
    # the validation AUC and gap are those of the adapted judge's answers, by hand
    tuned, pairs = S.load_judge(tiny, tmp_path / "adapter"), P.PairImages()
    logits = tuned.naive([pairs[r["query"]] for r in val], [pairs[r["candidate"]] for r in val])
    gap = (logits[:, 0] - logits[:, 1]).tolist()
    pos = [g for g, r in zip(gap, val) if r["label"] == "Yes"]
    neg = [g for g, r in zip(gap, val) if r["label"] == "No"]
    auc = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert history[-1]["val_auc"] == pytest.approx(auc)
    assert history[-1]["val_gap"] == pytest.approx(np.median(np.abs(gap)), rel=1e-4)


def test_sft_with_gradient_checkpointing_learns_the_same_adapter(tiny, images, tmp_path, monkeypatch):
    """Recomputing activations in the backward pass (dropout included) changes memory, not the
    adapter; the option reaches the model."""
    from safetensors.torch import load_file

    loaded, real = [], M.load
    monkeypatch.setattr(M, "load", lambda *a, **k: loaded.append(real(*a, **k)) or loaded[-1])
    train = [
        {"query": images[k], "candidate": images[(k * 3) % 8], "label": "Yes" if k % 2 else "No"} for k in range(4)
    ]
    for checkpointing in (False, True):
        sft(
            tiny,
            train,
            tmp_path / str(checkpointing),
            SFTConfig(epochs=2, lr=1e-3, batch=2, gradient_checkpointing=checkpointing),
            progress=False,
        )
    assert [m.is_gradient_checkpointing for m, _, _ in loaded] == [False, True]
    plain, recomputed = (load_file(tmp_path / str(c) / "adapter_model.safetensors") for c in (False, True))
    assert plain.keys() == recomputed.keys() and any(v.abs().max() > 0 for k, v in plain.items() if "lora_B" in k)
    for k in plain:
        torch.testing.assert_close(recomputed[k], plain[k], rtol=1e-4, atol=1e-6)


def test_read_pairs_errors(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"query": "a", "candidate": "b", "label": "Maybe"}\n')
    with pytest.raises(MuseError, match="p.jsonl:1: expected"):
        read_pairs(tmp_path / "p.jsonl")
    with pytest.raises(MuseError, match="pairs file not found"):
        read_pairs(tmp_path / "none.jsonl")


def test_cli_score_and_merge(tiny, images, tmp_path):
    from muse.io import Features, load_scores, save_features

    n = len(images)
    rng = np.random.default_rng(0)
    save_features(
        tmp_path / "f.npz",
        Features(
            rng.normal(size=(n, 8)).astype(np.float32),
            np.arange(n) % 4,
            np.arange(n) % 3,
            np.array(images),
            np.array(["query"] * 3 + ["gallery"] * 5),
        ),
    )

    for i in range(2):
        res = muse(
            "score",
            "--model",
            tiny,
            "--features",
            tmp_path / "f.npz",
            "--C",
            4,
            "--shard",
            f"{i}/2",
            "--out",
            tmp_path / f"s{i}.npz",
        )
        assert res.returncode == 0, res.stderr
    meta = json.loads((tmp_path / "s0.npz.meta.json").read_text())["config"]
    assert meta["model"] == str(tiny) and meta["adapter"] is None and len(meta["judge"]) == 64
    res = muse(
        "score-merge",
        "--features",
        tmp_path / "f.npz",
        "--shards",
        tmp_path / "s0.npz",
        tmp_path / "s1.npz",
        "--out",
        tmp_path / "s.npz",
    )
    assert res.returncode == 0, res.stderr
    s = load_scores(tmp_path / "s.npz", 3, 5)
    assert s.cand.shape == (3, 4)
    res = muse("evaluate", "--features", tmp_path / "f.npz", "--scores", tmp_path / "s.npz", "--C", 4, "--json")
    assert res.returncode == 0, res.stderr
    bad = muse("score", "--model", tiny, "--features", tmp_path / "f.npz", "--C", 9, "--out", tmp_path / "x.npz")
    assert bad.returncode != 0 and "C = 9: expected 1 <= C <= 5" in bad.stderr
    bad = muse(
        "score",
        "--model",
        tiny,
        "--adapter",
        tmp_path,
        "--features",
        tmp_path / "f.npz",
        "--C",
        2,
        "--out",
        tmp_path / "x.npz",
    )
    assert bad.returncode != 0 and "not a LoRA adapter directory" in bad.stderr


def test_sft_resumes_after_a_kill_with_the_same_adapter(tiny, images, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from muse.mllm import sft as SFT

    train = [
        {"query": images[k], "candidate": images[(k * 5) % 8], "label": "Yes" if k % 2 else "No"} for k in range(8)
    ]
    cfg = SFTConfig(epochs=2, lr=1e-3, batch=4)
    sft(tiny, train, tmp_path / "full", cfg, progress=False)
    real, calls = SFT.answer_loss, []

    def dies_in_epoch_2(*a, **k):
        calls.append(1)
        if len(calls) == 3:  # 2 batches per epoch: first of epoch 2
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(SFT, "answer_loss", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        sft(tiny, train, tmp_path / "again", cfg, progress=False)
    assert (tmp_path / "again.ckpt").exists() and not (tmp_path / "again").exists()
    monkeypatch.setattr(SFT, "answer_loss", real)
    sft(tiny, train, tmp_path / "again", cfg, progress=False)
    a = load_file(tmp_path / "full" / "adapter_model.safetensors")
    b = load_file(tmp_path / "again" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # killed again, then rerun with other pairs: it starts over and ends as a run on those alone
    calls.clear()
    monkeypatch.setattr(SFT, "answer_loss", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        sft(tiny, train, tmp_path / "changed", cfg, progress=False)
    monkeypatch.setattr(SFT, "answer_loss", real)
    flipped = [{**r, "label": "No" if r["label"] == "Yes" else "Yes"} for r in train]
    sft(tiny, flipped, tmp_path / "changed", cfg, progress=False)
    sft(tiny, flipped, tmp_path / "flipped", cfg, progress=False)
    c = load_file(tmp_path / "changed" / "adapter_model.safetensors")
    d = load_file(tmp_path / "flipped" / "adapter_model.safetensors")
    assert all(torch.equal(c[k], d[k]) for k in c) and not all(torch.equal(a[k], c[k]) for k in a)


def test_accumulated_batches_give_the_gradient_of_one_batch(tiny, images):
    """grad_accum passes of ``batch`` pairs, each weighted by its share, give the gradient of the
    mean loss over all of them in one pass, a short last pass included."""
    from accelerate import Accelerator

    from muse.mllm.sft import accumulate

    model, processor, answer = M.load(tiny)
    model.eval()
    judge, acc, pics = S.Judge(model, processor, answer, "dap"), Accelerator(cpu=True), P.PairImages()
    records = [
        {"query": images[k], "candidate": images[(k + 2) % 8], "label": "Yes" if k % 2 else "No"} for k in range(5)
    ]

    def gradients(batch, n):
        model.zero_grad(set_to_none=True)
        value = accumulate(acc, model, judge, records[:n], pics, batch)
        return value, {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    for n, batch in ((4, 2), (5, 2)):  # 2 + 2, and 2 + 2 + 1
        (v_acc, g_acc), (v_one, g_one) = gradients(batch, n), gradients(n, n)
        assert v_acc == pytest.approx(v_one, rel=1e-5) and g_acc.keys() == g_one.keys() and g_one
        for k in g_one:
            # a gradient entry sums over the batch's ~10³ tokens in an order that differs between the
            # two passes: fp32 rounding is bounded by (tokens × eps) ≈ 1.2e-4 of the terms' scale
            scale = float(g_one[k].abs().max())
            torch.testing.assert_close(g_acc[k], g_one[k], rtol=1e-5, atol=1000 * EPS32 * scale)


def test_sft_with_accumulation_steps_as_one_batch_and_resumes_bit_identical(tiny, images, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from muse.mllm import sft as SFT

    train = [
        {"query": images[k], "candidate": images[(k * 5) % 8], "label": "Yes" if k % 2 else "No"} for k in range(8)
    ]
    accumulated = SFTConfig(epochs=2, lr=1e-3, batch=2, grad_accum=2, lora_dropout=0.0)
    sft(tiny, train, tmp_path / "accumulated", accumulated, progress=False)
    sft(tiny, train, tmp_path / "one", SFTConfig(epochs=2, lr=1e-3, batch=4, lora_dropout=0.0), progress=False)
    real, calls = SFT.answer_loss, []

    def dies_in_epoch_2(*a, **k):
        calls.append(1)
        if len(calls) == 5:  # 2 steps of 2 passes per epoch: first pass of epoch 2
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(SFT, "answer_loss", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        sft(tiny, train, tmp_path / "again", accumulated, progress=False)
    monkeypatch.setattr(SFT, "answer_loss", real)
    sft(tiny, train, tmp_path / "again", accumulated, progress=False)
    a, b, one = (load_file(tmp_path / d / "adapter_model.safetensors") for d in ("accumulated", "again", "one"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(v.abs().max() > 0 for k, v in a.items() if "lora_B" in k)
    for k in a:
        torch.testing.assert_close(a[k], one[k], rtol=1e-4, atol=1e-6)
    with pytest.raises(MuseError, match="grad_accum"):
        SFTConfig(grad_accum=0)


def test_cli_init_tiny_and_sft(images, tmp_path):
    assert muse("mllm", "init", "--out", tmp_path / "tiny").returncode == 0
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps({"query": images[k], "candidate": images[k - 1], "label": "No"}) + "\n" for k in range(4))
    )
    res = muse(
        "sft",
        "--model",
        tmp_path / "tiny",
        "--pairs",
        pairs,
        "--epochs",
        1,
        "--batch",
        2,
        "--out",
        tmp_path / "adapter",
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    bad = muse("sft", "--model", tmp_path / "nowhere", "--pairs", pairs, "--out", tmp_path / "a2")
    assert bad.returncode != 0 and "not a model directory" in bad.stderr and "Traceback" not in bad.stderr
