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
    sr_images: Mapping[str, np.ndarray] | None = None,
    config: Mapping | None = None,
    artifacts: Sequence[Path] = (),
) -> str:
    """One finished job run. ``per_image`` maps metric → values (ids ``img0..``); aggregates
    (``<m>``, ``<m>_std``, ``n_images``...) are computed from it as the runner does, then
    ``metrics`` overrides or adds (e.g. ``fid``, ``steps``, ``flops_per_image_g``); ``artifacts``:
    more files to log as they are (e.g. a ``fid_features.npz`` from :func:`fid_features`)."""
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
    for image_id, img in dict(sr_images or {}).items():
        _write_png(out / "images" / f"{image_id}.png", img)
    if config is not None:
        import yaml

        (out / "config.yaml").write_text(yaml.safe_dump(dict(config)))
        client.log_artifact(rid, str(out / "config.yaml"))
    for path in artifacts:
        client.log_artifact(rid, str(path))
    client.set_terminated(rid)
    return rid


def fid_features(path: Path, n: int, *, dim: int = 64, shift: float = 0.5, seed: int = 0) -> tuple[Path, float]:
    """A ``fid_features.npz`` shaped like the FID metric's (``sr``/``hr`` rows per image, float32)
    with Gaussian features, SR shifted by ``shift``; returns the path and the FID of its rows."""
    from srarena.harness.metrics.frechet import frechet_distance_features

    rng = np.random.default_rng(seed)
    hr = rng.normal(0, 1, (n, dim)).astype(np.float32)
    sr = (hr + rng.normal(shift, 0.5, (n, dim))).astype(np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, sr=sr, hr=hr, hr_digest=np.asarray([f"synthetic{i}" for i in range(n)]), hr_source="computed",
             preset="fid", mode="synthetic", extractor="gaussian", index=np.arange(n))
    return path, frechet_distance_features(sr, hr)


def _write_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(img)).save(path)


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


def demo_store(directory: Path, *, seed: int = 0) -> str:
    """A store with a small but complete benchmark: three methods on two datasets at x4
    (per-image PSNR/SSIM/LPIPS, FID with its N, cost metrics), a steps sweep of one method,
    HR folders and SR images for the visual comparisons. Returns the tracking URI."""
    import skimage.data as sk

    directory = Path(directory)
    uri = new_store(directory)
    exp = experiment(uri, "srarena", directory / "mlartifacts")
    rng = np.random.default_rng(seed)
    photos = {"astronaut": sk.astronaut()[100:196, 180:276], "coffee": sk.coffee()[100:196, 200:296],
              "chelsea": sk.chelsea()[60:156, 120:216]}
    methods = {  # name: (psnr offset, lpips, noise sigma, params M, GFLOPs/step, steps)
        "bicubic": (0.0, 0.40, 12.0, 0.0, 0.0, 1),
        "sr3": (1.2, 0.18, 6.0, 97.8, 180.0, 50),
        "ssmoe": (1.6, 0.14, 4.0, 120.0, 60.0, 20),
    }
    for di, (dataset, ids) in enumerate({"Set5": ["astronaut", "coffee", "chelsea"], "Urban100": ["coffee", "chelsea"]}.items()):
        hr_dir = directory / "data" / dataset
        for i in ids:
            _write_png(hr_dir / f"{i}.png", photos[i])
        cfg = {"dataset": {"_target_": "srarena.harness.data.paired.PairedFolderDataset", "hr_dir": str(hr_dir), "scale": 4,
                           "name": dataset}}
        base = rng.normal(28.0 - 3 * di, 1.5, len(ids))
        for method, (off, lp, sigma, params, gfs, steps) in methods.items():
            sweep = [10, 20, 50] if method == "sr3" and dataset == "Set5" else [steps]
            for st in sweep:
                gain = 0.0 if st == steps else -0.4 * np.log(steps / st)
                psnr = base + off + gain + rng.normal(0, 0.05, len(ids))
                imgs = {i: np.clip(photos[i] + rng.normal(0, sigma, photos[i].shape), 0, 255).astype(np.uint8) for i in ids}
                log_run(
                    uri, exp, method=method, dataset=dataset, scale=4,
                    per_image=pd.DataFrame({"id": ids, "status": "ok", "time_s": 0.01 * (1 + steps),
                                            "peak_memory_mb": 100.0 + params, "psnr_y": psnr,
                                            "ssim_y": 0.70 + off / 10 + rng.normal(0, 0.01, len(ids)),
                                            "lpips": lp + rng.normal(0, 0.01, len(ids))}),
                    metrics={"fid": 40.0 * lp + di, "fid_n": float(len(ids)), "params_m": params,
                             "params_active_m": params / 4 if method == "ssmoe" else params,
                             "flops_per_step_g": gfs, "steps": float(st), "flops_per_image_g": gfs * st},
                    params={"method.steps": str(st)}, dataset_hash=f"synthetic-{dataset}",
                    output_dir=directory / "jobs" / f"{method}_{dataset}_{st}", sr_images=imgs, config=cfg,
                )
    return uri
