"""Reading published weight files safely: plain tensor state dicts only, every failure named.

Official SR releases come as pickles (``.pth``) in three layouts: ``{"params_ema": sd}`` and
``{"params": sd}`` (BasicSR / Real-ESRGAN), or the bare state dict (ESRGAN, BSRGAN). Pickles can
run code, so they are read with ``torch.load(weights_only=True)``; safetensors is preferred and
needs nothing of the sort. Anything that is not a mapping of names to tensors is refused with a
message naming the file, because "unpickling failed" or a ``KeyError`` deep in ``load_state_dict``
tells a user nothing about which of their files is wrong.

Two ways to load: :func:`load_into` is strict (every key, every shape — a full checkpoint);
:func:`load_partial` loads the shared keys of an adapter or partial file and reports the rest,
refusing only what falls outside the prefixes the caller allows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch

from srarena import PACKAGE_ROOT
from srarena.methods.base import MethodError

StateDict = dict[str, torch.Tensor]

#: Wrappers that official releases put around the state dict, in order of preference: the EMA
#: weights are the ones every paper evaluates.
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model")


class CheckpointError(MethodError):
    """A weight file that is not a usable state dict (malformed, wrong layout, wrong shapes)."""


def _read_safetensors(path: Path) -> tuple[StateDict, dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except Exception as e:  # safetensors raises its own SafetensorError / OSError variants
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None


def _read_torch(path: Path) -> tuple[StateDict, dict[str, str]]:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(
            f"{path}: cannot be read as a plain tensor state dict with torch.load(weights_only=True)"
            f" ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). srarena refuses "
            "pickles holding code or arbitrary objects; convert it to safetensors or a state dict."
        ) from None
    return unwrap_state_dict(obj, path), {}


#: Readers by file suffix; other modules (e.g. :mod:`srarena.methods.ncnn_import`) add theirs.
READERS: dict[str, Callable[[Path], tuple[StateDict, dict[str, str]]]] = {
    ".safetensors": _read_safetensors,
    ".pth": _read_torch,
    ".pt": _read_torch,
    ".ckpt": _read_torch,
    ".bin": _read_torch,
}


def unwrap_state_dict(obj: object, path: Path | str) -> StateDict:
    """``params_ema`` > ``params`` > bare; strips ``module.`` (DataParallel); checks types."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            obj = inner
            break
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(
            f"{path}: not a plain tensor state dict: entries {bad[:5]} are not tensors "
            f"(top-level keys: {list(obj)[:8]}; expected one of {WRAPPER_KEYS} or bare tensors)"
        )
    if not obj:
        raise CheckpointError(f"{path}: the state dict is empty")
    prefix = "module."
    if all(k.startswith(prefix) for k in obj):
        obj = {k[len(prefix):]: v for k, v in obj.items()}
    return dict(obj)


def read_state_dict(path: str | Path) -> tuple[StateDict, dict[str, str]]:
    """Tensors and (safetensors) metadata of a weight file, chosen by its suffix."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weight file")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise CheckpointError(f"{path}: unknown weight format {path.suffix!r}; known: {sorted(READERS)}")
    return reader(path)


def save_safetensors(path: str | Path, state: Mapping[str, torch.Tensor], meta: Mapping[str, object]) -> None:
    """Write contiguous CPU tensors plus JSON-encoded metadata (safetensors wants str -> str)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=text)
    tmp.replace(path)


def load_into(module: torch.nn.Module, state: Mapping[str, torch.Tensor], path: Path | str) -> None:
    """``load_state_dict(strict=True)`` with a readable message on missing/extra/misshaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if extra:
            parts.append(f"{len(extra)} unexpected (e.g. {extra[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes (e.g. {shapes[:2]})")
        raise CheckpointError(
            f"{path}: does not fit {type(module).__name__}: " + "; ".join(parts)
            + ". Check the method's architecture options against the file."
        )
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_partial` did: keys the module kept from its own init, keys of the file it
    ignored, and how many tensors it copied."""

    missing: list[str]
    unexpected: list[str]
    loaded: int


def _outside(keys: list[str], allowed: Sequence[str]) -> list[str]:
    return [k for k in keys if not any(k.startswith(p) for p in allowed)]


def load_partial(
    module: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    path: Path | str,
    *,
    allow_missing: Sequence[str] = (),
    allow_unexpected: Sequence[str] = (),
) -> LoadReport:
    """Load the keys ``state`` and ``module`` share; report the rest (adapters, partial files).

    An adapter file (LoRA, a fine-tuned head) holds only some of a model's tensors, and a base
    model file lacks the adapter's: ``allow_missing`` / ``allow_unexpected`` are key prefixes
    that may legitimately be absent from the file / absent from the module (``""`` allows any).
    Anything outside them, and any shape mismatch whatever the prefixes, raises a
    :class:`CheckpointError` naming the keys before a single tensor is copied, so a wrong file
    never half-loads. Values are cast to the module's dtypes.
    """
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    bad_missing, bad_unexpected = _outside(missing, allow_missing), _outside(unexpected, allow_unexpected)
    if bad_missing or bad_unexpected or shapes:
        parts = []
        if bad_missing:
            parts.append(f"{len(bad_missing)} missing outside {list(allow_missing)}: {bad_missing[:8]}")
        if bad_unexpected:
            parts.append(f"{len(bad_unexpected)} unexpected outside {list(allow_unexpected)}: {bad_unexpected[:8]}")
        if shapes:
            parts.append(f"{len(shapes)} with other shapes: {shapes[:4]}")
        raise CheckpointError(f"{path}: does not fit {type(module).__name__}: " + "; ".join(parts))
    shared = {k: state[k].to(own[k].dtype) for k in own if k in state}
    result = module.load_state_dict(shared, strict=False)
    assert not result.unexpected_keys  # shared keys only
    return LoadReport(missing=missing, unexpected=unexpected, loaded=len(shared))




def locate(ref: str) -> Path:
    """A weight reference from a config: a registered :class:`~srarena.harness.weights.WeightSpec` key
    (resolved through the weights directory), one file of a bundle as ``<bundle key>[<role>]``,
    or a file path (absolute, relative to the working directory, or relative to the repository
    for the committed demo checkpoints)."""
    from srarena.harness.weights import WeightBundle, registered_weights, resolve_bundle, resolve_weights

    known = registered_weights()
    spec = known.get(ref)
    if isinstance(spec, WeightBundle):
        roles = [f.role for f in spec.files]
        raise CheckpointError(
            f"weights {ref!r} is a bundle of {len(roles)} files; name one as {ref}[<role>] (roles: {roles}) "
            "or resolve the whole set with srarena.harness.weights.resolve_bundle"
        )
    if spec is not None:
        return resolve_weights(spec)
    if ref.endswith("]") and "[" in ref:
        key, role = ref[:-1].split("[", 1)
        bundle = known.get(key)
        if isinstance(bundle, WeightBundle):
            bundle.file(role)  # KeyError naming the roles if there is no such file
            return resolve_bundle(bundle)[role]
    path = Path(ref).expanduser()
    for candidate in (path, PACKAGE_ROOT / path):
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"weights {ref!r}: neither a registered weight key nor an existing file "
        f"(looked at {path.resolve()} and {PACKAGE_ROOT / path}); `srarena weights status` lists keys"
    )
