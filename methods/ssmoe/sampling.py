"""The sampler options of an ssmoe config and the call into the shared sampler.

``sampler: {name: ddim | ddpm, steps, eta, spacing: leading | linspace | trailing}`` — the shared
sampler's own config class (:class:`srarena.methods.diffusion.samplers.SamplerConfig`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from srarena.methods.diffusion.samplers import sample
from srarena.methods.diffusion.schedules import NoiseSchedule

try:
    from srarena.methods.diffusion.samplers import SamplerConfig as SamplerOptions
except ImportError:  # TEMPORARY until the foundations sampler lands on main
    from dataclasses import dataclass

    from srarena.methods.diffusion.samplers import timestep_sequence

    @dataclass(frozen=True)
    class SamplerOptions:  # type: ignore[no-redef]
        name: str = "ddim"
        steps: int | None = 50
        eta: float | None = None
        spacing: str = "linspace"

        @classmethod
        def from_dict(cls, cfg):
            return cls(**dict(cfg or {}))

        def num_steps(self, T: int, start_t: int | None = None) -> int:
            return len(timestep_sequence(T, self.steps))

        def kwargs(self) -> dict:
            return {"sampler": self.name, "steps": self.steps, "eta": self.eta}


def run_sampler(denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], shape: tuple[int, ...],
                schedule: NoiseSchedule, generator: torch.Generator, options: SamplerOptions, *,
                prediction: str, device: torch.device, x_T: torch.Tensor | None = None) -> torch.Tensor:
    """Latents are not images: no x0 clipping."""
    return sample(denoiser, shape, schedule, generator, prediction=prediction, clip_x0=False,  # type: ignore[arg-type]
                  device=device, x_T=x_T, **options.kwargs())


__all__ = ["SamplerOptions", "run_sampler"]
