"""The one device resolver: ``device=auto|cpu|cuda|cuda:N`` in every command's config."""

from __future__ import annotations

import torch

from srarena.harness.errors import ConfigError


def resolve_device(spec: str | torch.device) -> torch.device:
    """``auto`` is the first GPU when CUDA is available, else the CPU; an explicit device that
    this machine lacks is a :class:`ConfigError` naming the fix, not a failure deep in a job."""
    text = str(spec).strip()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except RuntimeError as e:
        raise ConfigError(f"device={text}: {e}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={text} requested but CUDA is not available; use device=cpu or device=auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device={text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device={text} requested but MPS is not available; use device=cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"device={text}: srarena runs on cpu, cuda or mps")
    return dev
