"""Training state in safetensors files: trained tensors, EMA, optimiser moments, stage and step.

safetensors holds tensors plus string metadata, so the optimiser's per-parameter tensors are
stored under ``optim/<param index>/<name>`` and everything else (stage, step, param groups,
config) as JSON metadata. No pickle anywhere: a checkpoint from a stranger is as safe to resume
as to evaluate.

Only what the current stage trains is in the training checkpoint (``model/<module>.<key>``):
frozen modules are rebuilt by the method itself, and modules an earlier stage trained are in
that stage's *stage file*, written once when the stage ends. Resuming in stage k therefore loads
the stage files of stages 0..k-1 and then the training checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from srarena.methods.state_dicts import CheckpointError, read_state_dict, save_safetensors

FORMAT = 2  # 1: one module, keys without the module name (before stages existed)


@dataclass(frozen=True)
class Position:
    """Where a run is: ``stage`` index and name, steps done in that stage and in total."""

    stage: int
    stage_name: str
    stage_step: int
    step: int


def copy_into(live: Mapping[str, torch.Tensor], saved: Mapping[str, torch.Tensor], path: Path | str, what: str) -> None:
    """Copy ``saved`` into the ``live`` tensors in place; the names and shapes must match exactly."""
    missing, extra = sorted(set(live) - set(saved)), sorted(set(saved) - set(live))
    shapes = [k for k in live if k in saved and tuple(saved[k].shape) != tuple(live[k].shape)]
    if missing or extra or shapes:
        raise CheckpointError(
            f"{path}: {what} does not fit this run's configuration: missing {missing[:4]}, "
            f"unexpected {extra[:4]}, other shapes {shapes[:4]} (did the method or train.stages change? "
            "use another train.run_name or train.resume=false)"
        )
    with torch.no_grad():
        for k, t in live.items():
            t.copy_(saved[k])


def save_training_state(
    path: Path,
    state: Mapping[str, torch.Tensor],
    ema: Mapping[str, torch.Tensor] | None,
    optimizer: torch.optim.Optimizer,
    position: Position,
    meta: Mapping[str, Any],
) -> None:
    tensors = {f"model/{k}": v for k, v in state.items()}
    if ema is not None:
        tensors |= {f"ema/{k}": v for k, v in ema.items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict[str, float]] = {}
    for idx, values in opt["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{idx}/{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    save_safetensors(
        path,
        tensors,
        {**meta, "kind": "training_state", "format": FORMAT, "stage": position.stage,
         "stage_name": position.stage_name, "stage_step": position.stage_step, "step": position.step,
         "param_groups": opt["param_groups"], "optim_scalars": scalars},
    )


def read_position(path: Path) -> tuple[Position, dict[str, torch.Tensor], dict[str, str]]:
    tensors, meta = read_state_dict(path)
    if meta.get("kind") != "training_state":
        raise CheckpointError(f"{path}: not an srarena training checkpoint (no kind=training_state)")
    if int(meta.get("format", 1)) != FORMAT:
        raise CheckpointError(
            f"{path}: a training checkpoint of format {meta.get('format', 1)} (this srarena writes {FORMAT}); "
            "it cannot be resumed: train.resume=false or another train.run_name"
        )
    pos = Position(int(meta["stage"]), str(meta["stage_name"]), int(meta["stage_step"]), int(meta["step"]))
    return pos, tensors, meta


def load_training_state(
    path: Path,
    state: Mapping[str, torch.Tensor],
    ema: Mapping[str, torch.Tensor] | None,
    optimizer: torch.optim.Optimizer,
) -> Position:
    """Restore the stage's tensors, EMA and optimiser in place; returns where the run was."""
    pos, tensors, meta = read_position(path)
    copy_into(state, {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}, path, "the trained weights")
    if ema is not None:
        saved = {k[4:]: v for k, v in tensors.items() if k.startswith("ema/")}
        copy_into(ema, saved or {k: v for k, v in state.items() if k in ema}, path, "the EMA weights")
    opt_state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim/"):
            _, idx, name = k.split("/", 2)
            opt_state.setdefault(int(idx), {})[name] = v
    for idx, values in json.loads(meta.get("optim_scalars", "{}")).items():
        opt_state.setdefault(int(idx), {}).update(values)
    try:
        optimizer.load_state_dict({"state": opt_state, "param_groups": json.loads(meta["param_groups"])})
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: optimiser state does not fit this run ({e})") from None
    return pos


def stage_file(checkpoint_path: Path, index: int, name: str) -> Path:
    """Where the weights a finished stage trained are kept, beside the training checkpoint."""
    return checkpoint_path.with_name(f"{checkpoint_path.stem}.stage{index}-{name}.safetensors")


def save_stage_weights(path: Path, state: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    save_safetensors(path, dict(state), {**meta, "kind": "stage_weights", "format": FORMAT})


def load_stage_weights(path: Path, state: Mapping[str, torch.Tensor]) -> None:
    if not path.is_file():
        raise CheckpointError(
            f"{path}: missing; the training checkpoint beside it is in a later stage and needs the weights "
            "this stage trained (train.resume=false to start over)"
        )
    tensors, meta = read_state_dict(path)
    if meta.get("kind") != "stage_weights":
        raise CheckpointError(f"{path}: not an srarena stage file (no kind=stage_weights)")
    copy_into(state, tensors, path, "the stage's weights")
