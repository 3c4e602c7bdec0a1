"""DDPM and DDIM sampling as one generalised step (Song et al. 2021, eq. 12).

With ``sigma_t = eta * sqrt((1 - ab_prev) / (1 - ab_t)) * sqrt(1 - ab_t / ab_prev)``, eta = 0 is
deterministic DDIM and eta = 1 is exactly DDPM's ancestral step with the posterior variance
beta~_t — so "ddpm" is this step over every timestep (or a respaced subset), "ddim" the same with
eta from the config.

What a chain runs on and how it starts:

* **Timestep spacing** (:data:`SPACINGS`) — which ``steps`` of the ``T`` training timesteps a
  respaced chain visits, with the definitions of diffusers' ``DDIMScheduler.timestep_spacing``
  (Lin et al. 2023, "Common diffusion noise schedules and sample steps are flawed", table 2):
  ``linspace`` rounds ``linspace(0, T-1, steps)``; ``leading`` is ``0, r, 2r, ...`` with the
  integer ratio ``r = T // steps``; ``trailing`` counts down from ``T - 1`` in steps of ``T/steps``
  — so one step from pure noise runs at ``t = T - 1`` (the other two give 0 and 0).
* **Starting part-way** (``start_t``; SDEdit, the cU-Net denoising study): the chain is the same
  spacing rule applied to the timesteps ``0 .. start_t`` (so ``steps`` is the number of network
  calls that run), starting either from a given state ``x_T`` at the first timestep or from a
  clean ``x0_init`` that the sampler noises to that timestep with the caller's generator.
* **x0 clipping** is a config value, off by default: clamping x0 to [-1, 1] is right for pixels in
  [-1, 1] and wrong for latents or residuals.
* **Time input**: ``time_input="float"`` hands the denoiser ``t`` as float32 (networks with a
  continuous-time embedding or an ODE in t); the values are the schedule's grid timesteps, the
  schedule being defined on integers.

All noise is drawn on the CPU from the caller's generator and moved to the model's device, so
results depend only on the seed, not on the device. Each step is announced to the profiler
(:func:`srarena.harness.profiling.mark_step`) right before its denoiser call, so per-step cost
accounting needs nothing from the methods; ``callback`` sees every step (:class:`StepInfo`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping

import numpy as np
import torch

from srarena.harness.profiling import mark_step
from srarena.methods.diffusion.schedules import NoiseSchedule, Prediction

#: (x_t, t as a (B,) tensor: long, or float32 with time_input="float") -> network output
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Spacing = Literal["leading", "linspace", "trailing"]
TimeInput = Literal["int", "float"]


@dataclass(frozen=True)
class SamplerSpec:
    default_eta: float
    eta_fixed: bool  # DDPM's eta is 1 by definition
    description: str


SAMPLERS: dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec(1.0, True, "ancestral sampling, posterior variance (Ho et al. 2020)"),
    "ddim": SamplerSpec(0.0, False, "generalised DDIM step; eta=0 deterministic (Song et al. 2021)"),
}


def _linspace(T: int, n: int) -> np.ndarray:
    return np.linspace(0, T - 1, n).round()[::-1]


def _leading(T: int, n: int) -> np.ndarray:
    return (np.arange(n) * (T // n))[::-1]


def _trailing(T: int, n: int) -> np.ndarray:
    # np.arange's own float steps, as diffusers computes them (values at .5 ties round the same
    # way). Its float arithmetic sometimes yields one extra element (round(~0) - 1 = -1: diffusers
    # then runs T=1000/steps=61 as 62 timesteps ending at -1); the chain has exactly n.
    return (np.round(np.arange(T, 0, -T / n)) - 1)[:n]


#: spacing name -> (T, steps) -> descending timesteps (steps < T)
SPACINGS: dict[str, Callable[[int, int], np.ndarray]] = {
    "linspace": _linspace,
    "leading": _leading,
    "trailing": _trailing,
}


def timestep_sequence(T: int, steps: int | None, spacing: Spacing = "linspace", start_t: int | None = None) -> list[int]:
    """Descending timesteps a chain of ``steps`` network calls visits (all when ``steps`` is
    None or >= the timesteps available). ``start_t`` restricts the chain to ``0 .. start_t``:
    the spacing rule runs over those ``start_t + 1`` timesteps, so the first is at most
    ``start_t`` (exactly ``start_t`` with ``linspace`` and ``trailing``)."""
    if spacing not in SPACINGS:
        raise ValueError(f"unknown timestep spacing {spacing!r}; available: {sorted(SPACINGS)}")
    if start_t is not None:
        if not 0 <= int(start_t) < T:
            raise ValueError(f"start_t must be in [0, {T - 1}], got {start_t}")
        T = int(start_t) + 1
    if steps is not None and steps < 1:
        raise ValueError(f"sampling steps must be >= 1, got {steps}")
    if steps is None or steps >= T:
        return list(range(T - 1, -1, -1))
    seq = [int(t) for t in SPACINGS[spacing](T, int(steps))]
    if len(set(seq)) != len(seq) or seq != sorted(seq, reverse=True):  # cannot happen for steps < T
        raise AssertionError(f"spacing {spacing!r} gave a non-decreasing sequence for T={T}, steps={steps}")
    return seq


@dataclass(frozen=True)
class SamplerConfig:
    """A method YAML's ``sampler: {name, steps, eta, spacing}``, checked once at construction."""

    name: str = "ddim"
    steps: int | None = 50  # None: every timestep
    eta: float | None = None  # None: the sampler's default (ddim 0, ddpm 1 always)
    spacing: Spacing = "linspace"

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any] | None) -> "SamplerConfig":
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - {"name", "steps", "eta", "spacing"})
        if unknown:
            raise ValueError(f"unknown sampler option(s) {unknown}; known: name, steps, eta, spacing")
        out = cls(**cfg)
        if out.name not in SAMPLERS:
            raise ValueError(f"unknown sampler {out.name!r}; available: {sorted(SAMPLERS)}")
        if out.spacing not in SPACINGS:
            raise ValueError(f"unknown timestep spacing {out.spacing!r}; available: {sorted(SPACINGS)}")
        if out.steps is not None and int(out.steps) < 1:
            raise ValueError(f"sampler steps must be >= 1 or null, got {out.steps}")
        return cls(str(out.name), None if out.steps is None else int(out.steps),
                   None if out.eta is None else float(out.eta), out.spacing)

    def num_steps(self, T: int, start_t: int | None = None) -> int:
        """How many denoiser calls a chain of this config makes on a T-step schedule."""
        return len(timestep_sequence(T, self.steps, self.spacing, start_t))

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`sample`."""
        return {"sampler": self.name, "steps": self.steps, "eta": self.eta, "spacing": self.spacing}


@dataclass
class StepInfo:
    """What a ``callback`` sees after each step: ``x`` is the new state (at ``t_prev``; the final
    sample after the last step, where ``t_prev`` is -1) and ``x0`` the step's clean estimate."""

    index: int
    t: int | float
    t_prev: int | float
    x: torch.Tensor
    x0: torch.Tensor


