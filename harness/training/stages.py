"""Training stages: which sub-networks train, with which optimiser groups, and which stay frozen.

A multi-part model trains in named stages (``train.stages``): e.g. stage ``denoisers`` trains four
expert U-Nets, stage ``decoder`` the decoder with the U-Nets frozen. Without ``stages`` the whole
``train`` block is one stage, ``train``, that trains every module the method names.

Per stage, :func:`plan_stage` applies the modes to the method's modules and returns what the
loop needs: parameter groups (one per trained module, each with its own options — learning
rate, weight decay, betas), and the tensors that make up the training state. Rules:

* a module not named in ``train`` is frozen: ``eval()`` mode and ``requires_grad`` False, so it
  stays out of the optimiser, the EMA and the training checkpoint; naming it in ``freeze`` says so
  explicitly (and is checked);
* names may overlap (a LoRA container inside a frozen U-Net, a frozen base decoder inside a
  trained one): modes are applied from the outermost module to the innermost, so the innermost
  setting wins for its parameters, and a parameter is in the group of the innermost trained
  module holding it;
* a parameter the method itself created with ``requires_grad=False`` stays frozen in every stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from srarena.harness.errors import ConfigError
from srarena.harness.training.losses import WeightedLoss

#: keys of a ``train.<module>`` entry that are optimiser-group options
GROUP_OPTIONS = ("lr", "weight_decay", "betas")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW and its learning-rate schedule (per stage; ``lr`` is the default of every group)."""

    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "cosine"  # cosine | constant
    min_lr_ratio: float = 0.1
    grad_clip: float = 0.0  # 0 = off

    def __post_init__(self) -> None:
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"train.optim.schedule: {self.schedule!r} is not one of cosine, constant")


@dataclass(frozen=True)
class StageConfig:
    name: str
    steps: int
    losses: WeightedLoss
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: dict[str, dict[str, Any]] = field(default_factory=dict)  # module -> group options
    freeze: tuple[str, ...] = ()
    ema_decay: float = 0.0  # 0 = no EMA

    def describe(self) -> dict[str, Any]:
        """What the exported metadata records about the stage."""
        return {
            "name": self.name, "steps": self.steps, "train": self.train, "freeze": list(self.freeze),
            "losses": self.losses.spec(), "ema_decay": self.ema_decay,
            "optim": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.optim.__dict__.items()},
        }


def _optim(base: Mapping[str, Any], over: Mapping[str, Any] | None, where: str) -> OptimConfig:
    merged = {**dict(base), **dict(over or {})}
    known = set(OptimConfig.__dataclass_fields__)
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ConfigError(f"{where}.optim: unknown keys {unknown}; known: {sorted(known)}")
    if "betas" in merged:
        merged["betas"] = tuple(float(b) for b in merged["betas"])
    for k in ("lr", "weight_decay", "min_lr_ratio", "grad_clip"):
        if k in merged:
            merged[k] = float(merged[k])
    if "warmup_steps" in merged:
        merged["warmup_steps"] = int(merged["warmup_steps"])
    return OptimConfig(**merged)


