"""Run one (method, dataset, metrics) job: load, upscale (timed, profiled), save, score, aggregate, write.

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
from srarena.harness.profiling import cpu_memory_peak, measure, profile_cost, resident_bytes
from srarena.harness.randomness import image_generator
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
    memory_kind: str = ""  # how peak_memory_mb was measured (srarena.harness.profiling)

    @property
    def n_failed(self) -> int:
        return sum(r["status"] != "ok" for r in self.rows)


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


#: errors that fail one image (recorded with the reason) and let the job go on
IMAGE_ERRORS = (DataError, ImageReadError, OutputError, MethodError, ValueError, RuntimeError, OSError)


@dataclass
class SizeCost:
    """What the untimed profiling pass measured for one LR size (cached: one pass per size)."""

    metrics: dict[str, float] = field(default_factory=dict)  # CostReport.as_metrics()
    cpu_working_bytes: int | None = None  # CPU: peak live bytes during upscale (None: not measured)


@dataclass
class JobState:
    """Everything one run accumulates, image by image."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    samples: list[Path] = field(default_factory=list)
    pending: list[tuple[dict[str, Any], np.ndarray, np.ndarray]] = field(default_factory=list)
    data_hash: Any = None

    def fail(self, row: dict[str, Any], image_id: str, stage: str, e: BaseException) -> None:
        msg = f"{stage}: {type(e).__name__}: {e}"
        row.update(status="failed", error=msg)
        self.failures.append({"id": image_id, "stage": stage, "error": msg})
        log.warning("image %s failed at %s: %s", image_id, stage, e)


