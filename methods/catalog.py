"""The one method registry: ``conf/method/<name>.yaml`` (Hydra's config group).

A method's name is the file name a user types (``method=sr3_demo``), and that name is what the
CLI, MLflow tags, the leaderboard and the gate show. Classes carry no name of their own — one
class serves several YAMLs (``rrdbnet``, ``rrdbnet_demo``, ``realesrgan_x4plus``) — so there is
nothing to register in Python: a module with a class plus a YAML whose ``_target_`` names it is
a method. Code that builds a method by name (a cascade of methods, notebooks, tests) goes
through :func:`build_method`, which reads the same YAML the CLI composes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from srarena import PACKAGE_ROOT
from srarena.methods.base import MethodError

METHOD_CONF: Path = PACKAGE_ROOT / "conf" / "method"


def method_names() -> list[str]:
    """Every method a user can select, sorted."""
    return sorted(p.stem for p in METHOD_CONF.glob("*.yaml"))


def method_config(name: str, overrides: Iterable[str] = ()) -> Any:
    """The method's YAML as an OmegaConf node, with ``key=value`` overrides applied."""
    from omegaconf import OmegaConf

    path = METHOD_CONF / f"{name}.yaml"
    if not path.is_file():
        raise MethodError(f"unknown method {name!r}. Available: {', '.join(method_names())}")
    cfg = OmegaConf.load(path)
    overrides = list(overrides)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides)) if overrides else cfg


def name_method(method: Any, name: str) -> Any:
    """Give an instantiated method the name it was selected by (messages, profiler warnings)."""
    try:
        method.name = str(name)
    except AttributeError:  # a read-only attribute on some foreign object: leave it
        pass
    return method


def build_method(name: str, overrides: Iterable[str] = (), device: str | None = None) -> Any:
    """Instantiate ``conf/method/<name>.yaml`` (as ``method=<name>`` would), named and placed."""
    import hydra

    method = name_method(hydra.utils.instantiate(method_config(name, overrides)), name)
    return method.to(device) if device is not None and hasattr(method, "to") else method
