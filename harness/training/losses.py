"""Losses by name, each comparing the method outputs it names, with its own parameters.

A ``train.losses`` entry is ``{name, weight, inputs, label, **params}``: ``inputs`` names the
method outputs the loss takes (``[sr, hr]``, ``[eps_pred, eps]``; default ``[pred, target]``; one
name for a loss of a single tensor, e.g. ``mean`` of a codebook term the method computed), and
every other key is a keyword argument of the loss function (``{name: focal_frequency, alpha: 1.0}``).
Parameters are checked against the function's signature when the config is read, so a typo
fails before the first step. Methods add losses with :func:`register_loss`; the loop only knows
names.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn.functional as F

from srarena.harness.errors import ConfigError

#: ``fn(*inputs, **params) -> scalar tensor``
Loss = Callable[..., torch.Tensor]

DEFAULT_INPUTS: tuple[str, ...] = ("pred", "target")
RESERVED = ("name", "weight", "inputs", "label")


def _charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    return torch.sqrt((pred - target) ** 2 + eps**2).mean()


def _mean(value: torch.Tensor) -> torch.Tensor:
    """A term the method computed itself (a VQ commitment loss, a KL): its mean."""
    return value.mean()


LOSSES: dict[str, Loss] = {
    "l1": F.l1_loss,
    "mse": F.mse_loss,
    "charbonnier": _charbonnier,
    "mean": _mean,
}


def register_loss(name: str, fn: Loss) -> Loss:
    """Make ``fn(a, b, **params)`` (or ``fn(a, **params)``) available as ``train.losses[].name``."""
    if name in LOSSES and LOSSES[name] is not fn:
        raise ValueError(f"loss {name!r} is registered twice")
    LOSSES[name] = fn
    return fn


def _check_params(name: str, fn: Loss, n_inputs: int, params: Mapping[str, Any], where: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust the config
        return
    try:
        sig.bind(*([None] * n_inputs), **params)
    except TypeError as e:
        raise ConfigError(f"{where}: loss {name!r} with inputs x{n_inputs} and params {dict(params)}: {e}") from None


@dataclass(frozen=True)
class LossTerm:
    label: str  # key of its value in the logs: loss_<label>
    name: str
    weight: float
    inputs: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)


class WeightedLoss:
    """``sum_i w_i * loss_i(outputs[a_i], outputs[b_i], **params_i)``; ``terms`` gives each part."""

    def __init__(self, spec: Iterable[Mapping[str, Any]], where: str = "train.losses") -> None:
        self.terms: list[LossTerm] = []
        self.where = where
        for item in spec:
            item = dict(item)
            name = str(item.get("name"))
            if name not in LOSSES:
                raise ConfigError(f"{where}: unknown loss {name!r}; available: {sorted(LOSSES)}")
            inputs = tuple(str(x) for x in (item.get("inputs") or DEFAULT_INPUTS))
            if not 1 <= len(inputs) <= 2:
                raise ConfigError(f"{where}: loss {name!r} takes one or two inputs, got {list(inputs)}")
            params = {k: v for k, v in item.items() if k not in RESERVED}
            _check_params(name, LOSSES[name], len(inputs), params, where)
            label = str(item.get("label") or name)
            if any(t.label == label for t in self.terms):
                label = f"{label}_{'_'.join(inputs)}"
            if any(t.label == label for t in self.terms):
                raise ConfigError(f"{where}: two {name!r} losses on {list(inputs)}; give them different `label`s")
            self.terms.append(LossTerm(label, name, float(item.get("weight", 1.0)), inputs, params))
        if not self.terms:
            raise ConfigError(f"{where} is empty: give at least one {{name, weight, inputs}}")

    @property
    def inputs(self) -> set[str]:
        return {x for t in self.terms for x in t.inputs}

    def spec(self) -> list[dict[str, Any]]:
        """The resolved entries (for metadata)."""
        return [{"name": t.name, "weight": t.weight, "inputs": list(t.inputs), **t.params} for t in self.terms]

    def __call__(self, outputs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        missing = sorted(self.inputs - set(outputs))
        if missing:
            raise ConfigError(
                f"{self.where}: the method returned no output named {missing}; "
                f"its outputs are {sorted(outputs)} (set each loss's `inputs`)"
            )
        total: torch.Tensor | None = None
        values: dict[str, float] = {}
        for t in self.terms:
            value = LOSSES[t.name](*(outputs[x] for x in t.inputs), **t.params)
            values[f"loss_{t.label}"] = float(value.detach())
            total = t.weight * value if total is None else total + t.weight * value
        assert total is not None
        return total, values
