"""What a metric *is*, independent of how it is computed: the types every other metric module shares.

Why a module of its own: the catalog (the table of metrics), the registry (lookups) and the
implementations (factories) all need these types, and none of them may import another's module at
import time — the catalog must stay a plain table that reports and the gate can read without
loading a network, and an implementation must not import the registry that lazily imports it.
This module imports nothing from srarena and no torch at run time.

Per-image metrics are callables ``(sr, hr) -> Tensor[N]``; set metrics (FID) follow
:class:`SetMetric` and accumulate over the stream. Inputs are float64 NCHW RGB in [0, 1] holding
uint8 values (the saved output), ``hr`` is ``None`` for no-reference metrics.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Protocol, Union, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import torch

Kind = Literal["fr", "nr", "set"]
KINDS: tuple[str, ...] = ("fr", "nr", "set")


@dataclass(frozen=True)
class MetricContext:
    """What a metric may depend on besides the images: the job's scale and device, and options."""

    scale: int = 1
    device: str = "cpu"
    options: Mapping[str, Any] = field(default_factory=dict)


PerImageMetric = Callable[["torch.Tensor", "torch.Tensor | None"], "torch.Tensor"]


@runtime_checkable
class SetMetric(Protocol):
    """A statistic of the whole output set (e.g. FID): fed batch by batch, computed once."""

    def update(self, sr: "torch.Tensor", hr: "torch.Tensor | None") -> None: ...

    def compute(self) -> dict[str, float]: ...


Factory = Callable[[MetricContext], Union[PerImageMetric, SetMetric]]


def import_object(path: str) -> Any:
    """``"package.module:attribute"`` -> the attribute (imported on first use)."""
    module, sep, attr = path.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"factory {path!r} must be written 'package.module:function'")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class MetricSpec:
    """One row of the metric table.

    ``factory`` is ``"module:function"`` (imported only when the metric is created, so reading the
    table costs nothing) or a callable; ``factory(ctx, **params)`` returns the metric, so one
    factory serves several rows (NIQE in two colour spaces, LPIPS with two backbones).
    ``lower_better`` is *the* direction of the metric: the leaderboard's arrows and marks, the
    statistics' "best", the plots' notes and the gate's regressions all read it from here.
    ``version`` is the preset's own version; the library's installed version is appended in
    :attr:`full_version` so a stored value says which code computed it. ``weights`` are keys of
    :mod:`srarena.harness.weights` (registered by the factory's module). ``conventions`` are
    everything that changes the number (colour space, crop — ``"scale"`` means the job's scale —,
    rounding, data range); they travel with every stored value. ``label``/``precision`` are how
    reports print it (a report config may override them).
    """

    name: str
    kind: Kind
    lower_better: bool
    value_range: tuple[float, float]
    library: str
    version: str
    conventions: Mapping[str, Any]
    factory: str | Factory
    description: str = ""
    weights: tuple[str, ...] = ()
    label: str = ""
    precision: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name!r}: kind must be one of {KINDS}, not {self.kind!r}")
        if not isinstance(self.lower_better, bool):
            raise ValueError(f"metric {self.name!r}: lower_better must be True or False")

    @property
    def full_version(self) -> str:
        """``<preset version>+<library>-<installed version>`` (just the preset's for srarena's own)."""
        if self.library in ("srarena", ""):
            return self.version
        from srarena.harness.metrics.versions import library_version

        return f"{self.version}+{self.library}-{library_version(self.library)}"

    def resolve_factory(self) -> Factory:
        return import_object(self.factory) if isinstance(self.factory, str) else self.factory

    def build(self, ctx: MetricContext) -> PerImageMetric | SetMetric:
        return self.resolve_factory()(ctx, **self.params)

    def weight_files(self) -> list[str]:
        """File names of the weights it needs (their specs register when the factory module loads)."""
        if not self.weights:
            return []
        from srarena.harness.weights import registered_weights

        if isinstance(self.factory, str):
            import_object(self.factory)
        known = registered_weights()
        return [known[k].filename if k in known else k for k in self.weights]

    def record(self, ctx: MetricContext) -> dict[str, Any]:
        """The provenance stored next to every value of this metric."""
        conv = {k: (ctx.scale if v == "scale" else v) for k, v in self.conventions.items()}
        files = self.weight_files()
        if files:
            conv["weights"] = files[0] if len(files) == 1 else ", ".join(files)
        return {
            "preset": self.name,
            "version": self.full_version,
            "library": self.library,
            "lower_better": self.lower_better,
            **conv,
        }
