"""What a job asks of the machine's memory (its ``mem_mb`` resource), from the model it loads.

An MLLM job (fine-tuning, scoring) holds, at its peak, the Python runtime R and either the
weights being loaded or the loaded weights and the work on them:

    peak = R + max(b·P + 4·P,  4·P + A)        (on the CPU, in fp32)
    peak = R + b·P                             (on a GPU: weights and activations on the device)

with P the checkpoint's parameters (its safetensors headers; the published size's count when the
folder is not there yet), b the bytes per parameter on disk (2 for bf16: the mapped shards, read
while the fp32 copy is made on the CPU, or while the bf16 tensors, views of them, are copied to the
GPU) and A the activations of the stage (rates.csv ``mem_sft`` per pair of a batch, ``mem_score``
per job), measured on the CPU. An encoder job's peak is measured per model (``mem_train_encoder``,
``mem_extract``). A job asks for the peak plus :data:`MARGIN`, rounded up to 100 MB; a local run
may not start jobs whose sum exceeds :func:`machine_mb`.
"""

from __future__ import annotations

import functools
import json
import math
import struct
from pathlib import Path

from muse.errors import MuseError

MARGIN = 0.05  # share added to the predicted peak
BYTES = {"F32": 4, "BF16": 2, "F16": 2, "F64": 8, "I64": 8, "I32": 4, "U8": 1, "BOOL": 1}


def machine_mb() -> int:
    """This machine's memory in MB (10⁶ bytes): /proc/meminfo's MemTotal, or the cgroup's limit
    when it is lower."""
    total = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
    limit = Path("/sys/fs/cgroup/memory.max")
    cgroup = limit.read_text().strip() if limit.is_file() else ""
    if cgroup.isdigit():
        total = min(total, int(cgroup))
    return total // 10**6


@functools.cache
def checkpoint_parameters(folder: str) -> tuple[int, int]:
    """(parameters, bytes on disk) of the ``*.safetensors`` files in ``folder``, from their headers."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise MuseError(f"{folder}: no *.safetensors weights")
    params = size = 0
    for path in files:
        with open(path, "rb") as f:
            try:
                (length,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(length))
            except (struct.error, ValueError) as e:
                raise MuseError(f"{path}: not a safetensors file ({e})") from None
        for key, t in header.items():
            if key != "__metadata__":
                n = math.prod(t["shape"])
                params += n
                size += n * BYTES.get(t["dtype"], 4)
    return params, size


@functools.cache
def published_parameters(arch: str, size: str) -> int:
    """Parameters of a model of ``arch`` at ``size`` (built without weights)."""
    from muse.mllm.model import build

    model, _ = build(arch, size, device="meta")
    return sum(p.numel() for p in model.parameters())


def mllm_weights(config: dict, name: str) -> tuple[int, int, str]:
    """(parameters P, bytes per parameter on disk b, rate key) of MLLM ``name`` of the config's
    ``mllm.models``: its checkpoint's, or before it exists the published size's (bf16 on disk);
    the key as :func:`muse.plan.judge_model` gives it."""
    from muse.mllm.model import PUBLISHED, judge_dir
    from muse.plan import judge_model

    source, key = str(config["mllm"]["models"][name]), judge_model(config, name)
    if source.startswith("tiny:"):
        return published_parameters(source.removeprefix("tiny:"), "tiny"), 4, key
    folder = judge_dir(source)
    if any(folder.glob("*.safetensors")):
        params, size = checkpoint_parameters(str(folder))
        return params, max(1, round(size / params)), key
    arch = next(a for a, s in PUBLISHED if s == key)
    return published_parameters(arch, key), 2, key


def mllm_peak_gb(stage: str, params: int, disk_bytes: int, key: str, gpu: bool, batch: int, rates: dict) -> float:
    """The module's peak (GB) of an MLLM job of ``stage`` (``sft`` or ``score``)."""
    runtime = rates[("mem_runtime", "any")]["value"]
    if gpu:
        return runtime + disk_bytes * params / 1e9
    work = rates[(f"mem_{stage}", key)]["value"] * (batch if stage == "sft" else 1)
    return runtime + max((disk_bytes + 4) * params / 1e9, 4 * params / 1e9 + work)


@functools.cache
def shipped_rates() -> dict:
    """rates.csv, read once per process (the workflow asks for every job's memory)."""
    from muse.plan import read_rates

    return read_rates()


def asked_mb(peak_gb: float) -> int:
    """``mem_mb`` for a predicted peak: plus :data:`MARGIN`, rounded up to 100 MB."""
    return int(math.ceil(peak_gb * (1 + MARGIN) * 10) * 100)


def job_mb(rule: str, config: dict, wildcards: dict, rates: dict | None = None) -> int:
    """The ``mem_mb`` a job of ``rule`` asks for (module doc), from the config and its wildcards."""
    from muse.plan import encoder_model

    rates = rates or shipped_rates()
    gpu = config["gpu"] > 0
    if rule in ("sft", "score", "score_shard"):
        params, b, key = mllm_weights(config, wildcards["mllm"])
        stage = "sft" if rule == "sft" else "score"
        peak = mllm_peak_gb(stage, params, b, key, gpu, config["mllm"]["sft"]["batch"], rates)
    elif rule in ("train_encoder", "extract_train", "extract_test"):
        stage = "mem_train_encoder" if rule == "train_encoder" else "mem_extract"
        peak = rates[(stage, encoder_model(config))]["value"]
    else:
        raise MuseError(f"rule {rule}: no memory model (muse.memory)")
    return asked_mb(peak)