def _randn(shape: torch.Size, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """Noise from the CPU generator, moved to ``like``'s device: identical on every device."""
    return torch.randn(shape, generator=generator, dtype=torch.float32, device="cpu").to(like.device, like.dtype)


def _clip_range(clip_x0: bool | tuple[float, float] | list[float]) -> tuple[float, float] | None:
    if clip_x0 is True:
        return (-1.0, 1.0)
    if clip_x0 is False or clip_x0 is None:
        return None
    lo, hi = (float(v) for v in clip_x0)
    if not lo < hi:
        raise ValueError(f"clip_x0 range must be (low, high) with low < high, got {clip_x0}")
    return lo, hi


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
    clip_x0: bool | tuple[float, float] = False,
    device: torch.device | str = "cpu",
    x_T: torch.Tensor | None = None,
    spacing: Spacing = "linspace",
    start_t: int | None = None,
    x0_init: torch.Tensor | None = None,
    time_input: TimeInput = "int",
    callback: Callable[[StepInfo], None] | None = None,
) -> torch.Tensor:
    """Run ``denoiser`` down a chain of timesteps and return x_0 (float32).

    The chain starts from noise drawn from ``generator`` — or from ``x_T``, the state at the
    chain's first timestep — or, with ``start_t``, from ``x0_init`` noised to the first timestep.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; available: {sorted(SAMPLERS)}")
    if time_input not in ("int", "float"):
        raise ValueError(f"time_input must be 'int' or 'float', not {time_input!r}")
    if x0_init is not None and start_t is None:
        raise ValueError("x0_init needs start_t: the timestep the clean input is noised to")
    if x0_init is not None and x_T is not None:
        raise ValueError("give x_T (the state at the first timestep) or x0_init (a clean input to noise), not both")
    if start_t is not None and x0_init is None and x_T is None:
        raise ValueError("start_t needs x0_init or x_T: noise alone is the state at t = T-1, not at start_t")
    spec = SAMPLERS[sampler]
    eta = spec.default_eta if (eta is None or spec.eta_fixed) else float(eta)
    clip = _clip_range(clip_x0)
    seq = timestep_sequence(schedule.T, steps, spacing, start_t)
    ab_all = schedule.alpha_bar
    ref = torch.empty(0, device=device)
    if x0_init is not None:
        x0 = x0_init.to(device, torch.float32)
        ab = float(ab_all[seq[0]])
        x = ab**0.5 * x0 + (1 - ab) ** 0.5 * _randn(x0.shape, generator, x0)
    elif x_T is not None:
        x = x_T.to(device, torch.float32)
    else:
        x = _randn(torch.Size(shape), generator, ref)
    t_dtype = torch.float32 if time_input == "float" else torch.long
    cast = float if time_input == "float" else int
    for i, t in enumerate(seq):
        t_prev = seq[i + 1] if i + 1 < len(seq) else -1
        ab = float(ab_all[t])
        ab_prev = float(ab_all[t_prev]) if t_prev >= 0 else 1.0
        tt = torch.full((x.shape[0],), t, device=x.device, dtype=t_dtype)
        mark_step()
        out = denoiser(x, tt)
        eps, x0 = schedule.to_eps_x0(x, tt.long(), out, prediction)
        if clip is not None:
            x0 = x0.clamp(*clip)
            eps = (x - ab**0.5 * x0) / (1 - ab) ** 0.5
        sigma = eta * ((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)) ** 0.5
        x = ab_prev**0.5 * x0 + max(0.0, 1 - ab_prev - sigma**2) ** 0.5 * eps
        if sigma > 0 and t_prev >= 0:
            x = x + sigma * _randn(x.shape, generator, x)
        if callback is not None:
            callback(StepInfo(i, cast(t), cast(t_prev), x, x0))
    return x.float()
