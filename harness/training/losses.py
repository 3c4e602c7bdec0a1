"""Pixel losses by name, combined with weights from the config (``train.losses``)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn.functional as F

from srarena.harness.errors import ConfigError

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + eps**2).mean()


LOSSES: dict[str, Loss] = {
    "l1": F.l1_loss,
    "mse": F.mse_loss,
    "charbonnier": _charbonnier,
}


def register_loss(name: str, fn: Loss) -> Loss:
    if name in LOSSES:
        raise ValueError(f"loss {name!r} is registered twice")
    LOSSES[name] = fn
    return fn


class WeightedLoss:
    """``sum_i w_i * loss_i(pred, target)``; ``terms`` gives each part for logging."""

    def __init__(self, spec: Iterable[Mapping[str, Any]]) -> None:
        self.parts: list[tuple[str, float, Loss]] = []
        for item in spec:
            name = str(item.get("name"))
            if name not in LOSSES:
                raise ConfigError(f"train.losses: unknown loss {name!r}; available: {sorted(LOSSES)}")
            self.parts.append((name, float(item.get("weight", 1.0)), LOSSES[name]))
        if not self.parts:
            raise ConfigError("train.losses is empty: give at least one {name, weight}")

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        total = pred.new_zeros(())
        terms = {}
        for name, w, fn in self.parts:
            value = fn(pred, target)
            terms[f"loss_{name}"] = float(value.detach())
            total = total + w * value
        return total, terms
