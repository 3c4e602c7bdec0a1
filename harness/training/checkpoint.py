"""Training state in one safetensors file: weights, EMA weights, optimiser moments, step.

safetensors holds tensors plus string metadata, so the optimiser's per-parameter tensors are
stored under ``optim/<param index>/<name>`` and everything else (step, param groups, config)
as JSON metadata. No pickle anywhere: a checkpoint from a stranger is as safe to resume as to
evaluate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srarena.methods.state_dicts import CheckpointError, load_into, read_state_dict, save_safetensors


def save_training_state(
    path: Path,
    model: nn.Module,
    ema: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    step: int,
    meta: dict[str, Any],
) -> None:
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors |= {f"ema/{k}": v for k, v in ema.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, float]] = {}
    for idx, state in opt["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{idx}/{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    save_safetensors(
        path,
        tensors,
        {**meta, "step": step, "param_groups": opt["param_groups"], "optim_scalars": scalars, "kind": "training_state"},
    )


def load_training_state(
    path: Path, model: nn.Module, ema: nn.Module | None, optimizer: torch.optim.Optimizer
) -> int:
    """Restore in place; returns the step to continue from."""
    tensors, meta = read_state_dict(path)
    if meta.get("kind") != "training_state":
        raise CheckpointError(f"{path}: not an srarena training checkpoint (no kind=training_state)")
    load_into(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}, path)
    if ema is not None:
        ema_sd = {k[4:]: v for k, v in tensors.items() if k.startswith("ema/")}
        load_into(ema, ema_sd or model.state_dict(), path)
    state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim/"):
            _, idx, name = k.split("/", 2)
            state.setdefault(int(idx), {})[name] = v
    for idx, values in json.loads(meta.get("optim_scalars", "{}")).items():
        state.setdefault(int(idx), {}).update(values)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": json.loads(meta["param_groups"])})
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: optimiser state does not fit this run ({e})") from None
    return int(meta["step"])
