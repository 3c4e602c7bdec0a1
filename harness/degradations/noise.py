"""Additive Gaussian and Poisson (shot) noise with per-sample levels and per-sample generators.

Random fields are drawn on the CPU from each sample's own ``torch.Generator`` and then moved to
the images' device, so a sample's noise depends only on its generator, never on the batch it is
in or the device. Conventions follow BasicSR's ``*_pt`` functions: levels are per sample, gray
noise is one field replicated over the channels, and the result is clipped to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["gaussian_noise", "poisson_noise", "to_gray"]


def _per_sample(values: Sequence | torch.Tensor, b: int, name: str) -> list:
    vals = values.tolist() if isinstance(values, torch.Tensor) else list(values)
    if len(vals) != b:
        raise ValueError(f"{name}: need one value per sample ({b}), got {len(vals)}")
    return vals


def gaussian_noise(
    x: torch.Tensor,
    sigma: Sequence[float] | torch.Tensor,
    gray: Sequence[bool] | torch.Tensor,
    generators: Sequence[torch.Generator],
    clip: bool = True,
) -> torch.Tensor:
    """x + N(0, (sigma/255)^2) per sample; ``sigma`` is on the 0-255 scale, as in the presets."""
    b, c, h, w = x.shape
    sigmas = _per_sample(sigma, b, "sigma")
    grays = _per_sample(gray, b, "gray")
    gens = _per_sample(generators, b, "generators")
    outs = []
    for i in range(b):
        shape = (1, 1 if grays[i] else c, h, w)
        n = torch.randn(shape, generator=gens[i], dtype=torch.float32)
        # In place, same arithmetic as BasicSR (randn * sigma / 255), so results stay bit-equal.
        n.mul_(torch.tensor(sigmas[i], dtype=torch.float32)).div_(255.0)
        outs.append(x[i : i + 1] + n.to(device=x.device, dtype=x.dtype))
    out = outs[0] if b == 1 else torch.cat(outs, dim=0)
    return out.clamp_(0, 1) if clip else out


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """Luma with the weights (and association) of torchvision's ``rgb_to_grayscale``."""
    r, g, b = x.unbind(dim=-3)
    return (0.2989 * r + 0.587 * g + 0.114 * b).to(x.dtype).unsqueeze(-3)


def _shot_noise(img: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Poisson noise of one (1,C,H,W) image whose photon count is set by its number of levels.

    As in skimage/BasicSR: the image is rounded to 8 bits, the number of distinct levels is
    rounded up to a power of two, and that many "photons" make the brightest value.
    """
    q = (img * 255.0).round_().clamp_(0, 255)
    # Distinct 8-bit levels: a 256-bin histogram of the rounded values (what torch.unique counts).
    levels = int(np.count_nonzero(np.bincount(q.to(torch.uint8).cpu().numpy().ravel(), minlength=256)))
    vals = float(2.0 ** math.ceil(math.log2(levels)))
    q.div_(255.0)
    rate = (q * vals).cpu()
    out = torch.poisson(rate, generator=generator).to(img.device).div_(vals)
    return out.sub_(q)


def poisson_noise(
    x: torch.Tensor,
    scale: Sequence[float] | torch.Tensor,
    gray: Sequence[bool] | torch.Tensor,
    generators: Sequence[torch.Generator],
    clip: bool = True,
) -> torch.Tensor:
    """x + scale * shot noise per sample (gray: one field from the luma, replicated over C)."""
    b, c, h, w = x.shape
    scales = _per_sample(scale, b, "scale")
    grays = _per_sample(gray, b, "gray")
    gens = _per_sample(generators, b, "generators")
    outs = []
    for i in range(b):
        xi = x[i : i + 1]
        noise = _shot_noise(to_gray(xi) if grays[i] else xi, gens[i])
        noise = noise.mul_(torch.tensor(scales[i], dtype=x.dtype, device=x.device)).expand(1, c, h, w)
        outs.append(xi + noise)
    out = outs[0] if b == 1 else torch.cat(outs, dim=0)
    return out.clamp_(0, 1) if clip else out
