"""MS-SSIM through pyiqa's implementation (weight-free), in pyiqa's calibrated convention.

pyiqa's ``ms_ssim`` preset: Y of YIQ rounded, no pre-downsampling, product of the five scales'
terms. It reproduces the official ``ms_ssim`` calibration row, which is why we use it rather than
a fresh implementation.
"""

from __future__ import annotations

import torch

from srarena.harness.metrics.registry import MetricContext, MetricSpec, register_metric
from srarena.harness.metrics.versions import library_version

VERSION = "1"


def _ms_ssim(ctx: MetricContext):
    from pyiqa.archs.ssim_arch import MS_SSIM

    net = MS_SSIM(downsample=False, test_y_channel=True, is_prod=True, color_space="yiq").eval()

    def f(sr: torch.Tensor, hr: torch.Tensor | None) -> torch.Tensor:
        with torch.inference_mode():
            return net(sr.to(torch.float64), hr.to(torch.float64)).reshape(-1).double()

    return f


register_metric(MetricSpec(
    name="ms_ssim", kind="fr", lower_better=False, value_range=(0.0, 1.0), library="pyiqa",
    version=f"{VERSION}+pyiqa-{library_version('pyiqa')}",
    conventions={"input": "SR quantised to uint8", "dtype": "float64",
                 "colour": "Y of YIQ (MATLAB rgb2gray weights), rounded", "crop_border": 0,
                 "scales": 5, "downsample": "none", "reference": "pyiqa ms_ssim (calibrated)"},
    factory=_ms_ssim, description="Multi-scale SSIM",
))
