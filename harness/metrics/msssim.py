"""MS-SSIM through pyiqa's implementation (weight-free), in pyiqa's calibrated convention.

pyiqa's ``ms_ssim`` preset: Y of YIQ rounded, no pre-downsampling, product of the five scales'
terms. It reproduces the official ``ms_ssim`` calibration row, which is why we use it rather than
a fresh implementation.
"""

from __future__ import annotations

import torch

from srarena.harness.metrics.spec import MetricContext


def ms_ssim(ctx: MetricContext):
    from pyiqa.archs.ssim_arch import MS_SSIM

    net = MS_SSIM(downsample=False, test_y_channel=True, is_prod=True, color_space="yiq").eval()

    def f(sr: torch.Tensor, hr: torch.Tensor | None) -> torch.Tensor:
        with torch.inference_mode():
            return net(sr.to(torch.float64), hr.to(torch.float64)).reshape(-1).double()

    return f
