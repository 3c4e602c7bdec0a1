"""One streaming pass of every configured metric over (SR, HR) pairs.

Each pair is converted once to the metric input convention (float64 NCHW RGB in [0, 1] holding
uint8 values) and handed to every preset; set metrics accumulate, nothing keeps the images.
A preset that cannot be built (e.g. missing weights) is *skipped with its reason*, never
silently dropped and never given a made-up value.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from harness.metrics.registry import MetricContext, SetMetric, create_metric, get_spec
from harness.weights import MissingWeightsError

log = logging.getLogger(__name__)


def _as_input(img: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).to(device, torch.float64).div_(255.0)


class Evaluator:
    def __init__(self, names: list[str], ctx: MetricContext) -> None:
        self.ctx = ctx
        self.metrics: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}
        self.records: dict[str, dict[str, Any]] = {}
        for name in names:
            spec = get_spec(name)  # unknown names fail here, before any image is processed
            self.records[name] = spec.record(ctx)
            try:
                self.metrics[name] = create_metric(name, ctx)
            except (MissingWeightsError, ImportError) as e:
                self.skipped[name] = str(e).splitlines()[0]
                log.warning("metric %s skipped: %s", name, self.skipped[name])

    @property
    def per_image_names(self) -> list[str]:
        return [n for n, m in self.metrics.items() if not isinstance(m, SetMetric)]

    def update(self, sr: np.ndarray, hr: np.ndarray | None) -> dict[str, float]:
        """Score one uint8 HWC pair; returns the per-image values (set metrics accumulate)."""
        if hr is not None and sr.shape != hr.shape:
            raise ValueError(f"SR shape {sr.shape} differs from HR shape {hr.shape}")
        sr_t = _as_input(sr, self.ctx.device)
        hr_t = _as_input(hr, self.ctx.device) if hr is not None else None
        out: dict[str, float] = {}
        for name, metric in self.metrics.items():
            if isinstance(metric, SetMetric):
                metric.update(sr_t, hr_t)
            else:
                out[name] = float(metric(sr_t, hr_t)[0])
        return out

    def finalize(self) -> dict[str, float]:
        """Values of the set metrics (e.g. ``fid``, ``fid_n``)."""
        out: dict[str, float] = {}
        for metric in self.metrics.values():
            if isinstance(metric, SetMetric):
                out.update(metric.compute())
        return out
