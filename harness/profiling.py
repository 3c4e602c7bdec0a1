"""Time and memory of one method call, measured the way each device allows.

GPU: CUDA events around the call (device time, not host time) and ``max_memory_allocated``.
CPU: ``time.perf_counter`` and the process's peak resident set (a high-water mark: on CPU there
is no per-call allocator counter, so the value is the process peak after the call).
"""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch


@dataclass
class Measurement:
    seconds: float = float("nan")
    peak_memory_bytes: int = 0
    memory_kind: str = ""


def _rss_peak_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


@contextmanager
def measure(device: torch.device | str) -> Iterator[Measurement]:
    """``with measure(dev) as m: ...``; afterwards ``m.seconds`` and ``m.peak_memory_bytes``."""
    device = torch.device(device)
    m = Measurement()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        yield m
        end.record()
        torch.cuda.synchronize(device)
        m.seconds = start.elapsed_time(end) / 1000.0
        m.peak_memory_bytes = int(torch.cuda.max_memory_allocated(device))
        m.memory_kind = "cuda_max_allocated"
    else:
        t0 = time.perf_counter()
        yield m
        m.seconds = time.perf_counter() - t0
        m.peak_memory_bytes = _rss_peak_bytes()
        m.memory_kind = "process_peak_rss"


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
