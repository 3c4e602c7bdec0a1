"""Colour correction of a diffusion SR output against its LR input (StableSR / MoESR ``--color_fix``)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def _mean_std(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.flatten(2)
    return flat.mean(-1)[..., None, None], (flat.var(-1) + eps).sqrt()[..., None, None]


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Adaptive instance normalisation: ``content`` with each channel's mean and standard deviation
    replaced by ``style``'s (unbiased variance + eps, as the official ``calc_mean_std``). Sizes may
    differ: only per-channel statistics of ``style`` are used."""
    c_mean, c_std = _mean_std(content, eps)
    s_mean, s_std = _mean_std(style, eps)
    return (content - c_mean) / c_std * s_std + s_mean


COLOR_FIXES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None] = {
    "adain": adain,
    "none": None,
}
