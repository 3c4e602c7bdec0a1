"""What ``srarena train`` exports: the trained modules' weights and a self-describing header.

Layout: with one exported module the file holds that module's own state-dict keys (so a
single-network checkpoint reads like any published one, e.g. BasicSR's RRDBNet keys); with
several, each key is prefixed by its module name (``unet.``, ``fcd.``). By default the exported
modules are those some stage trained; ``train.export_modules`` picks others (a frozen
autoencoder the method cannot rebuild by itself, say).

The metadata holds, besides the method's own ``checkpoint_metadata`` (architecture), the full
resolved training config (YAML), the seed, the git commit of the code that trained it, the
stages and the steps — enough to rerun the command that made the file.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from srarena.harness.errors import ConfigError
from srarena.harness.training.stages import StageConfig


def export_state(modules: Mapping[str, nn.Module], names: Sequence[str]) -> dict[str, torch.Tensor]:
    unknown = [n for n in names if n not in modules]
    if unknown or not names:
        raise ConfigError(f"train.export_modules: {list(names)} must name some of {list(modules)}")
    if len(names) == 1:
        return dict(modules[names[0]].state_dict())
    return {f"{n}.{k}": v for n in names for k, v in modules[n].state_dict().items()}


def export_metadata(
    method_meta: Mapping[str, object],
    *,
    config_yaml: str,
    seed: int,
    git_commit: str,
    stages: Sequence[StageConfig],
    exported: Sequence[str],
    trained_steps: int,
    train_seconds: float,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, object]:
    meta: dict[str, object] = {
        **method_meta,
        "kind": "model",
        "config": config_yaml,
        "seed": int(seed),
        "git_commit": git_commit,
        "trained_steps": int(trained_steps),
        "train_seconds": round(float(train_seconds), 1),
        "stages": [s.describe() for s in stages],
        "modules": list(exported),
        "layout": method_meta.get("layout", "module" if len(exported) == 1 else "prefixed"),
    }
    if len(stages) == 1:  # the one-stage summary older readers looked for
        meta["losses"] = stages[0].losses.spec()
    return meta | dict(extra or {})
