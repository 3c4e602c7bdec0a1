"""One streaming pass of every configured metric over (SR, HR) pairs.

Each pair is converted once to the metric input convention (float64 NCHW RGB in [0, 1] holding
uint8 values) and handed to every preset; set metrics accumulate (FID keeps float64 sums, never
features or images), so memory is flat in the number of images. ``update_batch`` scores several
same-sized pairs per network call, which is where most of the speed over metric-by-metric
evaluation comes from.

A preset that cannot be built (missing weights, library absent) is *skipped with its reason*;
a value that cannot be computed for one image is NaN with the reason in ``failures`` — never
silently dropped and never a made-up number.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch

from srarena.harness.metrics.registry import MetricContext, SetMetric, create_metric, get_spec
from srarena.harness.weights import MissingWeightsError

log = logging.getLogger(__name__)

# What makes a preset unusable on this machine (as opposed to a bug, which should raise).
_SKIPPABLE = (MissingWeightsError, ImportError, OSError, RuntimeError)


def _as_input(img: np.ndarray, device: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).unsqueeze(0)
    return t.to(device, torch.float64).div_(255.0)


def _reason(e: BaseException) -> str:
    first = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {first}" if not isinstance(e, MissingWeightsError) else first


class Evaluator:
    def __init__(self, names: list[str], ctx: MetricContext) -> None:
        self.ctx = ctx
        self.metrics: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}
        self.failures: dict[str, str] = {}
        self.records: dict[str, dict[str, Any]] = {}
        for name in names:
            spec = get_spec(name)  # unknown names fail here, before any image is processed
            self.records[name] = spec.record(ctx)
            try:
                self.metrics[name] = create_metric(name, ctx)
            except _SKIPPABLE as e:
                self.skipped[name] = _reason(e)
                log.warning("metric %s skipped: %s", name, self.skipped[name])

    @property
    def per_image_names(self) -> list[str]:
        return [n for n, m in self.metrics.items() if not isinstance(m, SetMetric)]

    def _score(self, sr_t: torch.Tensor, hr_t: torch.Tensor | None) -> dict[str, torch.Tensor]:
        n = sr_t.shape[0]
        out: dict[str, torch.Tensor] = {}
        for name, metric in self.metrics.items():
            if isinstance(metric, SetMetric):
                metric.update(sr_t, hr_t)
                continue
            if hr_t is None and get_spec(name).kind == "fr":
                continue  # full-reference metric on a no-reference dataset: nothing to score
            try:
                out[name] = metric(sr_t, hr_t).reshape(-1).to("cpu", torch.float64)
            except Exception as e:  # one image failing must not stop the pass
                self.failures.setdefault(name, _reason(e))
                log.warning("metric %s failed on an image: %s", name, _reason(e))
                out[name] = torch.full((n,), float("nan"), dtype=torch.float64)
        return out

    def update(self, sr: np.ndarray, hr: np.ndarray | None) -> dict[str, float]:
        """Score one uint8 HWC pair; returns the per-image values (set metrics accumulate)."""
        if hr is not None and sr.shape != hr.shape:
            raise ValueError(f"SR shape {sr.shape} differs from HR shape {hr.shape}")
        sr_t = _as_input(sr, self.ctx.device)
        hr_t = _as_input(hr, self.ctx.device) if hr is not None else None
        return {k: float(v[0]) for k, v in self._score(sr_t, hr_t).items()}

    def update_batch(self, pairs: Sequence[tuple[np.ndarray, np.ndarray | None]]) -> list[dict[str, float]]:
        """Score several pairs; same-shaped runs share one network call per metric."""
        results: list[dict[str, float]] = []
        i = 0
        while i < len(pairs):
            j = i + 1
            shape, has_hr = pairs[i][0].shape, pairs[i][1] is not None
            while j < len(pairs) and pairs[j][0].shape == shape and (pairs[j][1] is not None) == has_hr:
                j += 1
            chunk = pairs[i:j]
            for sr, hr in chunk:
                if hr is not None and sr.shape != hr.shape:
                    raise ValueError(f"SR shape {sr.shape} differs from HR shape {hr.shape}")
            sr_t = torch.cat([_as_input(sr, self.ctx.device) for sr, _ in chunk])
            hr_t = torch.cat([_as_input(hr, self.ctx.device) for _, hr in chunk]) if has_hr else None
            vals = self._score(sr_t, hr_t)
            results += [{k: float(v[b]) for k, v in vals.items()} for b in range(len(chunk))]
            i = j
        return results

    def finalize(self) -> dict[str, float]:
        """Values of the set metrics (e.g. ``fid``, ``fid_n``, ``fid_n_ref``).

        A set metric that cannot be computed (e.g. fewer than 2 images) moves to ``skipped``;
        its warnings (e.g. N below the feature dimension) go into its provenance record.
        """
        out: dict[str, float] = {}
        for name, metric in list(self.metrics.items()):
            if not isinstance(metric, SetMetric):
                continue
            try:
                out.update(metric.compute())
            except (ValueError, RuntimeError) as e:
                self.skipped[name] = _reason(e)
                log.warning("metric %s skipped: %s", name, self.skipped[name])
            for w in getattr(metric, "warnings", []):
                self.records[name].setdefault("warnings", []).append(w)
        return out
