"""JPEG compression through libjpeg (OpenCV): the codec real images were saved with.

BasicSR's training pipeline uses DiffJPEG, a differentiable approximation that differs from a
real codec; a test set should contain what a real encoder produces, so this op encodes and
decodes with ``cv2.imencode`` at an integer quality. It is the one op that passes through host
memory; the result is moved back to the input's device.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

__all__ = ["jpeg_roundtrip_uint8", "jpeg_compress"]


def jpeg_roundtrip_uint8(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode uint8 HWC RGB as JPEG at ``quality`` (0-100) and decode it again."""
    if not 0 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in [0, 100], got {quality}")
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("cv2.imencode failed to encode JPEG")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def jpeg_compress(x: torch.Tensor, quality: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """JPEG round trip of each (C=3) sample of ``x`` in [0,1] at its own integer quality.

    Values are clamped and rounded to 8 bits first (what saving a file does); the output is
    k/255 values in the input's dtype and device.
    """
    b, c = x.shape[:2]
    qs = quality.tolist() if isinstance(quality, torch.Tensor) else list(quality)
    if len(qs) != b:
        raise ValueError(f"jpeg_compress: need one quality per sample ({b}), got {len(qs)}")
    if c != 3:
        raise ValueError(f"jpeg_compress: expected 3 channels, got {c}")
    u8 = (x.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.stack([jpeg_roundtrip_uint8(np.ascontiguousarray(u8[i]), int(qs[i])) for i in range(b)])
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype) / 255.0
