"""Log synthetic runs shaped exactly like ``srarena`` jobs (tags, metrics, per_image.csv).

Why: table, statistics and gate tests need runs with known values — including ties and both
metric directions — in a real MLflow store, so the MLflow → pandas edge is exercised too.
Also handy to preview a report layout before the real runs exist.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd


def experiment(tracking_uri: str, name: str, artifact_dir: Path) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return client.create_experiment(name, artifact_location=Path(artifact_dir).resolve().as_uri())


def log_run(
    tracking_uri: str,
    experiment_id: str,
    *,
    method: str,
    dataset: str,
    scale: int,
    per_image: Mapping[str, Sequence[float]] | pd.DataFrame,
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
    dataset_hash: str = "synthetic",
    output_dir: Path | None = None,
) -> str:
    """One finished job run. ``per_image`` maps metric → values (ids ``img0..``); aggregates
    (``<m>``, ``<m>_std``, ``n_images``...) are computed from it as the runner does, then
    ``metrics`` overrides or adds (e.g. ``fid``, ``steps``, ``flops_per_image_g``)."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    frame = per_image.copy() if isinstance(per_image, pd.DataFrame) else pd.DataFrame(dict(per_image))
    if "id" not in frame.columns:
        frame.insert(0, "id", [f"img{i}" for i in range(len(frame))])
    if "status" not in frame.columns:
        frame.insert(1, "status", "ok")
    ok = frame[frame["status"] == "ok"]
    agg: dict[str, float] = {}
    for col in frame.columns:
        if col in ("id", "status", "error", "hr_size", "lr_size", "notes"):
            continue
        vals = pd.to_numeric(ok[col], errors="coerce").dropna().to_numpy()
        key = {"time_s": "time_per_image_s"}.get(col, col)
        agg[key] = float(vals.mean()) if vals.size else float("nan")
        agg[f"{key}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
    agg.update(n_images=float(len(frame)), n_ok=float(len(ok)), n_failed=float(len(frame) - len(ok)), params_m=0.0)
    agg.update(dict(metrics or {}))
    all_tags = {
        "method": method, "dataset": dataset, "scale": str(scale), "device": "cpu", "dataset_hash": dataset_hash,
        "srarena.kind": "job", "git_commit": "synthetic", "mlflow.runName": f"{method}/{dataset}/x{scale}",
        **(dict(tags or {})),
    }
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    out = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="srarena-synth-"))
    out.mkdir(parents=True, exist_ok=True)
    all_tags["output_dir"] = str(out.resolve())
    run = client.create_run(experiment_id, tags=all_tags)
    rid = run.info.run_id
    finite = [Metric(k, float(v), 0, 0) for k, v in agg.items() if v == v and np.isfinite(v)]
    client.log_batch(rid, metrics=finite, params=[Param(k, str(v)) for k, v in dict(params or {}).items()],
                     tags=[RunTag(k, v) for k, v in []])
    csv = out / "per_image.csv"
    frame.to_csv(csv, index=False)
    client.log_artifact(rid, str(csv))
    client.set_terminated(rid)
    return rid


def sweep_parent(tracking_uri: str, experiment_id: str, name: str = "sweep") -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    run = client.create_run(experiment_id, tags={"srarena.kind": "sweep", "mlflow.runName": name})
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def new_store(directory: Path) -> str:
    """A fresh SQLite MLflow store in ``directory``; returns its URI.

    Creating the schema takes MLflow ~10 s (dozens of migrations), so an empty, migrated
    database is made once per MLflow version in the temp dir and copied (atomic rename keeps
    concurrent test processes safe).
    """
    import os
    import shutil

    import mlflow
    from mlflow.tracking import MlflowClient

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    template = Path(tempfile.gettempdir()) / f"srarena-mlflow-template-{mlflow.__version__}.db"
    if not template.is_file():
        tmp = template.with_suffix(f".{os.getpid()}.tmp")
        MlflowClient(f"sqlite:///{tmp}").search_experiments()
        os.replace(tmp, template)
    db = directory / "mlflow.db"
    shutil.copyfile(template, db)
    return f"sqlite:///{db.resolve()}"
