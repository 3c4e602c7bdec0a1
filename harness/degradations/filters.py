"""Convolution ops of the pipeline: per-sample blur (BasicSR's ``filter2D``) and USM sharpening.

Pure functions on float NCHW tensors, on any device. Borders are reflect-padded, like BasicSR.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F

from srarena.harness.degradations.errors import DegradationInputError

__all__ = ["kernel_support", "filter2d", "gaussian_kernel_1d", "usm_sharpen"]


def kernel_support(kernel: torch.Tensor) -> int:
    """Half-width of the smallest centred square that holds every non-zero tap.

    Kernels are zero-padded to 21x21 so that a batch shares one shape; convolving with the
    padding costs up to 9x the work of the real kernel and changes nothing, so it is cut off.
    """
    k = kernel.shape[-1]
    c = k // 2
    nz = torch.nonzero(kernel.reshape(k, k))
    if nz.numel() == 0:
        return 0
    return int((nz - c).abs().max().item())


def _check_reflect(h: int, w: int, pad: int, what: str) -> None:
    if pad >= h or pad >= w:
        raise DegradationInputError(
            f"{what}: image of {h}x{w} px is too small for a {2 * pad + 1}x{2 * pad + 1} kernel "
            f"(reflect padding needs more than {pad} px per side)"
        )


def filter2d(x: torch.Tensor, kernels: torch.Tensor, what: str = "blur") -> torch.Tensor:
    """Convolve each sample of ``x`` (B,C,H,W) with its own kernel (B,K,K) or one kernel (K,K).

    Matches ``basicsr.utils.img_process_util.filter2D`` (reflect padding, correlation, all
    channels with the same kernel) up to float summation order. A pulse kernel is returned as
    an exact copy of the input, like the convolution would give.
    """
    if x.ndim != 4:
        raise DegradationInputError(f"{what}: expected a (B,C,H,W) tensor, got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    if kernels.ndim == 2:
        kernels = kernels.expand(b, *kernels.shape)
    if kernels.shape[0] != b or kernels.shape[-1] % 2 != 1:
        raise ValueError(f"{what}: need {b} odd square kernels, got shape {tuple(kernels.shape)}")
    outs = []
    for i in range(b):
        k = kernels[i]
        r = kernel_support(k)
        xi = x[i : i + 1]
        mid = k.shape[-1] // 2
        if r == 0:  # a single centre tap (the pulse): scaling, exactly what the convolution gives
            outs.append(xi * k[mid, mid].to(device=x.device, dtype=x.dtype))
            continue
        _check_reflect(h, w, r, what)
        kk = k[mid - r : mid + r + 1, mid - r : mid + r + 1].to(device=x.device, dtype=x.dtype)
        xp = F.pad(xi, (r, r, r, r), mode="reflect")
        weight = kk.expand(c, 1, 2 * r + 1, 2 * r + 1)
        outs.append(F.conv2d(xp, weight, groups=c))
    return outs[0] if b == 1 else torch.cat(outs, dim=0)


def gaussian_kernel_1d(size: int, sigma: float = 0.0) -> torch.Tensor:
    """1-D Gaussian taps as ``cv2.getGaussianKernel(size, sigma)`` makes them (float64).

    With ``sigma <= 0`` OpenCV derives it from the size: ``0.3 * ((size - 1) / 2 - 1) + 0.8``.
    (OpenCV uses fixed tables for sizes <= 7 with sigma <= 0; USM uses 51, so they never apply.)
    """
    if sigma <= 0:
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma * sigma))
    return k / k.sum()


def _separable_blur(x: torch.Tensor, k1d: torch.Tensor) -> torch.Tensor:
    """Blur with the outer product k1d k1d^T as two 1-D passes (reflect padding is separable too)."""
    c = x.shape[1]
    r = k1d.numel() // 2
    kv = k1d.to(device=x.device, dtype=x.dtype).view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kh = kv.reshape(c, 1, 1, -1)
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), kv, groups=c)
    return F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), kh, groups=c)


def usm_sharpen(x: torch.Tensor, weight: float = 0.5, radius: int = 50, threshold: float = 10) -> torch.Tensor:
    """Unsharp masking of (B,C,H,W) in [0,1], as BasicSR's ``USMSharp`` (Real-ESRGAN's ``gt_usm``).

    sharp = clip(I + weight (I - blur(I))), applied where |I - blur(I)| * 255 > threshold, with
    that mask softened by the same blur. BasicSR convolves with the 2-D outer product; the
    separable form here is the same filter at ~2/radius of the cost.
    """
    if radius % 2 == 0:
        radius += 1
    h, w = x.shape[-2:]
    _check_reflect(h, w, radius // 2, "usm_sharpen")
    k = gaussian_kernel_1d(radius)
    blur = _separable_blur(x, k)
    residual = x - blur
    mask = (residual.abs() * 255 > threshold).to(x.dtype)
    soft = _separable_blur(mask, k)
    sharp = torch.clamp(x + weight * residual, 0, 1)
    return soft * sharp + (1 - soft) * x


