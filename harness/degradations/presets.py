"""Degradation presets: load a ``conf/degradation/*.yaml`` mapping into a validated, frozen object.

Validation happens once, at load time, so a typo or an impossible range fails before any image is
touched, with a message that names the key (``degradation.jpeg_range: lo 95 > hi 30``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from srarena.harness.degradations.errors import DegradationConfigError
from srarena.harness.degradations.kernels import KERNEL_TYPES

__all__ = ["SecondOrderPreset", "BicubicPreset", "Preset", "load_preset", "RESIZE_MODES"]

RESIZE_MODES = ("area", "bilinear", "bicubic")
Range = tuple[float, float]


@dataclass(frozen=True)
class UsmSettings:
    weight: float
    radius: int
    threshold: float


@dataclass(frozen=True)
class SecondOrderPreset:
    """Every knob of the Real-ESRGAN second-order model (see conf/degradation/realesrgan.yaml)."""

    name: str
    kind: str
    scale: int
    sampler_version: int
    kernel_sizes: Range
    kernel_list: tuple[str, ...]
    kernel_prob: tuple[float, ...]
    sinc_prob: float
    blur_sigma: Range
    betag_range: Range
    betap_range: Range
    resize_prob: tuple[float, ...]
    resize_range: Range
    gaussian_noise_prob: float
    noise_range: Range
    poisson_scale_range: Range
    gray_noise_prob: float
    jpeg_range: Range
    second_blur_prob: float
    kernel_sizes2: Range
    kernel_list2: tuple[str, ...]
    kernel_prob2: tuple[float, ...]
    sinc_prob2: float
    blur_sigma2: Range
    betag_range2: Range
    betap_range2: Range
    resize_prob2: tuple[float, ...]
    resize_range2: Range
    gaussian_noise_prob2: float
    noise_range2: Range
    poisson_scale_range2: Range
    gray_noise_prob2: float
    jpeg_range2: Range
    final_order_prob: float
    final_sinc_prob: float
    final_sinc_sizes: Range
    final_sinc_cutoff: Range
    kernel_pad_to: int
    rotation_range: Range
    sinc_small_below: int
    sinc_cutoff_small: Range
    sinc_cutoff_large: Range
    resize_modes: tuple[str, ...]
    gt_usm: bool
    usm: UsmSettings


@dataclass(frozen=True)
class BicubicPreset:
    """MATLAB bicubic downscaling by ``scale`` (the non-blind protocol)."""

    name: str
    kind: str
    scale: int
    antialias: bool = True


Preset = SecondOrderPreset | BicubicPreset


def _err(key: str, msg: str) -> DegradationConfigError:
    return DegradationConfigError(f"degradation.{key}: {msg}")


def _number(key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(float(v)):
        raise _err(key, f"expected a number, got {v!r}")
    return float(v)


def _prob(key: str, v: Any) -> float:
    p = _number(key, v)
    if not 0.0 <= p <= 1.0:
        raise _err(key, f"probability {p} is outside [0, 1]")
    return p


def _probs(key: str, v: Any, n: int | None = None) -> tuple[float, ...]:
    if not isinstance(v, (list, tuple)) or not v:
        raise _err(key, f"expected a list of probabilities, got {v!r}")
    ps = tuple(_prob(f"{key}[{i}]", x) for i, x in enumerate(v))
    if n is not None and len(ps) != n:
        raise _err(key, f"expected {n} probabilities, got {len(ps)}")
    if abs(sum(ps) - 1.0) > 1e-6:
        raise _err(key, f"probabilities sum to {sum(ps):g}, not 1")
    return ps


def _range(key: str, v: Any, lo_bound: float | None = None, hi_bound: float | None = None) -> Range:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise _err(key, f"expected a [lo, hi] pair, got {v!r}")
    lo, hi = _number(f"{key}[0]", v[0]), _number(f"{key}[1]", v[1])
    if lo > hi:
        raise _err(key, f"lo {lo:g} > hi {hi:g}")
    if lo_bound is not None and lo < lo_bound:
        raise _err(key, f"lo {lo:g} is below {lo_bound:g}")
    if hi_bound is not None and hi > hi_bound:
        raise _err(key, f"hi {hi:g} is above {hi_bound:g}")
    return lo, hi


def _int(key: str, v: Any, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise _err(key, f"expected an integer >= {minimum}, got {v!r}")
    return v


def _odd_sizes(key: str, v: Any, pad_to: int) -> Range:
    lo, hi = _range(key, v, 1, pad_to)
    if lo != int(lo) or hi != int(hi) or int(lo) % 2 == 0 or int(hi) % 2 == 0:
        raise _err(key, f"kernel sizes must be odd integers, got {v!r}")
    return int(lo), int(hi)


def _names(key: str, v: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(v, (list, tuple)) or not v:
        raise _err(key, f"expected a list of names, got {v!r}")
    bad = [x for x in v if x not in allowed]
    if bad:
        raise _err(key, f"unknown {bad}; allowed: {list(allowed)}")
    return tuple(str(x) for x in v)


def _beta(key: str, v: Any) -> Range:
    lo, hi = _range(key, v, 0.0)
    if not lo <= 1.0 <= hi or lo <= 0:
        raise _err(key, f"beta is drawn from U(lo, 1) or U(1, hi): need 0 < lo <= 1 <= hi, got {v!r}")
    return lo, hi


def _plain(cfg: Any) -> dict[str, Any]:
    """A plain dict from a DictConfig or mapping, with interpolations resolved."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(cfg, Mapping):
        raise DegradationConfigError(f"degradation: expected a mapping, got {type(cfg).__name__}")
    return dict(cfg)


