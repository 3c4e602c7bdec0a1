"""Apply degradation records to HR images: the Real-ESRGAN second-order pipeline and MATLAB bicubic.

``degrade(hr, records)`` takes a float (B,3,H,W) batch in [0,1] on any device and one record per
sample, and returns the LR batch (B,3,H/scale,W/scale), quantised to k/255 like a saved PNG.
Intermediate sizes differ per sample (each has its own resize scales), so samples go through the
ops one at a time: an image's LR is then the same bit for bit alone or in any batch. All the
randomness is in the record (noise fields are drawn from the seeds it carries), so a record
regenerates its LR.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from srarena.harness.degradations.errors import DegradationInputError
from srarena.harness.degradations.filters import filter2d, usm_sharpen
from srarena.harness.degradations.jpeg import jpeg_compress
from srarena.harness.degradations.kernels import build_kernel, pulse_kernel
from srarena.harness.degradations.noise import gaussian_noise, poisson_noise
from srarena.harness.degradations.resize import imresize
from srarena.harness.degradations.seeding import make_generator

__all__ = ["degrade", "degrade_one", "kernel_from_record", "check_input", "quantise_float"]


def kernel_from_record(rec: Mapping[str, Any], prefix: str) -> torch.Tensor:
    """The padded float32 kernel ``prefix`` ('k1', 'k2' or 'f') a record describes."""
    pad = int(rec["kernel_pad_to"])
    if prefix == "f":
        if not rec["f_sinc"]:
            return pulse_kernel(pad).float()
        return build_kernel("sinc", int(rec["f_size"]), omega=rec["f_omega"], pad_to=pad).float()
    return build_kernel(
        rec[f"{prefix}_type"],
        int(rec[f"{prefix}_size"]),
        sigma_x=rec[f"{prefix}_sigma_x"],
        sigma_y=rec[f"{prefix}_sigma_y"],
        theta=rec[f"{prefix}_theta"],
        beta=rec[f"{prefix}_beta"],
        omega=rec[f"{prefix}_omega"],
        pad_to=pad,
    ).float()


def quantise_float(x: torch.Tensor) -> torch.Tensor:
    """clamp(round(x*255))/255: the 8-bit values a PNG of the LR will hold."""
    return torch.clamp((x * 255.0).round(), 0, 255) / 255.0


def check_input(hr: torch.Tensor, scale: int) -> None:
    """Reject inputs the pipeline would silently mangle, with a message saying what to do."""
    if not isinstance(hr, torch.Tensor) or hr.ndim != 4:
        shape = tuple(hr.shape) if isinstance(hr, torch.Tensor) else type(hr).__name__
        raise DegradationInputError(f"expected a float (B,3,H,W) tensor, got {shape}")
    if not hr.is_floating_point():
        raise DegradationInputError(
            f"expected float values in [0,1], got dtype {hr.dtype}: convert 8/16-bit images with "
            "srarena.harness.data.io.read_image + to_tensor first"
        )
    if hr.shape[1] != 3:
        raise DegradationInputError(
            f"expected 3 RGB channels, got {hr.shape[1]}: gray or RGBA images must be converted to RGB "
            "first (srarena.harness.data.io.read_image does, and notes it)"
        )
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise DegradationInputError(
            f"HR size {h}x{w} is not a multiple of the scale {scale}: modcrop it first so HR and LR align"
        )


def _interpolate(x: torch.Tensor, mode: str, size: tuple[int, int] | None = None, scale: float | None = None) -> torch.Tensor:
    """``F.interpolate`` exactly as Real-ESRGAN calls it (align_corners unset, no antialias)."""
    if size is not None and min(size) < 1:
        raise DegradationInputError(f"resize to {size[0]}x{size[1]} px: the image is too small for this scale")
    if scale is not None:
        h, w = x.shape[-2:]
        if int(h * scale) < 1 or int(w * scale) < 1:
            raise DegradationInputError(f"resize of {h}x{w} px by {scale:.3f} leaves no pixels: the image is too small")
        return F.interpolate(x, scale_factor=scale, mode=mode)
    return F.interpolate(x, size=size, mode=mode)


def _noise(x: torch.Tensor, rec: Mapping[str, Any], prefix: str) -> torch.Tensor:
    g = [make_generator(int(rec[f"{prefix}_seed"]))]
    level, gray = [float(rec[f"{prefix}_level"])], [bool(rec[f"{prefix}_gray"])]
    if rec[f"{prefix}_kind"] == "gaussian":
        return gaussian_noise(x, level, gray, g, clip=True)
    if rec[f"{prefix}_kind"] == "poisson":
        return poisson_noise(x, level, gray, g, clip=True)
    raise ValueError(f"{prefix}_kind: unknown noise kind {rec[f'{prefix}_kind']!r}")


def _second_order(hr: torch.Tensor, rec: Mapping[str, Any]) -> torch.Tensor:
    """Real-ESRGAN's ``feed_data`` for one (1,3,H,W) image, every choice taken from ``rec``."""
    sf = int(rec["scale"])
    h, w = hr.shape[-2:]
    x = usm_sharpen(hr, rec["usm_weight"], int(rec["usm_radius"]), rec["usm_threshold"]) if rec["usm"] else hr
    # Stage 1: blur -> resize -> noise -> clamp -> JPEG.
    x = filter2d(x, kernel_from_record(rec, "k1"), "stage-1 blur")
    x = _interpolate(x, rec["r1_mode"], scale=float(rec["r1_scale"]))
    x = _noise(x, rec, "n1")
    x = jpeg_compress(torch.clamp(x, 0, 1), [int(rec["j1_quality"])])
    # Stage 2: optional blur -> resize to (H/sf*s, W/sf*s) -> noise.
    if rec["b2"]:
        x = filter2d(x, kernel_from_record(rec, "k2"), "stage-2 blur")
    s2 = float(rec["r2_scale"])
    x = _interpolate(x, rec["r2_mode"], size=(int(h / sf * s2), int(w / sf * s2)))
    x = _noise(x, rec, "n2")
    # Final step, in either order: [resize to H/sf + sinc] and JPEG.
    sinc = kernel_from_record(rec, "f")
    if rec["f_order"] == "resize_first":
        x = filter2d(_interpolate(x, rec["f_mode"], size=(h // sf, w // sf)), sinc, "final sinc")
        x = jpeg_compress(torch.clamp(x, 0, 1), [int(rec["j2_quality"])])
    elif rec["f_order"] == "jpeg_first":
        x = jpeg_compress(torch.clamp(x, 0, 1), [int(rec["j2_quality"])])
        x = filter2d(_interpolate(x, rec["f_mode"], size=(h // sf, w // sf)), sinc, "final sinc")
    else:
        raise ValueError(f"f_order: expected resize_first or jpeg_first, got {rec['f_order']!r}")
    return quantise_float(x)


def degrade_one(hr: torch.Tensor, rec: Mapping[str, Any]) -> torch.Tensor:
    """LR (1,3,H/s,W/s) of one HR (1,3,H,W) from its record alone."""
    check_input(hr, int(rec["scale"]))
    if hr.shape[0] != 1:
        raise ValueError(f"degrade_one takes one image, got a batch of {hr.shape[0]}; use degrade")
    if rec["kind"] == "bicubic":
        h, w = hr.shape[-2:]
        sf = int(rec["scale"])
        return quantise_float(imresize(hr, scale=1.0 / sf, size=(h // sf, w // sf), antialias=bool(rec["antialias"])))
    if rec["kind"] == "second_order":
        return _second_order(hr, rec)
    raise ValueError(f"kind: unknown degradation kind {rec['kind']!r}")


def degrade(hr: torch.Tensor, records: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    """LR batch of an HR batch, one record per sample (per-sample parameters and noise)."""
    if isinstance(hr, torch.Tensor) and hr.ndim == 4 and len(records) != hr.shape[0]:
        raise ValueError(f"need one record per image: {hr.shape[0]} images, {len(records)} records")
    if not records:
        raise ValueError("degrade: empty batch")
    return torch.cat([degrade_one(hr[i : i + 1], rec) for i, rec in enumerate(records)], dim=0)
