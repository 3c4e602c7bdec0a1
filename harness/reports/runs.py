"""MLflow → pandas: select srarena job runs and read their per-image tables.

This is the only module of ``srarena.harness.reports`` that talks to MLflow; everything downstream is a
pure function of the DataFrames returned here, so tables and the gate can be tested on fixture
frames and reproduced by a teammate from the same store.

Column conventions of the returned frame: ``run_id``, ``start_time``, ``artifact_uri``, the
keys ``method``, ``dataset``, ``scale`` (int), every other tag as ``tags.<name>``, every metric
under its bare name (``psnr_y``, ``time_per_image_s``), params as ``params.<flat.key>``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import unquote, urlparse

import pandas as pd

from srarena.harness.errors import ConfigError, DataError

log = logging.getLogger(__name__)

KEYS = ["method", "dataset", "scale"]


@dataclass(frozen=True)
class Selection:
    """Which runs a report or gate looks at (all fields optional; empty means all)."""

    experiments: tuple[str, ...] = ("srarena",)
    methods: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    scales: tuple[int, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    parent_run_id: str | None = None
    run_ids: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | None, default_experiment: str = "srarena") -> "Selection":
        node = dict(node or {})

        def seq(key: str) -> tuple:
            v = node.get(key)
            if v is None or v == "":
                return ()
            if isinstance(v, (str, int)):
                return (v,)
            return tuple(v)

        experiments = seq("experiment") or (default_experiment,)
        return cls(
            experiments=tuple(str(e) for e in experiments),
            methods=tuple(str(m) for m in seq("methods")),
            datasets=tuple(str(d) for d in seq("datasets")),
            scales=tuple(int(s) for s in seq("scales")),
            tags={str(k): str(v) for k, v in dict(node.get("tags") or {}).items()},
            parent_run_id=node.get("parent_run_id") or None,
            run_ids=tuple(str(r) for r in seq("run_ids")),
        )


def _quote(value: str) -> str:
    return "'" + str(value).replace("'", "\\'") + "'"


def filter_string(sel: Selection) -> str:
    """MLflow search filter for finished job runs (set filters are applied in pandas)."""
    parts = ["tags.`srarena.kind` = 'job'", "attributes.status = 'FINISHED'"]
    if sel.parent_run_id:
        parts.append(f"tags.`mlflow.parentRunId` = {_quote(sel.parent_run_id)}")
    for k, v in sel.tags.items():
        parts.append(f"tags.`{k}` = {_quote(v)}")
    return " and ".join(parts)


def normalise(raw: pd.DataFrame) -> pd.DataFrame:
    """Rename MLflow's ``metrics.``/``tags.`` columns to the conventions above."""
    if raw.empty:
        return pd.DataFrame(columns=["run_id", "start_time", "artifact_uri", *KEYS])
    df = raw.rename(columns={f"tags.{k}": k for k in KEYS})
    df.columns = [c[len("metrics."):] if c.startswith("metrics.") else c for c in df.columns]
    for k in KEYS:
        if k not in df.columns:
            df[k] = None
    df["scale"] = pd.to_numeric(df["scale"], errors="coerce").fillna(0).astype(int)
    return df.reset_index(drop=True)


def apply_selection(df: pd.DataFrame, sel: Selection) -> pd.DataFrame:
    """The set-valued filters (methods, datasets, scales, run ids) on a normalised frame."""
    mask = pd.Series(True, index=df.index)
    if sel.methods:
        mask &= df["method"].isin(sel.methods)
    if sel.datasets:
        mask &= df["dataset"].isin(sel.datasets)
    if sel.scales:
        mask &= df["scale"].isin(sel.scales)
    if sel.run_ids:
        mask &= df["run_id"].isin(sel.run_ids)
    return df[mask].reset_index(drop=True)


