"""Bad input: every case gets one line naming the offending file or key, a non-zero exit, and
leaves no partial output behind."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from muse.io import Features, save_features

from helpers import fails_with_one_line, muse, write_image


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Good and broken input files, written once."""
    d = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(0)
    n = 20
    save_features(
        d / "f.npz",
        Features(
            rng.normal(size=(n, 4)).astype(np.float32),
            np.arange(n) % 5,
            np.arange(n) % 2,
            np.array([f"{i}.jpg" for i in range(n)]),
            np.array(["query"] * 5 + ["gallery"] * 15),
        ),
    )
    whole = (d / "f.npz").read_bytes()
    (d / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    (d / "empty.npz").write_bytes(b"")
    np.savez(d / "pickled.npz", feats=np.array([object()], dtype=object))
    (d / "header.csv").write_text("path,pid,camid,split,domain\n")
    (d / "pid.csv").write_text("path,pid,camid,split,domain\na.jpg,seven,1,train,MA\n")
    write_image(d / "a.jpg")
    (d / "split.csv").write_text("path,pid,camid,split,domain\na.jpg,1,1,train,MA\na.jpg,1,2,Query,MA\n")
    header = "path,pid,camid,split,domain\n"
    (d / "dup.csv").write_text(header + "a.jpg,1,1,train,MA\nb.jpg,2,1,train,MA\na.jpg,1,1,train,MA\n")
    (d / "missing.csv").write_text("path,pid,camid,split,domain\na.jpg,1,1,train,MA\nnone.jpg,2,1,train,MA\n")
    (d / "pairs.jsonl").write_text('{"query": "a.jpg", "candidate": "b.jpg", "label": "Yes"}\n')
    root = d / "market"
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        write_image(root / folder / "0001_c1s1_000001_00.jpg")
    Image.new("L", (20000, 20000)).save(root / "bounding_box_train" / "0002_c2s1_000001_00.jpg")  # a bomb
    cs = d / "cuhksysu"
    (cs / "Image" / "SSM").mkdir(parents=True)
    (cs / "annotation" / "test" / "train_test").mkdir(parents=True)
    (cs / "annotation" / "test" / "train_test" / "Train.mat").write_bytes(b"MATLAB garbage")
    (d / "config.yaml").write_text("encoder: {clip: {}, image_size: [32, 16], weights: null, batch: 4, train: {}}\n")
    (d / "outdir").mkdir()
    vision = {"image_size": [32, 16], "patch_size": 8, "width": 16, "layers": 1, "head_width": 8}
    clip = {"embed_dim": 8, "vision_cfg": vision}
    clip["text_cfg"] = {"context_length": 4, "vocab_size": 16, "width": 8, "heads": 1, "layers": 1}
    for name, config, weights in (("enc_cfg", "{broken", b""), ("enc_weights", None, b"not safetensors")):
        (d / name).mkdir()
        (d / name / "config.json").write_text(config or json.dumps({"clip": clip, "num_classes": 2}))
        (d / name / "model.safetensors").write_bytes(weights)
    return d


def broken_judge(inputs, name):
    """A copy of the tiny judge with one file missing, corrupt or truncated."""
    if (inputs / name).exists():
        return
    shutil.copytree(inputs / "tiny", inputs / name)
    if name == "no_tokenizer":
        (inputs / name / "tokenizer.json").unlink()
    elif name == "bad_config":
        (inputs / name / "config.json").write_text("{broken")
    else:
        weights = inputs / name / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])


