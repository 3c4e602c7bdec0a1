"""``srarena train``: build method, data and loop from the config; log the run to MLflow.

The CLI dispatcher composes ``conf/train.yaml`` and calls :func:`run_train`. The result is a
safetensors file of the trained network (EMA weights when enabled) with the method's
architecture in its metadata, which the method's YAML can point ``weights`` at.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from omegaconf import DictConfig, OmegaConf

from srarena.harness.devices import resolve_device
from srarena.harness.errors import ConfigError
from srarena.harness.training.data import CropSampler, degradation_synth, load_hr_images
from srarena.harness.training.loop import LoopConfig, LoopResult, train_loop
from srarena.harness.training.losses import WeightedLoss
from srarena.harness.training.protocol import as_trainable
from srarena.methods.state_dicts import save_safetensors

log = logging.getLogger(__name__)


def hr_folder(cfg: DictConfig) -> Path:
    folder = OmegaConf.select(cfg, "train.data.hr_dir")
    if folder:
        return Path(str(folder)).expanduser()
    from srarena.harness.data.embedded import ensure_embedded

    return ensure_embedded(Path(str(cfg.paths.data)), str(cfg.train.data.split))


def loop_config(cfg: DictConfig) -> LoopConfig:
    t, o = cfg.train, cfg.train.optim
    return LoopConfig(
        steps=int(t.steps), lr=float(o.lr), betas=tuple(o.betas), weight_decay=float(o.weight_decay),
        warmup_steps=int(o.warmup_steps), schedule=str(o.schedule), min_lr_ratio=float(o.min_lr_ratio),
        grad_clip=float(o.grad_clip), ema_decay=float(t.ema_decay), log_every=int(t.log_every),
        checkpoint_every=int(t.checkpoint_every), seed=int(cfg.seed), progress=bool(t.progress),
    )


@contextlib.contextmanager
def mlflow_run(cfg: DictConfig, run_name: str) -> Iterator[Any]:
    """An MLflow run (or a no-op logger when ``tracking.enabled`` is false)."""
    if not OmegaConf.select(cfg, "tracking.enabled", default=False):
        yield None
        return
    import mlflow

    from srarena.harness import tracking

    tracking.configure(cfg)
    exp = tracking.experiment_id(cfg, str(cfg.train.experiment))
    tags = {**tracking.environment_tags(), "srarena.kind": "train"}
    with mlflow.start_run(experiment_id=exp, run_name=run_name, tags=tags) as run:
        tracking.log_params(tracking.flatten(cfg))
        yield run


def run_train(cfg: DictConfig) -> int:
    from hydra.utils import instantiate

    from srarena.harness.weights import set_weights_dir

    set_weights_dir(cfg.paths.weights)
    torch.manual_seed(int(cfg.seed))
    device = resolve_device(str(cfg.device))
    method_cfg = cfg.method.copy()
    if "weights" in method_cfg:  # the method YAML names the trained file; training starts elsewhere
        method_cfg.weights = OmegaConf.select(cfg, "train.init_weights")
    method = instantiate(method_cfg)
    trainable = as_trainable(method)
    method.to(device)
    synth, scale = degradation_synth(cfg.degradation, int(cfg.seed))
    if getattr(method, "scales", ()) and scale not in method.scales:
        raise ConfigError(f"degradation x{scale} does not match the method's scales {method.scales}")
    d = cfg.train.data
    sampler = CropSampler(
        load_hr_images(hr_folder(cfg)), synth, scale, int(d.crop), int(d.batch_size), int(cfg.seed), bool(d.augment)
    )
    loss_fn = WeightedLoss(OmegaConf.to_container(cfg.train.losses, resolve=True))  # type: ignore[arg-type]
    out_dir = Path(str(cfg.train.out_dir)).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
    export = Path(str(cfg.train.export)).expanduser() if cfg.train.export else out_dir / "model.safetensors"
    run_name = str(cfg.train.run_name)
    meta = {"config": OmegaConf.to_yaml(cfg, resolve=True)}
    with mlflow_run(cfg, run_name) as run:

        def log_fn(step: int, values: dict[str, float]) -> None:
            log.info("step %d %s", step, " ".join(f"{k}={v:.4g}" for k, v in values.items()))
            if run is not None:
                import mlflow

                mlflow.log_metrics(values, step=step)

        t0 = time.perf_counter()
        result: LoopResult = train_loop(
            trainable, sampler, loss_fn, loop_config(cfg), device, out_dir / "last.safetensors",
            log_fn, resume=bool(cfg.train.resume), meta=meta,
        )
        save_safetensors(
            export,
            result.model.state_dict(),
            {
                **trainable.checkpoint_metadata(),
                "kind": "model",
                "trained_steps": result.step,
                "train_seconds": round(result.seconds, 1),
                "degradation": str(cfg.degradation.name),
                "crop": int(d.crop),
                "losses": OmegaConf.to_container(cfg.train.losses, resolve=True),
            },
        )
        if run is not None:
            import mlflow

            mlflow.log_metrics({"train_seconds": time.perf_counter() - t0, "final_loss": result.last_loss})
            mlflow.log_artifact(str(export))
    print(f"srarena train: {result.step} steps in {result.seconds:.0f}s; weights -> {export}")
    return 0