def load_runs(tracking_uri: str, sel: Selection) -> pd.DataFrame:
    """Finished srarena job runs matching ``sel`` (one row per run, newest first)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    exp_ids = []
    for name in sel.experiments:
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            exp_ids.append(exp.experiment_id)
        else:
            log.warning("experiment %r not found in %s", name, tracking_uri)
    if not exp_ids:
        return normalise(pd.DataFrame())
    raw = mlflow.search_runs(exp_ids, filter_string=filter_string(sel), output_format="pandas", order_by=["attributes.start_time DESC"])
    return apply_selection(normalise(raw), sel)


def latest(df: pd.DataFrame, keys: Sequence[str] = KEYS) -> pd.DataFrame:
    """The newest run per key combination (re-runs supersede older results)."""
    if df.empty:
        return df
    keys = [k for k in keys if k in df.columns]
    out = df.sort_values("start_time").groupby(keys, as_index=False, dropna=False).last()
    return out.sort_values(keys).reset_index(drop=True)


def resolve_column(df: pd.DataFrame, candidates: Iterable[str]) -> str | None:
    """The first of ``candidates`` present in ``df`` with at least one value (e.g. the
    profiler's ``steps`` metric, else the ``params.method.steps`` hyper-parameter)."""
    for c in candidates:
        if c in df.columns and df[c].notna().any():
            return c
    return None


def _local_dir(uri: str) -> Path | None:
    if not uri:
        return None
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path))
    return None


def artifact_path(run: Mapping[str, Any], name: str) -> Path | None:
    """Local path of an artifact of ``run``: the artifact store if local, else a download,
    else the job directory named by the ``output_dir`` tag."""
    base = _local_dir(str(run.get("artifact_uri") or ""))
    if base is not None and (base / name).is_file():
        return base / name
    if base is None and run.get("run_id"):
        try:
            import mlflow

            return Path(mlflow.artifacts.download_artifacts(run_id=str(run["run_id"]), artifact_path=name))
        except Exception as e:  # noqa: BLE001 — any store error means "not available here"
            log.warning("cannot download %s of run %s: %s", name, run.get("run_id"), e)
    out_dir = run.get("tags.output_dir")
    if isinstance(out_dir, str) and (Path(out_dir) / name).is_file():
        return Path(out_dir) / name
    return None


def per_image(run: Mapping[str, Any]) -> pd.DataFrame:
    """The run's ``per_image.csv`` restricted to images that succeeded (index: image id)."""
    path = artifact_path(run, "per_image.csv")
    if path is None:
        raise DataError(f"run {run.get('run_id')} has no per_image.csv artifact (and its output_dir is gone)")
    df = pd.read_csv(path, dtype={"id": str})
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    return df.set_index("id")


def per_image_table(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``run_id -> per-image frame`` for every run whose CSV can be found (others are skipped
    with a warning, so one deleted job does not take the whole report down)."""
    out: dict[str, pd.DataFrame] = {}
    for _, row in runs.iterrows():
        try:
            out[str(row["run_id"])] = per_image(row.to_dict())
        except DataError as e:
            log.warning("%s", e)
    return out


def set_metric_keys(runs: pd.DataFrame) -> list[str]:
    """Set statistics in ``runs``: metrics logged with their N as ``<key>_n`` (``fid``, ``fid_n``)."""
    return [c[:-2] for c in runs.columns if isinstance(c, str) and c.endswith("_n") and c[:-2] in runs.columns]


def set_features_table(runs: pd.DataFrame) -> dict[str, dict[str, Path]]:
    """``run_id -> {metric: <metric>_features.npz}`` for the runs that saved per-image features of
    a set statistic (FID); runs without them are left out (their FID then shows N only)."""
    keys = set_metric_keys(runs)
    out: dict[str, dict[str, Path]] = {}
    if not keys:
        return out
    for _, row in runs.iterrows():
        run = row.to_dict()
        for key in keys:
            if pd.isna(run.get(key)):
                continue
            path = artifact_path(run, f"{key}_features.npz")
            if path is not None:
                out.setdefault(str(run["run_id"]), {})[key] = path
    return out


def numeric(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v


def require_runs(df: pd.DataFrame, sel: Selection, uri: str) -> pd.DataFrame:
    if df.empty:
        raise DataError(
            f"no finished srarena job runs match {sel} in {uri}. Run `srarena` first, or check "
            "tracking.uri / paths.outputs / select.*"
        )
    return df


__all__ = ["KEYS", "Selection", "load_runs", "latest", "per_image", "per_image_table", "resolve_column", "require_runs", "ConfigError"]
