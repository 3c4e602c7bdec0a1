"""Run one (method, dataset, metrics) job: upscale, quantise, save, score, time.

Pure with respect to tracking: it writes its images, ``per_image.csv`` and ``summary.json`` into
the job directory and returns a :class:`JobResult`; MLflow logging happens in the app.
A bad image or a bad method output fails *that image* (recorded with the reason) and the job
goes on; only configuration errors stop it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from srarena.harness.data.io import ImageReadError, pixel_sha256, quantise, to_tensor, write_png
from srarena.harness.data.paired import Pair, PairedFolderDataset
from srarena.harness.errors import DataError
from srarena.harness.metrics.evaluator import Evaluator
from srarena.harness.profiling import measure
from srarena.methods.base import MethodError, SRMethod

log = logging.getLogger(__name__)


class OutputError(RuntimeError):
    """The method returned something that is not a valid SR image for this input."""


@dataclass
class JobResult:
    method: str
    dataset: str
    scale: int
    rows: list[dict[str, Any]]
    aggregates: dict[str, float]
    failures: list[dict[str, str]]
    metric_records: dict[str, dict[str, Any]]
    skipped_metrics: dict[str, str]
    dataset_hash: str
    metric_failures: dict[str, str] = field(default_factory=dict)
    unmatched_lr: list[str] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)


def image_generator(seed: int, image_id: str, device: torch.device) -> torch.Generator:
    """A generator seeded by (global seed, image id): outputs do not depend on order or batching."""
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    g = torch.Generator(device=device)
    g.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return g


def check_output(sr: torch.Tensor, lr: torch.Tensor, scale: int) -> None:
    want = (lr.shape[0], 3, lr.shape[2] * scale, lr.shape[3] * scale)
    if not isinstance(sr, torch.Tensor):
        raise OutputError(f"method returned {type(sr).__name__}, not a tensor")
    if tuple(sr.shape) != want:
        raise OutputError(f"method output has shape {tuple(sr.shape)}, expected {want}")
    if not torch.isfinite(sr).all():
        bad = (~torch.isfinite(sr)).sum().item()
        raise OutputError(f"method output has {bad} NaN/inf values")


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


class Runner:
    def __init__(
        self,
        method: SRMethod,
        method_name: str,
        dataset: PairedFolderDataset,
        metric_names: list[str],
        out_dir: Path,
        *,
        seed: int = 0,
        device: str = "cpu",
        warmup: int = 1,
        save_images: bool = True,
        num_samples: int = 3,
        progress: bool = True,
        metric_batch: int = 8,
        count_flops: bool = True,
    ) -> None:
        from srarena.harness.metrics.registry import MetricContext

        self.method = method
        self.method_name = method_name
        self.dataset = dataset
        self.scale = dataset.scale
        self.out_dir = Path(out_dir)
        self.seed = seed
        self.device = torch.device(device)
        self.warmup = warmup
        self.save_images = save_images
        self.num_samples = num_samples
        self.progress = progress
        self.metric_batch = max(1, int(metric_batch))
        self.count_flops = count_flops
        # FID presets stream per-image Inception features to <out_dir>/<preset>_features.npz
        # (for the report's bootstrap over images).
        options = {"fid_features_dir": str(self.out_dir)} if any(n.startswith("fid") for n in metric_names) else {}
        self.evaluator = Evaluator(list(metric_names), MetricContext(scale=self.scale, device="cpu", options=options))

    def _upscale(self, pair: Pair) -> tuple[np.ndarray, float, int]:
        lr = to_tensor(pair.lr).to(self.device)
        with torch.inference_mode(), measure(self.device) as m:
            sr = self.method.upscale(lr, self.scale, image_generator(self.seed, pair.id, self.device))
        check_output(sr, lr, self.scale)
        return quantise(sr), m.seconds, m.working_memory_bytes

    def _first_usable(self) -> Pair | None:
        for image_id in self.dataset.ids:
            try:
                return self.dataset.load(image_id)
            except (DataError, ImageReadError):
                continue
        return None

    def _warm_up(self, pair: Pair) -> None:
        """Run the method untimed so one-off costs (allocations, kernel selection, lazy weight
        loading) stay out of the timings."""
        for _ in range(self.warmup):
            try:
                self._upscale(pair)
            except (OutputError, MethodError, RuntimeError, ValueError):
                return  # the timed pass records the failure

    def _profile(self, pair: Pair) -> dict[str, float]:
        """Measured FLOPs, calls and active params of one image (an extra, untimed call)."""
        from srarena.harness.profiling import profile_cost

        lr = to_tensor(pair.lr).to(self.device)
        try:
            with torch.inference_mode():
                rep = profile_cost(self.method, lr, self.scale, image_generator(self.seed, pair.id, self.device))
        except (MethodError, RuntimeError, ValueError, TypeError, AttributeError) as e:
            log.warning("FLOP counting failed: %s", e)
            return {}
        return rep.as_metrics()

    def _flush(self, pending: list[tuple[dict[str, Any], np.ndarray, np.ndarray]], failures: list[dict[str, str]]) -> None:
        """Score the buffered pairs together: networks of learned metrics see batches."""
        if not pending:
            return
        try:
            values = self.evaluator.update_batch([(sr, hr) for _, sr, hr in pending])
        except (ValueError, RuntimeError) as e:
            for row, _, _ in pending:
                msg = f"metrics: {type(e).__name__}: {e}"
                row.update(status="failed", error=msg)
                failures.append({"id": row["id"], "stage": "metrics", "error": msg})
        else:
            for (row, _, _), vals in zip(pending, values):
                row.update(vals)
        pending.clear()

    def run(self) -> JobResult:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        img_dir = self.out_dir / "images"
        rows: list[dict[str, Any]] = []
        failures: list[dict[str, str]] = []
        samples: list[Path] = []
        data_hash = hashlib.sha256(f"x{self.scale}".encode())
        first = self._first_usable()
        profile: dict[str, float] = {}
        if first is not None:
            if self.warmup > 0:
                self._warm_up(first)
            if self.count_flops:
                profile = self._profile(first)
        pending: list[tuple[dict[str, Any], np.ndarray, np.ndarray]] = []
        it = tqdm(self.dataset.ids, desc=f"{self.method_name} on {self.dataset.name}", disable=not self.progress, unit="img")
        for image_id in it:
            row: dict[str, Any] = {"id": image_id, "status": "ok", "error": ""}
            # A metric that could not run shows as "skipped" in its column, not as a gap.
            row.update({name: "skipped" for name in self.evaluator.skipped})
            stage = "load"
            try:
                pair = self.dataset.load(image_id)
                data_hash.update(f"{image_id}:{pixel_sha256(pair.hr)}:{pixel_sha256(pair.lr)}".encode())
                row.update(
                    hr_size=f"{pair.hr.shape[0]}x{pair.hr.shape[1]}",
                    lr_size=f"{pair.lr.shape[0]}x{pair.lr.shape[1]}",
                    notes="; ".join(pair.meta.get("notes", [])),
                )
                stage = "upscale"
                sr, seconds, peak = self._upscale(pair)
                row.update(time_s=seconds, peak_memory_mb=peak / 2**20)
                if self.save_images:
                    stage = "save"
                    path = img_dir / f"{image_id}.png"
                    write_png(path, sr)
                    if len(samples) < self.num_samples:
                        samples.append(path)
                pending.append((row, sr, pair.hr))
            except (DataError, ImageReadError, OutputError, MethodError, ValueError, RuntimeError, OSError) as e:
                data_hash.update(f"{image_id}:failed".encode())
                msg = f"{stage}: {type(e).__name__}: {e}"
                row.update(status="failed", error=msg)
                failures.append({"id": image_id, "stage": stage, "error": msg})
                log.warning("image %s failed at %s: %s", image_id, stage, e)
            rows.append(row)
            if len(pending) >= self.metric_batch:
                self._flush(pending, failures)
        self._flush(pending, failures)

        aggregates: dict[str, float] = {}
        ok = [r for r in rows if r["status"] == "ok"]
        for name in self.evaluator.per_image_names + ["time_s", "peak_memory_mb"]:
            values = [r[name] for r in ok if name in r]
            mean, std = _mean_std(values)
            key = {"time_s": "time_per_image_s"}.get(name, name)
            if name == "peak_memory_mb":
                aggregates[key] = float(max(values)) if values else math.nan
            else:
                aggregates[key] = mean
                aggregates[f"{key}_std"] = std
        try:
            aggregates.update(self.evaluator.finalize())
        except (ValueError, RuntimeError) as e:
            failures.append({"id": "*", "stage": "set_metrics", "error": f"{type(e).__name__}: {e}"})
        aggregates.update(n_images=float(len(rows)), n_ok=float(len(ok)), n_failed=float(len(rows) - len(ok)))
        aggregates["params_m"] = self.method.num_params() / 1e6
        aggregates.update(profile)

        result = JobResult(
            method=self.method_name,
            dataset=self.dataset.name,
            scale=self.scale,
            rows=rows,
            aggregates=aggregates,
            failures=failures,
            metric_records=self.evaluator.records,
            skipped_metrics=self.evaluator.skipped,
            dataset_hash=data_hash.hexdigest(),
            metric_failures=dict(self.evaluator.failures),
            unmatched_lr=list(getattr(self.dataset, "unmatched_lr", [])),
            samples=samples,
        )
        write_outputs(result, self.out_dir)
        return result


def write_outputs(result: JobResult, out_dir: Path) -> tuple[Path, Path]:
    csv_path = out_dir / "per_image.csv"
    columns: list[str] = []
    for row in result.rows:
        columns += [k for k in row if k not in columns]
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(result.rows)
    summary = {
        "method": result.method,
        "dataset": result.dataset,
        "scale": result.scale,
        "dataset_hash": result.dataset_hash,
        "metrics": result.aggregates,
        "metric_conventions": result.metric_records,
        "skipped_metrics": result.skipped_metrics,
        "metric_failures": result.metric_failures,
        "failures": result.failures,
        "unmatched_lr": result.unmatched_lr,
    }
    summary_path = out_dir / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2, default=str))
    return csv_path, summary_path
