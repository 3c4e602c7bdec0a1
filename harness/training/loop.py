"""The training loop shared by every trainable method: pure of I/O except checkpoints.

Stages run one after another (:mod:`srarena.harness.training.stages`); each gets a fresh AdamW
over its parameter groups, its own learning-rate schedule over its own steps, and its own EMA.
When a stage ends its EMA weights are written into the modules it trained (what the next stage
builds on and what is exported) and saved to the stage file.

Progress, metrics and artifacts leave through the ``log`` callback so the loop knows nothing
about MLflow. Everything random in a step comes from (seed, global step): the batch
(:meth:`CropSampler.batch`), the generator handed to the method, and torch's global RNG (seeded
each step, for dropout and the like) — so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import torch
from torch import nn
from tqdm import tqdm

from srarena.harness.errors import ConfigError
from srarena.harness.training.checkpoint import (
    Position, load_stage_weights, load_training_state, read_position, save_stage_weights, save_training_state,
    stage_file,
)
from srarena.harness.training.protocol import TrainableMethod, TrainBatch
from srarena.harness.training.stages import OptimConfig, StageConfig, StagePlan, pinned_parameters, plan_stage
from srarena.methods.state_dicts import CheckpointError

log = logging.getLogger(__name__)
LogFn = Callable[[int, dict[str, float]], None]


class BatchSource(Protocol):
    def batch(self, step: int) -> TrainBatch: ...


@dataclass(frozen=True)
class LoopConfig:
    stages: tuple[StageConfig, ...]
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    progress: bool = True

    @property
    def steps(self) -> int:
        return sum(s.steps for s in self.stages)


@dataclass
class LoopResult:
    step: int  # optimiser steps of the whole run
    seconds: float  # of this call (a resumed run counts only its own part)
    last_loss: float
    trained: tuple[str, ...]  # modules trained by some stage, in order of first appearance


def lr_factor(optim: OptimConfig, steps: int, step: int) -> float:
    """Multiplier of each group's learning rate at ``step`` (0-based) of a stage of ``steps``."""
    if optim.warmup_steps and step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return 1.0
    if optim.schedule == "cosine":
        t = (step - optim.warmup_steps) / max(1, steps - optim.warmup_steps)
        return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    raise ConfigError(f"train.optim.schedule: {optim.schedule!r} is not one of cosine, constant")


class EMA:
    """Exponential moving average of a stage's trained parameters (buffers are used as they are)."""

    def __init__(self, state: Mapping[str, torch.Tensor], decay: float) -> None:
        self.decay = decay
        self.live = {k: v for k, v in state.items() if isinstance(v, torch.nn.Parameter)}
        self.shadow = {k: v.detach().clone() for k, v in self.live.items()}

    @torch.no_grad()
    def update(self) -> None:
        for k, s in self.shadow.items():
            s.lerp_(self.live[k], 1 - self.decay)

    @torch.no_grad()
    def copy_to_live(self) -> None:
        for k, s in self.shadow.items():
            self.live[k].copy_(s)


def _step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7_919 + 12_345) % (2**63 - 1)


def _step_generator(seed: int, step: int) -> torch.Generator:
    """The generator a method draws its timesteps and noise from at global ``step``."""
    return torch.Generator().manual_seed(seed * 7_919 + step + 1)


def _resume_position(cfg: LoopConfig, path: Path) -> Position:
    pos, _, _ = read_position(path)
    names = [s.name for s in cfg.stages]
    if pos.stage >= len(cfg.stages) or names[pos.stage] != pos.stage_name:
        raise CheckpointError(
            f"{path}: was written in stage {pos.stage} ({pos.stage_name!r}); this run's stages are {names}. "
            "Use another train.run_name or train.resume=false"
        )
    if pos.stage_step > cfg.stages[pos.stage].steps:
        raise CheckpointError(
            f"{path}: stage {pos.stage_name!r} is at step {pos.stage_step}, beyond its configured "
            f"{cfg.stages[pos.stage].steps} steps"
        )
    return pos


