"""One training loop for every trainable method (``srarena train method=...``).

A method becomes trainable by implementing :class:`~srarena.harness.training.protocol.TrainableMethod`:
it names its sub-networks (``training_modules``) and turns a :class:`TrainBatch` into named
outputs (``training_outputs``) that the configured losses compare. Stages (which modules train,
which stay frozen, per-module learning rates), losses, optimiser, EMA, data, checkpoints with
exact resume and logging are the loop's, configured in ``conf/train.yaml`` and ``conf/train/``.

Modules: ``protocol`` (the method side), ``data`` (batches), ``losses`` (the loss registry),
``stages`` (freezing and parameter groups), ``loop``, ``checkpoint`` (training state, resume),
``export`` (the exported file), ``app`` (``srarena train``).
"""

from srarena.harness.training.losses import register_loss
from srarena.harness.training.protocol import TrainableMethod, TrainBatch, as_trainable

__all__ = ["TrainableMethod", "TrainBatch", "as_trainable", "register_loss"]
