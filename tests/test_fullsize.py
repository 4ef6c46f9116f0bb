"""The published judges' architectures (Qwen2-VL-2B-Instruct, Qwen2.5-VL-7B-Instruct) built with
random weights: configs against the published parameter counts, the real vocabulary and special
ids, the token layout of a pair, LoRA targets on the 7B without its weights (meta device), and —
slow — the 2B written as a download, loaded, scored by both engines, fine-tuned one step and its
adapter reloaded, within 14 GB of memory."""

import json
import re
import resource
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from muse.errors import MuseError
from muse.mllm import model as M
from muse.mllm.prompt import IMAGE_SIZE, messages
from muse.mllm.sft import SFTConfig, lora_model, lora_targets

from helpers import fails_with_one_line, muse

# The model cards' parameter counts.
PARAMS = {("qwen2_vl", "2b"): 2_208_985_600, ("qwen2_5_vl", "7b"): 8_292_166_656}
SPECIAL_IDS = dict(zip(M.SPECIAL, range(151643, 151657)))


REAL = M._packaged_vocabulary()
needs_real = pytest.mark.skipif(REAL is None, reason="the real vocabulary (extra `vocab`) is not installed")


@pytest.fixture(scope="module")
def processor():
    """The published Qwen2-VL processor with the imitation vocabulary (the package hidden)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(M, "_packaged_vocabulary", lambda: None)
        return M.make_processor("qwen2_vl", "2b")


@pytest.fixture(scope="module")
def real():
    if REAL is None:
        pytest.skip("the real vocabulary (extra `vocab`) is not installed")
    return M.make_processor("qwen2_vl", "2b")


@pytest.mark.parametrize("arch,size", list(PARAMS))
def test_published_architecture_has_the_published_parameter_count(arch, size):
    model, _ = M.build(arch, size, device="meta")
    assert sum(p.numel() for p in model.parameters()) == PARAMS[arch, size]
    cfg = model.config
    assert cfg.image_token_id == 151655 and cfg.video_token_id == 151656
    assert cfg.vision_start_token_id == 151652 and cfg.vision_end_token_id == 151653
    assert cfg.text_config.rope_parameters["mrope_section"] == [16, 24, 24]
    assert cfg.text_config.rope_parameters["rope_theta"] == 1e6
    assert model.config._attn_implementation == "sdpa"
    assert model.generation_config.top_k == 1 and model.generation_config.eos_token_id == [151645, 151643]
    tied = model.lm_head.weight is model.model.language_model.embed_tokens.weight
    assert tied == (size == "2b")
    if arch == "qwen2_5_vl":
        assert cfg.vision_config.fullatt_block_indexes == [7, 15, 23, 31] and cfg.vision_config.window_size == 112


def test_imitation_tokenizer_has_the_real_size_and_special_ids(processor):
    tok = processor.tokenizer
    assert M.vocabulary_name(tok) == "imitation of Qwen2's size"
    assert len(tok) == 151643 + len(M.SPECIAL)
    assert {t: tok.convert_tokens_to_ids(t) for t in M.SPECIAL} == SPECIAL_IDS
    assert max(tok.backend_tokenizer.get_vocab(with_added_tokens=False).values()) == 151642
    yes, no = M.answer_ids(tok)
    assert yes < 151643 and no < 151643 and yes != no
    words = M._words()
    assert len(words) > 80 and all(len(tok.encode(w)) == len(tok.encode(" " + w)) == 1 for w in words)
    assert tok.decode(tok.encode("Query: a person, Candidate: 123")) == "Query: a person, Candidate: 123"


def _pair_ids(processor) -> list[int]:
    text = processor.apply_chat_template(messages("dap"), add_generation_prompt=True, tokenize=False)
    blank = Image.new("RGB", IMAGE_SIZE[::-1])
    return processor(text=[text], images=[blank, blank], return_tensors="pt")["input_ids"][0].tolist()


@pytest.mark.parametrize("vocab", ["processor", pytest.param("real", marks=needs_real)])
def test_pair_token_layout_with_the_published_processor(vocab, request):
    """Two 280×140 images → 2 × 50 image tokens, each between <|vision_start|> and <|vision_end|>."""
    processor = request.getfixturevalue(vocab)
    ids = _pair_ids(processor)
    assert ids.count(151655) == 100
    starts = [i for i, t in enumerate(ids) if t == 151652]
    ends = [i for i, t in enumerate(ids) if t == 151653]
    assert len(starts) == 2 and [e - s for s, e in zip(starts, ends)] == [51, 51]
    assert ids[:2] == [151644, *processor.tokenizer.encode("system")]
    assert ids[-3:] == [151644, *processor.tokenizer.encode("assistant\n")]


def test_the_real_vocabulary_gives_qwen2s_ids_and_counts(real):
    """Qwen2's vocabulary: "Yes" = 9454, "No" = 2753 without a leading space; Table 1's three
    texts are 228 tokens; the special tokens at their published ids (Qwen2.5-VL: eight more)."""
    from muse.mllm.prompt import RESPONSE, RULE, TASK

    tok = real.tokenizer
    assert M.answer_ids(tok) == (9454, 2753) and M.vocabulary_name(tok) == "Qwen2 (151,643 tokens)"
    assert sum(len(tok.encode(t, add_special_tokens=False)) for t in (TASK, RULE, RESPONSE)) == 228
    assert len(tok) == 151643 + len(M.SPECIAL)
    assert {t: tok.convert_tokens_to_ids(t) for t in M.SPECIAL} == SPECIAL_IDS
    tok25 = M.make_processor("qwen2_5_vl", "7b").tokenizer
    assert [tok25.convert_tokens_to_ids(t) for t in M.SPECIAL + M.SPECIAL_2_5] == list(range(151643, 151665))
    assert _pair_ids(M.make_processor("qwen2_vl", "2b", REAL)) == _pair_ids(real)  # a file given = the package's


def test_a_tokenizer_file_that_is_not_qwen2s_is_refused_in_one_line(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(MuseError, match="tokenizer.json: not a tokenizer.json"):
        M.make_processor("qwen2_vl", "2b", bad)
    small = M.make_processor("qwen2_vl", "tiny").tokenizer.backend_tokenizer
    small.save(str(bad))
    fails_with_one_line(
        muse("mllm", "init", "--size", "2b", "--tokenizer", bad, "--out", tmp_path / "m"),
        "regular tokens, Qwen2's vocabulary has 151643",
    )
    assert not (tmp_path / "m").exists()


def test_lora_targets_of_the_7b_without_weights():
    """The release's targets on Qwen2.5-VL-7B: q, k, v, o, gate, up, down in 28 decoder layers and
    gate, up, down in 32 vision blocks; trainable parameters r·(in + out) summed by hand."""
    model, _ = M.build("qwen2_5_vl", "7b", device="meta")
    names = [n for n, _ in model.named_modules() if re.fullmatch(lora_targets(), n)]
    assert len(names) == 28 * 7 + 32 * 3
    wide = [n for n, _ in model.named_modules() if re.fullmatch(lora_targets(vision_attention=True), n)]
    assert len(wide) == len(names) + 32 * 2
    peft = lora_model(model, SFTConfig())
    r, h, kv, ff, vh, vff = 16, 3584, 512, 18944, 1280, 3420
    llm = 28 * r * (2 * (h + h) + 2 * (h + kv) + 3 * (h + ff))
    vision = 32 * r * 3 * (vh + vff)
    assert sum(p.numel() for p in peft.parameters() if p.requires_grad) == llm + vision == 47_589_376


def test_unpublished_size_is_refused_in_one_line(tmp_path):
    with pytest.raises(MuseError, match="unknown model size '2b' for qwen2_5_vl: expected one of tiny, small, 7b"):
        M.build("qwen2_5_vl", "2b", device="meta")
    fails_with_one_line(
        muse("mllm", "init", "--arch", "qwen2_vl", "--size", "7b", "--out", tmp_path / "m"),
        "unknown model size '7b' for qwen2_vl",
    )
    assert not (tmp_path / "m").exists()


CHECK = r"""
import json, resource, sys, tempfile
import numpy as np, torch
from PIL import Image
from muse.mllm.score import load_judge, score_queries
model_dir, adapter, phase = sys.argv[1:]
rng = np.random.default_rng(0)
paths = []
for k in range(3):
    paths.append(f"{tempfile.mkdtemp()}/{k}.png")
    Image.fromarray(rng.integers(0, 255, (128, 64, 3), dtype=np.uint8)).save(paths[-1])
