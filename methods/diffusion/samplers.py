"""DDPM and DDIM sampling as one generalised step (Song et al. 2021, eq. 12).

With ``sigma_t = eta * sqrt((1 - ab_prev) / (1 - ab_t)) * sqrt(1 - ab_t / ab_prev)``, eta = 0 is
deterministic DDIM and eta = 1 is exactly DDPM's ancestral step with the posterior variance
beta~_t — so "ddpm" is this step over every timestep (or a respaced subset), "ddim" the same with
eta from the config. All noise is drawn on the CPU from the caller's generator and moved to the
model's device, so results depend only on the seed, not on the device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from srarena.methods.diffusion.schedules import NoiseSchedule, Prediction

#: (x_t, t as a (B,) long tensor) -> network output in the denoiser's parameterisation
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class SamplerSpec:
    default_eta: float
    eta_fixed: bool  # DDPM's eta is 1 by definition
    description: str


SAMPLERS: dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec(1.0, True, "ancestral sampling, posterior variance (Ho et al. 2020)"),
    "ddim": SamplerSpec(0.0, False, "generalised DDIM step; eta=0 deterministic (Song et al. 2021)"),
}


def timestep_sequence(T: int, steps: int | None) -> list[int]:
    """Evenly spaced timesteps from T-1 down to 0 (all T when ``steps`` is None or >= T)."""
    if steps is None or steps >= T:
        return list(range(T - 1, -1, -1))
    if steps < 1:
        raise ValueError(f"sampling steps must be >= 1, got {steps}")
    seq = torch.linspace(0, T - 1, steps).round().long().unique().tolist()
    return sorted(seq, reverse=True)


def _randn(shape: torch.Size, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator, dtype=torch.float32).to(like.device, like.dtype)


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    shape: tuple[int, ...],
    schedule: NoiseSchedule,
    generator: torch.Generator,
    *,
    sampler: str = "ddim",
    steps: int | None = 50,
    eta: float | None = None,
    prediction: Prediction = "eps",
    clip_x0: bool = True,
    device: torch.device | str = "cpu",
    x_T: torch.Tensor | None = None,
) -> torch.Tensor:
    """Draw x_0 of ``shape`` by running ``denoiser`` from pure noise. Returns float32."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; available: {sorted(SAMPLERS)}")
    spec = SAMPLERS[sampler]
    eta = spec.default_eta if (eta is None or spec.eta_fixed) else float(eta)
    ref = torch.empty(0, device=device)
    x = x_T.to(device) if x_T is not None else _randn(torch.Size(shape), generator, ref)
    ab_all = schedule.alpha_bar
    seq = timestep_sequence(schedule.T, steps)
    for i, t in enumerate(seq):
        t_prev = seq[i + 1] if i + 1 < len(seq) else -1
        ab = float(ab_all[t])
        ab_prev = float(ab_all[t_prev]) if t_prev >= 0 else 1.0
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)
        eps, x0 = schedule.to_eps_x0(x, tt, denoiser(x, tt), prediction)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
            eps = (x - ab**0.5 * x0) / (1 - ab) ** 0.5
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) ** 0.5
        x = ab_prev**0.5 * x0 + max(0.0, 1 - ab_prev - sigma**2) ** 0.5 * eps
        if sigma > 0 and t_prev >= 0:
            x = x + sigma * _randn(x.shape, generator, x)
    return x.float()
