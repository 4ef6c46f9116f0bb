"""muse plan: the workflow's jobs and their cost, against a hand count on the embedded default."""

import json

import pytest

from muse.config import workflow_config
from muse.plan import domain_sizes, lora_bytes, parse_dry_run, plan, read_rates, wall_hours

from helpers import REPO, copy_workflow, empty_layout, fails_with_one_line, muse

DRY = """Building DAG of jobs...
[Mon Dec  7 09:49:26 2026]
rule score_shard:
    input: results/mllm/x, results/features/MA/C3.npz
    output: results/scores/Qwen2-VL-2B/MA_qchm/dap/MA2C3.shard6.npz
    wildcards: mllm=Qwen2-VL-2B, tuning=MA_qchm, prompt=dap, protocol=MA2C3, shard=6
    resources: tmpdir=/tmp, gpu=1, runtime=720, mem_mb=32000
[Mon Dec  7 09:49:26 2026] Group job tail (jobs in lexicogr. order):

    [Mon Dec  7 09:49:26 2026]
    rule table:
        output: results/table2.csv
        wildcards: table=2
        resources: tmpdir=/tmp
[Mon Dec  7 09:49:26 2026]
localrule all:
    input: results/table2.csv
    jobid: 0
    resources: tmpdir=/tmp
"""


def test_dry_run_jobs_are_read_with_wildcards_and_gpus_also_in_groups():
    jobs = parse_dry_run(DRY)
    assert [(j.rule, j.gpus) for j in jobs] == [("score_shard", 1), ("table", 0), ("all", 0)]
    assert jobs[1].wildcards == {"table": "2"} and jobs[2].wildcards == {}
    assert jobs[0].wildcards == {
        "mllm": "Qwen2-VL-2B",
        "tuning": "MA_qchm",
        "prompt": "dap",
        "protocol": "MA2C3",
        "shard": "6",
    }


