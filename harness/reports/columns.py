"""What a result column means: direction, precision and label — for metrics and everything else.

Why one module: the leaderboard, the paper tables, the statistics, the plots and the quality
gate must agree on which way is better; a second, drifting list would silently mark the worst
method as best or let a regression through the gate. So:

- a **metric** column (``psnr_y``, ``lpips``, ``fid``...) is described by its row in the metric
  table, ``srarena.harness.metrics.catalog.METRICS``;
- every **other** column a job records (time, memory, parameters, FLOPs, steps, counts) by its
  row in :data:`COLUMNS` below;
- derived columns follow their base: ``<x>_std`` (spread over images: precision of ``x``, no
  direction) and ``<set metric>_n`` / ``_n_ref`` (how many images a set statistic saw);
- anything else has no direction (no arrow, no marks, not gated) until it gets a row.

Report configs may override labels and precision (``style.metric_labels``/``style.precision`` in
``conf/report.yaml``, ``leaderboard.precision`` in ``conf/run.yaml``); directions are facts and
have no override.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class ColumnSpec:
    """One non-metric column: ``lower_better`` None means "no better direction"; ``integer``: a
    count, printed without decimals whatever a precision override says."""

    name: str
    lower_better: bool | None
    precision: int | None
    label: str
    description: str = ""
    integer: bool = False


# The table of non-metric columns. Adding a column a job records = one row here.
COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec("time_per_image_s", True, 4, "Time/image (s)", "mean wall time of one upscale call"),
    ColumnSpec("time_s", True, 4, "Time (s)", "wall time of one upscale call (per-image CSV)"),
    ColumnSpec("peak_memory_mb", True, 0, "Peak mem. (MB)", "memory the method needed during upscale"),
    ColumnSpec("params_m", True, 3, "Params (M)", "parameters of every network of the method"),
    ColumnSpec("params_active_m", True, 3, "Active params (M)",
               "parameters that run for one image: params_step_m + params_once_m"),
    ColumnSpec("params_step_m", True, 3, "Params/step (M)", "parameters of the modules that run in one step"),
    ColumnSpec("params_once_m", True, 3, "Params once (M)", "parameters of the modules that run once per image"),
    ColumnSpec("flops_per_step_g", True, 2, "GFLOPs/step", "denoiser FLOPs of one sampling step"),
    ColumnSpec("flops_per_image_g", True, 2, "GFLOPs/image", "everything one image costs"),
    ColumnSpec("nfe_per_step", True, 1, "NFE/step", "network calls per step (adaptive ODE solvers)"),
    ColumnSpec("steps", True, 0, "Steps", "sampling steps", integer=True),
    ColumnSpec("n_images", None, 0, "N", "images in the test set", integer=True),
    ColumnSpec("n_ok", None, 0, "ok", "images that went through", integer=True),
    ColumnSpec("n_failed", True, 0, "failed", "images that failed (with the reason in the run)", integer=True),
)

_BY_NAME = {c.name: c for c in COLUMNS}
STD_SUFFIX = "_std"
SET_COUNT_SUFFIXES = ("_n", "_n_ref")


@dataclass(frozen=True)
class ColumnInfo:
    """The merged view of a column, whichever table it comes from."""

    name: str
    lower_better: bool | None
    precision: int | None
    label: str
    is_metric: bool = False
    known: bool = True
    integer: bool = False


def describe(name: str) -> ColumnInfo:
    """Direction, precision and label of ``name`` (see the module docstring for the order)."""
    from srarena.harness.metrics.registry import find_spec

    spec = find_spec(name)
    if spec is not None:
        return ColumnInfo(name, spec.lower_better, spec.precision, spec.label or name, is_metric=True)
    col = _BY_NAME.get(name)
    if col is not None:
        return ColumnInfo(name, col.lower_better, col.precision, col.label, integer=col.integer)
    if name.endswith(STD_SUFFIX):
        base = describe(name[: -len(STD_SUFFIX)])
        if base.known:
            return ColumnInfo(name, None, base.precision, f"{base.label} (sd)")
    for suffix in SET_COUNT_SUFFIXES:
        base_spec = find_spec(name[: -len(suffix)]) if name.endswith(suffix) else None
        if base_spec is not None and base_spec.kind == "set":
            what = "N" if suffix == "_n" else "N ref"
            return ColumnInfo(name, None, 0, f"{base_spec.label or base_spec.name} {what}", integer=True)
    return ColumnInfo(name, None, None, name, known=False)


def lower_is_better(name: str) -> bool | None:
    """True if lower is better, False if higher is, None if the column has no direction."""
    return describe(name).lower_better


def direction_map(columns: Iterable[str]) -> dict[str, bool | None]:
    return {c: lower_is_better(c) for c in columns}


def arrow(lower_better: bool | None) -> str:
    return "" if lower_better is None else ("↓" if lower_better else "↑")