def _second_order(c: dict[str, Any]) -> SecondOrderPreset:
    pad = _int("kernel_pad_to", c["kernel_pad_to"])
    if pad % 2 == 0:
        raise _err("kernel_pad_to", f"must be odd, got {pad}")
    out: dict[str, Any] = {"name": str(c["name"]), "kind": "second_order"}
    out["scale"] = _int("scale", c["scale"])
    out["sampler_version"] = _int("sampler_version", c["sampler_version"])
    out["kernel_pad_to"] = pad
    for sfx in ("", "2"):
        out[f"kernel_sizes{sfx}"] = _odd_sizes(f"kernel_sizes{sfx}", c[f"kernel_sizes{sfx}"], pad)
        out[f"kernel_list{sfx}"] = _names(f"kernel_list{sfx}", c[f"kernel_list{sfx}"], KERNEL_TYPES)
        out[f"kernel_prob{sfx}"] = _probs(f"kernel_prob{sfx}", c[f"kernel_prob{sfx}"], len(out[f"kernel_list{sfx}"]))
        out[f"sinc_prob{sfx}"] = _prob(f"sinc_prob{sfx}", c[f"sinc_prob{sfx}"])
        out[f"blur_sigma{sfx}"] = _range(f"blur_sigma{sfx}", c[f"blur_sigma{sfx}"], 1e-6)
        out[f"betag_range{sfx}"] = _beta(f"betag_range{sfx}", c[f"betag_range{sfx}"])
        out[f"betap_range{sfx}"] = _beta(f"betap_range{sfx}", c[f"betap_range{sfx}"])
        out[f"resize_prob{sfx}"] = _probs(f"resize_prob{sfx}", c[f"resize_prob{sfx}"], 3)
        rr = _range(f"resize_range{sfx}", c[f"resize_range{sfx}"], 1e-6)
        if not rr[0] <= 1.0 <= rr[1]:
            raise _err(f"resize_range{sfx}", f"down-scales come from [lo, 1] and up-scales from [1, hi]: need lo <= 1 <= hi, got {list(rr)}")
        out[f"resize_range{sfx}"] = rr
        out[f"gaussian_noise_prob{sfx}"] = _prob(f"gaussian_noise_prob{sfx}", c[f"gaussian_noise_prob{sfx}"])
        out[f"noise_range{sfx}"] = _range(f"noise_range{sfx}", c[f"noise_range{sfx}"], 0.0)
        out[f"poisson_scale_range{sfx}"] = _range(f"poisson_scale_range{sfx}", c[f"poisson_scale_range{sfx}"], 0.0)
        out[f"gray_noise_prob{sfx}"] = _prob(f"gray_noise_prob{sfx}", c[f"gray_noise_prob{sfx}"])
        jr = _range(f"jpeg_range{sfx}", c[f"jpeg_range{sfx}"], 0, 100)
        if jr[0] != int(jr[0]) or jr[1] != int(jr[1]):
            raise _err(f"jpeg_range{sfx}", f"JPEG qualities are integers, got {list(jr)}")
        out[f"jpeg_range{sfx}"] = (int(jr[0]), int(jr[1]))
    out["second_blur_prob"] = _prob("second_blur_prob", c["second_blur_prob"])
    out["final_order_prob"] = _prob("final_order_prob", c["final_order_prob"])
    out["final_sinc_prob"] = _prob("final_sinc_prob", c["final_sinc_prob"])
    out["final_sinc_sizes"] = _odd_sizes("final_sinc_sizes", c["final_sinc_sizes"], pad)
    out["final_sinc_cutoff"] = _range("final_sinc_cutoff", c["final_sinc_cutoff"], 1e-6, math.pi)
    out["rotation_range"] = _range("rotation_range", c["rotation_range"])
    out["sinc_small_below"] = _int("sinc_small_below", c["sinc_small_below"])
    out["sinc_cutoff_small"] = _range("sinc_cutoff_small", c["sinc_cutoff_small"], 1e-6, math.pi)
    out["sinc_cutoff_large"] = _range("sinc_cutoff_large", c["sinc_cutoff_large"], 1e-6, math.pi)
    out["resize_modes"] = _names("resize_modes", c["resize_modes"], RESIZE_MODES)
    if not isinstance(c["gt_usm"], bool):
        raise _err("gt_usm", f"expected true or false, got {c['gt_usm']!r}")
    out["gt_usm"] = c["gt_usm"]
    u = c["usm"]
    if not isinstance(u, Mapping) or set(u) != {"weight", "radius", "threshold"}:
        raise _err("usm", f"expected {{weight, radius, threshold}}, got {u!r}")
    out["usm"] = UsmSettings(
        weight=_number("usm.weight", u["weight"]),
        radius=_int("usm.radius", u["radius"]),
        threshold=_number("usm.threshold", u["threshold"]),
    )
    return SecondOrderPreset(**out)


