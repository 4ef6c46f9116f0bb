"""The Snakemake skeleton: config validation, dry-run, the data rules on a small world."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from muse.report.tables import INTERVAL_COLUMNS

from helpers import REPO, SMALL_WORLD, copy_workflow, empty_layout


@pytest.fixture
def workdir(tmp_path):
    return copy_workflow(tmp_path, small_world=True)


def snakemake(workdir, *args):
    return subprocess.run(["snakemake", "--cores", "2", *args], cwd=workdir, capture_output=True, text=True)


def test_dry_run_of_the_shipped_config(tmp_path):
    copy_workflow(tmp_path)
    res = snakemake(tmp_path, "-n")
    assert res.returncode == 0, res.stderr + res.stdout
    assert "synth_world" in res.stdout and "manifest" in res.stdout


def test_data_rules_build_manifests_then_nothing_to_do(workdir):
    manifests = [f"results/data/{d}.csv" for d in SMALL_WORLD]
    res = snakemake(workdir, *manifests)
    assert res.returncode == 0, res.stderr + res.stdout
    for d in SMALL_WORLD:
        df = pd.read_csv(workdir / "results" / "data" / f"{d}.csv")
        assert set(df.domain) == {d} and (df.split == "train").any()
        assert (workdir / "logs" / "data" / f"manifest_{d}.log").exists()
    again = snakemake(workdir, "-n", *manifests)
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda c: c.update(colour="red"), "config: top level: Additional properties are not allowed ('colour'"),
        (lambda c: c["datasets"]["MA"].update(format="viper"), "config: datasets.MA.format: 'viper' is not one of"),
        (lambda c: c["world"]["domains"]["MA"].update(train_ids=0), "config: world.domains.MA.train_ids: 0 is less"),
        (lambda c: c["world"]["domains"]["MS"].update(test_ids=0), "world.domains.MS.test_ids: expected >= 1"),
        (lambda c: c["world"]["domains"]["MA"].update(cams_per_id=[3, 2]), "world.domains.MA.cams_per_id: need 1 <="),
        (lambda c: c["rerank"]["ecn"].update(k=100000), "rerank.ecn: needs 100000 neighbours, but C3's test gallery"),
        (lambda c: c["encoder"].update(image_size=[0, 32]), "config: encoder.image_size.0: 0 is less than the minimum"),
        (lambda c: c["rerank"]["krnn"].update(k1=0), "config: rerank.krnn.k1: 0 is less than the minimum of 1"),
        (lambda c: c["rerank"]["caj"].update(lam=5), "config: rerank.caj.lam: 5 is greater than the maximum of 1"),
        (lambda c: c["rerank"]["ecn"].update(kk=3), "config: rerank.ecn: Additional properties are not allowed ('kk'"),
        (lambda c: c["rerank"]["caj"].update(k2_intra=2), "rerank.caj: caj k2_intra = 2: read with qe = camera only"),
        (
            lambda c: c["encoder"].update(weights="/nonexistent/ViT-B-16.pt"),
            "encoder.weights: /nonexistent/ViT-B-16.pt",
        ),
        (lambda c: c["mllm"]["models"].update({"../escape": "tiny:qwen2_vl"}), "name '../escape'"),
        (
            lambda c: c["mllm"]["models"].update({"Qwen2-VL-2B": "/nonexistent/Qwen2-VL-2B"}),
            "mllm.models.Qwen2-VL-2B: /nonexistent/Qwen2-VL-2B is not a model directory (no config.json)",
        ),
        (lambda c: c["mining"].update(val_ids=1.0), "val_ids"),
    ],
)
def test_config_errors_name_the_key(workdir, edit, fragment):
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    edit(cfg)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(workdir, "-n")
    assert res.returncode != 0 and fragment in res.stderr + res.stdout


def test_missing_real_dataset_folder_is_named(workdir):
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["datasets"]["MA"]["root"] = "/nonexistent/Market-1501"
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(workdir, "-n", "results/data/MA.csv")
    assert res.returncode != 0
    assert "datasets.MA.root: /nonexistent/Market-1501 is not a directory" in res.stderr + res.stdout


@pytest.mark.parametrize(
    "fmt,layout,missing",
    [
        ("msmt17", "market1501", "missing 'mask_train_v2/' and 'mask_test_v2/' (V2) or 'train/' and 'test/' (V1)"),
        ("market1501", "msmt17", "bounding_box_train: missing 'bounding_box_train' (market1501) folder"),
        ("cuhk03np", "market1501", "detected: missing 'detected' (cuhk03np boxes) folder"),
        ("cuhksysu", "market1501", "cropped_images: missing 'cropped_images' (cuhksysu) folder"),
    ],
)
def test_a_dataset_root_in_another_layout_is_named_before_any_job(workdir, tmp_path, fmt, layout, missing):
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["datasets"]["MA"] = {"format": fmt, "root": str(empty_layout(tmp_path / "dataset", layout, "detected"))}
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(workdir, "-n", "results/data/MA.csv")
    assert res.returncode != 0
    assert f"datasets.MA.root: {tmp_path / 'dataset'}" in res.stderr + res.stdout and missing in res.stderr + res.stdout


def test_bad_dataset_fails_the_rule_with_one_line_in_its_log(workdir, tmp_path):
    root = tmp_path / "market"
    for sub in ("bounding_box_train", "query", "bounding_box_test"):
        (root / sub).mkdir(parents=True)
        (root / sub / "not_a_market_name.jpg").write_bytes(b"")
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["datasets"]["MA"]["root"] = str(root)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(workdir, "results/data/MA.csv")
    assert res.returncode != 0
    assert "not_a_market_name.jpg: file name does not follow" in res.stderr
    assert not (workdir / "results" / "data" / "MA.csv").exists()
    log = (workdir / "logs" / "data" / "manifest_MA.log").read_text()
    assert log.strip().startswith("muse: error:")


TINY_RUN = {
    "encoder": {
        "clip": {
            "embed_dim": 16,
            "vision_cfg": {"patch_size": 8, "width": 16, "layers": 1, "head_width": 8},
            "text_cfg": {"context_length": 4, "vocab_size": 16, "width": 8, "heads": 1, "layers": 1},
        },
        "image_size": [32, 16],
        "weights": None,
        "batch": 32,
        "train": {"epochs": 1, "lr": 1e-3, "ids_per_batch": 2, "warmup_epochs": 0, "milestones": []},
    },
    "mining": {"cpos": 1, "cneg": 1, "random_k": 2},
    "mllm": {
        "judge": "Qwen2-VL-2B",
        "models": {"Qwen2-VL-2B": "tiny:qwen2_vl", "Qwen2.5-VL-7B": "tiny:qwen2_5_vl"},
        "sft": {"epochs": 1, "batch": 2, "fraction": 0.3, "prompt": "dap", "seed": 0},
        "score": {"engine": "cached", "batch": 4, "shards": 2, "logits": "raw"},
    },
    "muse": {"C": 3, "tau": 5.0, "alpha": 0.2, "alpha_intra": 0.1},
    "rerank": {
        "krnn": {"k1": 3, "k2": 2, "lam": 0.3},
        "ecn": {"k": 4, "t": 2, "q": 2},
        "caj": {"k1_intra": 2, "k1_inter": 3, "k2_intra": 1, "k2_inter": 1, "lam": 0.3},
    },
    "sweeps": {"protocol": "MS+C3+CS2MA", "rerank": "krnn", "C": [1, 3], "alpha": [0.0, 0.5], "tau": [1.0, 5.0]},
    "tables": [13],
}


def test_a_table_builds_end_to_end(workdir):
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg.update(TINY_RUN)
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(workdir, "results/table13.csv", "results/table13.md")
    assert res.returncode == 0, res.stderr[-3000:]
    df = pd.read_csv(workdir / "results" / "table13.csv")
    assert list(df.columns) == ["table", "protocol", "row", "metric", "reproduced", "paper"] + INTERVAL_COLUMNS
    ours = df.dropna(subset=["reproduced"])
    assert (ours.ci_low <= ours.reproduced).all() and (ours.reproduced <= ours.ci_high).all()
    mu = ours[ours.row.str.contains("MUSE")]
    assert (mu.base_row == mu.row.str.replace(" + MUSE", "")).all() and ours.base_row.notna().sum() == len(mu)
    assert set(ours.row) == {
        "Baseline",
        "Baseline + K-RNN",
        "Baseline + ECN",
        "Baseline + CAJ",
        "Baseline + MUSE",
        "Baseline + MUSE + K-RNN",
        "Baseline + MUSE + ECN",
        "Baseline + MUSE + CAJ",
    }
    assert set(ours.protocol) == {"MS+C3+CS2MA"} and ours.reproduced.between(0, 100).all()
    assert df.paper.notna().all() and len(df) == 16
    assert "synthetic world" in (workdir / "results" / "table13.md").read_text().splitlines()[0]
    shards = workdir / "results" / "scores" / "Qwen2-VL-2B" / "MA_qchm" / "dap"
    assert len(list(shards.glob("MS+C3+CS2MA.shard*.npz"))) == 2
    again = snakemake(workdir, "-n", "results/table13.csv")
    assert "Nothing to be done" in again.stdout + again.stderr
    rep = snakemake(workdir, "--report", "report.html", "results/table13.csv")
    assert rep.returncode == 0 and (workdir / "report.html").stat().st_size > 10_000, rep.stderr[-2000:]
    assert "MLLM-empowered re-ranking" in (workdir / "report.html").read_text()  # the report's front page
    first = (workdir / "results" / "table13.csv").read_text()
    for d in ("results", "data", ".snakemake"):
        shutil.rmtree(workdir / d)
    assert snakemake(workdir, "results/table13.csv").returncode == 0
    assert (workdir / "results" / "table13.csv").read_text() == first  # from scratch: identical table


def test_ablation_table_6_builds_with_both_mllm_classes_zero_shot_and_fine_tuned(workdir):
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg.update(TINY_RUN, tables=[6])
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(workdir, "results/table6.csv")
    assert res.returncode == 0, res.stderr[-3000:]
    df = pd.read_csv(workdir / "results" / "table6.csv")
    assert set(df.row) == {"Baseline + K-RNN"} | {
        f"+ MUSE ({m}, {t})" for m in ("Qwen2-VL-2B", "Qwen2.5-VL-7B") for t in ("zero-shot", "SFT")
    }
    assert set(df.protocol) == {"MA2C3", "MA2MS"} and df.paper.notna().all() and df.reproduced.notna().all()
    results = workdir / "results"
    for name, model_type in (("Qwen2-VL-2B", "qwen2_vl"), ("Qwen2.5-VL-7B", "qwen2_5_vl")):
        assert f'"model_type": "{model_type}"' in (results / "mllm" / name / "config.json").read_text()
        assert (results / "adapters" / name / "MA_qchm" / "dap" / "adapter_config.json").is_file()
        assert (results / "scores" / name / "zeroshot" / "dap" / "MA2MS.npz").is_file()
    assert not (results / "adapters" / "Qwen2-VL-2B" / "zeroshot").exists()


def test_ablation_tables_5_and_7_plan_their_judges(workdir):
    res = snakemake(workdir, "-n", "results/table5.csv", "results/table7.csv")
    assert res.returncode == 0, res.stderr[-2000:]
    for prompt in ("void", "task_resp", "dap"):
        assert f"results/scores/Qwen2-VL-2B/MA_qchm/{prompt}/MA2C3.npz" in res.stdout
    assert "results/pairs/MA_random.jsonl" in res.stdout
    assert "results/adapters/Qwen2-VL-2B/MA_random/dap" in res.stdout


def test_paper_config_dry_run_resolves_every_table(tmp_path):
    """configs/paper.yaml with its placeholder paths pointed at empty folders made here."""
    copy_workflow(tmp_path)
    cfg = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    for d, ds in cfg["datasets"].items():
        ds["root"] = str(tmp_path / "data" / d)
        empty_layout(tmp_path / "data" / d, ds["format"], ds.get("variant"))
    for name in cfg["mllm"]["models"]:
        cfg["mllm"]["models"][name] = str(tmp_path / "models" / name)
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "config.json").write_text("{}")
    cfg["mllm"]["sft_gpus"] = 4
    cfg["encoder"]["weights"] = str(tmp_path / "models" / "ViT-B-16.pt")
    (tmp_path / "models" / "ViT-B-16.pt").write_bytes(b"")
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(cfg))
    res = snakemake(tmp_path, "-n", "-p", "--configfile", "paper.yaml")
    assert res.returncode == 0, res.stderr[-2000:] + res.stdout[-2000:]
    out = res.stdout
    for t in cfg["tables"]:
        assert f"results/table{t}.csv" in out
    assert "synth_world" not in out and "init_tiny_mllm" not in out
    assert "shard7" in out  # 8 scoring shards per (protocol, adapter)
    assert all(f"sweeps/{p}.png" in out for p in ("C", "alpha", "tau"))
    launch = re.search(r"(\S+) -m accelerate\.commands\.launch --multi_gpu --num_processes 4 -m muse\.cli sft", out)
    assert launch and Path(launch[1]).resolve() == Path(sys.executable).resolve()  # one job, 4 GPUs, this interpreter


def test_configfiles_are_the_whole_config_each_over_the_one_before(tmp_path):
    """--configfile replaces config.yaml: the paper's encoder is its ViT-B/16 alone, never merged
    with the embedded default's small ViT; a partial file alone is refused naming a missing key,
    and layered over config.yaml it runs."""
    from muse.config import workflow_config

    copy_workflow(tmp_path)
    paper = workflow_config([REPO / "configs" / "paper.yaml"])
    assert paper["encoder"]["clip"] == {"name": "ViT-B-16-quickgelu"} and "pretrain" not in paper
    (tmp_path / "partial.yaml").write_text("gpu: 0\n")
    alone = snakemake(tmp_path, "-n", "--configfile", "partial.yaml")
    assert alone.returncode != 0 and "is a required property" in alone.stderr + alone.stdout
    layered = snakemake(tmp_path, "-n", "results/data/MA.csv", "--configfile", "config.yaml", "partial.yaml")
    assert layered.returncode == 0, layered.stderr[-2000:]


def test_lint_passes(tmp_path):
    copy_workflow(tmp_path)
    res = snakemake(tmp_path, "--lint")
    assert res.returncode == 0 and "Congratulations" in res.stdout + res.stderr, res.stdout[-2000:]
