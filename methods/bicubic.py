"""MATLAB-exact bicubic upscaling: the floor every SR method must beat."""

from __future__ import annotations

import torch

from srarena.harness.degradations.resize import imresize
from srarena.methods.base import BaseMethod


class Bicubic(BaseMethod):
    """``imresize(lr, scale, 'bicubic')`` as MATLAB computes it (no parameters, deterministic)."""

    def __init__(self, scales: tuple[int, ...] = (2, 3, 4, 8)) -> None:
        super().__init__()
        self.scales = tuple(scales)

    def upscale(self, lr: torch.Tensor, scale: int, generator: torch.Generator) -> torch.Tensor:
        self.check_scale(scale)
        h, w = lr.shape[-2:]
        return imresize(lr, scale=scale, size=(h * scale, w * scale))
