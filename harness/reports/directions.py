"""Which way is better for a column: the metric registry decides, configuration fills the gaps.

Why a separate module: the leaderboard, the paper tables, the statistics and the quality gate
must all agree on a metric's direction; a second, drifting list would silently mark the worst
method as best. Columns the registry does not know (profiling numbers, metrics that another
module registers later) fall back to the ``directions`` block of the report/gate configs, matched
by exact name or by family prefix (``lpips`` covers ``lpips_vgg``).
"""

from __future__ import annotations

from typing import Iterable, Mapping

DEFAULT_LOWER = (
    "lpips", "dists", "niqe", "brisque", "pi", "fid", "kid",
    "time_per_image_s", "peak_memory_mb", "params_m", "params_active_m",
    "flops_per_step_g", "flops_per_image_g", "n_failed",
)
DEFAULT_HIGHER = ("psnr", "ssim", "ms_ssim", "musiq", "clipiqa", "maniqa")


def _matches(name: str, entries: Iterable[str]) -> bool:
    return any(name == e or name.startswith(f"{e}_") for e in entries)


def lower_is_better(
    name: str,
    lower: Iterable[str] = DEFAULT_LOWER,
    higher: Iterable[str] = DEFAULT_HIGHER,
) -> bool | None:
    """True if lower is better, False if higher is, None if the column has no direction."""
    from srarena.harness.metrics.registry import available_metrics, get_spec

    if name in available_metrics():
        return get_spec(name).lower_better
    lower, higher = list(lower), list(higher)
    if name in lower:
        return True
    if name in higher:
        return False
    if _matches(name, lower):
        return True
    if _matches(name, higher):
        return False
    return None


def from_config(directions: Mapping | None) -> tuple[list[str], list[str]]:
    """``(lower, higher)`` lists from a config block ``{lower: [...], higher: [...]}``."""
    if not directions:
        return list(DEFAULT_LOWER), list(DEFAULT_HIGHER)
    return list(directions.get("lower", DEFAULT_LOWER)), list(directions.get("higher", DEFAULT_HIGHER))


def direction_map(columns: Iterable[str], directions: Mapping | None = None) -> dict[str, bool | None]:
    lower, higher = from_config(directions)
    return {c: lower_is_better(c, lower, higher) for c in columns}


def arrow(lower_better: bool | None) -> str:
    return "" if lower_better is None else ("↓" if lower_better else "↑")
