"""What one method call costs: time, memory, FLOPs and network calls — all measured.

**Time** (:func:`measure`): CUDA events around the call on a GPU (device time), ``perf_counter``
on the CPU; the runner times after an untimed warm-up.

**Memory** is what the method itself needed during ``upscale``, so that a job's figure does not
depend on what ran before it in the same process (the process high-water RSS, used before, made
every later job of a multirun inherit the earlier ones' peak):

* ``peak = resident + working``: ``resident`` is the bytes of the method's own parameters and
  buffers (:func:`resident_bytes`; the weights it needs to run), ``working`` the peak of bytes
  allocated *during* the call above what was allocated when it began;
* on CUDA, ``working = max_memory_allocated - memory_allocated`` after
  ``reset_peak_memory_stats`` (the caching allocator's own accounting, :func:`measure`);
* on the CPU there is no per-call allocator counter, so :func:`cpu_memory_peak` runs the call
  under ``torch.profiler`` with ``profile_memory=True``: every allocation and free of torch's CPU
  allocator is an event with its size; their running sum in time order is the live bytes, and
  its maximum the working peak. This counts tensors and the scratch buffers torch allocates
  (im2col, oneDNN through torch's allocator), not memory that libraries allocate behind torch's
  back, nor Python objects — for SR methods the tensors are what grows with the image. The
  profiler slows the call, so the runner measures CPU memory in its untimed profiling pass,
  never in the timed one.

**FLOPs and calls** (:func:`profile_cost`): one real ``upscale`` under torch's
``FlopCounterMode`` with hooks on every network the method's :class:`~srarena.methods.base.CostModel`
names; the sampler announces each step (:func:`mark_step`), so "per step" is measured, not
inferred from declared call counts: ``flops_per_step`` is the FLOPs of the ``per_step`` networks
divided by the measured steps (whichever expert ran at each; a method that marks no steps is one
step, and one without ``per_step`` networks — bicubic — puts all its FLOPs in it), ``params_step`` the parameters of
the ``per_step`` networks that ran in one step (one expert of a mixture, plus shared parts),
``params_once`` those of the ``per_image`` networks that ran, ``nfe_per_step`` the calls of the
``evals`` modules per step. Convention: FLOPs = 2 x multiply-accumulates, as
``torch.utils.flop_counter`` counts them (fvcore and many papers report MACs and call them
FLOPs: divide by 2 to compare); only ops with a registered formula count (conv, matmul,
attention ...), element-wise ops do not.
"""

from __future__ import annotations

import contextvars
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

log = logging.getLogger(__name__)

# Kineto (torch.profiler's backend) prints start/stop lines on stderr at its default level; the
# memory measurement starts it once per profiled call. Must be set before its first start.
os.environ.setdefault("KINETO_LOG_LEVEL", "6")


# ---------------------------------------------------------------------------------------------
# Time (and CUDA memory)


@dataclass
class Measurement:
    seconds: float = float("nan")
    #: CUDA: peak bytes allocated during the call above the bytes allocated when it began
    #: (add :func:`resident_bytes` of the method for its footprint); CPU: not measured here (0)
    working_memory_bytes: int = 0
    memory_kind: str = ""


@contextmanager
def measure(device: torch.device | str) -> Iterator[Measurement]:
    """``with measure(dev) as m: ...``; afterwards ``m.seconds`` (and on CUDA the working memory)."""
    device = torch.device(device)
    m = Measurement()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        yield m
        end.record()
        torch.cuda.synchronize(device)
        m.seconds = start.elapsed_time(end) / 1000.0
        m.working_memory_bytes = int(torch.cuda.max_memory_allocated(device) - before)
        m.memory_kind = "cuda_max_allocated"
    else:
        t0 = time.perf_counter()
        yield m
        m.seconds = time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# CPU memory


@dataclass
class MemoryPeak:
    working_bytes: int = 0  # peak of live bytes allocated during the block
    events: int = 0  # allocation/free events seen
    memory_kind: str = "cpu_profiler_live_bytes"


