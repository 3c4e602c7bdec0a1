"""``srarena`` (the default command): one benchmark job per Hydra job, tracked and tabulated."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from srarena.harness import tracking
from srarena.harness.devices import resolve_device
from srarena.harness.runner import JobResult, Runner
from srarena.harness.weights import set_weights_dir
from srarena.methods.catalog import name_method

log = logging.getLogger(__name__)


def choice(group: str, default: str) -> str:
    try:
        return str(HydraConfig.get().runtime.choices.get(group, default))
    except ValueError:  # not inside a Hydra app (tests calling run() directly)
        return default


def run(cfg: DictConfig) -> int:
    set_weights_dir(cfg.paths.weights)
    device = resolve_device(str(cfg.device))
    method_name = str(cfg.get("method_name") or choice("method", "method"))
    dataset = hydra.utils.instantiate(cfg.dataset)
    method = name_method(hydra.utils.instantiate(cfg.method), method_name)
    if hasattr(method, "to"):
        method = method.to(device)
    try:
        hc = HydraConfig.get()
        out_dir = Path(hc.runtime.output_dir)
        multirun = hc.mode == RunMode.MULTIRUN
        sweep_dir = str(Path(hc.sweep.dir).resolve()) if multirun else None
    except ValueError:
        out_dir, multirun, sweep_dir = Path(cfg.paths.outputs) / "runs" / method_name, False, None

    runner = Runner(
        method,
        method_name,
        dataset,
        list(cfg.metrics.presets),
        out_dir,
        seed=int(cfg.seed),
        device=device,
        warmup=int(cfg.runner.warmup),
        save_images=bool(cfg.runner.save_images),
        num_samples=int(cfg.runner.num_samples_logged),
        progress=bool(cfg.runner.progress),
        metric_batch=int(cfg.runner.metric_batch),
        profile=bool(cfg.runner.profile),
    )
    result = runner.run()
    report_problems(result)
    all_failed = bool(result.rows) and result.n_failed == len(result.rows)

    if cfg.tracking.enabled:
        tracking.configure(cfg)
        parent = None
        if multirun:
            exp_id = tracking.experiment_id(cfg)
            parent = tracking.sweep_parent(cfg, exp_id, sweep_dir, f"sweep {Path(sweep_dir).name}")
        config_path = out_dir / "config.yaml"
        config_path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
        tags = {
            "method": method_name,
            "dataset": result.dataset,
            "scale": str(result.scale),
            "device": str(device),
            "peak_memory_kind": result.memory_kind,
            "dataset_hash": result.dataset_hash,
            "output_dir": str(out_dir.resolve()),
        }
        for name, rec in result.metric_records.items():
            tags[f"metric.{name}"] = "; ".join(f"{k}={v}" for k, v in rec.items())
        for name, reason in result.skipped_metrics.items():
            tags[f"skipped.{name}"] = reason[:5000]
        for name, reason in result.metric_failures.items():
            tags[f"metric_failed.{name}"] = reason[:5000]
        tags["failures"] = str(len(result.failures))
        run_id = tracking.log_job(
            cfg,
            run_name=f"{method_name}/{result.dataset}/x{result.scale}",
            metrics=result.aggregates,
            tags=tags,
            artifacts=[out_dir / "per_image.csv", out_dir / "summary.json", config_path,
                       *sorted(out_dir.glob("fid*_features.npz"))],
            samples=result.samples,
            parent_run_id=parent,
            status="FAILED" if all_failed else "FINISHED",
        )
        log.info("MLflow run %s in %s", run_id, tracking.tracking_uri(cfg))
        if not multirun and cfg.leaderboard.print_after_run:
            from srarena.harness.reports.leaderboard import publish_leaderboard

            publish_leaderboard(cfg)
    summary = {k: round(v, 4) for k, v in result.aggregates.items() if not k.endswith("_std")}
    print(f"{method_name} on {result.dataset} x{result.scale}: {summary}")
    if all_failed:
        print(f"srarena: every image failed ({len(result.rows)} of {len(result.rows)}): the job failed", file=sys.stderr)
        return 1
    return 0


def report_problems(result: JobResult) -> None:
    """Skipped/failed metrics, failed images (with a count), unpaired LR files: on the console."""
    for name, reason in result.skipped_metrics.items():
        print(f"metric {name} skipped: {reason}")
    for name, reason in result.metric_failures.items():
        print(f"metric {name} failed on some images (NaN): {reason}")
    for failure in result.failures:
        print(f"image {failure['id']} failed: {failure['error']}")
    if result.n_failed:
        print(f"{result.n_failed} of {len(result.rows)} images failed (listed above, in per_image.csv and summary.json)")
    if result.unmatched_lr:
        print(f"LR files without an HR file (ignored): {', '.join(result.unmatched_lr)}")
