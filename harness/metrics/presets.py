"""The declarative table of PSNR/SSIM presets.

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

import math

import torch

from srarena.harness.metrics.color import rgb_to_gray, rgb_to_y
from srarena.harness.metrics.fullref import psnr, ssim
from srarena.harness.metrics.registry import MetricContext, MetricSpec, register_metric

VERSION = "1"


def _crop(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border:-border, border:-border] if border > 0 else x


def _y255(x: torch.Tensor) -> torch.Tensor:
    return rgb_to_y(x, data_range=1.0) * 255.0


def _psnr_y(ctx: MetricContext):
    def f(sr, hr):
        return psnr(_y255(_crop(sr, ctx.scale)), _y255(_crop(hr, ctx.scale)), 255.0)

    return f


def _ssim_y(ctx: MetricContext):
    def f(sr, hr):
        return ssim(_y255(_crop(sr, ctx.scale)), _y255(_crop(hr, ctx.scale)), 255.0)

    return f


def _psnr_rgb(ctx: MetricContext):
    def f(sr, hr):
        return psnr(_crop(sr, ctx.scale) * 255.0, _crop(hr, ctx.scale) * 255.0, 255.0)

    return f


def _ssim_rgb(ctx: MetricContext):
    def f(sr, hr):
        return ssim(_crop(sr, ctx.scale) * 255.0, _crop(hr, ctx.scale) * 255.0, 255.0)

    return f


def _psnr_y_pyiqa(ctx: MetricContext):
    def f(sr, hr):
        y1, y2 = (rgb_to_y(_crop(t, ctx.scale)) for t in (sr, hr))
        return psnr(y1, y2, data_range=1.0, eps=1e-8)

    return f


def _ssim_y_pyiqa(ctx: MetricContext):
    def f(sr, hr):
        y1, y2 = (_y255(_crop(t, ctx.scale)).round() for t in (sr, hr))
        return ssim(y1, y2, 255.0, nonnegative_cs=True)

    return f


def _psnr_rgb_official(ctx: MetricContext):
    def f(sr, hr):
        return psnr(sr * 255.0, hr * 255.0, 255.0)

    return f


def _ssim_gray_official(ctx: MetricContext):
    def f(sr, hr):
        g1, g2 = (rgb_to_gray(t * 255.0).round() for t in (sr, hr))
        return ssim(g1, g2, 255.0)

    return f


_Y = "Y of BT.601 studio-range YCbCr (MATLAB rgb2ycbcr)"
_BASE = {"input": "SR quantised to uint8", "dtype": "float64", "data_range": 255}

for name, kind_fn, lower, rng, conv, desc in [
    ("psnr_y", _psnr_y, False, (0.0, math.inf),
     {"colour": _Y, "y_rounding": "none", "crop_border": "scale",
      "reference": "basicsr.metrics.calculate_psnr(test_y_channel=True)"},
     "PSNR on Y, the SR-paper default"),
    ("ssim_y", _ssim_y, False, (0.0, 1.0),
     {"colour": _Y, "y_rounding": "none", "crop_border": "scale", "window": "gaussian 11, sigma 1.5, valid",
      "reference": "basicsr.metrics.calculate_ssim(test_y_channel=True)"},
     "SSIM on Y, the SR-paper default"),
    ("psnr_rgb", _psnr_rgb, False, (0.0, math.inf),
     {"colour": "RGB", "crop_border": "scale", "reference": "basicsr.metrics.calculate_psnr"},
     "PSNR over the three RGB channels"),
    ("ssim_rgb", _ssim_rgb, False, (0.0, 1.0),
     {"colour": "RGB (mean of per-channel SSIM)", "crop_border": "scale",
      "window": "gaussian 11, sigma 1.5, valid", "reference": "basicsr.metrics.calculate_ssim"},
     "SSIM averaged over RGB channels"),
    ("psnr_y_pyiqa", _psnr_y_pyiqa, False, (0.0, math.inf),
     {"colour": _Y, "y_rounding": "none", "crop_border": "scale", "mse_eps": 1e-8, "data_range": 1,
      "reference": "pyiqa psnr(test_y_channel=True, color_space='ycbcr')"},
     "PSNR-Y as pyiqa computes it (eps added to MSE on the [0,1] scale)"),
    ("ssim_y_pyiqa", _ssim_y_pyiqa, False, (0.0, 1.0),
     {"colour": _Y, "y_rounding": "round to integer", "crop_border": "scale", "cs_clamp": "relu",
      "reference": "pyiqa ssim(test_y_channel=True, color_space='ycbcr')"},
     "SSIM-Y as pyiqa computes it (rounded Y, non-negative contrast term)"),
    ("psnr_rgb_official", _psnr_rgb_official, False, (0.0, math.inf),
     {"colour": "RGB", "crop_border": 0, "reference": "pyiqa calibration table, row 'psnr'"},
     "PSNR on RGB without crop"),
    ("ssim_gray_official", _ssim_gray_official, False, (0.0, 1.0),
     {"colour": "MATLAB rgb2gray, rounded", "crop_border": 0, "downsample": "none",
      "window": "gaussian 11, sigma 1.5, valid",
      "reference": "Wang et al. ssim.m; pyiqa calibration table, row 'ssim'"},
     "SSIM of the original MATLAB implementation"),
]:
    register_metric(
        MetricSpec(
            name=name, kind="fr", lower_better=lower, value_range=rng, library="srarena",
            version=VERSION, conventions={**_BASE, **conv}, factory=kind_fn, description=desc,
        )
    )