@contextmanager
def cpu_memory_peak() -> Iterator[MemoryPeak]:
    """Peak of the bytes torch's CPU allocator holds for allocations made inside the block.

    Running sum of the profiler's memory events (+size on allocation, -size on free) in time
    order; a tensor allocated before the block and freed inside it counts negative, which never
    raises the peak. See the module docstring for what it does and does not count.
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    out = MemoryPeak()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
        yield out
    events = [(e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == DeviceType.CPU]
    events.sort(key=lambda ev: ev[0])  # stable: same-instant events keep the order they were recorded in
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    out.working_bytes, out.events = int(peak), len(events)


def resident_bytes(module: torch.nn.Module | Any) -> int:
    """Bytes of a module's parameters and buffers (each storage once: tied weights count once)."""
    nets = module if isinstance(module, torch.nn.Module) else getattr(module, "nets", None)
    if not isinstance(nets, torch.nn.Module):
        return 0
    seen: dict[tuple[str, int], int] = {}
    for t in list(nets.parameters()) + list(nets.buffers()):
        if t.device.type == "meta":
            continue
        storage = t.untyped_storage()
        seen[(t.device.type, storage.data_ptr())] = storage.nbytes()
    return int(sum(seen.values()))


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _unique_params(modules: list[torch.nn.Module]) -> int:
    seen: dict[int, int] = {}
    for m in modules:
        for p in m.parameters():
            seen[id(p)] = p.numel()
    return int(sum(seen.values()))


# ---------------------------------------------------------------------------------------------
# FLOPs and calls


