"""MLflow at the edge: where runs go, and what one (method, dataset) job records.

Default store: a SQLite file under the outputs root (no server needed); a team points
``tracking.uri`` (or ``MLFLOW_TRACKING_URI``) at an ``mlflow server``. In a Hydra multirun a
parent run stands for the sweep and every job is its child, so a sweep is one row in the UI.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from srarena import PACKAGE_ROOT, __version__

log = logging.getLogger(__name__)

SWEEP_TAG = "srarena.sweep_dir"
PACKAGES = ("torch", "torchvision", "numpy", "mlflow", "hydra-core", "opencv-python-headless", "pyiqa", "lpips", "clean-fid")


def tracking_uri(cfg: DictConfig) -> str:
    """Config value, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///<outputs>/mlflow.db``."""
    uri = OmegaConf.select(cfg, "tracking.uri")
    if uri:
        return str(uri)
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    db = Path(cfg.paths.outputs).expanduser().resolve() / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def artifact_root(cfg: DictConfig) -> str | None:
    """Artifacts of a local store go beside it, not into ./mlruns of whatever directory."""
    root = OmegaConf.select(cfg, "tracking.artifact_root")
    if root:
        return str(root)
    if tracking_uri(cfg).startswith("sqlite:"):
        return (Path(cfg.paths.outputs).expanduser().resolve() / "mlartifacts").as_uri()
    return None


def configure(cfg: DictConfig) -> str:
    """Point MLflow at the configured store; returns the URI."""
    import mlflow

    uri = tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    return uri


def experiment_id(cfg: DictConfig, name: str | None = None) -> str:
    import mlflow

    name = name or str(cfg.tracking.experiment)
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    return mlflow.create_experiment(name, artifact_location=artifact_root(cfg))


def flatten(cfg: Mapping[str, Any] | DictConfig, prefix: str = "") -> dict[str, str]:
    """Resolved config as ``a.b.c -> value`` strings (MLflow params are flat strings)."""
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    out: dict[str, str] = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = str(v)[:6000]  # MLflow's param value limit
    return out


def log_params(params: Mapping[str, Any], run_id: str | None = None) -> None:
    """Log ``params`` (flat ``name -> value``) to the active run, or to ``run_id``, in batches.

    Why batches: an MLflow store takes at most ``MAX_PARAMS_TAGS_PER_BATCH`` (100) parameters per
    call, and a resolved srarena config has several hundred. The one place that knows this: the
    benchmark jobs and the training runs both log their configs through it.
    """
    import mlflow
    from mlflow.utils.validation import MAX_PARAMS_TAGS_PER_BATCH

    items = list(params.items())
    for i in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
        mlflow.log_params(dict(items[i : i + MAX_PARAMS_TAGS_PER_BATCH]), run_id=run_id)


def git_commit() -> str:
    try:
        repo = PACKAGE_ROOT
        if not (repo / ".git").exists():  # installed from a wheel: the release is the version
            return f"release-{__version__}"
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        sha = out.stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return f"{sha}{'-dirty' if dirty else ''}" if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_tags() -> dict[str, str]:
    tags = {"git_commit": git_commit(), "python": platform.python_version(), "platform": platform.platform()}
    for pkg in PACKAGES:
        try:
            tags[f"version.{pkg}"] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return tags


def sweep_parent(cfg: DictConfig, exp_id: str, sweep_dir: str, sweep_name: str) -> str:
    """The parent run of a multirun: found by its sweep-dir tag, created by the first job."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    found = client.search_runs([exp_id], filter_string=f"tags.`{SWEEP_TAG}` = '{sweep_dir}'", max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(exp_id, run_name=sweep_name, tags={SWEEP_TAG: sweep_dir, "srarena.kind": "sweep", **environment_tags()})
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def log_job(
    cfg: DictConfig,
    *,
    run_name: str,
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    artifacts: list[Path],
    sample_dir: Path | None = None,
    samples: list[Path] = (),
    parent_run_id: str | None = None,
    status: str = "FINISHED",
) -> str:
    """One MLflow run for one (method, dataset) job; returns its run id. ``status="FAILED"``
    marks a job in which every image failed (its numbers are logged all the same)."""
    import mlflow

    exp_id = experiment_id(cfg)
    all_tags = {**environment_tags(), **tags, "srarena.kind": "job"}
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, parent_run_id=parent_run_id, tags=all_tags) as run:
        log_params(flatten(cfg))
        finite = {k: float(v) for k, v in metrics.items() if v is not None and v == v and abs(v) != float("inf")}
        mlflow.log_metrics(finite)
        for path in artifacts:
            mlflow.log_artifact(str(path))
        for path in samples:
            mlflow.log_artifact(str(path), artifact_path="samples")
        run_id = run.info.run_id
    if status != "FINISHED":
        from mlflow.tracking import MlflowClient

        MlflowClient().set_terminated(run_id, status=status)
    return run_id