@dataclass
class _Stage:
    """One stage being trained: its plan, optimiser (with each group's base lr) and EMA."""

    index: int
    config: StageConfig
    plan: StagePlan
    opt: torch.optim.Optimizer
    base_lrs: list[float]
    ema: EMA | None

    @classmethod
    def open(cls, index: int, stage: StageConfig, modules: Mapping[str, nn.Module], pinned: set[int]) -> "_Stage":
        plan = plan_stage(stage, modules, pinned)
        opt = torch.optim.AdamW(plan.groups, lr=stage.optim.lr, betas=stage.optim.betas,
                                weight_decay=stage.optim.weight_decay)
        ema = EMA(plan.state, stage.ema_decay) if stage.ema_decay > 0 else None
        return cls(index, stage, plan, opt, [float(g["lr"]) for g in opt.param_groups], ema)

    @property
    def ema_state(self) -> dict[str, torch.Tensor] | None:
        return self.ema.shadow if self.ema is not None else None

    def set_lr(self, local: int) -> dict[str, float]:
        factor = lr_factor(self.config.optim, self.config.steps, local)
        for g, base in zip(self.opt.param_groups, self.base_lrs):
            g["lr"] = base * factor
        return {f"lr_{g['name']}": g["lr"] for g in self.opt.param_groups}

    def step(self, method: TrainableMethod, batch: TrainBatch, generator: torch.Generator,
             local: int) -> tuple[float, dict[str, float]]:
        """Forward, losses, backward, optimiser, hook, EMA: one optimiser step."""
        stage = self.config
        loss, terms = stage.losses(method.training_outputs(batch, generator, stage.name))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at stage {stage.name!r} step {local}; lower its optim.lr")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if stage.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.plan.params, stage.optim.grad_clip)
        self.opt.step()
        after_step = getattr(method, "after_step", None)
        if after_step is not None:
            with torch.no_grad():
                after_step(local + 1, stage.name)
        if self.ema is not None:
            self.ema.update()
        return float(loss.detach()), terms

    def finish(self, checkpoint_path: Path, meta: Mapping[str, Any]) -> None:
        """The stage's result is its EMA; keep what it trained for later stages and resumes."""
        if self.ema is not None:
            self.ema.copy_to_live()
        save_stage_weights(stage_file(checkpoint_path, self.index, self.config.name), self.plan.state,
                           {**meta, "stage": self.index, "stage_name": self.config.name})


def train_loop(
    method: TrainableMethod,
    sampler: BatchSource,
    cfg: LoopConfig,
    device: torch.device,
    checkpoint_path: Path,
    log_fn: LogFn,
    resume: bool = True,
    meta: dict[str, Any] | None = None,
) -> LoopResult:
    """Run every stage of ``cfg`` (continuing from ``checkpoint_path`` when ``resume``)."""
    modules = method.training_modules()
    pinned = pinned_parameters(modules)
    meta = dict(meta or {})
    start = Position(0, cfg.stages[0].name, 0, 0)
    if resume and checkpoint_path.is_file():
        start = _resume_position(cfg, checkpoint_path)
        for j in range(start.stage):  # weights the finished stages trained
            load_stage_weights(stage_file(checkpoint_path, j, cfg.stages[j].name),
                               plan_stage(cfg.stages[j], modules, pinned).state)
        log.info("resuming %s: stage %s at step %d of %d", checkpoint_path, start.stage_name,
                 start.stage_step, cfg.stages[start.stage].steps)
    offset = sum(s.steps for s in cfg.stages[: start.stage])
    t0, loss = time.perf_counter(), float("nan")
    bar = tqdm(total=cfg.steps, initial=offset + start.stage_step, disable=not cfg.progress, desc="train")
    for index in range(start.stage, len(cfg.stages)):
        st = _Stage.open(index, cfg.stages[index], modules, pinned)
        first = 0
        if index == start.stage and start.stage_step > 0:
            first = load_training_state(checkpoint_path, st.plan.state, st.ema_state, st.opt).stage_step
        if len(cfg.stages) > 1:
            bar.set_description(f"train [{st.config.name}]")
        for local in range(first, st.config.steps):
            step = offset + local
            lrs = st.set_lr(local)
            torch.manual_seed(_step_seed(cfg.seed, step))  # global RNG users (dropout) repeat too
            loss, terms = st.step(method, sampler.batch(step).to(device), _step_generator(cfg.seed, step), local)
            bar.update(1)
            done, total_done = local + 1, step + 1
            if total_done % cfg.checkpoint_every == 0 or done == st.config.steps:  # before logging: a
                save_training_state(checkpoint_path, st.plan.state, st.ema_state, st.opt,  # failing logger
                                    Position(index, st.config.name, done, total_done), meta)  # loses nothing
            if total_done % cfg.log_every == 0 or done == st.config.steps:
                bar.set_postfix(loss=f"{loss:.4f}")
                values = {"loss": loss, "lr": next(iter(lrs.values())), "stage": float(index), **terms}
                log_fn(total_done, values | (lrs if len(lrs) > 1 else {}))
        st.finish(checkpoint_path, meta)
        offset += st.config.steps
    bar.close()
    for m in modules.values():
        m.eval()
    trained = tuple(dict.fromkeys(n for s in cfg.stages for n in s.train))
    return LoopResult(cfg.steps, time.perf_counter() - t0, loss, trained)
