"""The embedded default set: real photographs that ship inside registry packages' wheels.

Nothing is downloaded: each image is read from an installed package (scikit-image,
scikit-learn, matplotlib), processed by the recipe in ``datasets/embedded.yaml`` (centre crop
for ``eval``, full image for ``train``) and written once as PNG under the data directory. The
manifest pins each image's pixel hash; a mismatch (a package that changed its copy or its
decoder) is reported, not hidden.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from srarena import PACKAGE_ROOT
from srarena.harness.data.io import pixel_sha256, read_image, write_png
from srarena.harness.errors import DataError

log = logging.getLogger(__name__)

MANIFEST = PACKAGE_ROOT / "datasets" / "embedded.yaml"
SPLITS = ("eval", "train")


def load_manifest(path: Path = MANIFEST) -> dict[str, Any]:
    with open(path) as f:
        manifest = yaml.safe_load(f)
    ids = [im["id"] for im in manifest["images"]]
    if len(ids) != len(set(ids)):
        raise DataError(f"{path}: duplicate image ids")
    return manifest


def source_path(origin: dict[str, str]) -> Path:
    """Locate a file inside an installed package without importing the package."""
    spec = importlib.util.find_spec(origin["package"])
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"package {origin['package']!r} is not installed; the embedded set needs it "
            f"(pip install {origin['distribution']})"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / origin["path"]
    if not path.is_file():
        raise DataError(f"{path} is missing from the installed {origin['distribution']}")
    return path


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    if h < size or w < size:
        raise DataError(f"image {h}x{w} is smaller than the {size}x{size} crop")
    top, left = (h - size) // 2, (w - size) // 2
    return img[top : top + size, left : left + size]


def process(img: np.ndarray, split: str, recipe: dict[str, Any]) -> np.ndarray:
    crop = recipe.get(f"{split}_crop")
    return centre_crop(img, int(crop)) if crop else img


def ensure_embedded(data_root: str | Path, split: str, manifest_path: Path = MANIFEST) -> Path:
    """Build (once) and return the folder of HR PNGs of one split of the embedded set."""
    if split not in SPLITS:
        raise DataError(f"embedded set has splits {SPLITS}, not {split!r}")
    manifest = load_manifest(manifest_path)
    out = Path(data_root).expanduser() / "embedded" / f"v{manifest['version']}" / split / "HR"
    stamp = out.parent / "built.json"
    wanted = {im["id"]: im for im in manifest["images"] if im["split"] == split}
    if stamp.is_file():
        built = json.loads(stamp.read_text())
        if set(built.get("ids", [])) == set(wanted) and all((out / f"{i}.png").is_file() for i in wanted):
            return out
    mismatches = []
    for image_id, entry in wanted.items():
        img, _notes = read_image(source_path(entry["origin"]))
        img = process(img, split, manifest["recipe"])
        digest = pixel_sha256(img)
        if entry.get("sha256") and digest != entry["sha256"]:
            mismatches.append(image_id)
            log.warning(
                "embedded image %s differs from the manifest (sha256 %s, expected %s): the "
                "installed %s ships a different copy; numbers may not match published ones",
                image_id, digest[:12], entry["sha256"][:12], entry["origin"]["distribution"],
            )
        write_png(out / f"{image_id}.png", img)
    stamp.write_text(json.dumps({"ids": sorted(wanted), "hash_mismatches": mismatches}, indent=1))
    return out
