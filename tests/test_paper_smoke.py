"""configs/paper.yaml executed at full model size on this machine's CPU (marked `paper`; .ci/run
runs it after the slow tests, about 22 minutes on 2 cores): stand-ins laid out as the downloads
(a random-weight OpenAI ViT-B-16.pt, a random-weight Qwen2-VL-2B-Instruct snapshot, the four
datasets' folders holding a small synthetic world), then

    snakemake results/table2.csv --configfile configs/paper.yaml tests/configs/paper_smoke.yaml --profile profiles/local

tests/configs/paper_smoke.yaml holds every key that differs from the paper's file. Checked: every
job ran and Table 2 is whole; the adapter adapts the published modules, vision MLPs included; the
stored logits equal a forward of the snapshot with the adapter merged, written here with
transformers alone; no job exceeded the memory it asked for."""

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from muse.config import workflow_config
from muse.memory import job_mb
from muse.mllm.sft import lora_targets
from muse.paper import TABLES, standard_rows

from helpers import REPO, muse

pytestmark = pytest.mark.paper

CONFIGS = ["configs/paper.yaml", "tests/configs/paper_smoke.yaml"]
TARGET = "results/table2.csv"
MODEL = "models/Qwen2-VL-2B-Instruct"
ADAPTER = "results/adapters/Qwen2-VL-2B/MA_qchm/dap"
DOWNLOADS = {"MA": "Market-1501-v15.09.15", "MS": "MSMT17_V2", "C3": "cuhk03-np", "CS": "cuhksysu"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The stand-ins, `muse plan`'s prediction, then the run (its return code and wall time)."""
    work = tmp_path_factory.mktemp("paper")
    shutil.copy(REPO / "Snakefile", work)
    for folder in ("workflow", "configs", "profiles"):
        shutil.copytree(REPO / folder, work / folder)
    (work / "tests" / "configs").mkdir(parents=True)
    shutil.copy(REPO / CONFIGS[1], work / CONFIGS[1])
    smoke = yaml.safe_load((REPO / CONFIGS[1]).read_text())
    for domain, folder in DOWNLOADS.items():
        assert smoke["datasets"][domain]["root"] == f"data/{folder}"
        standins = REPO / "tests" / "configs" / "paper_standins.yaml"
        res = muse("data", "synth", "--config", standins, "--domain", domain, "--out", work / "data" / folder)
        assert res.returncode == 0, res.stderr
    assert muse("encoder", "init", "--out", work / smoke["encoder"]["weights"]).returncode == 0
    assert muse("mllm", "init", "--size", "2b", "--out", work / MODEL).returncode == 0
    plan = muse("plan", TARGET, "--configfile", *CONFIGS, "--gpus", "1", "--json", cwd=work)
    assert plan.returncode == 0, plan.stderr
    res = subprocess.run(
        ["snakemake", TARGET, "--configfile", *CONFIGS, "--profile", "profiles/local"],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return work, json.loads(plan.stdout)


def benchmarks(work: Path) -> list[tuple[str, dict, dict]]:
    """(rule, wildcards, measurement) of every job's benchmark file."""
    jobs = []
    for path in sorted((work / "benchmarks").rglob("*.tsv")):
        rel = path.relative_to(work / "benchmarks").as_posix()[: -len(".tsv")]
        row = pd.read_csv(path, sep="\t").iloc[0].to_dict()
        if m := re.fullmatch(r"scores/([^/]+)/[^/]+/[^/]+/\w+\.shard\d+", rel):
            jobs.append(("score_shard", {"mllm": m[1]}, row))
        elif m := re.fullmatch(r"scores/[^/]+/[^/]+/[^/]+/\w+\.gather", rel):
            jobs.append(("score_gather", {}, row))
        elif m := re.fullmatch(r"adapters/([^/]+)/.*", rel):
            jobs.append(("sft", {"mllm": m[1]}, row))
        elif rel.startswith("encoder/train_"):
            jobs.append(("train_encoder", {}, row))
        elif rel.startswith("features/"):
            jobs.append(("extract_train" if rel.endswith("_train") else "extract_test", {}, row))
        else:
            jobs.append((rel.split("/")[-1].rsplit("_", 1)[0], {}, row))
    return jobs


def test_every_job_ran_and_table_2_is_whole(run):
    work, plan = run
    ran = pd.Series([rule for rule, _, _ in benchmarks(work)]).value_counts().to_dict()
    assert ran["score_shard"] == 32 and ran["sft"] == 1 and ran["train_encoder"] == 3
    assert sum(ran.values()) == plan["total_jobs"]
    table = pd.read_csv(work / TARGET)
    reproduced = table[table.reproduced.notna()]  # beside the paper's rows of other methods
    for protocol in TABLES[2]:
        rows = reproduced[reproduced.protocol == protocol]
        assert sorted(rows.row.unique()) == sorted(name for name, _, _ in standard_rows()), protocol
        assert len(rows) == 8 * 2 and rows.reproduced.map(math.isfinite).all()  # mAP and R1
    again = subprocess.run(
        ["snakemake", TARGET, "-n", "--configfile", *CONFIGS, "--cores", "1"], cwd=work, capture_output=True, text=True
    )
    assert "Nothing to be done" in again.stdout + again.stderr


def test_the_adapter_adapts_the_published_modules_and_the_vision_mlps(run):
    work, _ = run
    cfg = json.loads((work / ADAPTER / "adapter_config.json").read_text())
    assert cfg["target_modules"] == lora_targets() and cfg["r"] == 16 and cfg["lora_alpha"] == 32
    from safetensors import safe_open

    with safe_open(work / ADAPTER / "adapter_model.safetensors", "pt") as f:
        keys = list(f.keys())
    adapted = {re.sub(r"\.lora_[AB]\.weight$", "", k) for k in keys}
    assert sum(".visual.blocks." in k and k.endswith(("mlp.fc1", "mlp.fc2")) for k in adapted) == 32 * 2
    assert sum(".language_model.layers." in k for k in adapted) == 28 * 7
    assert len(adapted) == 32 * 2 + 28 * 7
    history = json.loads((work / ADAPTER / "sft_config.json").read_text())
    assert history["batch"] == 2 and history["grad_accum"] == 4 and history["fraction"] == 0.015


# A forward of the snapshot with the adapter merged, through transformers and peft only: the chat
# prompt of Table 1, images resized to 280×140, the raw logits of "Yes" and "No" after the prompt.
FORWARD = r"""
import json, sys
import numpy as np, torch
from PIL import Image
from peft import PeftModel
from transformers import AutoModelForImageTextToText, AutoProcessor
from muse.mllm.prompt import messages
model_dir, adapter, features, scores = sys.argv[1:]
processor = AutoProcessor.from_pretrained(model_dir)
model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
model = PeftModel.from_pretrained(model, adapter).merge_and_unload().eval()
f, s = np.load(features), np.load(scores)
query, gallery = f["split"] == "query", f["split"] == "gallery"
q_paths, g_paths = f["paths"][query], f["paths"][gallery]
text = processor.apply_chat_template(messages("dap"), add_generation_prompt=True, tokenize=False)
yes, no = (processor.tokenizer.convert_tokens_to_ids(w) for w in ("Yes", "No"))
out = []
for i, j in [(0, 0), (len(s["cand"]) - 1, 0)]:
    pair = (q_paths[i], g_paths[s["cand"][i, j]])
    images = [Image.open(p).convert("RGB").resize((140, 280), Image.BICUBIC) for p in pair]
    with torch.no_grad():
        logits = model(**processor(text=[text], images=images, return_tensors="pt")).logits[0, -1]
    out.append([float(logits[yes]), float(logits[no]), float(s["s_yes"][i, j]), float(s["s_no"][i, j])])
print(json.dumps(out))
"""


def test_stored_logits_equal_a_forward_of_the_snapshot_with_the_adapter_merged(run):
    work, _ = run
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            FORWARD,
            MODEL,
            ADAPTER,
            "results/features/MA/MS.npz",
            "results/scores/Qwen2-VL-2B/MA_qchm/dap/MA2MS.npz",
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    for direct_yes, direct_no, stored_yes, stored_no in json.loads(res.stdout.splitlines()[-1]):
        assert abs(direct_yes - stored_yes) <= 1e-3 and abs(direct_no - stored_no) <= 1e-3


def test_no_job_exceeded_the_memory_it_asked_for(run, monkeypatch):
    """Snakemake's benchmark: max_pss (what the job's processes hold, shared pages split among
    them) within mem_mb for every job; max_rss too for the single-process judges' jobs (the
    encoder's loader workers share their pages, which max_rss counts once per process)."""
    work, plan = run
    monkeypatch.chdir(work)  # the config's paths are the run's
    config = workflow_config(CONFIGS)
    for rule, wildcards, row in benchmarks(work):
        if rule not in plan["mem_mb"]:
            continue
        asked = job_mb(rule, config, wildcards)
        assert asked == plan["mem_mb"][rule]
        assert row["max_pss"] <= asked, (rule, row)
        if rule in ("sft", "score_shard"):
            assert row["max_rss"] <= asked, (rule, row)