def test_table2_of_the_embedded_default_by_hand(tmp_path, monkeypatch):
    """Table 2 on config.yaml: 3 domains (MA, MS, C3) generated, 3 encoders (one per source), 4
    test feature sets, MA's training features, one mined pair set, one adapter, 4 scored sets,
    4 evaluation cells, 1 table. Units from the world's expected sizes: MA trains on 48 ids × 2.5
    cameras × 3.5 images = 420 images, MS on 64 × 2.5 × 3.5 = 560, C3 on 48 × 2 × 4.5 = 432; the
    test sets hold 24 × 3 = 72 MA queries, 33 × 3 = 99 MS and 36 × 2 = 72 C3 queries, with
    24 × 3 × 5.5 + 90 = 486, 33 × 3 × 9 = 891 and 36 × 2 × 4 = 288 gallery images."""
    copy_workflow(tmp_path)
    monkeypatch.chdir(tmp_path)
    rates = {k: {**v, "value": 1.0} for k, v in read_rates().items()}  # every rate 1, no start-up
    rates = {k: v for k, v in rates.items() if k[0] != "job_start"}
    config = workflow_config()
    res = muse("plan", "results/table2.csv", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    shown = json.loads(res.stdout)
    assert shown["jobs"] == {
        "synth_world": 3,
        "manifest": 3,
        "train_set": 3,
        "train_encoder": 3,
        "extract_test": 4,
        "extract_train": 1,
        "mine": 1,
        "sft": 1,
        "score": 4,
        "evaluate_table_protocol": 4,
        "table": 1,
    }
    sizes = domain_sizes(config)
    assert {d: (s["train"], s["query"], s["gallery"]) for d, s in sizes.items()} == {
        "MA": (420, 72, 486),
        "MS": (560, 99, 891),
        "C3": (432, 72, 288),
        "CS": (192, 0, 0),
    }
    from muse.plan import dry_run

    p = plan(dry_run(["results/table2.csv"]), config, sizes, rates)
    st = p["stages"]
    assert st["encoders"]["units"] == 20 * (420 + 560 + 432)
    assert st["features"]["units"] == (891 + 99) * 2 + (288 + 72) * 2 + 420  # MS, C3 twice; MA's training
    assert st["scoring"]["units"] == (99 + 72 + 72 + 99) * 10  # C = max(muse.C, sweeps.C) = 10
    assert st["fine-tuning"]["units"] == pytest.approx(
        420 * 0.5 * 10 * 0.04 * 2
    )  # val_ids, C_pos+C_neg, fraction, epochs
    hours = (20 * 1412 + 3120 + (3420 + 168) / 1000) / 3600  # rate 1: images/s, ms/pair
    assert p["gpu_hours"] == pytest.approx(hours, abs=2e-3)
    # on 4 GPUs each stage takes its longest job: MS's encoder (11,200 images), MS's test features (990)
    assert wall_hours(p, 4) == pytest.approx((11200 + 990) / 3600, abs=2e-3)
    assert wall_hours(p, 1) == pytest.approx(hours, abs=2e-3)
    assert shown["stages"]["encoders"]["units"] == st["encoders"]["units"]


def test_sizes_come_from_a_manifest_else_the_published_counts(tmp_path):
    cfg = {
        "datasets": {"MA": {"format": "market1501", "root": "/data/market"}, "MS": {"format": "msmt17", "root": "/x"}},
        "world": {"domains": {}},
    }
    (tmp_path / "data").mkdir()
    rows = ["path,pid,camid,split,domain"] + [
        f"a{i}.jpg,1,0,{s},MA" for i, s in enumerate(["train"] * 3 + ["query", "gallery"])
    ]
    (tmp_path / "data" / "MA.csv").write_text("\n".join(rows) + "\n")
    sizes = domain_sizes(cfg, tmp_path)
    assert (sizes["MA"]["train"], sizes["MA"]["query"], sizes["MA"]["gallery"]) == (3, 1, 1)
    assert (sizes["MS"]["train"], sizes["MS"]["query"], sizes["MS"]["gallery"]) == (32621, 11659, 82161)
    assert sizes["MS"]["from"] == "msmt17 (published)"


def test_a_lora_adapter_of_the_2b_by_hand():
    """Qwen2-VL-2B, r = 16: per layer q and o 1536→1536, k and v 1536→256, gate and up 1536→8960,
    down 8960→1536; r·(in + out) each, 28 layers, 4 bytes."""
    cfg = {"mllm": {"models": {"Qwen2-VL-2B": "/models/none"}, "sft": {"rank": 16}}}
    per_layer = 2 * 3072 + 2 * 1792 + 3 * 10496
    assert lora_bytes(cfg, "Qwen2-VL-2B") == 4 * 16 * per_layer * 28


def test_the_paper_config_plans_every_table(tmp_path):
    """configs/paper.yaml with its placeholder paths made: published sizes, GPU rates."""
    import yaml

    copy_workflow(tmp_path)
    cfg = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    for d, ds in cfg["datasets"].items():
        ds["root"] = str(tmp_path / "data" / d)
        empty_layout(tmp_path / "data" / d, ds["format"], ds.get("variant"))
    for name in cfg["mllm"]["models"]:
        cfg["mllm"]["models"][name] = str(tmp_path / "models" / name)
        (tmp_path / "models" / name).mkdir(parents=True)
        (tmp_path / "models" / name / "config.json").write_text("{}")
    cfg["encoder"]["weights"] = str(tmp_path / "ViT-B-16.pt")
    (tmp_path / "ViT-B-16.pt").write_bytes(b"")
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(cfg))
    res = muse("plan", "results/table2.csv", "--configfile", "paper.yaml", "--gpus", "1", "4", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "score_shard 32" in res.stdout and "msmt17 (published)" in res.stdout
    assert "score Qwen2-VL-2B 5.1 GB" in res.stdout and "on 4 GPU(s)" in res.stdout
    assert "sft Qwen2-VL-2B 8 GB (estimate)" in res.stdout and "train_encoder not measured" in res.stdout
    bad = muse("plan", "results/table99.csv", "--configfile", "paper.yaml", cwd=tmp_path)
    fails_with_one_line(bad, "the workflow's dry run failed")


def test_a_judge_is_known_by_its_width_else_its_name(tmp_path):
    from muse.errors import MuseError
    from muse.plan import judge_model

    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"hidden_size": 3584}')
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "config.json").write_text('{"text_config": {"hidden_size": 1536}}')  # transformers 5
    cfg = {
        "mllm": {
            "models": {
                "mine": str(tmp_path / "m"),
                "nested": str(tmp_path / "n"),
                "Qwen2-VL-2B": "/nowhere",
                "x": "/nowhere",
                "s": "pretrained:qwen2_vl",
            }
        }
    }
    assert [judge_model(cfg, n) for n in ("mine", "nested", "Qwen2-VL-2B", "s")] == ["7b", "2b", "2b", "small"]
    with pytest.raises(MuseError, match="mllm.models.x: no published size of this width or name"):
        judge_model(cfg, "x")
