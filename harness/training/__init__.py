"""One training loop for every trainable method (``srarena train method=...``).

A method becomes trainable by implementing :class:`~srarena.harness.training.protocol.TrainableMethod`:
it names the module to optimise and turns an (LR, HR) batch into a (prediction, target) pair;
the losses, optimiser, data, checkpoints and logging are the loop's, configured in
``conf/train.yaml`` and ``conf/train/``.
"""

from srarena.harness.training.protocol import TrainableMethod, as_trainable

__all__ = ["TrainableMethod", "as_trainable"]