def _bicubic(c: dict[str, Any]) -> BicubicPreset:
    if not isinstance(c.get("antialias", True), bool):
        raise _err("antialias", f"expected true or false, got {c['antialias']!r}")
    return BicubicPreset(name=str(c["name"]), kind="bicubic", scale=_int("scale", c["scale"]), antialias=c.get("antialias", True))


_KINDS = {"second_order": SecondOrderPreset, "bicubic": BicubicPreset}


def load_preset(cfg: Any) -> Preset:
    """Validate a degradation config (DictConfig or mapping) and return its frozen preset.

    Unknown and missing keys are errors too: a misspelt key would otherwise silently keep the
    default it meant to change.
    """
    c = _plain(cfg)
    kind = c.get("kind")
    if kind not in _KINDS:
        raise _err("kind", f"expected one of {sorted(_KINDS)}, got {kind!r}")
    expected = {f.name for f in fields(_KINDS[kind])}
    optional = {"antialias"} if kind == "bicubic" else set()
    missing = sorted(expected - set(c) - optional)
    if missing:
        raise _err(missing[0], f"missing (also missing: {missing[1:]})" if len(missing) > 1 else "missing")
    unknown = sorted(set(c) - expected)
    if unknown:
        raise _err(unknown[0], f"unknown key for kind {kind!r} (all unknown: {unknown})")
    return _second_order(c) if kind == "second_order" else _bicubic(c)
