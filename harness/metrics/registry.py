"""Lookups in the metric table (``catalog.METRICS``): by name, the list of names, creation.

The table is read on first use (it is plain data, so that costs nothing); a metric's module —
and its network library — is imported only when :func:`create_metric` builds it. A preset fixes
every convention that changes a number (colour space, crop, rounding, data range, library
version), and its name and version travel with each stored result, so two tables built from
srarena runs are comparable by construction.

Import graph (no circle, checked by ``tests/test_metric_table.py``): ``spec`` <- ``catalog`` <-
``registry``; the implementations (``psnr_ssim``, ``fid``, ...) import ``spec`` only, never this
module.
"""

from __future__ import annotations

import importlib
from typing import Iterable

from srarena.harness.metrics.spec import (  # noqa: F401  (re-exported: the public metric API)
    Kind,
    MetricContext,
    MetricSpec,
    PerImageMetric,
    SetMetric,
)

_REGISTRY: dict[str, MetricSpec] = {}
_loaded = False


def register_metric(spec: MetricSpec) -> MetricSpec:
    """Add one row (the table's rows are added this way on first use; a plugin may add its own)."""
    _table()
    _add(spec)
    return spec


def _add(spec: MetricSpec) -> None:
    if spec.name in _REGISTRY:
        raise ValueError(f"metric preset {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec


def _table() -> dict[str, MetricSpec]:
    global _loaded
    if not _loaded:
        from srarena.harness.metrics.catalog import METRICS

        for spec in METRICS:
            _add(spec)
        _loaded = True
    return _REGISTRY


def available_metrics() -> list[str]:
    return sorted(_table())


def all_specs() -> list[MetricSpec]:
    return [_table()[n] for n in available_metrics()]


def get_spec(name: str) -> MetricSpec:
    try:
        return _table()[name]
    except KeyError:
        raise KeyError(
            f"unknown metric preset {name!r}; available: {', '.join(available_metrics())}"
        ) from None


def find_spec(name: str) -> MetricSpec | None:
    """The row of ``name``, or None when it is not a metric (a cost column, a typo)."""
    return _table().get(name)


def create_metric(name: str, ctx: MetricContext) -> PerImageMetric | SetMetric:
    return get_spec(name).build(ctx)


def implementation_modules(specs: Iterable[MetricSpec] | None = None) -> list[str]:
    """The modules the table's factories live in (derived from the table, never hand-listed)."""
    rows = all_specs() if specs is None else list(specs)
    return sorted({s.factory.partition(":")[0] for s in rows if isinstance(s.factory, str)})


def import_implementations() -> dict[str, str]:
    """Import every factory module (so their weight files are registered, e.g. for
    ``srarena weights status``); returns ``module -> error`` for those that failed to import."""
    problems: dict[str, str] = {}
    for module in implementation_modules():
        try:
            importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - a missing optional library is reported, not fatal
            problems[module] = f"{type(e).__name__}: {e}"
    return problems
