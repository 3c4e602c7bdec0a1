"""The sampler options of an ssmoe config and the call into the shared sampler.

``sampler: {name: ddim | ddpm, steps, eta, spacing: leading | linspace | trailing}`` is the shared
sampler's own config class (:class:`srarena.methods.diffusion.samplers.SamplerConfig`); latents are
not images, so x0 is never clipped.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from srarena.methods.diffusion.samplers import SamplerConfig, sample
from srarena.methods.diffusion.schedules import NoiseSchedule

SamplerOptions = SamplerConfig


def run_sampler(denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: tuple[int, ...],
                schedule: NoiseSchedule, generator: torch.Generator, options: SamplerConfig, *,
                prediction: str, device: torch.device, x_T: torch.Tensor | None = None) -> torch.Tensor:
    return sample(denoiser, shape, schedule, generator, prediction=prediction, clip_x0=False,  # type: ignore[arg-type]
                  device=device, x_T=x_T, **options.kwargs())


__all__ = ["SamplerOptions", "run_sampler"]
