"""muse.memory: a job's mem_mb from the model it loads; the workflow's memory limit and threads."""

import subprocess

import pytest
import yaml
from safetensors.torch import load_file

from muse import memory as Mem
from muse.config import workflow_config
from muse.mllm.model import pretrained_dir
from muse.plan import read_rates

from helpers import REPO, copy_workflow, empty_layout

RATES = read_rates()
P_2B = 2_208_985_600  # Qwen2-VL-2B-Instruct's model card


def test_parameters_from_the_safetensors_headers_equal_the_loaded_tensors():
    folder = pretrained_dir("qwen2_vl")
    params, size = Mem.checkpoint_parameters(str(folder))
    tensors = load_file(folder / "model.safetensors")
    assert params == sum(t.numel() for t in tensors.values())
    assert size == sum(t.numel() * t.element_size() for t in tensors.values())


def test_a_published_size_is_counted_without_weights():
    assert Mem.published_parameters("qwen2_vl", "2b") == P_2B
    config = {"mllm": {"models": {"Qwen2-VL-2B": "/models/not-there-yet"}}}
    params, disk, key = Mem.mllm_weights(config, "Qwen2-VL-2B")
    assert (params, disk, key) == (P_2B, 2, "2b")


def test_the_2b_on_the_cpu_by_hand():
    """Fine-tuning on the CPU, batch 2: R + max(6P, 4P + 2 A_sft), 5 % more, rounded up to 100 MB;
    scoring: R + 6P (loading dominates); on a GPU the host holds R + 2P, the mapped shards."""
    R, A = RATES[("mem_runtime", "any")]["value"], RATES[("mem_sft", "2b")]["value"]
    sft = Mem.mllm_peak_gb("sft", P_2B, 2, "2b", gpu=False, batch=2, rates=RATES)
    assert sft == pytest.approx(R + max(6 * P_2B / 1e9, 4 * P_2B / 1e9 + 2 * A))
    assert Mem.asked_mb(sft) == 100 * -(-sft * 1.05 * 10 // 1)
    score = Mem.mllm_peak_gb("score", P_2B, 2, "2b", gpu=False, batch=2, rates=RATES)
    assert score == pytest.approx(R + 6 * P_2B / 1e9)
    assert Mem.mllm_peak_gb("sft", P_2B, 2, "2b", gpu=True, batch=2, rates=RATES) == pytest.approx(R + 2 * P_2B / 1e9)
    # what the 2B was measured at on the CPU (rates.csv): the asked memory is above it
    assert Mem.asked_mb(sft) > 23_160 and Mem.asked_mb(score) > 14_200


def test_every_job_of_the_shipped_and_paper_configs_has_a_memory():
    demo = workflow_config(base=REPO / "config.yaml")
    assert all(
        Mem.job_mb(rule, demo, {"mllm": "Qwen2-VL-2B"}) < 2000
        for rule in ("sft", "score", "score_shard", "train_encoder", "extract_test", "extract_train")
    )
    paper = workflow_config([REPO / "configs" / "paper.yaml"])
    assert Mem.job_mb("train_encoder", paper, {}) == Mem.asked_mb(RATES[("mem_train_encoder", "ViT-B-16")]["value"])
    assert Mem.job_mb("sft", paper, {"mllm": "Qwen2.5-VL-7B"}) > Mem.job_mb("sft", paper, {"mllm": "Qwen2-VL-2B"})
    with pytest.raises(Mem.MuseError, match="no memory model"):
        Mem.job_mb("mine", paper, {})


def test_machine_memory_is_this_machines():
    total = next(int(x.split()[1]) for x in open("/proc/meminfo") if x.startswith("MemTotal:")) * 1024 // 10**6
    assert 0 < Mem.machine_mb() <= total


def _snakemake(workdir, *args):
    return subprocess.run(["snakemake", "--cores", "2", *args], cwd=workdir, capture_output=True, text=True)


def test_a_job_the_run_cannot_hold_is_refused_before_anything_runs(tmp_path):
    """--resources mem_mb below the demo judge's fine-tuning: the dry run fails with one line."""
    copy_workflow(tmp_path)
    need = Mem.job_mb("sft", workflow_config(base=REPO / "config.yaml"), {"mllm": "Qwen2-VL-2B"})
    res = _snakemake(tmp_path, "-n", "results/table2.csv", "--resources", f"mem_mb={need - 1}")
    out = res.stderr + res.stdout
    assert res.returncode != 0
    assert f"the sft job (mllm=Qwen2-VL-2B, src=MA, strategy=qchm, prompt=dap) needs {need} MB of memory" in out
    ok = _snakemake(tmp_path, "-n", "results/table2.csv", "--resources", f"mem_mb={need}")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "threads: 2" in ok.stdout  # alone in the run's memory: both cores
    default = _snakemake(tmp_path, "-n", "results/table2.csv")  # the machine's memory
    assert default.returncode == 0 and "threads: 2" not in default.stdout  # the small judges share the machine


def test_a_full_size_judge_on_the_cpu_gets_every_core_and_the_memory_it_needs(tmp_path):
    """configs/paper.yaml on the CPU (a 2B checkpoint's folder named, not yet there): each fine-tuning
    and scoring job asks for its memory, and for both cores when two would not fit together."""
    copy_workflow(tmp_path)
    cfg = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    for d, ds in cfg["datasets"].items():
        ds["root"] = str(tmp_path / "data" / d)
        empty_layout(tmp_path / "data" / d, ds["format"], ds.get("variant"))
    model = tmp_path / "models" / "Qwen2-VL-2B-Instruct"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    cfg["mllm"]["models"]["Qwen2-VL-2B"] = str(model)
    cfg["encoder"]["weights"] = None
    cfg["gpu"] = 0
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(cfg))
    limit = 2 * Mem.job_mb("score_shard", cfg, {"mllm": "Qwen2-VL-2B"}) - 1
    res = _snakemake(
        tmp_path, "-n", "results/table2.csv", "--configfile", "paper.yaml", "--resources", f"mem_mb={limit}"
    )
    assert res.returncode == 0, res.stderr[-2000:] + res.stdout[-2000:]
    blocks = res.stdout.split("rule ")
    shards = [b for b in blocks if b.startswith("score_shard:")]
    assert len(shards) == 32
    assert all("threads: 2" in b and f"mem_mb={limit // 2 + 1}," in b for b in shards)
    encoders = [b for b in blocks if b.startswith("train_encoder:")]
    assert encoders and all("threads: 2" not in b for b in encoders)
