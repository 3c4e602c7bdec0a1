"""Leaderboard: methods x metrics with direction arrows, built from MLflow runs with pandas.

The MLflow store is the single source of truth: the table is recomputed from runs (latest run
per method, dataset and scale), never from an in-memory result, so what it shows is what a
teammate would get from the same store.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Iterable

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from harness import tracking

log = logging.getLogger(__name__)

KEYS = ["method", "dataset", "scale"]


def load_runs(cfg: DictConfig, parent_run_id: str | None = None) -> pd.DataFrame:
    """Finished job runs of the configured experiment as a DataFrame (one row per run)."""
    import mlflow

    tracking.configure(cfg)
    exp = mlflow.get_experiment_by_name(str(cfg.tracking.experiment))
    if exp is None:
        return pd.DataFrame()
    flt = "tags.`srarena.kind` = 'job' and attributes.status = 'FINISHED'"
    if parent_run_id:
        flt += f" and tags.`mlflow.parentRunId` = '{parent_run_id}'"
    df = mlflow.search_runs([exp.experiment_id], filter_string=flt, output_format="pandas")
    if df.empty:
        return df
    df = df.rename(columns={f"tags.{k}": k for k in KEYS})
    df.columns = [c[len("metrics."):] if c.startswith("metrics.") else c for c in df.columns]
    return df


def lower_is_better(column: str, extra_lower: Iterable[str] = ()) -> bool | None:
    """Direction of a column: the metric registry decides; profiling columns are lower-better."""
    from harness.metrics.registry import available_metrics, get_spec

    if column in set(extra_lower):
        return True
    if column in available_metrics():
        return get_spec(column).lower_better
    return None


def build_table(runs: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Latest run per (method, dataset, scale), restricted to ``columns`` that exist."""
    if runs.empty:
        return pd.DataFrame(columns=KEYS + columns)
    latest = runs.sort_values("start_time").groupby(KEYS, as_index=False).last()
    present = [c for c in columns if c in latest.columns]
    return latest[KEYS + present].sort_values(["dataset", "scale", "method"]).reset_index(drop=True)


def _fmt(v: object, column: str = "") -> str:
    if isinstance(v, float) and column.startswith("n_") and v == v:
        return str(int(v))
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.2f}"
    return str(v)


def to_markdown(table: pd.DataFrame, extra_lower: Iterable[str] = ()) -> str:
    """Markdown with ↑/↓ in the header and the best value of each (dataset, scale) in bold."""
    metric_cols = [c for c in table.columns if c not in KEYS]
    arrows = {c: lower_is_better(c, extra_lower) for c in metric_cols}
    header = KEYS + [f"{c} {'↓' if arrows[c] else '↑'}" if arrows[c] is not None else c for c in metric_cols]
    best: dict[tuple, dict[str, float]] = {}
    for key, grp in table.groupby(["dataset", "scale"]):
        best[key] = {}
        for c in metric_cols:
            vals = pd.to_numeric(grp[c], errors="coerce").dropna()
            if arrows[c] is not None and len(vals) > 1:
                best[key][c] = vals.min() if arrows[c] else vals.max()
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(KEYS) + ["---:"] * len(metric_cols)) + "|"]
    for _, row in table.iterrows():
        cells = [str(row[k]) for k in KEYS]
        for c in metric_cols:
            text = _fmt(row[c], c)
            if best.get((row["dataset"], row["scale"]), {}).get(c) == row[c]:
                text = f"**{text}**"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def publish_leaderboard(cfg: DictConfig, parent_run_id: str | None = None) -> Path | None:
    """Print the leaderboard and write it to ``<paths.reports>/<leaderboard.filename>``."""
    runs = load_runs(cfg, parent_run_id)
    if runs.empty:
        print("leaderboard: no finished runs yet")
        return None
    lb = cfg.leaderboard
    columns = list(OmegaConf.select(cfg, "metrics.presets", default=[])) + list(lb.extra_columns)
    table = build_table(runs, list(dict.fromkeys(columns)))
    md = to_markdown(table, lb.lower_better)
    out = Path(cfg.paths.reports).expanduser() / str(lb.filename)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"# srarena leaderboard — experiment `{cfg.tracking.experiment}`\n\n"
    out.write_text(title + md)
    print("\n" + md)
    print(f"leaderboard written to {out}")
    return out
