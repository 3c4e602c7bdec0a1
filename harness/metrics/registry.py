"""The metric registry: one declarative spec per named preset, one ``create_metric`` entry.

A preset fixes every convention that changes a number (colour space, crop, rounding, data
range, library version), and its name and version travel with each stored result, so two tables
built from srarena runs are comparable by construction.

Per-image metrics are callables ``(sr, hr) -> Tensor[N]``; set metrics (FID) follow
:class:`SetMetric` and accumulate over the stream. Inputs are float64 NCHW RGB in [0, 1] holding
uint8 values (the saved output), ``hr`` is ``None`` for no-reference metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Protocol, runtime_checkable

import torch

Kind = Literal["fr", "nr", "set"]


@dataclass(frozen=True)
class MetricContext:
    """What a preset may depend on besides the images: the job's scale and device."""

    scale: int = 1
    device: str = "cpu"
    options: Mapping[str, Any] = field(default_factory=dict)


PerImageMetric = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]


@runtime_checkable
class SetMetric(Protocol):
    """A statistic of the whole output set (e.g. FID): fed batch by batch, computed once."""

    def update(self, sr: torch.Tensor, hr: torch.Tensor | None) -> None: ...

    def compute(self) -> dict[str, float]: ...


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Kind
    lower_better: bool
    value_range: tuple[float, float]
    library: str
    version: str
    conventions: Mapping[str, Any]
    factory: Callable[[MetricContext], PerImageMetric | SetMetric]
    description: str = ""

    def record(self, ctx: MetricContext) -> dict[str, Any]:
        """The provenance stored next to every value of this metric."""
        conv = {k: (ctx.scale if v == "scale" else v) for k, v in self.conventions.items()}
        return {
            "preset": self.name,
            "version": self.version,
            "library": self.library,
            "lower_better": self.lower_better,
            **conv,
        }


_REGISTRY: dict[str, MetricSpec] = {}


def register_metric(spec: MetricSpec) -> MetricSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"metric preset {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def available_metrics() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_spec(name: str) -> MetricSpec:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown metric preset {name!r}; available: {', '.join(available_metrics())}"
        ) from None


def create_metric(name: str, ctx: MetricContext) -> PerImageMetric | SetMetric:
    return get_spec(name).factory(ctx)


def _load_builtin() -> None:
    # Importing the preset modules registers them; kept lazy so `import harness` stays cheap.
    from srarena.harness.metrics import presets  # noqa: F401
    from srarena.harness.metrics import fid, msssim, musiq, niqe, perceptual  # noqa: F401
