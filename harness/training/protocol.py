"""What a method must offer to be trained by the shared loop, and the batch it is given."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from srarena.harness.errors import ConfigError


@dataclass(frozen=True)
class TrainBatch:
    """One training batch: HR crops, their LR and, per sample, how that LR was made.

    ``records`` are the degradation records (:func:`srarena.harness.degradations.sampling.sample_record`)
    the LR was synthesised from — blur kernel, noise level, JPEG quality ... — so a method that
    learns to *estimate* the degradation (the one-step method's estimator) has its targets
    without re-deriving them. ``ids`` name each sample (``train/<step>/<i>/<image>``).
    """

    lr: torch.Tensor  # float32 NCHW in [0, 1]
    hr: torch.Tensor  # float32 NCHW in [0, 1], ``scale`` times the LR size
    ids: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    def to(self, device: torch.device | str) -> "TrainBatch":
        return replace(self, lr=self.lr.to(device), hr=self.hr.to(device))

    def __len__(self) -> int:
        return int(self.hr.shape[0])


@runtime_checkable
class TrainableMethod(Protocol):
    """An :class:`~srarena.methods.base.SRMethod` that the loop can train.

    * ``training_modules`` names every sub-network a stage of ``train.stages`` may train or
      freeze (``{"unet": ..., "vq": ...}``; names may overlap, e.g. a LoRA container inside a
      frozen U-Net). The loop sets their modes, ``requires_grad``, optimiser groups and EMA; a
      parameter whose ``requires_grad`` the method set to False before training stays frozen in
      every stage (a pinned base weight).
    * ``training_outputs`` runs the model on a batch for the named stage and returns named tensors;
      each configured loss compares the outputs named by its ``inputs`` (default
      ``[pred, target]``, so a method returns those two, possibly as aliases of its own names).
      All randomness (timesteps, noise) comes from ``generator``, so a resumed run repeats it.
    * ``checkpoint_metadata`` goes into the exported safetensors so the method can rebuild the
      network that fits the file.
    * optional ``after_step(step, stage)``: called (under ``no_grad``) after every optimiser step,
      before the EMA update, with the number of steps done in that stage (1 after the first) —
      e.g. momentum weight sharing between experts.
    """

    def training_modules(self) -> dict[str, nn.Module]: ...

    def training_outputs(
        self, batch: TrainBatch, generator: torch.Generator, stage: str
    ) -> dict[str, torch.Tensor]: ...

    def checkpoint_metadata(self) -> dict[str, object]: ...


def as_trainable(method: object) -> TrainableMethod:
    if not isinstance(method, TrainableMethod):
        raise ConfigError(
            f"method {getattr(method, 'name', '') or type(method).__name__!r} is not trainable: it needs "
            "training_modules(), training_outputs(batch, generator, stage) and checkpoint_metadata() "
            "(srarena.harness.training.protocol.TrainableMethod)"
        )
    return method
