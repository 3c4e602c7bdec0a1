"""What diffusion training draws per sample: timesteps, each from its own range.

A mixture of sampling-space experts trains expert k only on t in its interval ([250k, 250(k+1))
for four experts over T = 1000); a batch mixes samples of several experts, so ranges are per
sample. Every draw comes from the generator the training loop hands the method (on the CPU),
then moves to the device.
"""

from __future__ import annotations

from typing import Sequence

import torch

Range = tuple[float, float]


def split_ranges(T: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous half-open integer ranges covering [0, T), as equal as integers allow
    (T = 1000, parts = 4: [0, 250), [250, 500), [500, 750), [750, 1000))."""
    if not 1 <= parts <= T:
        raise ValueError(f"cannot split {T} timesteps into {parts} ranges")
    edges = [round(i * T / parts) for i in range(parts + 1)]
    return [(edges[i], edges[i + 1]) for i in range(parts)]


def sample_timesteps(
    batch_size: int,
    generator: torch.Generator,
    ranges: Sequence[Range] | None = None,
    T: int = 1000,
    *,
    continuous: bool = False,
) -> torch.Tensor:
    """Timesteps for a batch: sample i uniform in its half-open range ``[lo_i, hi_i)``.

    ``ranges`` is ``None`` (every sample in [0, T)), one range for the whole batch, or one per
    sample. Integer timesteps (``int64``) by default; ``continuous`` gives float32 times in the
    same ranges for networks that take continuous t. Without ranges the draw is
    ``torch.randint(T, (batch_size,), generator=generator)`` exactly — what DDPM training
    always drew — so methods that adopt this function keep their random streams.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if ranges is None:
        if continuous:
            return torch.rand(batch_size, generator=generator) * T
        return torch.randint(T, (batch_size,), generator=generator)
    ranges = [tuple(r) for r in ranges]
    if len(ranges) == 1:
        ranges = ranges * batch_size
    if len(ranges) != batch_size:
        raise ValueError(f"need one timestep range per sample or one for all: {batch_size} samples, {len(ranges)} ranges")
    bounds = torch.tensor(ranges, dtype=torch.float64)
    lo, hi = bounds[:, 0], bounds[:, 1]
    if bool(((lo < 0) | (hi > T) | (hi <= lo)).any()):
        bad = [r for r in ranges if not 0 <= r[0] < r[1] <= T]
        raise ValueError(f"timestep ranges must satisfy 0 <= lo < hi <= T={T}: {bad[:4]}")
    u = torch.rand(batch_size, generator=generator, dtype=torch.float64)
    if continuous:
        return (lo + u * (hi - lo)).to(torch.float32)
    if not bool(((lo == lo.floor()) & (hi == hi.floor())).all()):
        raise ValueError(f"integer timesteps need integer range bounds, got {ranges[:4]}")
    t = (lo + torch.floor(u * (hi - lo))).long()
    return torch.minimum(t, hi.long() - 1)  # guards u * (hi - lo) rounding up to hi - lo
