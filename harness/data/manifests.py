"""Manifests of published datasets (``datasets/<name>.yaml``) and the check that their files are here.

srarena never downloads these sets (licences, mirrors that move): a manifest says where to get
them and which layout to unpack under ``<paths.data>/raw/<name>/``. ``locate`` checks that layout
and the file counts, and otherwise raises an error that says what to download and where to put it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from srarena import PACKAGE_ROOT
from srarena.harness.data.io import is_image

try:
    from srarena.harness.errors import DataError
except ImportError:  # pragma: no cover
    DataError = ValueError  # type: ignore[misc,assignment]

__all__ = ["DATASETS_DIR", "DatasetManifest", "Part", "MissingDatasetError", "available", "load", "raw_root", "locate", "hr_files"]

DATASETS_DIR = PACKAGE_ROOT / "datasets"


class MissingDatasetError(DataError):
    """The raw files of a manifest dataset are absent or incomplete; the message says how to fix it."""


@dataclass(frozen=True)
class FolderSpec:
    dir: str
    pattern: str
    count: int | None


@dataclass(frozen=True)
class PartSpec:
    name: str
    hr: FolderSpec
    lr: FolderSpec | None


@dataclass(frozen=True)
class DatasetManifest:
    name: str
    title: str
    homepage: str
    downloads: tuple[dict[str, Any], ...]
    scale: int | None
    parts: tuple[PartSpec, ...]
    pair: dict[str, str] | None
    path: Path


@dataclass(frozen=True)
class Part:
    """A located part: its folders and the sorted image files found in them."""

    name: str
    hr_dir: Path
    hr_files: tuple[Path, ...]
    lr_dir: Path | None
    lr_files: tuple[Path, ...]


def available(datasets_dir: Path = DATASETS_DIR) -> list[str]:
    """Names of the manifests for published datasets (the embedded set has its own module)."""
    return sorted(p.stem for p in datasets_dir.glob("*.yaml") if p.stem != "embedded")


def _folder(d: dict[str, Any] | None, where: str) -> FolderSpec | None:
    if d is None:
        return None
    try:
        return FolderSpec(dir=str(d["dir"]), pattern=str(d.get("pattern", "*")), count=d.get("count"))
    except (KeyError, TypeError) as e:
        raise DataError(f"{where}: malformed folder entry {d!r} ({e})") from None


def load(name: str, datasets_dir: Path = DATASETS_DIR) -> DatasetManifest:
    """Parse ``datasets/<name>.yaml``; an unknown name lists the known ones."""
    path = datasets_dir / f"{name}.yaml"
    if not path.is_file():
        raise DataError(f"no dataset manifest {path}; known: {', '.join(available(datasets_dir))}")
    with open(path) as f:
        m = yaml.safe_load(f)
    try:
        parts = tuple(
            PartSpec(name=str(p["name"]), hr=_folder(p["hr"], f"{path} parts.{p['name']}.hr"),  # type: ignore[arg-type]
                     lr=_folder(p.get("lr"), f"{path} parts.{p['name']}.lr"))
            for p in m["parts"]
        )
        return DatasetManifest(
            name=str(m["name"]), title=str(m.get("title", m["name"])), homepage=str(m.get("homepage", "")),
            downloads=tuple(m.get("downloads") or ()), scale=m.get("scale"), parts=parts,
            pair=m.get("pair"), path=path,
        )
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: malformed manifest, missing {e}") from None


def raw_root(manifest: DatasetManifest, data_root: str | Path) -> Path:
    """Where the user unpacks the raw files: ``<paths.data>/raw/<name>``."""
    return Path(data_root).expanduser() / "raw" / manifest.name


def _howto(manifest: DatasetManifest, root: Path) -> str:
    lines = [f"Download {manifest.title} ({manifest.homepage}) and place it under {root}:"]
    for d in manifest.downloads:
        sha = f" (sha256 {d['sha256']})" if d.get("sha256") else ""
        lines.append(f"  - {d.get('url')}{sha}: {str(d.get('unpack', '')).replace('<root>', str(root))}")
    lines.append("  expected layout:")
    for p in manifest.parts:
        for role, spec in (("HR", p.hr), ("LR", p.lr)):
            if spec is not None:
                n = f"{spec.count} files" if spec.count is not None else "files"
                lines.append(f"    {root / spec.dir}/{spec.pattern}  ({role}, {n})")
    return "\n".join(lines)


def _scan(root: Path, spec: FolderSpec, problems: list[str]) -> tuple[Path, tuple[Path, ...]]:
    folder = root / spec.dir
    if not folder.is_dir():
        problems.append(f"missing folder {folder}")
        return folder, ()
    files = tuple(sorted(p for p in folder.glob(spec.pattern) if p.is_file() and is_image(p)))
    if spec.count is not None and len(files) != spec.count:
        problems.append(f"{folder}/{spec.pattern}: found {len(files)} images, expected {spec.count}")
    return folder, files


def locate(manifest: DatasetManifest | str, data_root: str | Path) -> list[Part]:
    """The dataset's parts under ``<data_root>/raw/<name>``, checked against the manifest.

    Raises MissingDatasetError naming what is missing, what to download and where to put it.
    """
    if isinstance(manifest, str):
        manifest = load(manifest)
    root = raw_root(manifest, data_root)
    problems: list[str] = []
    parts = []
    for p in manifest.parts:
        hr_dir, hr = _scan(root, p.hr, problems)
        lr_dir, lr = _scan(root, p.lr, problems) if p.lr else (None, ())
        parts.append(Part(p.name, hr_dir, hr, lr_dir, lr))
    if problems:
        raise MissingDatasetError(
            f"dataset {manifest.name!r} is not ready: " + "; ".join(dict.fromkeys(problems)) + "\n" + _howto(manifest, root)
        )
    return parts


def hr_files(manifest: DatasetManifest | str, data_root: str | Path) -> list[Path]:
    """All HR files of a located dataset, part by part, sorted within each part."""
    return [f for part in locate(manifest, data_root) for f in part.hr_files]
