"""Shared diffusion machinery: noise schedules, DDPM/DDIM samplers, and Ho et al.'s U-Net.

Every diffusion method in srarena (SR3 here; latent SS-MoE, cU-Net DDPM and one-step methods
later) is a denoiser plus these pieces, so a sampler fix or a new schedule reaches all of them
and their FLOPs/step are counted the same way (the sampler marks each step for the profiler).
A method's YAML passes ``sampler: {name, steps, eta, spacing}`` (and ``clip_x0``) through to
:func:`sample`.
"""

from srarena.methods.diffusion.samplers import SAMPLERS, SPACINGS, Spacing, StepInfo, sample, timestep_sequence
from srarena.methods.diffusion.schedules import SCHEDULES, NoiseSchedule, make_schedule
from srarena.methods.diffusion.unet import DDPMUNet, UNetConfig

__all__ = [
    "SAMPLERS", "SPACINGS", "Spacing", "StepInfo", "sample", "timestep_sequence", "SCHEDULES", "NoiseSchedule", "make_schedule",
    "DDPMUNet", "UNetConfig",
]
