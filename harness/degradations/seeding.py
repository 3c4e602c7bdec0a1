"""Per-image random streams: every random choice for an image comes from its own generator.

A generator seeded from (global seed, image id) makes an image's degradation independent of
the order, batch size and number of workers that process it. The seed comes from sha256, not
Python's ``hash()``, which is salted per process.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch

__all__ = ["derive_seed", "make_generator", "uniform", "randint", "choice", "bernoulli"]


def derive_seed(seed: int, key: str) -> int:
    """A 63-bit integer from sha256 of ``f"{seed}:{key}"``: stable across processes and machines."""
    digest = hashlib.sha256(f"{int(seed)}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def make_generator(seed: int, key: str | None = None) -> torch.Generator:
    """A CPU generator for ``(seed, key)``; with ``key=None`` ``seed`` is used as is.

    Always on the CPU: random fields drawn there are the same whatever device the images are on.
    """
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed) if key is None else derive_seed(seed, key))
    return g


def uniform(g: torch.Generator, lo: float, hi: float) -> float:
    """U(lo, hi) in float64; ``lo == hi`` gives ``lo`` (a fixed value written as a range)."""
    u = torch.rand((), generator=g, dtype=torch.float64).item()
    return float(lo) + (float(hi) - float(lo)) * u


def bernoulli(g: torch.Generator, p: float) -> bool:
    """True with probability ``p`` (one uniform draw, like ``np.random.uniform() < p``)."""
    return torch.rand((), generator=g, dtype=torch.float64).item() < p


def randint(g: torch.Generator, lo: int, hi: int) -> int:
    """Uniform integer in the closed range [lo, hi]."""
    return int(torch.randint(int(lo), int(hi) + 1, (), generator=g).item())


def choice(g: torch.Generator, options: Sequence, probs: Sequence[float] | None = None):
    """One of ``options``, uniformly or with the given probabilities (which sum to 1)."""
    if probs is None:
        return options[randint(g, 0, len(options) - 1)]
    u = torch.rand((), generator=g, dtype=torch.float64).item()
    acc = 0.0
    for opt, p in zip(options, probs):
        acc += p
        if u < acc:
            return opt
    # Rounding can leave sum(probs) a hair under 1: fall back to the last option with p > 0.
    return next(o for o, p in zip(reversed(options), reversed(probs)) if p > 0 and not math.isnan(p))
