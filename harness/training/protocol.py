"""What a method must offer to be trained by the shared loop."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from srarena.harness.errors import ConfigError


@runtime_checkable
class TrainableMethod(Protocol):
    """An :class:`~srarena.methods.base.SRMethod` that the loop can train.

    ``training_pair`` returns what the configured losses compare: a regression network returns
    (SR, HR); a diffusion model returns (predicted noise, true noise) for a random timestep. All
    randomness (timesteps, noise) comes from ``generator``, so a resumed run repeats the draws.
    ``checkpoint_metadata`` is stored in the exported safetensors so the method can rebuild the
    network that fits the file.
    """

    def trainable_module(self) -> nn.Module: ...

    def training_pair(
        self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def checkpoint_metadata(self) -> dict[str, object]: ...


def as_trainable(method: object) -> TrainableMethod:
    if not isinstance(method, TrainableMethod):
        raise ConfigError(
            f"method {getattr(method, 'name', type(method).__name__)!r} is not trainable: it needs "
            "trainable_module(), training_pair(lr, hr, generator) and checkpoint_metadata() "
            "(srarena.harness.training.protocol.TrainableMethod)"
        )
    return method