def count_flops(fn, *args, **kwargs) -> int:
    """FLOPs (2 x MACs) of one call of ``fn`` as counted by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as mode, torch.no_grad():
        fn(*args, **kwargs)
    return int(mode.get_total_flops())


class _Recorder:
    """Step marks of the call being profiled (the sampler calls :func:`mark_step`)."""

    def __init__(self) -> None:
        self.marks = 0

    @property
    def step(self) -> int:
        return max(0, self.marks - 1)


_ACTIVE: contextvars.ContextVar[_Recorder | None] = contextvars.ContextVar("srarena_profiler", default=None)


def mark_step() -> None:
    """Announce that a sampling step begins (its denoiser call follows). A no-op unless a
    :func:`profile_cost` is recording; one-step methods that bypass the sampler call it once."""
    rec = _ACTIVE.get()
    if rec is not None:
        rec.marks += 1


@dataclass
class ModuleCost:
    roles: set[str]  # per_step / per_image / evals / calls (a declared call count only)
    calls: int = 0
    flops: int = 0  # all calls together
    params: int = 0
    steps_seen: set[int] = field(default_factory=set)

    @property
    def flops_per_call(self) -> float:
        return self.flops / self.calls if self.calls else 0.0


@dataclass
class CostReport:
    """Measured cost of one image of one input size (see the module docstring)."""

    flops_per_image: int
    flops_per_step: float
    steps: int  # measured: mark_step() calls (1 for a method that marks none)
    params: int
    params_step: int
    params_once: int
    nfe_per_step: float
    modules: dict[str, ModuleCost]
    warnings: list[str] = field(default_factory=list)

    @property
    def params_active(self) -> int:
        return self.params_step + self.params_once

    def as_metrics(self) -> dict[str, float]:
        """The figures under the names runs, MLflow and the leaderboard use."""
        out = {
            "flops_per_step_g": self.flops_per_step / 1e9,
            "flops_per_image_g": self.flops_per_image / 1e9,
            "params_m": self.params / 1e6,
            "params_step_m": self.params_step / 1e6,
            "params_once_m": self.params_once / 1e6,
            "params_active_m": self.params_active / 1e6,
            "nfe_per_step": float(self.nfe_per_step),
            "steps": float(self.steps),
        }
        for path, mc in self.modules.items():
            key = path.replace(".", "_")
            out[f"flops_call_{key}_g"] = mc.flops_per_call / 1e9
            out[f"calls_{key}"] = float(mc.calls)
        return out


def resolve_module(method: Any, path: str) -> torch.nn.Module:
    """A cost-model path: a submodule of ``method.nets`` or, failing that, an attribute path."""
    nets = getattr(method, "nets", None)
    if isinstance(nets, torch.nn.Module):
        try:
            return nets.get_submodule(path)
        except AttributeError:
            pass
    obj = method
    try:
        for part in path.split("."):
            obj = obj[int(part)] if part.isdigit() and isinstance(obj, (torch.nn.ModuleList, torch.nn.Sequential)) else getattr(obj, part)
    except (AttributeError, IndexError):
        raise ValueError(f"cost model names {path!r}, which is not a module of the method") from None
    if not isinstance(obj, torch.nn.Module):
        raise ValueError(f"cost model entry {path!r} is a {type(obj).__name__}, not a torch module")
    return obj


def _callable_leaves(path: str, module: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """``path`` itself, or for a container without a forward (ModuleList/Dict) its members."""
    if type(module).forward is not torch.nn.Module.forward:
        return [(path, module)]
    out: list[tuple[str, torch.nn.Module]] = []
    for name, child in module.named_children():
        out += _callable_leaves(f"{path}.{name}", child)
    return out


def _outermost(paths: list[str]) -> list[str]:
    """Drop paths inside another path of the same list (their FLOPs and calls are in it)."""
    return [p for p in paths if not any(p != q and p.startswith(q + ".") for q in paths)]


def profile_cost(method: Any, lr: torch.Tensor, scale: int, generator: torch.Generator | None = None) -> CostReport:
    """Run ``method.upscale`` once on ``lr[:1]`` and measure what each named network cost.

    Every figure is measured during that call; the cost model's ``steps`` and ``calls`` are
    only checked against the measurement (a mismatch is logged and listed in ``warnings``).
    """
    from torch.utils.flop_counter import FlopCounterMode

    cost = method.cost_model()
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    roles = {"per_step": cost.per_step, "per_image": cost.per_image, "evals": cost.evals}
    leaves: dict[str, torch.nn.Module] = {}  # leaf path -> module
    stats: dict[str, ModuleCost] = {}
    declared_leaves: dict[str, list[str]] = {}  # declared path -> its leaf paths
    for role, paths in [*roles.items(), ("calls", tuple(cost.calls))]:
        for path in paths:
            found = _callable_leaves(path, resolve_module(method, path))
            declared_leaves[path] = [p for p, _ in found]
            for leaf, mod in found:
                leaves[leaf] = mod
                stats.setdefault(leaf, ModuleCost(set(), params=count_params(mod))).roles.add(role)
    rec = _Recorder()
    mode = FlopCounterMode(display=False)
    starts: dict[str, list[int]] = {leaf: [] for leaf in leaves}
    handles = []
    for leaf, mod in leaves.items():

        def pre(_m, _i, leaf=leaf):
            starts[leaf].append(mode.get_total_flops())

        def post(_m, _i, _o, leaf=leaf):
            s = stats[leaf]
            s.flops += mode.get_total_flops() - starts[leaf].pop()
            s.calls += 1
            s.steps_seen.add(rec.step)

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    token = _ACTIVE.set(rec)
    try:
        with mode, torch.no_grad():
            method.upscale(lr[:1], scale, generator)
    finally:
        _ACTIVE.reset(token)
        for h in handles:
            h.remove()

    step_leaves = _outermost([leaf for leaf, s in stats.items() if "per_step" in s.roles])
    ran_steps = [leaf for leaf in step_leaves if stats[leaf].calls]
    # A method that marks no steps is one step (feed-forward nets, interpolation); one without
    # per_step networks (bicubic) has everything it ran in that step.
    steps = rec.marks or 1
    flops_step_total = sum(stats[leaf].flops for leaf in step_leaves) if cost.per_step else int(mode.get_total_flops())
    # Parameters active in one step: per step, the per_step networks that ran at it; the largest.
    by_step: dict[int, set[str]] = {}
    for leaf in ran_steps:
        for s in stats[leaf].steps_seen:
            by_step.setdefault(s, set()).add(leaf)
    params_step = max((_unique_params([leaves[p] for p in group]) for group in {frozenset(g) for g in by_step.values()}), default=0)
    once = [leaves[leaf] for leaf, s in stats.items() if "per_image" in s.roles and s.calls]
    evals = sum(stats[leaf].calls for leaf in _outermost([leaf for leaf, s in stats.items() if "evals" in s.roles]))
    report = CostReport(
        flops_per_image=int(mode.get_total_flops()),
        flops_per_step=flops_step_total / steps,
        steps=int(steps),
        params=int(method.num_params()),
        params_step=int(params_step),
        params_once=_unique_params(once),
        nfe_per_step=evals / steps,
        modules=stats,
    )
    report.warnings = _cross_check(cost, report, declared_leaves, rec.marks)
    for w in report.warnings:
        log.warning("cost model of %s: %s", getattr(method, "name", "") or type(method).__name__, w)
    return report


def _cross_check(cost: Any, report: CostReport, declared_leaves: dict[str, list[str]], marks: int) -> list[str]:
    out = []
    if marks and cost.steps != report.steps:
        out.append(f"declares {cost.steps} sampling steps, {report.steps} were measured")
    for path, want in cost.calls.items():
        got = sum(report.modules[leaf].calls for leaf in declared_leaves.get(path, []))
        if got != want:
            out.append(f"declares {want} calls of {path!r} per image, {got} were measured")
    for role in ("per_step", "per_image"):
        for path in getattr(cost, role):
            if not any(report.modules[leaf].calls for leaf in declared_leaves.get(path, [])):
                out.append(f"{role} network {path!r} never ran")
    return out
