"""Draw one image's degradation parameters from its own generator into a record.

The order of draws is part of the test set's definition: changing it changes every LR, so it is
fixed here and versioned by the preset's ``sampler_version``. Distributions follow Real-ESRGAN
(``RealESRGANDataset.__getitem__`` and ``RealESRGANModel.feed_data``), with one deliberate
difference: JPEG qualities are integers drawn uniformly from the closed range, because a real
encoder takes integer qualities (Real-ESRGAN feeds float qualities to DiffJPEG).
"""

from __future__ import annotations

from typing import Any

import torch

from srarena.harness.degradations.presets import BicubicPreset, Preset, SecondOrderPreset
from srarena.harness.degradations.seeding import bernoulli, choice, make_generator, randint, uniform

__all__ = ["sample_record", "SAMPLER_VERSIONS"]

SAMPLER_VERSIONS = (1,)
_DIRS = ("up", "down", "keep")
_ANISO = ("aniso", "generalized_aniso", "plateau_aniso")


def _odd(g: torch.Generator, lo: int, hi: int) -> int:
    """An odd size uniformly from {lo, lo+2, ..., hi}."""
    return lo + 2 * randint(g, 0, (hi - lo) // 2)


def _blur_kernel(g: torch.Generator, p: SecondOrderPreset, sfx: str, prefix: str) -> dict[str, Any]:
    lo, hi = getattr(p, f"kernel_sizes{sfx}")
    size = _odd(g, lo, hi)
    k: dict[str, Any] = {f"{prefix}_size": size, f"{prefix}_sigma_x": None, f"{prefix}_sigma_y": None,
                         f"{prefix}_theta": None, f"{prefix}_beta": None, f"{prefix}_omega": None}
    if bernoulli(g, getattr(p, f"sinc_prob{sfx}")):
        cut = p.sinc_cutoff_small if size < p.sinc_small_below else p.sinc_cutoff_large
        k[f"{prefix}_type"] = "sinc"
        k[f"{prefix}_omega"] = uniform(g, *cut)
        return k
    kind = choice(g, getattr(p, f"kernel_list{sfx}"), getattr(p, f"kernel_prob{sfx}"))
    k[f"{prefix}_type"] = kind
    sig = getattr(p, f"blur_sigma{sfx}")
    sx = uniform(g, *sig)
    if kind in _ANISO:
        sy, theta = uniform(g, *sig), uniform(g, *p.rotation_range)
    else:
        sy, theta = sx, 0.0
    k[f"{prefix}_sigma_x"], k[f"{prefix}_sigma_y"], k[f"{prefix}_theta"] = sx, sy, theta
    if kind.startswith(("generalized", "plateau")):
        lo_b, hi_b = getattr(p, f"betag_range{sfx}" if kind.startswith("generalized") else f"betap_range{sfx}")
        k[f"{prefix}_beta"] = uniform(g, lo_b, 1.0) if bernoulli(g, 0.5) else uniform(g, 1.0, hi_b)
    return k


def _resize(g: torch.Generator, p: SecondOrderPreset, sfx: str, prefix: str) -> dict[str, Any]:
    direction = choice(g, _DIRS, getattr(p, f"resize_prob{sfx}"))
    lo, hi = getattr(p, f"resize_range{sfx}")
    scale = uniform(g, 1.0, hi) if direction == "up" else uniform(g, lo, 1.0) if direction == "down" else 1.0
    return {f"{prefix}_dir": direction, f"{prefix}_scale": scale, f"{prefix}_mode": choice(g, p.resize_modes)}


def _noise(g: torch.Generator, p: SecondOrderPreset, sfx: str, prefix: str) -> dict[str, Any]:
    gaussian = bernoulli(g, getattr(p, f"gaussian_noise_prob{sfx}"))
    rng = getattr(p, f"noise_range{sfx}") if gaussian else getattr(p, f"poisson_scale_range{sfx}")
    return {
        f"{prefix}_kind": "gaussian" if gaussian else "poisson",
        f"{prefix}_level": uniform(g, *rng),
        f"{prefix}_gray": bernoulli(g, getattr(p, f"gray_noise_prob{sfx}")),
        # The noise field's own seed: recorded so the record alone regenerates the field.
        f"{prefix}_seed": int(torch.randint(0, 2**62, (), generator=g).item()),
    }


def sample_record(preset: Preset, seed: int, image_id: str) -> dict[str, Any]:
    """All random choices for image ``image_id`` under global ``seed``, as a flat record."""
    base = {"kind": preset.kind, "preset": preset.name, "seed": int(seed), "image_id": str(image_id), "scale": preset.scale}
    if isinstance(preset, BicubicPreset):
        return {**base, "sampler_version": 1, "antialias": preset.antialias}
    if preset.sampler_version not in SAMPLER_VERSIONS:
        raise ValueError(f"degradation.sampler_version {preset.sampler_version} is not one of {SAMPLER_VERSIONS}")
    g = make_generator(seed, str(image_id))
    rec: dict[str, Any] = {
        **base,
        "sampler_version": preset.sampler_version,
        "usm": preset.gt_usm,
        "usm_weight": preset.usm.weight,
        "usm_radius": preset.usm.radius,
        "usm_threshold": preset.usm.threshold,
        "kernel_pad_to": preset.kernel_pad_to,
    }
    # Kernels first, in the order Real-ESRGAN's dataset draws them: k1, k2, final sinc.
    rec.update(_blur_kernel(g, preset, "", "k1"))
    rec.update(_blur_kernel(g, preset, "2", "k2"))
    f_sinc = bernoulli(g, preset.final_sinc_prob)
    rec["f_sinc"] = f_sinc
    rec["f_size"] = _odd(g, *preset.final_sinc_sizes) if f_sinc else None
    rec["f_omega"] = uniform(g, *preset.final_sinc_cutoff) if f_sinc else None
    # Then the model's feed_data order: stage 1, stage 2, final step.
    rec.update(_resize(g, preset, "", "r1"))
    rec.update(_noise(g, preset, "", "n1"))
    rec["j1_quality"] = randint(g, *preset.jpeg_range)
    rec["b2"] = bernoulli(g, preset.second_blur_prob)
    rec.update(_resize(g, preset, "2", "r2"))
    rec.update(_noise(g, preset, "2", "n2"))
    rec["f_order"] = "resize_first" if bernoulli(g, preset.final_order_prob) else "jpeg_first"
    rec["f_mode"] = choice(g, preset.resize_modes)
    rec["j2_quality"] = randint(g, *preset.jpeg_range2)
    return rec