class Runner:
    """One job: ``run()`` = start → for each image: load → upscale → save → (score) → aggregate → write.

    ``profile``: before the first image of each distinct LR size, one untimed call measures the
    method's FLOPs, network calls and active parameters (:func:`~srarena.harness.profiling.profile_cost`)
    and, on the CPU, its memory (:func:`~srarena.harness.profiling.cpu_memory_peak`); the timed
    call measures time (and memory on CUDA). ``peak_memory_mb`` = the method's resident weights +
    the working peak of the call (see :mod:`srarena.harness.profiling`).
    """

    def __init__(
        self,
        method: SRMethod,
        method_name: str,
        dataset: PairedFolderDataset,
        metric_names: list[str],
        out_dir: Path,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        warmup: int = 1,
        save_images: bool = True,
        num_samples: int = 3,
        progress: bool = True,
        metric_batch: int = 8,
        profile: bool = True,
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
        self.profile = profile
        self.costs: dict[tuple[int, ...], SizeCost] = {}
        self.resident_bytes = 0
        self.memory_kind = "cuda_max_allocated" if self.device.type == "cuda" else (
            "cpu_profiler_live_bytes" if profile else "not_measured")
        # FID presets stream per-image Inception features to <out_dir>/<preset>_features.npz
        # (for the report's bootstrap over images).
        options = {"fid_features_dir": str(self.out_dir)} if any(n.startswith("fid") for n in metric_names) else {}
        self.evaluator = Evaluator(list(metric_names), MetricContext(scale=self.scale, device="cpu", options=options))

    # -- the job ---------------------------------------------------------------------------------
    def run(self) -> JobResult:
        job = self.start()
        for image_id in tqdm(self.dataset.ids, desc=f"{self.method_name} on {self.dataset.name}",
                             disable=not self.progress, unit="img"):
            self.process(job, image_id)
        self.score(job)
        result = self.result(job, self.aggregate(job))
        write_outputs(result, self.out_dir)
        return result

    def start(self) -> JobState:
        """Output folder, untimed warm-up, the method's resident bytes."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        first = self._first_usable()
        if first is not None and self.warmup > 0:
            self._warm_up(first)
        self.resident_bytes = resident_bytes(self.method)
        return JobState(data_hash=hashlib.sha256(f"x{self.scale}".encode()))

    def process(self, job: JobState, image_id: str) -> None:
        """load → upscale → save one image, queued for scoring; a failure fails this image only."""
        row: dict[str, Any] = {"id": image_id, "status": "ok", "error": ""}
        # A metric that could not run shows as "skipped" in its column, not as a gap.
        row.update({name: "skipped" for name in self.evaluator.skipped})
        stage = "load"
        try:
            pair = self.load(job, row, image_id)
            stage = "upscale"
            sr = self.upscale(row, pair)
            stage = "save"
            self.save(job, image_id, sr)
            job.pending.append((row, sr, pair.hr))
        except IMAGE_ERRORS as e:
            job.data_hash.update(f"{image_id}:failed".encode())
            job.fail(row, image_id, stage, e)
        job.rows.append(row)
        if len(job.pending) >= self.metric_batch:
            self.score(job)

    def load(self, job: JobState, row: dict[str, Any], image_id: str) -> Pair:
        pair = self.dataset.load(image_id)
        job.data_hash.update(f"{image_id}:{pixel_sha256(pair.hr)}:{pixel_sha256(pair.lr)}".encode())
        row.update(
            hr_size=f"{pair.hr.shape[0]}x{pair.hr.shape[1]}",
            lr_size=f"{pair.lr.shape[0]}x{pair.lr.shape[1]}",
            notes="; ".join(pair.meta.get("notes", [])),
        )
        return pair

    def upscale(self, row: dict[str, Any], pair: Pair) -> np.ndarray:
        """The timed call (after the profiling pass for a new size); returns the uint8 SR."""
        size = tuple(pair.lr.shape[:2])
        if self.profile and size not in self.costs:
            self.costs[size] = self._profile(pair)
        lr = to_tensor(pair.lr).to(self.device)
        with torch.inference_mode(), measure(self.device) as m:
            sr = self.method.upscale(lr, self.scale, image_generator(self.seed, pair.id))
        check_output(sr, lr, self.scale)
        cost = self.costs.get(size, SizeCost())
        working = m.working_memory_bytes if self.device.type == "cuda" else cost.cpu_working_bytes
        row.update(time_s=m.seconds,
                   peak_memory_mb=(self.resident_bytes + working) / 2**20 if working is not None else math.nan)
        if "flops_per_image_g" in cost.metrics:
            row["flops_per_image_g"] = cost.metrics["flops_per_image_g"]
        return quantise(sr)

    def save(self, job: JobState, image_id: str, sr: np.ndarray) -> None:
        if not self.save_images:
            return
        path = self.out_dir / "images" / f"{image_id}.png"
        write_png(path, sr)
        if len(job.samples) < self.num_samples:
            job.samples.append(path)

    def score(self, job: JobState) -> None:
        """Score the queued pairs together: networks of learned metrics see batches."""
        if not job.pending:
            return
        try:
            values = self.evaluator.update_batch([(sr, hr) for _, sr, hr in job.pending])
        except (ValueError, RuntimeError) as e:
            for row, _, _ in job.pending:
                job.fail(row, row["id"], "metrics", e)
        else:
            for (row, _, _), vals in zip(job.pending, values):
                row.update(vals)
        job.pending.clear()

    def aggregate(self, job: JobState) -> dict[str, float]:
        """Means and stds of per-image metrics, set metrics, counts, and the measured cost."""
        aggregates: dict[str, float] = {}
        ok = [r for r in job.rows if r["status"] == "ok"]
        for name in self.evaluator.per_image_names + ["time_s"]:
            mean, std = _mean_std([r[name] for r in ok if name in r])
            key = {"time_s": "time_per_image_s"}.get(name, name)
            aggregates[key], aggregates[f"{key}_std"] = mean, std
        memory = [r["peak_memory_mb"] for r in ok if not math.isnan(r.get("peak_memory_mb", math.nan))]
        aggregates["peak_memory_mb"] = float(max(memory)) if memory else math.nan
        try:
            aggregates.update(self.evaluator.finalize())
        except (ValueError, RuntimeError) as e:
            job.failures.append({"id": "*", "stage": "set_metrics", "error": f"{type(e).__name__}: {e}"})
        aggregates.update(n_images=float(len(job.rows)), n_ok=float(len(ok)), n_failed=float(len(job.rows) - len(ok)))
        aggregates["params_m"] = self.method.num_params() / 1e6
        aggregates.update(self._cost_of(ok))
        return aggregates

    def result(self, job: JobState, aggregates: dict[str, float]) -> JobResult:
        return JobResult(
            method=self.method_name,
            dataset=self.dataset.name,
            scale=self.scale,
            rows=job.rows,
            aggregates=aggregates,
            failures=job.failures,
            metric_records=self.evaluator.records,
            skipped_metrics=self.evaluator.skipped,
            dataset_hash=job.data_hash.hexdigest(),
            metric_failures=dict(self.evaluator.failures),
            unmatched_lr=list(getattr(self.dataset, "unmatched_lr", [])),
            samples=job.samples,
            memory_kind=self.memory_kind,
        )

    # -- helpers ---------------------------------------------------------------------------------
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
        lr = to_tensor(pair.lr).to(self.device)
        for _ in range(self.warmup):
            try:
                with torch.inference_mode():
                    self.method.upscale(lr, self.scale, image_generator(self.seed, pair.id))
            except (OutputError, MethodError, RuntimeError, ValueError):
                return  # the timed pass records the failure

    def _profile(self, pair: Pair) -> SizeCost:
        """One untimed call: measured FLOPs/calls/params, and on the CPU the working memory."""
        lr = to_tensor(pair.lr).to(self.device)
        generator = image_generator(self.seed, pair.id)
        try:
            with torch.inference_mode():
                if self.device.type == "cpu":
                    with cpu_memory_peak() as mem:
                        rep = profile_cost(self.method, lr, self.scale, generator)
                    return SizeCost(rep.as_metrics(), mem.working_bytes)
                return SizeCost(profile_cost(self.method, lr, self.scale, generator).as_metrics())
        except (MethodError, RuntimeError, ValueError, TypeError, AttributeError) as e:
            log.warning("profiling %s on a %dx%d image failed: %s", self.method_name, *pair.lr.shape[:2], e)
            return SizeCost()

    def _cost_of(self, ok: list[dict[str, Any]]) -> dict[str, float]:
        """Cost figures averaged over the images that succeeded, each by its size's pass."""
        per_image = [self.costs[size].metrics for size in (_lr_size(r) for r in ok) if size in self.costs]
        keys = list(dict.fromkeys(k for m in per_image for k in m))
        return {k: float(np.mean([m[k] for m in per_image if k in m])) for k in keys}


def _lr_size(row: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(v) for v in str(row.get("lr_size", "0x0")).split("x"))


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