out = {}
if phase == "score":
    judge = load_judge(model_dir)
    out["dtype"] = str(judge.model.dtype)
    cand = np.array([[0, 1]])
    a = score_queries(judge, paths[:1], np.array(paths[1:]), cand, "naive", 1, progress=False)
    b = score_queries(judge, paths[:1], np.array(paths[1:]), cand, "cached", 2, progress=False)
    out["diff"] = float(np.abs(np.stack(a) - np.stack(b)).max())
elif phase == "sft":
    from muse.mllm.sft import SFTConfig, sft
    pairs = [{"query": paths[0], "candidate": paths[1], "label": "Yes"}]
    cfg = SFTConfig(epochs=1, batch=1, gradient_checkpointing=True)     # 14.3 GB without, on 2 cores
    out["history"] = sft(model_dir, pairs, adapter, cfg, progress=False)
else:
    from peft import PeftModel
    from muse.mllm.model import load
    base, _, _ = load(model_dir)
    model = PeftModel.from_pretrained(base, adapter)
    out["lora_modules"] = sum(1 for n, _ in model.named_modules() if n.endswith("lora_A"))
out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps(out))
"""


@pytest.mark.slow
def test_2b_snapshot_loads_scores_and_finetunes_within_14_gb(tmp_path):
    """About 4 minutes and 14 GB on a 2-core machine: `muse mllm init --size 2b` writes the
    download's layout; the judge loads it in fp32; the engines agree to 1e-3; one LoRA step runs
    (with gradient checkpointing) and its adapter reloads with PeftModel.from_pretrained; no phase
    (a process each) exceeds 14 GB."""
    model_dir = tmp_path / "Qwen2-VL-2B-Instruct"
    assert muse("mllm", "init", "--size", "2b", "--out", model_dir).returncode == 0
    index = json.loads((model_dir / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert shards == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    assert all(f.stat().st_size <= 4e9 for f in model_dir.glob("*.safetensors"))
    assert {
        "config.json",
        "generation_config.json",
        "preprocessor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.json",
    } <= {f.name for f in model_dir.iterdir()}
    assert "model.layers.0.self_attn.q_proj.weight" in index["weight_map"]  # the published key names
    assert json.loads((model_dir / "config.json").read_text())["dtype"] == "bfloat16"
    results = {}
    for phase in ("score", "sft", "reload"):
        res = subprocess.run(
            [sys.executable, "-c", CHECK, str(model_dir), str(tmp_path / "adapter"), phase],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stderr[-2000:]
        results[phase] = json.loads(res.stdout.splitlines()[-1])
    assert results["score"]["dtype"] == "torch.float32" and results["score"]["diff"] <= 1e-3
    history = results["sft"]["history"]
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])
    assert results["reload"]["lora_modules"] == 28 * 7 + 32 * 2
    peak = max(r["peak_rss_gb"] for r in results.values())
    assert peak <= 14.0, results
    assert resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20 <= 14.0
