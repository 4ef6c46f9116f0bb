"""Which GPUs a local job may use: a claim of free devices through one lock file per device.

Snakemake counts a ``gpu`` resource but does not say which device a job gets, so on a machine
with several GPUs every local job would start on GPU 0. A job that finds ``CUDA_VISIBLE_DEVICES``
unset claims ``n`` free devices instead: it takes an exclusive ``flock`` on
``<LOCK_DIR>/gpu<i>.lock`` for n of the machine's devices i, all at once or none (so two jobs never deadlock on half a
claim; it waits and retries while fewer than n are free), and sets ``CUDA_VISIBLE_DEVICES`` for
itself and the processes it starts. The locks live as long as the process holding them: a job
that ends, fails or is killed (SIGKILL included) frees its devices with it. Under SLURM, or
wherever ``CUDA_VISIBLE_DEVICES`` is already set, nothing is claimed.

This module imports no torch: a claim must precede CUDA's initialisation, which reads
``CUDA_VISIBLE_DEVICES`` once.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import sys
import time
from pathlib import Path

from muse.errors import MuseError, report

COUNT_VARIABLE = "MUSE_GPU_COUNT"
LOCK_DIR = Path(".muse") / "gpu-locks"  # relative to the job's working directory (the workflow's)
_HELD: list = []  # the open lock files of this process's claim


def device_count() -> int:
    """The machine's GPUs: ``MUSE_GPU_COUNT`` when set, else the NVIDIA driver's device entries
    (``/proc/driver/nvidia/gpus``), else 0. Read without initialising CUDA."""
    if COUNT_VARIABLE in os.environ:
        value = os.environ[COUNT_VARIABLE]
        if not value.isdigit():
            raise MuseError(f"{COUNT_VARIABLE}: expected a number of GPUs, got '{value}'")
        return int(value)
    gpus = Path("/proc/driver/nvidia/gpus")
    return len(list(gpus.iterdir())) if gpus.is_dir() else 0


def _try(lock: Path):
    f = open(lock, "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    f.truncate(0)
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f


def claim(n: int, lock_dir=LOCK_DIR, poll: float = 2.0, inheritable: bool = False) -> list[int] | None:
    """Claim ``n`` free GPUs for this process (module doc) and set ``CUDA_VISIBLE_DEVICES`` to
    them; returns their indices, or None where nothing is claimed (n < 1, ``CUDA_VISIBLE_DEVICES``
    already set, or no GPU). ``inheritable``: the locks pass to a program this process ``exec``s."""
    if n < 1 or "CUDA_VISIBLE_DEVICES" in os.environ:
        return None
    count = device_count()
    if count == 0:
        return None
    if n > count:
        raise MuseError(f"a job asks for {n} GPUs; this machine has {count}")
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        held = []
        for i in range(count):
            f = _try(lock_dir / f"gpu{i}.lock")
            if f is not None:
                held.append((i, f))
                if len(held) == n:
                    break
        if len(held) == n:
            break
        for _, f in held:
            f.close()
        if not waited:
            print(f"waiting for {n} free GPU(s) of {count} (locks in {lock_dir})", file=sys.stderr, flush=True)
            waited = True
        time.sleep(poll)
    for _, f in held:
        os.set_inheritable(f.fileno(), inheritable)
    _HELD.extend(f for _, f in held)
    ids = [i for i, _ in held]
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, ids))
    print(f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}", file=sys.stderr, flush=True)
    return ids


def main(argv: list[str] | None = None) -> None:
    """``python -m muse.gpus N [--lock-dir DIR] -- COMMAND...``: claim N GPUs, then become COMMAND
    (``exec``), which holds the claim for its lifetime and passes CUDA_VISIBLE_DEVICES to its
    processes."""
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    p = argparse.ArgumentParser(prog="python -m muse.gpus", usage="%(prog)s N [--lock-dir DIR] -- COMMAND...")
    p.add_argument("n", type=int, help="GPUs to claim (0: none; no default)")
    p.add_argument("--lock-dir", default=LOCK_DIR, help=f"folder of the device locks (default: {LOCK_DIR})")
    a, command = p.parse_args(argv[:split]), argv[split + 1 :]
    if not command:
        p.error("no command to run after '--'")
    try:
        claim(a.n, a.lock_dir, inheritable=True)
    except MuseError as e:
        report(e)
        raise SystemExit(1) from None
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
