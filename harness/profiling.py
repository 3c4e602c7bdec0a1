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


# ---------------------------------------------------------------------------------------------
# FLOPs. Convention: FLOPs = 2 x multiply-accumulates, as torch.utils.flop_counter counts them
# (fvcore and many papers report MACs and call them FLOPs: divide by 2 to compare). Only ops with
# a registered formula count (conv, matmul, attention...); element-wise ops are not counted.


@dataclass
class FlopReport:
    per_image: int  # everything upscale() ran for one image
    per_call: dict[str, int]  # mean FLOPs of one call of each sub-network in the cost model
    calls_seen: dict[str, int]  # how often each sub-network actually ran
    calls_model: dict[str, int]  # what the method's cost model declares
    model_per_image: int  # sum over the cost model of calls x per_call
    params_total: int
    params_active: int  # per step, for mixtures of experts (else = total)

    def as_dict(self) -> dict[str, float]:
        out: dict[str, float] = {"flops_per_image": float(self.per_image),
                                 "flops_model_per_image": float(self.model_per_image),
                                 "params_total": float(self.params_total),
                                 "params_active": float(self.params_active)}
        out.update({f"flops_per_call/{k}": float(v) for k, v in self.per_call.items()})
        return out


def count_flops(fn, *args, **kwargs) -> int:
    """FLOPs (2 x MACs) of one call of ``fn`` as counted by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as mode, torch.no_grad():
        fn(*args, **kwargs)
    return int(mode.get_total_flops())


def _submodule(method, path: str) -> torch.nn.Module:
    nets = getattr(method, "nets", None)
    if isinstance(nets, torch.nn.Module):
        try:
            return nets.get_submodule(path)
        except AttributeError:
            pass
    obj = method
    for part in path.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, torch.nn.Module):
        raise TypeError(f"cost model entry {path!r} is not a torch module")
    return obj


def profile_flops(method, lr: torch.Tensor, scale: int, generator: torch.Generator | None = None) -> FlopReport:
    """Run ``method.upscale`` on one image under ``FlopCounterMode``; hooks on each sub-network
    named in ``method.cost_model().calls`` measure the FLOPs of every call of it.

    ``per_image`` is what really ran (all steps, encoders, decoders); ``model_per_image`` is the
    cost model's account (declared calls x measured FLOPs per call). A difference means the cost
    model is wrong or work runs outside the declared networks — both worth seeing in a table.
    """
    from torch.utils.flop_counter import FlopCounterMode

    cost = method.cost_model()
    generator = generator or torch.Generator().manual_seed(0)
    mode = FlopCounterMode(display=False)
    totals: dict[str, int] = {k: 0 for k in cost.calls}
    seen: dict[str, int] = {k: 0 for k in cost.calls}
    starts: dict[str, list[int]] = {k: [] for k in cost.calls}
    handles = []
    for name in cost.calls:
        mod = _submodule(method, name)

        def pre(_m, _i, name=name):
            starts[name].append(mode.get_total_flops())

        def post(_m, _i, _o, name=name):
            totals[name] += mode.get_total_flops() - starts[name].pop()
            seen[name] += 1

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    try:
        with mode, torch.no_grad():
            method.upscale(lr[:1], scale, generator)
    finally:
        for h in handles:
            h.remove()
    per_call = {k: (totals[k] // seen[k] if seen[k] else 0) for k in cost.calls}
    total_params = int(method.num_params())
    active = sum(cost.active_params.values()) if cost.active_params else total_params
    return FlopReport(
        per_image=int(mode.get_total_flops()), per_call=per_call, calls_seen=seen,
        calls_model=dict(cost.calls),
        model_per_image=sum(cost.calls[k] * per_call[k] for k in cost.calls),
        params_total=total_params, params_active=int(active),
    )
