"""Full-reference fidelity metrics (PSNR, SSIM) as pure batched torch functions.

Inputs are NCHW tensors already in the colour space and crop that a preset chose; the result is
one value per image, shape (N,). Conventions (colour, crop, rounding) live in the presets, not
here, so that these stay the textbook formulas.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0, eps: float = 0.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image over all channels and pixels (dB).

    Identical images give +inf, as in BasicSR; ``eps`` reproduces pyiqa's ``mse + 1e-8``.
    """
    mse = ((x - y) ** 2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / (mse + eps))


def gaussian_1d(size: int = 11, sigma: float = 1.5, dtype=torch.float64, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian (``cv2.getGaussianKernel``); its outer product is ssim.m's window."""
    r = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """'valid' filtering with the separable window ``outer(g, g)``: two 1-D passes, ~5x fewer
    operations than the 2-D kernel (float64 convolutions have no fast path on CPU)."""
    c = img.shape[1]
    g = g.to(img)
    out = F.conv2d(img, g.view(1, 1, 1, -1).expand(c, 1, 1, g.numel()), groups=c)
    return F.conv2d(out, g.view(1, 1, -1, 1).expand(c, 1, g.numel(), 1), groups=c)


def _symmetric_pad_end(img: torch.Tensor, p: int) -> torch.Tensor:
    """Mirror ``p`` rows/cols after the end of H and W (MATLAB 'symmetric', bottom/right only)."""
    if p <= 0:
        return img
    img = torch.cat([img, img[..., -p:, :].flip(-2)], dim=-2)
    return torch.cat([img, img[..., :, -p:].flip(-1)], dim=-1)


def wang_downsample(img: torch.Tensor) -> torch.Tensor:
    """The automatic downsampling of Wang et al.'s reference ``ssim.m``.

    ``f = max(1, round(min(H, W) / 256))``: an f x f box filter (MATLAB's origin for even sizes,
    'symmetric' borders) followed by taking every f-th pixel.
    """
    h, w = img.shape[-2:]
    f = max(1, int(min(h, w) / 256 + 0.5))  # MATLAB round: half away from zero
    if f == 1:
        return img
    padded = _symmetric_pad_end(img, f - 1)
    return F.avg_pool2d(padded, kernel_size=f, stride=f)[..., : -(-h // f), : -(-w // f)]


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 255.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    downsample: bool = False,
    nonnegative_cs: bool = False,
) -> torch.Tensor:
    """Mean structural similarity per image (averaged over channels), 'valid' Gaussian filtering.

    This is BasicSR's ``_ssim`` (and ``ssim.m`` with ``downsample=True``); ``nonnegative_cs``
    clamps the contrast-structure term at 0 as pyiqa does.
    """
    if downsample:
        x, y = wang_downsample(x), wang_downsample(y)
    if min(x.shape[-2:]) < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}x{win_size}, got {tuple(x.shape[-2:])}")
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    win = gaussian_1d(win_size, sigma, dtype=x.dtype, device=x.device)
    mu_x, mu_y = _filter_valid(x, win), _filter_valid(y, win)
    sxx = _filter_valid(x * x, win) - mu_x**2
    syy = _filter_valid(y * y, win) - mu_y**2
    sxy = _filter_valid(x * y, win) - mu_x * mu_y
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    if nonnegative_cs:
        cs = cs.clamp_min(0)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs
    return ssim_map.mean(dim=(-2, -1)).mean(dim=1)
