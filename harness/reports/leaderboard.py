"""Leaderboard: methods × metrics with direction arrows, built from MLflow runs with pandas.

The MLflow store is the single source of truth: the table is recomputed from runs (latest run
per method, dataset and scale), never from an in-memory result, so what it shows is what a
teammate would get from the same store. ``publish_leaderboard`` is what ``srarena`` prints after
each run or sweep; ``srarena report`` writes the richer versions (LaTeX, CSV, HTML, statistics).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from srarena.harness import tracking
from srarena.harness.reports import runs as runs_mod
from srarena.harness.reports import tables
from srarena.harness.reports.layouts import Style, leaderboard_table

log = logging.getLogger(__name__)

KEYS = runs_mod.KEYS


def load_runs(cfg: DictConfig, parent_run_id: str | None = None) -> pd.DataFrame:
    """Finished job runs of the configured experiment as a DataFrame (one row per run)."""
    sel = runs_mod.Selection(experiments=(str(cfg.tracking.experiment),), parent_run_id=parent_run_id)
    return runs_mod.load_runs(tracking.configure(cfg), sel)


def build_table(runs: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Latest run per (method, dataset, scale), restricted to ``columns`` that exist."""
    if runs.empty:
        return pd.DataFrame(columns=KEYS + columns)
    lat = runs_mod.latest(runs, KEYS)
    present = [c for c in columns if c in lat.columns]
    return lat[KEYS + present].sort_values(["dataset", "scale", "method"]).reset_index(drop=True)


def style_for(precision: Mapping[str, int] | None = None) -> Style:
    """Columns headed by their names (what a user types in ``metrics.presets``/``extra_columns``),
    digits from the column tables unless ``precision`` overrides them; directions from the tables."""
    return Style(precision=dict(precision or {}), display_labels=False)


def to_markdown(table: pd.DataFrame, precision: Mapping[str, int] | None = None) -> str:
    """Markdown with ↑/↓ in the header, the best of each (dataset, scale) in bold, second underlined."""
    if "run_id" not in table.columns:
        table = table.assign(run_id=[f"row{i}" for i in range(len(table))], start_time=range(len(table)))
    cols = [c for c in table.columns if c not in KEYS + ["run_id", "start_time"]]
    return tables.to_markdown(leaderboard_table(table, cols, style_for(precision)), with_legend=False)


def publish_leaderboard(cfg: DictConfig, parent_run_id: str | None = None) -> Path | None:
    """Print the leaderboard and write it to ``<paths.reports>/<leaderboard.filename>``."""
    runs = load_runs(cfg, parent_run_id)
    if runs.empty:
        print("leaderboard: no finished runs yet")
        return None
    lb = cfg.leaderboard
    columns = list(OmegaConf.select(cfg, "metrics.presets", default=[])) + list(lb.extra_columns)
    precision = OmegaConf.to_container(lb.precision) if lb.get("precision") else None
    table = leaderboard_table(runs, list(dict.fromkeys(columns)), style_for(precision))
    md = tables.to_markdown(table, with_legend=False)
    out = Path(cfg.paths.reports).expanduser() / str(lb.filename)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"# srarena leaderboard — experiment `{cfg.tracking.experiment}`\n\n"
    out.write_text(title + md)
    print("\n" + md)
    print(f"leaderboard written to {out}")
    return out