def _group_options(name: str, opts: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    opts = dict(opts or {})
    unknown = sorted(set(opts) - set(GROUP_OPTIONS))
    if unknown:
        raise ConfigError(f"{where}.train.{name}: unknown keys {unknown}; a group takes {list(GROUP_OPTIONS)}")
    out: dict[str, Any] = {}
    if "lr" in opts:
        out["lr"] = float(opts["lr"])
    if "weight_decay" in opts:
        out["weight_decay"] = float(opts["weight_decay"])
    if "betas" in opts:
        out["betas"] = tuple(float(b) for b in opts["betas"])
    return out


STAGE_KEYS = ("name", "steps", "losses", "optim", "train", "freeze", "ema_decay")


def parse_stages(train: Mapping[str, Any], modules: Sequence[str]) -> tuple[StageConfig, ...]:
    """``train`` block of the config (plain containers) -> validated stages.

    Each stage inherits ``steps``, ``losses``, ``optim`` (merged key by key) and ``ema_decay``
    from the ``train`` block and overrides what it sets.
    """
    modules = list(modules)
    base_optim = dict(train.get("optim") or {})
    base_losses = train.get("losses") or []
    base_ema = float(train.get("ema_decay", 0.0) or 0.0)
    raw = train.get("stages")
    if not raw:
        raw = [{"name": "train", "train": {m: {} for m in modules}}]
        where_of = lambda i: "train"  # noqa: E731
    else:
        where_of = lambda i: f"train.stages[{i}]"  # noqa: E731
    stages: list[StageConfig] = []
    for i, st in enumerate(raw):
        where = where_of(i)
        st = dict(st)
        unknown = sorted(set(st) - set(STAGE_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; a stage takes {list(STAGE_KEYS)}")
        name = str(st.get("name") or "")
        if not name or any(s.name == name for s in stages):
            raise ConfigError(f"{where}: every stage needs a unique `name` (got {name!r})")
        trained = st.get("train") or {}
        if isinstance(trained, (list, tuple)):  # [unet, fcd]: default options
            trained = {m: {} for m in trained}
        if not trained:
            raise ConfigError(f"{where}: `train` names no module; the method's modules are {modules}")
        freeze = tuple(str(m) for m in (st.get("freeze") or ()))
        for m in [*trained, *freeze]:
            if m not in modules:
                raise ConfigError(f"{where}: unknown module {m!r}; the method's training modules are {modules}")
        both = sorted(set(trained) & set(freeze))
        if both:
            raise ConfigError(f"{where}: {both} both trained and frozen")
        steps = int(st.get("steps", train.get("steps", 0)) or 0)
        if steps < 1:
            raise ConfigError(f"{where}: steps must be >= 1, got {steps}")
        stages.append(StageConfig(
            name=name,
            steps=steps,
            losses=WeightedLoss(st.get("losses") or base_losses, where=f"{where}.losses"),
            optim=_optim(base_optim, st.get("optim"), where),
            train={str(m): _group_options(str(m), o, where) for m, o in trained.items()},
            freeze=freeze,
            ema_decay=float(st.get("ema_decay", base_ema) or 0.0),
        ))
    return tuple(stages)


# ---------------------------------------------------------------------------------------------
# Applying a stage to the modules


@dataclass
class StagePlan:
    """A stage applied to the modules: optimiser groups and the tensors of its training state."""

    stage: StageConfig
    groups: list[dict[str, Any]]  # torch param groups: {"params", "name", "lr", ...}
    state: dict[str, torch.Tensor]  # name -> live tensor: trained parameters and buffers of
    #                                 modules in train mode (what the training checkpoint holds)

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for g in self.groups for p in g["params"]]


def _depth_order(names: Sequence[str], modules: Mapping[str, nn.Module]) -> list[str]:
    """Outermost first: a module holding another has strictly more sub-modules."""
    return sorted(names, key=lambda n: -sum(1 for _ in modules[n].modules()))


def _set(module: nn.Module, trained: bool, pinned: set[int]) -> None:
    module.train(trained)
    for p in module.parameters():
        p.requires_grad_(trained and id(p) not in pinned)


def pinned_parameters(modules: Mapping[str, nn.Module]) -> set[int]:
    """Parameters the method froze itself (``requires_grad`` False before training starts)."""
    return {id(p) for m in modules.values() for p in m.parameters() if not p.requires_grad}


def plan_stage(stage: StageConfig, modules: Mapping[str, nn.Module], pinned: set[int]) -> StagePlan:
    for a in stage.train:
        for b in stage.freeze:
            if modules[a] is modules[b]:
                raise ConfigError(f"stage {stage.name!r}: {a!r} and {b!r} are the same module, trained and frozen")
    implicit = [n for n in modules if n not in stage.train and n not in stage.freeze]
    for n in _depth_order(implicit, modules):
        _set(modules[n], False, pinned)
    for n in _depth_order([*stage.train, *stage.freeze], modules):
        _set(modules[n], n in stage.train, pinned)

    # Parameters go to the innermost trained module that holds them; groups keep config order.
    claimed: set[int] = set()
    members: dict[str, list[nn.Parameter]] = {}
    for n in reversed(_depth_order(list(stage.train), modules)):
        members[n] = []
        for p in modules[n].parameters():
            if p.requires_grad and id(p) not in claimed:
                claimed.add(id(p))
                members[n].append(p)
    groups = [
        {"params": members[n], "name": n, "lr": stage.optim.lr, "weight_decay": stage.optim.weight_decay,
         "betas": stage.optim.betas, **opts}
        for n, opts in stage.train.items()
        if members[n]
    ]
    if not groups:
        raise ConfigError(f"stage {stage.name!r}: no trainable parameters in {list(stage.train)}")

    state: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for n in stage.train:
        for sub_name, sub in modules[n].named_modules():
            prefix = f"{n}.{sub_name}." if sub_name else f"{n}."
            for pn, p in sub.named_parameters(recurse=False):
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    state[prefix + pn] = p
            if not sub.training:
                continue
            transient = getattr(sub, "_non_persistent_buffers_set", set())
            for bn, b in sub.named_buffers(recurse=False):
                if b is not None and bn not in transient and id(b) not in seen:
                    seen.add(id(b))
                    state[prefix + bn] = b
    return StagePlan(stage, groups, state)
