"""Device-independent randomness: one CPU generator per (seed, image), and a check that every
random draw of a method uses it.

Policy (issue 11): a method draws every random number from the ``torch.Generator`` the runner
gives it — a **CPU** generator seeded by (global seed, image id) — on the CPU, and moves the
result to its device. CPU and CUDA random streams differ (a CUDA generator's ``randn`` is not
the CPU's), so drawing on the device would make a method's output depend on where it ran; drawing
on the CPU makes a GPU run reproduce a CPU run up to float tolerance, in any order or batching.

:func:`audit_draws` records every random draw made inside it (``torch.randn/rand/randint/...``,
in-place ``normal_/uniform_/...``, ``*_like`` and dropout in training mode) with the generator and
device it used, so tests can assert the policy for any method, on any device.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch.overrides import TorchFunctionMode


def image_generator(seed: int, image_id: str) -> torch.Generator:
    """A CPU generator seeded by (global seed, image id): outputs do not depend on order,
    batching or device."""
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    g = torch.Generator(device="cpu")
    g.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return g


#: functions that draw from a generator (``generator=`` keyword when they accept one)
_DRAWS = frozenset({
    "randn", "rand", "randint", "randperm", "normal", "bernoulli", "multinomial", "poisson",
    "normal_", "uniform_", "random_", "bernoulli_", "exponential_", "geometric_", "cauchy_", "log_normal_",
})
#: functions that always draw from the global RNG of their device (no generator argument)
_GLOBAL_DRAWS = frozenset({"rand_like", "randn_like", "randint_like", "rrelu", "rrelu_"})
#: dropout functions -> their default ``training`` (they draw only when training and p > 0)
_DROPOUTS = {"dropout": True, "dropout1d": True, "dropout2d": True, "dropout3d": True,
             "alpha_dropout": False, "feature_alpha_dropout": False}


@dataclass
class Draw:
    op: str
    generator_device: str | None  # None: the global RNG
    device: str  # where the numbers were drawn (the result's device)

    @property
    def ok(self) -> bool:
        return self.generator_device == "cpu" and self.device == "cpu"


@dataclass
class DrawLog:
    draws: list[Draw] = field(default_factory=list)

    @property
    def violations(self) -> list[Draw]:
        return [d for d in self.draws if not d.ok]


def _dropout_active(name: str, args: tuple, kwargs: dict) -> bool:
    training = kwargs.get("training", args[2] if len(args) > 2 else _DROPOUTS[name])
    p = kwargs.get("p", args[1] if len(args) > 1 else 0.5)
    return bool(training) and float(p) > 0


class _Audit(TorchFunctionMode):
    def __init__(self, log: DrawLog) -> None:
        super().__init__()
        self.log = log

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name in _DRAWS or name in _GLOBAL_DRAWS or (name in _DROPOUTS and _dropout_active(name, args, kwargs)):
            gen = kwargs.get("generator") if name in _DRAWS else None
            where = out.device.type if isinstance(out, torch.Tensor) else "cpu"
            self.log.draws.append(Draw(name, gen.device.type if isinstance(gen, torch.Generator) else None, where))
        return out


@contextmanager
def audit_draws() -> Iterator[DrawLog]:
    """``with audit_draws() as log: method.upscale(...)``; then ``log.violations`` lists every draw
    that did not use a CPU generator on the CPU."""
    log = DrawLog()
    with _Audit(log):
        yield log
