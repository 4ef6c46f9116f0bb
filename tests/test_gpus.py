"""muse.gpus: local jobs claim distinct GPUs (a fake device count, real processes and locks)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from muse.errors import MuseError
from muse.gpus import claim, device_count

HOLD = """
import json, sys, time
from muse.gpus import claim
n, locks, out, hold = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
ids = claim(n, locks, poll=0.05)
start = time.time()
open(out + ".claimed", "w").close()
time.sleep(hold)
json.dump({"n": n, "ids": ids, "start": start, "end": time.time()}, open(out, "w"))
"""


def _env(count=4):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    return {**env, "MUSE_GPU_COUNT": str(count)}


def _holder(tmp_path, n, name, hold):
    out = tmp_path / f"{name}.json"
    args = [sys.executable, "-c", HOLD, str(n), str(tmp_path / "locks"), str(out), str(hold)]
    return subprocess.Popen(args, env=_env()), out


def test_concurrent_jobs_never_share_a_device(tmp_path):
    jobs = [_holder(tmp_path, n, f"job{k}", 0.4) for k, n in enumerate([1, 2, 1, 4, 1, 2, 1])]
    for proc, _ in jobs:
        assert proc.wait(timeout=120) == 0
    runs = [json.loads(out.read_text()) for _, out in jobs]
    for r in runs:
        assert len(set(r["ids"])) == r["n"] and all(0 <= i < 4 for i in r["ids"])
    for a in runs:
        for b in runs:
            if a is not b and a["start"] < b["end"] and b["start"] < a["end"]:
                assert not set(a["ids"]) & set(b["ids"]), (a, b)
    whole = next(r for r in runs if r["n"] == 4)
    assert sorted(whole["ids"]) == [0, 1, 2, 3]


def test_a_killed_job_frees_its_devices(tmp_path):
    proc, out = _holder(tmp_path, 4, "greedy", 600)
    deadline = time.time() + 60
    while not (tmp_path / "greedy.json.claimed").exists():
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.05)
    waiting, waited = _holder(tmp_path, 1, "next", 0)
    time.sleep(0.5)
    assert waiting.poll() is None  # every device is held: the second job waits
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert waiting.wait(timeout=30) == 0
    assert len(json.loads(waited.read_text())["ids"]) == 1


def test_the_launcher_hands_its_claim_to_the_command(tmp_path):
    show = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"
    launch = [sys.executable, "-m", "muse.gpus", "4", "--lock-dir", str(tmp_path), "--"]
    run = subprocess.run([*launch, sys.executable, "-c", show], env=_env(), capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "0,1,2,3"
    # the command (the same process after exec) holds the locks: while it runs, none is free
    held = subprocess.Popen([*launch, sys.executable, "-c", "import time; time.sleep(600)"], env=_env())
    locks = [tmp_path / f"gpu{i}.lock" for i in range(4)]
    try:
        deadline = time.time() + 60
        while not all(f.is_file() and f.read_text().strip() == str(held.pid) for f in locks):
            assert time.time() < deadline and held.poll() is None
            time.sleep(0.05)
        free = f"from pathlib import Path; from muse.gpus import _try; print(_try(Path('{locks[0]}')))"
        probe = subprocess.run([sys.executable, "-c", free], env=_env(), capture_output=True, text=True)
    finally:
        held.kill()
        held.wait()
    assert probe.stdout.strip() == "None"
    too_many = subprocess.run([*launch[:3], "5", *launch[4:], "true"], env=_env(), capture_output=True, text=True)
    assert too_many.returncode == 1
    assert too_many.stderr.strip() == "muse: error: a job asks for 5 GPUs; this machine has 4"


def test_nothing_is_claimed_where_devices_are_given_or_absent(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSE_GPU_COUNT", "2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert claim(1, tmp_path) is None  # SLURM (or the user) chose
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert claim(0, tmp_path) is None and "CUDA_VISIBLE_DEVICES" not in os.environ
    monkeypatch.setenv("MUSE_GPU_COUNT", "0")
    assert device_count() == 0 and claim(1, tmp_path) is None
    monkeypatch.setenv("MUSE_GPU_COUNT", "two")
    with pytest.raises(MuseError, match="MUSE_GPU_COUNT: expected a number of GPUs, got 'two'"):
        device_count()
