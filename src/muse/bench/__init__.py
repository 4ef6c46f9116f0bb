"""Benchmarks that print measured figures (time, peak memory) at the real datasets' sizes, by topic:

- :mod:`muse.bench.testsets`: the synthetic features they run on, at the datasets' sizes;
- :mod:`muse.bench.rerank`: the evaluation and the re-ranking methods, against the N² floor and
  the original code;
- :mod:`muse.bench.dg`: the encoder's domain-generalisation matrix;
- :mod:`muse.bench.score`: the judges' scoring engines, their FLOPs and Figure 4's split;
- :mod:`muse.bench.gpu`: all of them in one command on a GPU machine.
"""

from __future__ import annotations

import platform
import resource

import torch


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def machine() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.machine()}, {torch.get_num_threads()} torch threads, {gpu}"
