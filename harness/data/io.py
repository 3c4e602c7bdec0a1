"""Image decoding and encoding with every conversion recorded.

Metrics are defined on what a user saves: 8-bit RGB. Inputs come in every shape (gray, RGBA,
16-bit PNG/TIFF, palette); each is converted to uint8 RGB and the conversion is noted, so that
a per-image CSV says exactly what was scored.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    """An image file that cannot be decoded; carries the path for the failure record."""


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Decode ``path`` to uint8 HWC RGB, returning the array and notes on what was converted."""
    path = Path(path)
    notes: list[str] = []
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise ImageReadError(f"{path}: no such file")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ImageReadError(f"{path}: not a decodable image (empty, truncated or unknown format)")
    if img.dtype == np.uint16:
        notes.append("16-bit input rounded to 8-bit")
        img = np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        notes.append("float input clipped to [0,1] and quantised to 8-bit")
        img = np.round(np.clip(img, 0, 1) * 255.0).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageReadError(f"{path}: unsupported sample type {img.dtype}")
    if img.ndim == 2:
        notes.append("gray input replicated to RGB")
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[2] == 1:
        notes.append("gray input replicated to RGB")
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] == 4:
        notes.append("alpha channel dropped")
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise ImageReadError(f"{path}: unsupported channel count {img.shape[2]}")
    if min(img.shape[:2]) == 0:
        raise ImageReadError(f"{path}: image has zero size")
    return np.ascontiguousarray(img), notes


def write_png(path: str | Path, img: np.ndarray) -> None:
    """Write uint8 HWC RGB atomically (temp file + rename), so a crash never leaves half a PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"PNG encoding failed for {path}")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def pixel_sha256(img: np.ndarray) -> str:
    """Hash of the decoded pixels and shape: stable across PNG encoders, unlike a file hash."""
    h = hashlib.sha256()
    h.update(str(img.shape).encode())
    h.update(np.ascontiguousarray(img).tobytes())
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HWC -> float32 1CHW in [0, 1]."""
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def quantise(x: torch.Tensor) -> np.ndarray:
    """float NCHW [0,1] (N=1) -> uint8 HWC, rounding as a PNG writer would after clamping."""
    return x[0].clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
