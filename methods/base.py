"""The one interface every SR method implements, and the registry that finds them by name.

Contract of :meth:`SRMethod.upscale`: ``lr`` is float32 NCHW RGB in [0, 1]; the result is float
NCHW RGB, exactly ``scale`` times the spatial size of ``lr`` (values may leave [0, 1]; the runner
clamps when it quantises, as a user saving a PNG would). Anything random draws from the given
``torch.Generator`` so that a (seed, image) pair always gives the same output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class CostModel:
    """What one image costs, for the profiler: which networks run, how often.

    ``calls`` maps a sub-network name (an attribute path of the method's ``modules()``) to the
    number of times it runs per image — e.g. ``{"unet": steps, "vae.decoder": 1}``. ``active``
    optionally maps a sub-network to its parameters active per call (mixtures of experts), so
    that "params total" and "params active" both come out right.
    """

    calls: dict[str, int] = field(default_factory=dict)
    active_params: dict[str, int] = field(default_factory=dict)
    steps: int = 1


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

    Subclasses that own networks keep them in ``self.nets`` (a ``torch.nn.ModuleDict``).
    """

    name: str = "base"
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
        return CostModel(calls={k: 1 for k in self.nets.keys()})

    def check_scale(self, scale: int) -> None:
        if self.scales and scale not in self.scales:
            raise MethodError(f"method {self.name!r} supports scales {self.scales}, not x{scale}")

    def upscale(self, lr: torch.Tensor, scale: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


_METHODS: dict[str, type] = {}


def register_method(name: str) -> Callable[[type], type]:
    """Class decorator: ``@register_method("bicubic")``. The YAML in ``conf/method/`` selects it."""

    def deco(cls: type) -> type:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"method name {name!r} is registered twice")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return deco


def registered_methods() -> dict[str, type]:
    return dict(_METHODS)


def get_method_class(name: str) -> type:
    try:
        return _METHODS[name]
    except KeyError:
        raise KeyError(f"no method registered as {name!r}; registered: {sorted(_METHODS)}") from None
