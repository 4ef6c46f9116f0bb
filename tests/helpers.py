"""Helpers shared by the test modules: running the CLI, small images and features, the dense
evaluation reference, and a copy of the workflow on the small world of tests/configs/."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from rerank_reference import dense_distance

REPO = Path(__file__).resolve().parents[1]
SMALL = yaml.safe_load((REPO / "tests" / "configs" / "small_world.yaml").read_text())
SMALL_WORLD = SMALL["world"]["domains"]


def muse(*args, cwd=None):
    """Run ``python -m muse.cli`` with ``args``; the completed process (text output)."""
    return subprocess.run([sys.executable, "-m", "muse.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def fails_with_one_line(res, *fragments):
    """The command failed with exactly one ``muse …: error:`` line, last, holding every fragment."""
    assert res.returncode != 0
    errors = [ln for ln in res.stderr.splitlines() if re.match(r"muse( [\w-]+)*: error: ", ln)]
    assert len(errors) == 1 and res.stderr.rstrip().endswith(errors[0]), res.stderr
    assert "Traceback" not in res.stderr
    for f in fragments:
        assert f in errors[0], errors[0]


def write_image(path: Path, value: int = 128, size=(16, 8)) -> Path:
    """A small valid image at ``path`` (format from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return path


def reference(dist, q_pids, q_camids, g_pids, g_camids, max_rank=50):
    """Per query: stable argsort, drop same-id-same-camera, AP = mean precision at hits."""
    aps, inps, cmc, n = [], [], np.zeros(max_rank), 0
    for i in range(len(q_pids)):
        order = np.argsort(dist[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        matches = (g_pids[order][keep] == q_pids[i]).astype(float)
        if matches.sum() == 0:
            continue
        n += 1
        hits = np.flatnonzero(matches)
        aps.append(np.mean([(k + 1) / (pos + 1) for k, pos in enumerate(hits)]))
        inps.append(len(hits) / (hits[-1] + 1))
        cmc[hits[0] :] += 1
    return {"mAP": np.mean(aps), "mINP": np.mean(inps), "cmc": cmc / n, "num_queries": n}


def random_case(rng, nq=40, ng=300, ids=25, cams=4, d=16, distractors=30):
    """Query and gallery features around identity centres, with distractors (pid 0), and their ids."""
    centres = rng.normal(size=(ids + 1, d))
    q_pids = rng.integers(1, ids + 1, nq)
    g_pids = np.concatenate([rng.integers(1, ids + 1, ng - distractors), np.zeros(distractors, int)])
    q = centres[q_pids] + rng.normal(scale=0.9, size=(nq, d))
    g = centres[g_pids] + rng.normal(scale=0.9, size=(ng, d))
    g[g_pids == 0] = rng.normal(size=(distractors, d))
    return q, g, q_pids, rng.integers(1, cams + 1, nq), g_pids, rng.integers(1, cams + 1, ng)


def clustered(seed, Q=24, G=110, ids=14, cams=4, d=12, rare_camera=True):
    """Clustered features with a per-camera bias; camera 9 (if ``rare_camera``) holds 2 images."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids + 1, d))
    bias = rng.normal(scale=0.6, size=(10, d))
    pids = rng.integers(1, ids + 1, Q + G)
    camids = rng.integers(1, cams + 1, Q + G)
    if rare_camera:
        camids[[3, Q + 7]] = 9
    f = centres[pids] + bias[camids] + rng.normal(scale=0.7, size=(Q + G, d))
    return f[:Q], f[Q:], pids[:Q], camids[:Q], pids[Q:], camids[Q:]


def scores_for(q, g, C, seed):
    """Top-C candidates by base distance and random logits, as a scores file would hold."""
    rng = np.random.default_rng(seed)
    D = dense_distance(q, g)
    Q = len(q)
    cand = np.argsort(D[:Q, Q:], axis=1, kind="stable")[:, :C].astype(np.int32)
    return cand, rng.normal(size=cand.shape) * 4, rng.normal(size=cand.shape) * 4


def copy_workflow(dst: Path, small_world: bool = False) -> Path:
    """A copy of the workflow (Snakefile, config, rules, scripts, schema) at ``dst``, with the
    shipped config or with its world shrunk to :data:`SMALL_WORLD` (and its re-ranking
    neighbourhoods to fit)."""
    shutil.copy(REPO / "Snakefile", dst)
    shutil.copytree(REPO / "workflow", dst / "workflow")
    if small_world:
        cfg = yaml.safe_load((REPO / "config.yaml").read_text())
        cfg["world"]["domains"] = SMALL_WORLD
        for method, params in SMALL["rerank"].items():
            cfg["rerank"][method].update(params)
        (dst / "config.yaml").write_text(yaml.safe_dump(cfg))
    else:
        shutil.copy(REPO / "config.yaml", dst)
    return dst


def empty_layout(root: Path, fmt: str, variant: str | None = None) -> Path:
    """The folders and list files of a dataset layout with no image in them (written by hand from
    the releases' layouts, not from muse.data.formats)."""
    if fmt == "msmt17":
        for sub in ("mask_train_v2", "mask_test_v2"):
            (root / sub).mkdir(parents=True)
        for split in ("train", "val", "query", "gallery"):
            (root / f"list_{split}.txt").write_text("")
    elif fmt == "cuhksysu":
        (root / "cropped_images").mkdir(parents=True)
    else:
        base = root / variant if fmt == "cuhk03np" else root
        for sub in ("bounding_box_train", "query", "bounding_box_test"):
            (base / sub).mkdir(parents=True)
    return root
