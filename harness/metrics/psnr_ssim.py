"""PSNR/SSIM factories, one per preset of the metric table (``catalog.py``).

Default SR-table convention (``psnr_y``/``ssim_y``): BasicSR's — Y of BT.601 studio-range YCbCr
(MATLAB ``rgb2ycbcr``), not rounded, ``crop_border = scale``, float64 on the uint8 output.
``*_pyiqa`` reproduce pyiqa's ``psnr``/``ssim`` with ``test_y_channel=True,
color_space='ycbcr'``: PSNR adds ``eps=1e-8`` to the MSE on the [0, 1] scale (about -0.02 dB
at 57 dB), SSIM rounds Y to integers and clamps the contrast term at 0.
``*_official`` reproduce the original implementations used by pyiqa's calibration table:
PSNR on RGB, SSIM on the rounded MATLAB ``rgb2gray`` without downsampling, no crop (checked:
``ssim.m``'s automatic downsampling does not reproduce that row).
"""

from __future__ import annotations

import torch

from srarena.harness.metrics.color import rgb_to_gray, rgb_to_y
from srarena.harness.metrics.fullref import psnr, ssim
from srarena.harness.metrics.spec import MetricContext


def _crop(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border:-border, border:-border] if border > 0 else x


def _y255(x: torch.Tensor) -> torch.Tensor:
    return rgb_to_y(x, data_range=1.0) * 255.0


def psnr_y(ctx: MetricContext):
    def f(sr, hr):
        return psnr(_y255(_crop(sr, ctx.scale)), _y255(_crop(hr, ctx.scale)), 255.0)

    return f


def ssim_y(ctx: MetricContext):
    def f(sr, hr):
        return ssim(_y255(_crop(sr, ctx.scale)), _y255(_crop(hr, ctx.scale)), 255.0)

    return f


def psnr_rgb(ctx: MetricContext):
    def f(sr, hr):
        return psnr(_crop(sr, ctx.scale) * 255.0, _crop(hr, ctx.scale) * 255.0, 255.0)

    return f


def ssim_rgb(ctx: MetricContext):
    def f(sr, hr):
        return ssim(_crop(sr, ctx.scale) * 255.0, _crop(hr, ctx.scale) * 255.0, 255.0)

    return f


def psnr_y_pyiqa(ctx: MetricContext):
    def f(sr, hr):
        y1, y2 = (rgb_to_y(_crop(t, ctx.scale)) for t in (sr, hr))
        return psnr(y1, y2, data_range=1.0, eps=1e-8)

    return f


def ssim_y_pyiqa(ctx: MetricContext):
    def f(sr, hr):
        y1, y2 = (_y255(_crop(t, ctx.scale)).round() for t in (sr, hr))
        return ssim(y1, y2, 255.0, nonnegative_cs=True)

    return f


def psnr_rgb_official(ctx: MetricContext):
    def f(sr, hr):
        return psnr(sr * 255.0, hr * 255.0, 255.0)

    return f


def ssim_gray_official(ctx: MetricContext):
    def f(sr, hr):
        g1, g2 = (rgb_to_gray(t * 255.0).round() for t in (sr, hr))
        return ssim(g1, g2, 255.0)

    return f
