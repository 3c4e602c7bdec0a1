"""Colour conversions that metric conventions depend on.

Tensors are NCHW RGB; ``data_range`` says whether values are in [0, 1] or [0, 255]. Everything
is computed in the input's dtype, so callers choose float64 for exactness.
"""

from __future__ import annotations

import torch

# MATLAB rgb2ycbcr (BT.601, studio range) for RGB in [0, 1] giving Y in [16, 235].
_YCBCR_Y = (65.481, 128.553, 24.966)
# MATLAB rgb2gray: the luminance row of the NTSC (YIQ) matrix, as MATLAB stores it.
_GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def _weighted(img: torch.Tensor, weights: tuple[float, float, float]) -> torch.Tensor:
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"expected an RGB batch (N, 3, H, W), got {tuple(img.shape)}")
    w = torch.tensor(weights, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)
    return (img * w).sum(dim=1, keepdim=True)


def rgb_to_y(img: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Y of BT.601 studio-range YCbCr (MATLAB ``rgb2ycbcr``), returned in ``data_range`` units.

    BasicSR's ``to_y_channel`` convention: Y in [16, 235]/255 for data_range 1, unrounded.
    """
    x = img / data_range
    return (_weighted(x, _YCBCR_Y) + 16.0) / 255.0 * data_range


def rgb_to_gray(img: torch.Tensor) -> torch.Tensor:
    """MATLAB ``rgb2gray`` luminance (full range, same units as the input)."""
    return _weighted(img, _GRAY)
