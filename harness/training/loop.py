"""The training loop shared by every trainable method: pure of I/O except checkpoints.

Progress, metrics and artifacts leave through the ``log`` callback so the loop knows nothing
about MLflow; randomness per step comes from generators seeded by (seed, step) so a resumed run
continues the same sequence of batches, timesteps and noise.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm import tqdm

from srarena.harness.errors import ConfigError
from srarena.harness.training.checkpoint import load_training_state, save_training_state
from srarena.harness.training.data import CropSampler
from srarena.harness.training.losses import WeightedLoss
from srarena.harness.training.protocol import TrainableMethod

log = logging.getLogger(__name__)
LogFn = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class LoopConfig:
    steps: int
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.1
    grad_clip: float = 0.0  # 0 = off
    ema_decay: float = 0.0  # 0 = off
    log_every: int = 50
    checkpoint_every: int = 500
    seed: int = 0
    progress: bool = True


@dataclass
class LoopResult:
    step: int
    seconds: float
    last_loss: float
    model: nn.Module  # the weights to export: EMA if enabled, else the raw model


def lr_factor(cfg: LoopConfig, step: int) -> float:
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "cosine":
        t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    raise ConfigError(f"train.optim.schedule: {cfg.schedule!r} is not one of cosine, constant")


def train_loop(
    method: TrainableMethod,
    sampler: CropSampler,
    loss_fn: WeightedLoss,
    cfg: LoopConfig,
    device: torch.device,
    checkpoint_path: Path,
    log_fn: LogFn,
    resume: bool = True,
    meta: dict[str, Any] | None = None,
) -> LoopResult:
    model = method.trainable_module()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg, s))
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.ema_decay > 0 else None
    start = 0
    if resume and checkpoint_path.is_file():
        start = load_training_state(checkpoint_path, model, ema, opt)
        sched.last_epoch = start  # as after `start` scheduler steps
        for g in opt.param_groups:
            g["lr"] = cfg.lr * lr_factor(cfg, start)
        log.info("resumed from %s at step %d", checkpoint_path, start)
    meta = dict(meta or {})
    t0, loss_value = time.perf_counter(), float("nan")
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not cfg.progress, desc="train")
    for step in bar:
        lr_img, hr_img = sampler.batch(step)
        gen = torch.Generator().manual_seed(cfg.seed * 7_919 + step + 1)
        pred, target = method.training_pair(lr_img.to(device), hr_img.to(device), gen)
        loss, terms = loss_fn(pred, target)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower train.optim.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        lr_now = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        if ema is not None:
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm, 1 - cfg.ema_decay)
                for be, bm in zip(ema.buffers(), model.buffers()):
                    be.copy_(bm)
        loss_value = float(loss.detach())
        done = step + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:  # before logging: a failing
            save_training_state(checkpoint_path, model, ema, opt, done, meta)  # logger loses nothing
        if done % cfg.log_every == 0 or done == cfg.steps:
            bar.set_postfix(loss=f"{loss_value:.4f}")
            log_fn(done, {"loss": loss_value, "lr": lr_now, **terms})
    model.eval()
    return LoopResult(cfg.steps, time.perf_counter() - t0, loss_value, ema if ema is not None else model)
