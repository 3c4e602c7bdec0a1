"""Paired (HR, LR) datasets read from folders, paired by filename stem.

Pairing by sorted order silently misaligns a whole benchmark when one file is missing; pairing
by stem makes a missing file a reported, per-image failure instead. When no LR folder is given,
LR images are synthesised from the modcropped HR with the MATLAB bicubic, as SR papers do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from srarena.harness.data.io import is_image, quantise, read_image, to_tensor
from srarena.harness.degradations.resize import imresize
from srarena.harness.errors import DataError


@dataclass
class Pair:
    id: str
    hr: np.ndarray  # uint8 HWC RGB, modcropped to a multiple of the scale
    lr: np.ndarray  # uint8 HWC RGB, exactly hr / scale
    meta: dict[str, Any] = field(default_factory=dict)


class PairError(DataError):
    """One image of the set cannot be used; the runner records it and goes on."""


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def bicubic_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """LR = round(clamp(MATLAB imresize(HR, 1/scale))), what ``im2uint8(imresize(...))`` gives."""
    x = to_tensor(hr).double()
    return quantise(imresize(x, scale=1.0 / scale))


def _index(folder: Path, suffix: str = "") -> tuple[dict[str, Path], list[str]]:
    """Images of ``folder`` by id. With a ``suffix`` (``x4``, ``_HR``), only stems ending in it
    count and the id is the stem without it — so HR and LR may even share one folder (RealSR)."""
    files: dict[str, Path] = {}
    dupes: list[str] = []
    for p in sorted(folder.iterdir()):
        if not (p.is_file() and is_image(p)):
            continue
        stem = p.stem
        if suffix:
            if not stem.endswith(suffix) or stem == suffix:
                continue
            stem = stem[: -len(suffix)]
        if stem in files:
            dupes.append(f"{files[stem].name} / {p.name}")
            continue
        files[stem] = p
    return files, dupes


class PairedFolderDataset:
    """HR folder (+ optional LR folder) -> :class:`Pair` per image id (the HR file stem)."""

    def __init__(
        self,
        hr_dir: str | Path,
        scale: int,
        lr_dir: str | Path | None = None,
        name: str | None = None,
        lr_suffix: str = "",
        hr_suffix: str = "",
        limit: int | None = None,
    ) -> None:
        self.hr_dir = Path(hr_dir).expanduser()
        self.lr_dir = Path(lr_dir).expanduser() if lr_dir else None
        self.scale = int(scale)
        self.name = name or self.hr_dir.parent.name
        if self.scale < 1:
            raise DataError(f"scale must be a positive integer, got {scale}")
        for label, d in (("HR", self.hr_dir), ("LR", self.lr_dir)):
            if d is not None and not d.is_dir():
                raise DataError(
                    f"{label} folder {d} does not exist; set dataset.hr_dir/dataset.lr_dir to an "
                    f"existing folder of images (e.g. `srarena dataset=folder dataset.hr_dir=/path/HR`)"
                )
        self._hr, dupes = _index(self.hr_dir, hr_suffix)
        if dupes:
            raise DataError(f"{self.hr_dir}: several files share a stem: {', '.join(dupes)}")
        if not self._hr:
            raise DataError(f"{self.hr_dir} holds no images ({', '.join(('png', 'jpg', 'bmp', 'tif'))})")
        self._lr: dict[str, Path] = {}
        self.unmatched_lr: list[str] = []
        if self.lr_dir is not None:
            self._lr, dupes = _index(self.lr_dir, lr_suffix)
            if dupes:
                raise DataError(f"{self.lr_dir}: several files share a stem: {', '.join(dupes)}")
            self.unmatched_lr = sorted(set(self._lr) - set(self._hr))
        self.ids = sorted(self._hr)[: limit or None]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def unmatched_hr(self) -> list[str]:
        return sorted(set(self._hr) - set(self._lr)) if self.lr_dir is not None else []

    def load(self, image_id: str) -> Pair:
        notes: list[str] = []
        hr, hr_notes = read_image(self._hr[image_id])
        notes += [f"HR: {n}" for n in hr_notes]
        cropped = modcrop(hr, self.scale)
        if cropped.shape != hr.shape:
            notes.append(f"HR modcropped from {hr.shape[0]}x{hr.shape[1]} to {cropped.shape[0]}x{cropped.shape[1]}")
        if min(cropped.shape[:2]) < self.scale:
            raise PairError(f"{image_id}: HR {hr.shape[0]}x{hr.shape[1]} is smaller than the scale x{self.scale}")
        meta: dict[str, Any] = {"hr_path": str(self._hr[image_id])}
        if self.lr_dir is None:
            lr = bicubic_lr(cropped, self.scale)
            meta["lr_source"] = "matlab_bicubic"
        else:
            if image_id not in self._lr:
                raise PairError(f"{image_id}: no LR file with this stem in {self.lr_dir}")
            lr, lr_notes = read_image(self._lr[image_id])
            notes += [f"LR: {n}" for n in lr_notes]
            meta.update(lr_source="file", lr_path=str(self._lr[image_id]))
            want = (cropped.shape[0] // self.scale, cropped.shape[1] // self.scale)
            if lr.shape[:2] != want:
                raise PairError(
                    f"{image_id}: LR is {lr.shape[0]}x{lr.shape[1]}, expected {want[0]}x{want[1]} "
                    f"for HR {cropped.shape[0]}x{cropped.shape[1]} at x{self.scale}"
                )
        meta["notes"] = notes
        return Pair(image_id, cropped, lr, meta)

    def __iter__(self) -> Iterator[Pair]:
        for image_id in self.ids:
            yield self.load(image_id)


def embedded_dataset(data_root: str | Path, scale: int, split: str = "eval", limit: int | None = None) -> PairedFolderDataset:
    """The embedded default set as a paired dataset (LR by MATLAB bicubic)."""
    from srarena.harness.data.embedded import ensure_embedded

    return PairedFolderDataset(ensure_embedded(data_root, split), scale=scale, name="embedded", limit=limit)


def manifest_dataset(
    name: str, data_root: str | Path, scale: int, part: str | None = None, limit: int | None = None
) -> PairedFolderDataset:
    """A published dataset described by ``datasets/<name>.yaml`` and unpacked under
    ``<data_root>/raw/<name>``; a missing download fails with what to fetch and where to put it."""
    from srarena.harness.data.manifests import load, locate

    manifest = load(name)
    parts = locate(manifest, data_root)
    if part is None and len(parts) > 1:
        raise DataError(f"dataset {name!r} has parts {[p.name for p in parts]}; choose one with dataset.part=NAME")
    chosen = parts[0] if part is None else next((p for p in parts if p.name == part), None)
    if chosen is None:
        raise DataError(f"dataset {name!r} has no part {part!r}; parts: {[p.name for p in parts]}")
    if manifest.scale and int(manifest.scale) != int(scale):
        raise DataError(f"dataset {name!r} holds x{manifest.scale} pairs; run it with scale={manifest.scale}")
    pair = manifest.pair or {}
    return PairedFolderDataset(
        chosen.hr_dir, scale=scale, lr_dir=chosen.lr_dir, name=name if part is None else f"{name}_{part}",
        lr_suffix=pair.get("lr_suffix", ""), hr_suffix=pair.get("hr_suffix", ""), limit=limit,
    )
