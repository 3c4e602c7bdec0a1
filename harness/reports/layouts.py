"""Declarative table layouts (``conf/report/*.yaml``) → :class:`~srarena.harness.reports.tables.Table`.

Why declarative: a paper's tables change shape more often than its numbers; a layout names
rows (methods), column groups (datasets, or metrics in a sweep) and columns (metrics, or step
counts), and this module pivots the latest MLflow runs into it. Kinds:

- ``grouped``: datasets as column groups, metrics under each (SS-MoE Table 1);
- ``flat``: one dataset, one column per metric (the 8x table, the efficiency table);
- ``sweep``: metrics as column groups, sampling steps under each (SS-MoE Table 4, cU-Net Table 1).

Pure: runs and per-image frames in, tables out.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from srarena.harness.errors import ConfigError
from srarena.harness.reports import stats as st
from srarena.harness.reports.columns import describe, direction_map
from srarena.harness.reports.runs import KEYS, latest, resolve_column
from srarena.harness.reports.tables import Column, Table, unique

log = logging.getLogger(__name__)

KINDS = ("grouped", "flat", "sweep")
SET_METRICS_SUFFIX = "_n"


@dataclass(frozen=True)
class Style:
    """Presentation shared by every table of a report.

    Labels and digits come from the column tables (:mod:`srarena.harness.reports.columns`);
    ``metric_labels``/``precision`` (from ``conf/report.yaml``) only override them, the latter by
    exact name or family prefix (``psnr`` covers ``psnr_y``). ``display_labels=False`` heads
    columns with their names, as a user types them (the leaderboard printed after a run).
    Directions are not a style: they come from the tables only.
    """

    metric_labels: Mapping[str, str] = field(default_factory=dict)
    method_labels: Mapping[str, str] = field(default_factory=dict)
    dataset_labels: Mapping[str, str] = field(default_factory=dict)
    precision: Mapping[str, int] = field(default_factory=dict)
    display_labels: bool = True

    def metric_label(self, key: str) -> str:
        if key in self.metric_labels:
            return str(self.metric_labels[key])
        return describe(key).label if self.display_labels else key

    def digits(self, key: str) -> int | None:
        if key in self.precision:
            return int(self.precision[key])
        fam = [k for k in self.precision if key.startswith(f"{k}_")]
        return int(self.precision[max(fam, key=len)]) if fam else describe(key).precision

    def integer(self, key: str) -> bool:
        """A count (images, steps): printed without decimals whatever the precision says."""
        return describe(key).integer


@dataclass(frozen=True)
class StatsSettings:
    enabled: bool = True
    n_boot: int = 2000
    seed: int = 0
    confidence: float = 0.95
    alpha: float = 0.05
    test: str = "bootstrap"  # bootstrap | wilcoxon
    # Resamples for set statistics (FID from a run's saved features): each one is an n x n SVD.
    set_n_boot: int = 200
    # Per-image columns that are costs, not quality: a CI on them would only add noise.
    exclude: tuple[str, ...] = ("time_s", "time_per_image_s", "peak_memory_mb")


@dataclass(frozen=True)
class Layout:
    name: str
    kind: str
    metrics: tuple[str, ...]
    title: str = ""
    caption: str = ""
    scale: int | None = None
    datasets: tuple[str, ...] = ()
    dataset: str | None = None  # flat and sweep tables: the one dataset (None: first by name)
    methods: tuple[str, ...] = ()
    sweep_keys: tuple[str, ...] = ("steps", "params.method.steps")
    steps: tuple[int, ...] = ()
    stats: bool = True
    show_ci: bool = False

    @classmethod
    def from_config(cls, name: str, node: Mapping[str, Any]) -> "Layout":
        node = dict(node)
        kind = str(node.get("kind", ""))
        if kind not in KINDS:
            raise ConfigError(f"report layout {name!r}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if not node.get("metrics"):
            raise ConfigError(f"report layout {name!r}: give the metrics to show (metrics: [psnr_y, ...])")

        def tup(key: str) -> tuple:
            v = node.get(key)
            return tuple(v) if v else ()

        return cls(
            name=name, kind=kind, metrics=tuple(str(m) for m in node["metrics"]),
            title=str(node.get("title") or ""), caption=str(node.get("caption") or ""),
            scale=int(node["scale"]) if node.get("scale") is not None else None,
            datasets=tuple(str(d) for d in tup("datasets")), dataset=node.get("dataset"),
            methods=tuple(str(m) for m in tup("methods")),
            sweep_keys=tuple(str(k) for k in tup("sweep_keys")) or cls.sweep_keys,
            steps=tuple(int(s) for s in tup("steps")),
            stats=bool(node.get("stats", True)), show_ci=bool(node.get("show_ci", False)),
        )


def _present(runs: pd.DataFrame, metrics: Sequence[str]) -> tuple[list[str], list[str]]:
    have = [m for m in metrics if m in runs.columns and runs[m].notna().any()]
    return have, [m for m in metrics if m not in have]


def _set_metric_label(runs: pd.DataFrame, key: str, label: str) -> str:
    """FID and other set statistics show their N: FID at small N is biased upwards."""
    ncol = f"{key}{SET_METRICS_SUFFIX}"
    if ncol in runs.columns:
        ns = runs[ncol].dropna().unique()
        if len(ns) == 1:
            return f"{label} (N={int(ns[0])})"
    return label


def _rows(runs: pd.DataFrame, layout: Layout) -> list[str]:
    present = unique(runs["method"].tolist())
    if layout.methods:
        return [m for m in layout.methods if m in present]
    return sorted(present)


def _select(runs: pd.DataFrame, layout: Layout) -> pd.DataFrame:
    df = runs
    if layout.scale is not None:
        df = df[df["scale"] == layout.scale]
    if layout.methods:
        df = df[df["method"].isin(layout.methods)]
    return df


def _frame(rows: list[str], ids: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    values = pd.DataFrame(np.nan, index=range(len(rows)), columns=ids, dtype=float)
    run_ids = pd.DataFrame(None, index=range(len(rows)), columns=ids, dtype=object)
    return values, run_ids


def build_layout(runs: pd.DataFrame, layout: Layout, style: Style = Style()) -> Table | None:
    """Pivot runs into ``layout``; None when no run matches (the report says so and goes on)."""
    df = _select(runs, layout)
    if layout.kind in ("flat", "sweep"):
        if layout.dataset:
            df = df[df["dataset"] == layout.dataset]
        elif df["dataset"].nunique() > 1:
            first = sorted(df["dataset"].unique())[0]
            log.info("layout %s: no dataset given, using %s", layout.name, first)
            df = df[df["dataset"] == first]
    elif layout.kind == "grouped" and layout.datasets:
        df = df[df["dataset"].isin(layout.datasets)]
    if df.empty:
        return None
    metrics, missing = _present(df, layout.metrics)
    if not metrics:
        return None
    dirs = direction_map(metrics)
    rows = _rows(df, layout)
    notes = [f"Not in these runs: {', '.join(missing)}."] if missing else []
    columns: list[Column] = []
    cells: dict[str, dict[str, tuple[float, str]]] = {}  # col id -> method -> (value, run id)

    if layout.kind in ("grouped", "flat"):
        lat = latest(df, KEYS)
        datasets = (
            [d for d in layout.datasets if d in set(lat["dataset"])] if layout.datasets else sorted(lat["dataset"].unique())
        )
        for d in datasets:
            sub = lat[lat["dataset"] == d]
            for m in metrics:
                cid = f"{d}/{m}" if layout.kind == "grouped" else m
                label = _set_metric_label(sub, m, style.metric_label(m))
                columns.append(Column(cid, m, label, dirs[m], style.dataset_labels.get(d, d) if layout.kind == "grouped" else None,
                                      style.digits(m), integer=style.integer(m)))
                cells[cid] = {r["method"]: (r[m], r["run_id"]) for _, r in sub.iterrows()}
        if layout.kind == "flat":
            notes.append(f"Dataset: {style.dataset_labels.get(datasets[0], datasets[0])}" + (f", x{layout.scale}." if layout.scale else "."))
    else:  # sweep
        key = resolve_column(df, layout.sweep_keys)
        if key is None:
            return None
        df = df.assign(_steps=pd.to_numeric(df[key], errors="coerce")).dropna(subset=["_steps"])
        lat = latest(df, [*KEYS, "_steps"])
        steps = list(layout.steps) or sorted(int(s) for s in lat["_steps"].unique())
        for m in metrics:
            for s in steps:
                cid = f"{m}@{s}"
                sub = lat[lat["_steps"] == s]
                columns.append(Column(cid, m, str(s), dirs[m], style.metric_label(m), style.digits(m)))
                cells[cid] = {r["method"]: (r[m], r["run_id"]) for _, r in sub.iterrows()}
        ds = df["dataset"].iloc[0]
        notes.append(f"Columns: number of sampling steps. Dataset: {style.dataset_labels.get(ds, ds)}"
                     + (f", x{layout.scale}." if layout.scale else "."))
    ids = [c.id for c in columns]
    values, run_ids = _frame(rows, ids)
    for cid, per_method in cells.items():
        for i, method in enumerate(rows):
            if method in per_method:
                v, rid = per_method[method]
                values.at[i, cid] = float(v) if v is not None and not (isinstance(v, float) and math.isnan(v)) else np.nan
                run_ids.at[i, cid] = rid
    labels = pd.DataFrame({"method": [style.method_labels.get(r, r) for r in rows]})
    return Table(labels=labels, values=values, columns=columns, run_ids=run_ids, title=layout.title,
                 caption=layout.caption, label=f"tab:{layout.name}", notes=notes, show_ci=layout.show_ci)


def leaderboard_table(runs: pd.DataFrame, columns: Sequence[str], style: Style = Style()) -> Table:
    """Latest run per (method, dataset, scale); marks within each (dataset, scale)."""
    lat = latest(runs, KEYS)
    present, _ = _present(lat, columns) if not lat.empty else ([], [])
    dirs = direction_map(present)
    cols = [Column(c, c, style.metric_label(c), dirs[c], None, style.digits(c), integer=style.integer(c))
            for c in present]
    lat = lat.sort_values(["dataset", "scale", "method"]).reset_index(drop=True)
    values = lat[present].apply(pd.to_numeric, errors="coerce").astype(float) if present else pd.DataFrame(index=lat.index)
    run_ids = pd.DataFrame({c: lat["run_id"] for c in present}, index=lat.index) if present else None
    return Table(
        labels=lat[KEYS].astype({"scale": int}).copy(),
        values=values,
        columns=cols,
        groups=lat["dataset"].astype(str) + "/x" + lat["scale"].astype(str),
        run_ids=run_ids,
        title="",
    )


def attach_stats(table: Table, per_image: Mapping[str, pd.DataFrame], settings: StatsSettings,
                 set_features: Mapping[str, Mapping[str, Any]] | None = None) -> Table:
    """Fill ``ci_lo``/``ci_hi``/``p_vs_best`` from per-image values, per column and group.

    Set metrics (FID) have no per-image values: their CI is a paired bootstrap over the images of
    the run's saved features (``set_features``: run id -> metric -> ``<metric>_features.npz``),
    and their N goes into ``table.n``; without features the CI stays empty (N is in the header).
    Set-metric CIs get no p-value: the runs' image sets are not resampled jointly.
    """
    if not settings.enabled or table.run_ids is None:
        return table
    lo = pd.DataFrame(np.nan, index=table.values.index, columns=table.ids)
    hi, p, n = lo.copy(), lo.copy(), lo.copy()
    groups = table.groups if table.groups is not None else pd.Series(0, index=table.values.index)
    for col in table.columns:
        if col.key in settings.exclude:
            continue
        for _, idx in groups.groupby(groups, sort=False).groups.items():
            series: dict[Any, pd.Series] = {}
            for row in idx:
                rid = table.run_ids.at[row, col.id]
                frame = per_image.get(str(rid)) if rid is not None else None
                if frame is not None and col.key in frame.columns:
                    series[row] = pd.to_numeric(frame[col.key], errors="coerce").dropna()
                elif rid is not None and set_features and col.key in set_features.get(str(rid), {}):
                    ci = _set_ci(str(set_features[str(rid)][col.key]), settings)
                    if ci is not None:
                        lo.at[row, col.id], hi.at[row, col.id], n.at[row, col.id] = ci.lo, ci.hi, ci.n
            if not series:
                continue
            res = st.compare_methods(series, bool(col.lower_better), test=settings.test, n_boot=settings.n_boot,
                                     seed=settings.seed, confidence=settings.confidence)
            for row, ci in res.ci.items():
                lo.at[row, col.id], hi.at[row, col.id] = ci.lo, ci.hi
            if col.lower_better is not None and len(series) > 1:
                for row, pv in res.p_vs_best.items():
                    p.at[row, col.id] = pv
    table.ci_lo, table.ci_hi, table.alpha = lo, hi, settings.alpha
    table.test = {"bootstrap": "paired bootstrap", "wilcoxon": "Wilcoxon signed-rank"}.get(settings.test, settings.test)
    table.p_vs_best = p if p.notna().any().any() else None
    if n.notna().any().any():
        table.n = n.dropna(axis=1, how="all")
        table.notes = [*table.notes, f"Set statistics (FID): CI from a paired bootstrap over the N images of the run's "
                       f"saved Inception features ({settings.set_n_boot} resamples); FID is biased upwards at small N, "
                       "compare only at equal N."]
    return table


_SET_CI_CACHE: dict[tuple, st.Interval | None] = {}


def _set_ci(path: str, settings: StatsSettings) -> st.Interval | None:
    """FID CI of one features file (cached: the same run appears in several tables)."""
    import os

    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError:
        return None
    key = (path, mtime, settings.set_n_boot, settings.seed, settings.confidence)
    if key not in _SET_CI_CACHE:
        try:
            _SET_CI_CACHE[key] = st.fid_features_ci(path, n_boot=settings.set_n_boot, seed=settings.seed,
                                                    confidence=settings.confidence)
        except (OSError, ValueError, KeyError) as e:
            log.warning("FID features %s unusable: %s", path, e)
            _SET_CI_CACHE[key] = None
    return _SET_CI_CACHE[key]