CASES = {
    "truncated npz": (["evaluate", "--features", "truncated.npz"], ["truncated.npz: not a readable .npz"], []),
    "empty npz": (["evaluate", "--features", "empty.npz"], ["empty.npz: not a readable .npz"], []),
    "pickle": (["evaluate", "--features", "pickled.npz"], ["pickled.npz"], []),
    "block 0": (["evaluate", "--features", "f.npz", "--block", "0"], ["--block", "positive integer"], []),
    "memory 0": (
        ["evaluate", "--features", "f.npz", "--rerank", "krnn", "--memory", "0", "--out", "r.json"],
        ["--memory", "positive size in GB"],
        ["r.json"],
    ),
    "option of the other expansion": (
        ["evaluate", "--features", "f.npz", "--rerank", "caj", "--k2", "100000", "--out", "r.json"],
        ["caj k2 = 100000: read with qe = plain only"],
        ["r.json"],
    ),
    "original not given": (["bench", "rerank", "--method", "original"], ["--method original needs --original"], []),
    "original not the code": (
        ["bench", "rerank", "--method", "original", "--original", "pid.csv"],
        ["pid.csv: not the original k-reciprocal code"],
        [],
    ),
    "alpha without scores": (["evaluate", "--features", "f.npz", "--alpha", "0.5"], ["--alpha without --scores"], []),
    "out is a directory": (["evaluate", "--features", "f.npz", "--out", "outdir"], ["outdir: is a directory"], []),
    "header-only manifest": (
        ["train-encoder", "--manifest", "header.csv", "--config", "config.yaml", "--out", "enc"],
        ["header.csv: no rows"],
        ["enc", "enc.ckpt"],
    ),
    "non-integer pid": (
        ["train-encoder", "--manifest", "pid.csv", "--config", "config.yaml", "--out", "enc"],
        ["pid.csv: not a manifest", "seven"],
        ["enc"],
    ),
    "unknown split": (
        ["train-encoder", "--manifest", "split.csv", "--config", "config.yaml", "--out", "enc"],
        ["split.csv:3: split 'Query', expected one of train, val, query, gallery"],
        ["enc"],
    ),
    "duplicate row": (
        ["train-encoder", "--manifest", "dup.csv", "--config", "config.yaml", "--out", "enc"],
        ["dup.csv:4:", "a.jpg is listed twice (first on line 2)"],
        ["enc"],
    ),
    "missing image": (
        ["train-encoder", "--manifest", "missing.csv", "--config", "config.yaml", "--out", "enc"],
        ["missing.csv:3:", "none.jpg: image not found"],
        ["enc", "enc.ckpt"],
    ),
    "same domain twice": (
        [
            "train-encoder",
            "--manifest",
            "market.csv",
            "--manifest",
            "market.csv",
            "--config",
            "config.yaml",
            "--out",
            "enc",
        ],
        ["market.csv: a second --manifest of domain MA"],
        ["enc"],
    ),
    "decompression bomb": (
        ["data", "manifest", "--format", "market1501", "--root", "market", "--out", "m.csv"],
        ["0002_c2s1_000001_00.jpg: unreadable image", "decompression bomb"],
        ["m.csv"],
    ),
    "garbage mat": (
        ["data", "convert-cuhksysu", "--raw", "cuhksysu", "--out", "cs"],
        ["Train.mat: not a CUHK-SYSU Train.mat"],
        ["cs"],
    ),
    "score batch 0": (
        ["score", "--model", "nowhere", "--features", "f.npz", "--C", "3", "--batch", "0", "--out", "s.npz"],
        ["--batch", "positive integer"],
        ["s.npz", "s.npz.parts"],
    ),
    "score out is a directory": (
        ["score", "--model", "tiny", "--features", "f.npz", "--C", "3", "--out", "outdir"],
        ["outdir: is a directory"],
        ["outdir.parts", "outdir.lock"],
    ),
    "score empty shard": (
        ["score", "--model", "tiny", "--features", "f.npz", "--C", "3", "--shard", "2/6", "--out", "s.npz"],
        ["--shard 2/6: no queries in this shard of 5"],
        ["s.npz", "s.npz.parts"],
    ),
    "score C beyond the gallery, before any model loads": (
        ["score", "--model", "nowhere", "--features", "f.npz", "--C", "99", "--out", "s.npz"],
        ["C = 99: expected 1 <= C <= 15"],
        ["s.npz", "s.npz.parts"],
    ),
    "score adapter, before any model loads": (
        ["score", "--model", "tiny", "--adapter", "outdir", "--features", "f.npz", "--C", "3", "--out", "s.npz"],
        ["outdir: not a LoRA adapter directory"],
        ["s.npz", "s.npz.parts"],
    ),
    "unknown shipped judge": (
        ["score", "--model", "pretrained:llava", "--features", "f.npz", "--C", "3", "--out", "s.npz"],
        ["argument --model: pretrained:llava: no such judge"],
        ["s.npz"],
    ),
    "sft image missing, before any model loads": (
        ["sft", "--model", "nowhere", "--pairs", "pairs.jsonl", "--out", "a"],
        ["pairs.jsonl:1: b.jpg: image not found"],
        ["a", "a.ckpt"],
    ),
    "judge without tokenizer": (
        ["score", "--model", "no_tokenizer", "--features", "f.npz", "--C", "3", "--out", "s.npz"],
        ["no_tokenizer: no tokenizer (tokenizer.json"],
        ["s.npz", "s.npz.parts"],
    ),
    "judge config corrupt": (
        ["score", "--model", "bad_config", "--features", "f.npz", "--C", "3", "--out", "s.npz"],
        ["bad_config: unreadable checkpoint"],
        ["s.npz", "s.npz.parts"],
    ),
    "judge weights truncated": (
        ["score", "--model", "truncated_judge", "--features", "f.npz", "--C", "3", "--out", "s.npz"],
        ["truncated_judge: unreadable checkpoint", "deserializing"],
        ["s.npz", "s.npz.parts"],
    ),
    "encoder config corrupt": (
        ["extract", "--encoder", "enc_cfg", "--manifest", "market.csv", "--splits", "train", "--out", "e.npz"],
        ["enc_cfg/config.json: not an encoder config"],
        ["e.npz"],
    ),
    "encoder weights truncated": (
        ["extract", "--encoder", "enc_weights", "--manifest", "market.csv", "--splits", "train", "--out", "e.npz"],
        ["enc_weights/model.safetensors: unreadable safetensors"],
        ["e.npz"],
    ),
    "sft epochs 0": (
        ["sft", "--model", "tiny", "--pairs", "pairs.jsonl", "--epochs", "0", "--out", "a"],
        ["sft epochs = 0", "positive integer"],
        ["a", "a.ckpt"],
    ),
    "sft fraction 0": (
        ["sft", "--model", "tiny", "--pairs", "pairs.jsonl", "--fraction", "0", "--out", "a"],
        ["sft fraction = 0.0"],
        ["a", "a.ckpt"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_line_and_nothing_left(inputs, tmp_path_factory, case):
    args, fragments, outputs = CASES[case]
    if "market.csv" in args and not (inputs / "market.csv").exists():
        (inputs / "market.csv").write_text("path,pid,camid,split,domain\na.jpg,1,1,train,MA\n")
    judges = {"tiny", "no_tokenizer", "bad_config", "truncated_judge"} & set(args)
    if judges and not (inputs / "tiny").exists():
        assert muse("mllm", "init", "--out", inputs / "tiny").returncode == 0
    for name in judges - {"tiny"}:
        broken_judge(inputs, name)
    fails_with_one_line(muse(*args, cwd=inputs), *fragments)
    for out in outputs:
        assert not (inputs / out).exists(), out
    assert not list(inputs.glob(".*.tmp"))
