"""Tiled inference: run any ``lr -> sr`` function on overlapping tiles and keep tile centres.

Large images do not fit in memory through a 16.7M-parameter full-resolution network (RRDBNet's
activations at 64 channels dominate). Each output pixel is taken from the one tile whose *core*
contains it; the tile's input is the core grown by ``overlap`` LR pixels on every side (clipped at
the image border, where the network sees the same zero padding as untiled). If ``overlap`` is at
least the network's receptive-field radius, tiled output equals untiled output up to float
rounding — no blending, no seams. Smaller overlaps trade exactness for memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

Upscaler = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TileConfig:
    """``tile``: core size in LR pixels (0 disables tiling); ``overlap``: LR context per side."""

    tile: int = 0
    overlap: int = 16

    def enabled_for(self, h: int, w: int) -> bool:
        return self.tile > 0 and (h > self.tile or w > self.tile)


def _spans(length: int, tile: int, overlap: int, align: int) -> list[tuple[int, int, int, int]]:
    """(core_start, core_end, in_start, in_end) along one axis, all multiples of ``align``."""
    tile = max(align, tile - tile % align)
    overlap = math.ceil(overlap / align) * align
    spans = []
    for start in range(0, length, tile):
        end = min(start + tile, length)
        spans.append((start, end, max(0, start - overlap), min(length, end + overlap)))
    return spans


def tiled_upscale(
    fn: Upscaler, lr: torch.Tensor, scale: int, tile: int, overlap: int, align: int = 1
) -> torch.Tensor:
    """``fn`` applied tile by tile to ``lr`` (NCHW); returns the stitched ``scale``x output.

    ``align`` keeps tile borders on multiples of a network's own stride (pixel-unshuffle
    variants need even coordinates, or their tiles would see a shifted pixel grid).
    """
    n, c, h, w = lr.shape
    if h % align or w % align:
        raise ValueError(f"tiled_upscale: image {h}x{w} is not a multiple of align={align}")
    out: torch.Tensor | None = None
    for ys, ye, yi0, yi1 in _spans(h, tile, overlap, align):
        for xs, xe, xi0, xi1 in _spans(w, tile, overlap, align):
            sr = fn(lr[:, :, yi0:yi1, xi0:xi1])
            expected = ((yi1 - yi0) * scale, (xi1 - xi0) * scale)
            if tuple(sr.shape[-2:]) != expected:
                raise ValueError(f"tiled_upscale: fn returned {tuple(sr.shape[-2:])}, expected {expected}")
            if out is None:
                out = sr.new_empty(n, sr.shape[1], h * scale, w * scale)
            oy, ox = (ys - yi0) * scale, (xs - xi0) * scale
            out[:, :, ys * scale : ye * scale, xs * scale : xe * scale] = sr[
                :, :, oy : oy + (ye - ys) * scale, ox : ox + (xe - xs) * scale
            ]
    assert out is not None
    return out


def maybe_tiled(
    fn: Upscaler, lr: torch.Tensor, scale: int, cfg: TileConfig, align: int = 1
) -> torch.Tensor:
    """Untiled when the image fits in one tile (or tiling is off), tiled otherwise."""
    if not cfg.enabled_for(*lr.shape[-2:]):
        return fn(lr)
    return tiled_upscale(fn, lr, scale, cfg.tile, cfg.overlap, align)
