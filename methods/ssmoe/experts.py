"""Sampling-MoE: complete denoisers, each owning one interval of diffusion time; and the
momentum weight sharing of Space-MoE experts during training.

Sampling-space experts (Luo et al. 2023): expert k is trained only on t in ``[b_k, b_{k+1})`` and,
at sampling time, is the only network that runs at those timesteps — so K experts cost K times the
parameters but exactly one expert's FLOPs per step. The official split is four equal intervals of
the 1000 training steps (``t // 250``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from srarena.methods.diffusion.unet import DDPMUNet, UNetConfig
from srarena.methods.ssmoe.blocks import SpaceMoE, space_moe_layers
from torch import nn


def build_denoiser(cfg: Mapping[str, Any] | UNetConfig) -> DDPMUNet:
    """The shared skeleton with LDM blocks. Only difference left to patch: LDM's output GroupNorm
    has eps 1e-5 (the skeleton's norm_out uses the DDPM 1e-6); GroupNorm keeps eps as an attribute."""
    ucfg = cfg if isinstance(cfg, UNetConfig) else UNetConfig.from_dict(dict(cfg))
    net = DDPMUNet(ucfg)
    if ucfg.res_block == "ldm":
        net.norm_out.eps = 1e-5
        nn.init.zeros_(net.conv_out.weight)  # LDM's zero_module on the output conv
        nn.init.zeros_(net.conv_out.bias)
    return net


def expert_bounds(count: int, T: int, bounds: Sequence[int] | None = None) -> tuple[int, ...]:
    """Boundaries ``b_0 = 0 < b_1 < ... < b_K = T``; equal intervals unless given."""
    if bounds is None:
        if T % count:
            raise ValueError(f"{T} timesteps do not split into {count} equal expert intervals; give bounds")
        return tuple(T * k // count for k in range(count + 1))
    b = tuple(int(x) for x in bounds)
    if len(b) != count + 1 or b[0] != 0 or b[-1] != T or any(x >= y for x, y in itertools.pairwise(b)):
        raise ValueError(f"expert bounds must rise from 0 to T={T} with {count + 1} entries, got {list(b)}")
    return b


def route(t: torch.Tensor, bounds: Sequence[int]) -> torch.Tensor:
    """Expert index of each timestep: k such that ``bounds[k] <= t < bounds[k+1]``."""
    edges = torch.as_tensor(list(bounds[1:-1]), device=t.device, dtype=torch.float64)
    return torch.bucketize(t.to(torch.float64), edges, right=True)


class SamplingExperts(nn.Module):
    """K denoisers behind one ``(x_t, t) -> eps`` call; each sample goes to the expert of its t."""

    def __init__(self, experts: Sequence[nn.Module], bounds: Sequence[int], latent_scale: float = 1.0) -> None:
        super().__init__()
        # LDM's scale_factor: the diffusion's latent = encoder output x latent_scale (0 = not set yet)
        self.register_buffer("latent_scale", torch.tensor(float(latent_scale)))
        if len(experts) != len(bounds) - 1:
            raise ValueError(f"{len(experts)} experts need {len(experts) + 1} bounds, got {list(bounds)}")
        self.experts = nn.ModuleList(experts)
        self.bounds = tuple(int(b) for b in bounds)

    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self.bounds[:-1], self.bounds[1:]))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        idx = route(t, self.bounds)
        first = int(idx[0])
        if bool((idx == first).all()):  # sampling: one expert for the whole batch
            return self.experts[first](x, t)
        out: torch.Tensor | None = None
        for k in idx.unique().tolist():
            sel = (idx == k).nonzero().flatten()
            y = self.experts[k](x[sel], t[sel])
            if out is None:
                out = y.new_empty((x.shape[0],) + tuple(y.shape[1:]))
            out[sel] = y
        assert out is not None
        return out


# -- momentum weight sharing ---------------------------------------------------------------------

@dataclass(frozen=True)
class MomentumSchedule:
    """b(step) for ``W_i <- (1 - b) W_i + b * mean_{j != i} W_j``.

    Official code (``LatentDiffusionExtremeSREWA.apply_ewa``): b ramps linearly from 0 to 0.3 over
    the first 10k optimiser steps (``b = min(0.3 * step / 1e4, 0.3)``). The paper writes the same
    update with gamma = 1 - b and reports gamma = 0.999 (b = 0.001, constant: ``ramp_steps: 0``)
    working better than 0.9. ``b_max: 0`` disables sharing."""

    b_max: float = 0.3
    ramp_steps: int = 10_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.b_max <= 1.0:
            raise ValueError(f"momentum b_max must be in [0, 1], got {self.b_max}")
        if self.ramp_steps < 0:
            raise ValueError(f"momentum ramp_steps must be >= 0, got {self.ramp_steps}")

    def b(self, step: int) -> float:
        """``step``: optimiser steps completed before this update (Lightning's global_step)."""
        if self.ramp_steps == 0:
            return self.b_max
        return min(self.b_max * step / self.ramp_steps, self.b_max)


@torch.no_grad()
def share_momentum(layer: SpaceMoE, b: float) -> None:
    """One simultaneous update of every expert's two Linear layers (weights and biases; the shared
    LayerNorm is untouched), from the values before the update."""
    n = len(layer.moe_blocks)
    if n < 2 or b == 0.0:
        return
    for idx in (0, 3):
        for name in ("weight", "bias"):
            params = [getattr(blk[idx], name) for blk in layer.moe_blocks]
            stacked = torch.stack([p.detach().clone() for p in params])
            total = stacked.sum(0)
            for i, p in enumerate(params):
                others = (total - stacked[i]) / (n - 1)
                p.copy_((1 - b) * stacked[i] + b * others)


def share_momentum_all(module: nn.Module, b: float) -> int:
    layers = [m for m in space_moe_layers(module) if m.mode == "grouped"]
    for layer in layers:
        share_momentum(layer, b)
    return len(layers)
