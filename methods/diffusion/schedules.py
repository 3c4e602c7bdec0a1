"""Variance schedules (beta_t) and the closed forms every sampler and loss needs.

Kept in float64 and indexed by integer timestep ``t`` in ``[0, T)``; ``alpha_bar[t]`` is the
signal fraction of ``x_t = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps``. Networks may be
trained to predict ``eps``, ``x0`` or ``v`` (Salimans & Ho); :meth:`NoiseSchedule.to_eps_x0`
turns any of them into the (eps, x0) pair samplers use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch

Prediction = Literal["eps", "x0", "v"]


def _linear(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """Ho et al. (2020): betas linear in [1e-4, 0.02] over T=1000 (rescaled for other T)."""
    s = 1000.0 / T
    return torch.linspace(beta_start * s, beta_end * s, T, dtype=torch.float64)


def _scaled_linear(T: int, beta_start: float = 0.00085, beta_end: float = 0.012) -> torch.Tensor:
    """Latent diffusion (Rombach et al.): linear in sqrt(beta)."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=torch.float64) ** 2


def _cosine(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal (2021): alpha_bar follows cos^2, betas clipped at 0.999."""
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return torch.tensor([min(1 - f(i + 1) / f(i), max_beta) for i in range(T)], dtype=torch.float64)


SCHEDULES: dict[str, Callable[..., torch.Tensor]] = {
    "linear": _linear,
    "scaled_linear": _scaled_linear,
    "cosine": _cosine,
}


@dataclass(frozen=True)
class NoiseSchedule:
    betas: torch.Tensor  # (T,) float64

    @property
    def T(self) -> int:
        return int(self.betas.numel())

    @property
    def alpha_bar(self) -> torch.Tensor:
        return torch.cumprod(1.0 - self.betas, dim=0)

    def _at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        v = values.to(like.device)[t.to(like.device).long()]
        return v.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        ab = self._at(self.alpha_bar, t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, prediction: Prediction) -> torch.Tensor:
        """What a network of the given parameterisation should output for (x0, t, noise)."""
        if prediction == "eps":
            return noise
        if prediction == "x0":
            return x0
        if prediction == "v":
            ab = self._at(self.alpha_bar, t, x0)
            return ab.sqrt() * noise - (1 - ab).sqrt() * x0
        raise ValueError(f"prediction must be eps, x0 or v, not {prediction!r}")

    def to_eps_x0(
        self, xt: torch.Tensor, t: torch.Tensor, out: torch.Tensor, prediction: Prediction
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ab = self._at(self.alpha_bar, t, xt)
        a, s = ab.sqrt(), (1 - ab).sqrt()
        if prediction == "eps":
            return out, (xt - s * out) / a
        if prediction == "x0":
            return (xt - a * out) / s, out
        if prediction == "v":
            return s * xt + a * out, a * xt - s * out
        raise ValueError(f"prediction must be eps, x0 or v, not {prediction!r}")


def make_schedule(name: str = "linear", timesteps: int = 1000, **kwargs: float) -> NoiseSchedule:
    if name not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}; available: {sorted(SCHEDULES)}")
    return NoiseSchedule(SCHEDULES[name](int(timesteps), **kwargs))
