"""The one interface every SR method implements, and what it declares about its cost.

Contract of :meth:`SRMethod.upscale`: ``lr`` is float32 NCHW RGB in [0, 1]; the result is float
NCHW RGB, exactly ``scale`` times the spatial size of ``lr`` (values may leave [0, 1]; the runner
clamps when it quantises, as a user saving a PNG would). Anything random draws from the given
``torch.Generator`` — a *CPU* generator seeded by (seed, image id) — on the CPU, and moves the
draw to the method's device (``torch.randn(shape, generator=g).to(device)``), so a (seed, image)
pair gives the same output in any order, batch and on any device (up to float tolerance).
The sampler (:mod:`srarena.methods.diffusion.samplers`) already does this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class CostModel:
    """Which sub-networks a method runs, for the profiler (:func:`srarena.harness.profiling.profile_cost`).

    Paths name modules in ``method.nets`` (``"unet"``, ``"experts.0"``, ``"vqvae.decoder"``); a
    container without its own ``forward`` (``ModuleList``/``ModuleDict``) stands for its members.
    The profiler hooks them during one real ``upscale`` and *measures* every figure; this class
    only says which role each network plays:

    * ``per_step`` — networks that run at sampling steps (the denoiser; every expert of a
      mixture, of which only the routed one runs at a step; parts shared by all steps);
    * ``per_image`` — networks that run once per image (encoder, decoder, degradation
      estimator, text encoder);
    * ``evals`` — modules called a data-dependent number of times (the function of an adaptive
      ODE solver): their calls per step are the NFE.

    ``steps`` and ``calls`` (path -> calls per image) are declarations the profiler checks its
    measurement against: a disagreement is a warning with both numbers, never a silent choice.
    """

    per_step: tuple[str, ...] = ()
    per_image: tuple[str, ...] = ()
    evals: tuple[str, ...] = ()
    steps: int = 1
    calls: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("per_step", "per_image", "evals"):  # YAML/list input -> tuples
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, str) else tuple(value))
        object.__setattr__(self, "calls", {str(k): int(v) for k, v in dict(self.calls).items()})
        object.__setattr__(self, "steps", int(self.steps))

    @property
    def paths(self) -> tuple[str, ...]:
        """Every module path the cost model names (declared call counts included)."""
        return tuple(dict.fromkeys((*self.per_step, *self.per_image, *self.evals, *self.calls)))


@runtime_checkable
class SRMethod(Protocol):
    name: str
    scales: tuple[int, ...]

    def upscale(self, lr: torch.Tensor, scale: int, generator: torch.Generator) -> torch.Tensor: ...

    def num_params(self) -> int: ...

    def cost_model(self) -> CostModel: ...

    def to(self, device: torch.device | str) -> "SRMethod": ...


class MethodError(RuntimeError):
    """A method cannot run as configured (missing weights, unsupported scale, bad checkpoint)."""


class BaseMethod:
    """Helpers most methods share: device placement, parameter counting, scale checks.

    Subclasses that own networks keep them in ``self.nets`` (a ``torch.nn.ModuleDict``). A
    method's name is the one a user types, ``conf/method/<name>.yaml``: the builder
    (:func:`srarena.methods.catalog.build_method`, or the benchmark app) sets ``name``; classes
    carry none of their own, so one class behind several YAMLs (``rrdbnet``, ``rrdbnet_demo``)
    reports each under its own name.
    """

    name: str = ""
    scales: tuple[int, ...] = ()

    def __init__(self) -> None:
        self.nets = torch.nn.ModuleDict()
        self.device = torch.device("cpu")

    def to(self, device: torch.device | str) -> "BaseMethod":
        self.device = torch.device(device)
        self.nets.to(self.device)
        return self

    def num_params(self) -> int:
        return sum(p.numel() for p in self.nets.parameters())

    def cost_model(self) -> CostModel:
        """Default: every network runs at the (single) step of a feed-forward model."""
        return CostModel(per_step=tuple(self.nets.keys()), steps=1)

    def check_scale(self, scale: int) -> None:
        if self.scales and scale not in self.scales:
            label = self.name or type(self).__name__
            raise MethodError(f"method {label!r} supports scales {self.scales}, not x{scale}")

    def upscale(self, lr: torch.Tensor, scale: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError
