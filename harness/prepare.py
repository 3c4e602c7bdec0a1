"""``srarena prepare``: write a degraded test set (HR, LR, manifest.csv, dataset.yaml) to the data cache.

This is the only module of the degradation work with side effects. It plans the pairs (ids,
crop boxes) from the source, degrades each HR crop with its own seeded record, and writes files
atomically. A second call with the same settings decodes every file, compares its pixel hash to
manifest.csv and writes nothing; a file that changed is reported, and rewritten only with
``overwrite=true``. Per-image problems (unreadable file, image smaller than the crop or kernel)
become rows of failures.csv instead of stopping the run.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from srarena.harness.data.io import ImageReadError, file_sha256, is_image, pixel_sha256, quantise, read_image, to_tensor, write_png
from srarena.harness.degradations.errors import DegradationInputError
from srarena.harness.degradations.pipeline import degrade_one
from srarena.harness.degradations.presets import Preset, load_preset
from srarena.harness.degradations.records import from_row, record_fields, to_row
from srarena.harness.degradations.sampling import sample_record
from srarena.harness.degradations.seeding import make_generator, randint
from srarena.harness.devices import resolve_device
from srarena.harness.errors import ConfigError, DataError

log = logging.getLogger(__name__)

__all__ = ["run_prepare", "prepare", "PrepareSettings", "PrepareReport", "plan_crops", "MANIFEST_COLUMNS"]

MANIFEST_COLUMNS = (
    "id", "source", "source_sha256", "crop_top", "crop_left", "crop_height", "crop_width",
    "hr_file", "lr_file", "hr_sha256", "lr_sha256", "notes",
)


@dataclass(frozen=True)
class PrepareSettings:
    """Everything ``prepare`` needs, resolved from the Hydra config (paths made absolute)."""

    name: str
    out_dir: Path
    source_kind: str  # folder | dataset | embedded
    source_name: str
    source_root: Path
    files: tuple[Path, ...]
    preset: Preset
    preset_cfg: dict[str, Any]
    seed: int
    crop_size: int | None
    per_image: int
    limit: int | None
    device: torch.device
    overwrite: bool
    progress: bool = True


@dataclass
class PrepareReport:
    """What a run did; also what tests assert on."""

    written: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # reported and kept as they are
    rebuilt: list[str] = field(default_factory=list)  # changed, and rewritten (overwrite=true)
    failures: list[dict[str, str]] = field(default_factory=list)
    files_written: int = 0

    @property
    def exit_code(self) -> int:
        return 1 if self.failures or self.changed else 0


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Item:
    id: str
    source: Path
    stem: str
    index: int  # crop number within its source image (0 for whole images)


def _source_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"source folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image(p))
    if not files:
        raise DataError(f"source folder {folder} holds no images ({', '.join(('png', 'jpg', 'tif', '...'))})")
    stems: dict[str, Path] = {}
    for p in files:
        if p.stem in stems:
            raise DataError(f"two source images share the id {p.stem!r}: {stems[p.stem].name} and {p.name}; rename one")
        stems[p.stem] = p
    return files


def plan_items(files: Iterable[Path], crop_size: int | None, per_image: int, limit: int | None) -> list[Item]:
    """Pair ids in their final order; ids depend only on file stems, so ``limit`` needs no decoding."""
    items = []
    for f in files:
        if crop_size is None:
            items.append(Item(f.stem, f, f.stem, 0))
        else:
            items.extend(Item(f"{f.stem}_{j:03d}", f, f.stem, j) for j in range(per_image))
    items.sort(key=lambda it: it.id)
    return items[:limit] if limit is not None else items


def plan_crops(seed: int, stem: str, index: int, height: int, width: int, size: int) -> tuple[int, int]:
    """Top-left corner of crop ``index`` of image ``stem``: its own generator, so crops do not
    move when ``per_image`` or the set of images changes."""
    if height < size or width < size:
        raise DegradationInputError(f"image of {height}x{width} px is smaller than the {size}x{size} crop")
    g = make_generator(seed, f"crop:{stem}:{index}")
    return randint(g, 0, height - size), randint(g, 0, width - size)


# ----------------------------------------------------------------------------- config


def settings_from_config(cfg: DictConfig) -> PrepareSettings:
    """Validate the prepare config and find the source images (errors name the key)."""
    preset = load_preset(cfg.degradation)
    preset_cfg = OmegaConf.to_container(cfg.degradation, resolve=True)
    data_root = Path(str(cfg.paths.data)).expanduser()
    src = cfg.source
    if src.get("hr_dir"):
        root = Path(str(src.hr_dir)).expanduser().resolve()
        kind, sname, files = "folder", root.name, _source_files(root)
    elif src.get("dataset"):
        from srarena.harness.data import manifests

        m = manifests.load(str(src.dataset))
        files = manifests.hr_files(m, data_root)
        kind, sname, root = "dataset", m.name, manifests.raw_root(m, data_root)
    elif src.get("embedded"):
        from srarena.harness.data.embedded import ensure_embedded  # lazily: builds the set on first use

        root = Path(ensure_embedded(data_root, str(src.embedded)))
        kind, sname, files = "embedded", f"embedded_{src.embedded}", _source_files(root)
    else:
        raise ConfigError("source: set source.hr_dir, source.dataset or source.embedded")
    crop_size = cfg.crop.size
    if crop_size is not None and (not isinstance(crop_size, int) or crop_size < 1):
        raise ConfigError(f"crop.size: expected a positive integer or null, got {crop_size!r}")
    if crop_size is not None and crop_size % preset.scale:
        raise ConfigError(f"crop.size: {crop_size} is not a multiple of the scale {preset.scale}")
    per_image = cfg.crop.per_image
    if not isinstance(per_image, int) or per_image < 1:
        raise ConfigError(f"crop.per_image: expected a positive integer, got {per_image!r}")
    limit = cfg.get("limit")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit: expected a positive integer or null, got {limit!r}")
    if not isinstance(cfg.seed, int):
        raise ConfigError(f"seed: expected an integer, got {cfg.seed!r}")
    crop_tag = "full" if crop_size is None else f"c{crop_size}x{per_image}"
    name = cfg.get("name") or f"{sname}_{preset.name}_{crop_tag}_s{cfg.seed}"
    if "/" in str(name) or str(name) in ("", ".", ".."):
        raise ConfigError(f"name: {name!r} must be a plain folder name")
    return PrepareSettings(
        name=str(name), out_dir=data_root / "prepared" / str(name), source_kind=kind, source_name=sname,
        source_root=root, files=tuple(files), preset=preset, preset_cfg=preset_cfg,  # type: ignore[arg-type]
        seed=int(cfg.seed), crop_size=crop_size, per_image=per_image, limit=limit,
        device=resolve_device(str(cfg.get("device", "cpu"))), overwrite=bool(cfg.get("overwrite", False)),
        progress=bool(cfg.get("progress", True)),
    )


# ----------------------------------------------------------------------------- files


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_if_changed(path: Path, text: str, report: PrepareReport) -> None:
    if path.is_file() and path.read_text() == text:
        return
    _atomic_write_text(path, text)
    report.files_written += 1


def _csv_text(columns: list[str], rows: list[dict[str, str]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """Rows of an existing manifest.csv by id (empty when there is none)."""
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def _dataset_yaml(s: PrepareSettings, n_pairs: int) -> str:
    doc = {
        "name": s.name,
        "scale": s.preset.scale,
        "hr_dir": "HR",  # relative to this file's folder
        "lr_dir": "LR",
        "n_pairs": n_pairs,
        "manifest": "manifest.csv",
        "seed": s.seed,
        "degradation": {"preset": s.preset.name, "config": s.preset_cfg},
        "source": {"kind": s.source_kind, "name": s.source_name, "root": str(s.source_root)},
        "crop": {"size": s.crop_size, "per_image": s.per_image},
        "limit": s.limit,
        "hashes": "sha256 of decoded uint8 pixels and shape (srarena.harness.data.io.pixel_sha256)",
        "made_by": "srarena prepare",
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _check_settings_match(s: PrepareSettings) -> None:
    """Refuse to mix two different test sets in one folder (unless overwrite=true)."""
    path = s.out_dir / "dataset.yaml"
    if not path.is_file():
        return
    old = yaml.safe_load(path.read_text()) or {}
    new = yaml.safe_load(_dataset_yaml(s, 0))
    keys = ("scale", "seed", "degradation", "crop")
    diff = [k for k in keys if old.get(k) != new.get(k)]
    if diff and not s.overwrite:
        raise DataError(
            f"{s.out_dir} was prepared with different settings ({', '.join(diff)} differ). "
            "Choose another name=..., or pass overwrite=true to rebuild it."
        )


# ----------------------------------------------------------------------------- building


def _hr_crop(img: np.ndarray, s: PrepareSettings, item: Item) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    h, w = img.shape[:2]
    if s.crop_size is None:
        sf = s.preset.scale
        ch, cw = h - h % sf, w - w % sf
        if ch == 0 or cw == 0:
            raise DegradationInputError(f"image of {h}x{w} px is smaller than the scale {sf}")
        return img[:ch, :cw], (0, 0, ch, cw)
    top, left = plan_crops(s.seed, item.stem, item.index, h, w, s.crop_size)
    c = s.crop_size
    return img[top : top + c, left : left + c], (top, left, c, c)


def _check_files(row: dict[str, str], out: Path, src_hash: str) -> tuple[str, list[str]]:
    """('ok', []) when source and outputs hash as the manifest says; ('missing', []) when an
    output is absent (simply rebuilt); ('changed', messages) otherwise."""
    changes = []
    if row.get("source_sha256") != src_hash:
        changes.append(f"{row['id']}: source {row['source']} changed since it was prepared")
    for col, hcol in (("hr_file", "hr_sha256"), ("lr_file", "lr_sha256")):
        path = out / row[col]
        if not path.is_file():
            return "missing", []
        try:
            digest = pixel_sha256(read_image(path)[0])
        except ImageReadError:
            digest = "unreadable"
        if digest != row[hcol]:
            changes.append(f"{row['id']}: {row[col]} changed (sha256 {digest[:12]}..., manifest {row[hcol][:12]}...)")
    return ("changed", changes) if changes else ("ok", [])


def prepare(s: PrepareSettings) -> PrepareReport:
    """Build or verify the test set described by ``s``; returns what happened."""
    report = PrepareReport()
    _check_settings_match(s)
    old_rows = read_manifest(s.out_dir / "manifest.csv")
    items = plan_items(s.files, s.crop_size, s.per_image, s.limit)
    kind_fields = list(record_fields(s.preset.kind))
    columns = list(MANIFEST_COLUMNS) + [k for k in kind_fields if k not in MANIFEST_COLUMNS]
    rows: dict[str, dict[str, str]] = {}
    by_source: dict[Path, list[Item]] = {}
    for it in items:
        by_source.setdefault(it.source, []).append(it)
    done = 0
    for src, src_items in by_source.items():
        rel = str(src.relative_to(s.source_root)) if src.is_relative_to(s.source_root) else str(src)
        try:
            src_hash = file_sha256(src)
        except OSError as e:
            report.failures.extend({"id": it.id, "source": rel, "error": f"cannot read: {e}"} for it in src_items)
            continue
        todo = []
        for it in src_items:
            rec = sample_record(s.preset, s.seed, it.id)
            old = old_rows.get(it.id)
            if old is None or old.get("kind") != s.preset.kind or from_row(old) != rec:
                todo.append((it, rec))
                continue
            state, changes = _check_files(old, s.out_dir, src_hash)
            (report.rebuilt if s.overwrite else report.changed).extend(changes)
            if state == "ok" or (state == "changed" and not s.overwrite):
                rows[it.id] = {c: old.get(c, "") for c in columns}  # the manifest stays the reference
                if state == "ok":
                    report.verified.append(it.id)
            else:
                todo.append((it, rec))
        if not todo:
            continue
        try:
            img, notes = read_image(src)
        except ImageReadError as e:
            report.failures.extend({"id": it.id, "source": rel, "error": str(e)} for it, _ in todo)
            continue
        for it, rec in todo:
            try:
                hr, (top, left, ch, cw) = _hr_crop(img, s, it)
                with torch.no_grad():
                    lr = quantise(degrade_one(to_tensor(hr).to(s.device), rec))
            except DegradationInputError as e:
                report.failures.append({"id": it.id, "source": rel, "error": str(e)})
                continue
            hr_file, lr_file = f"HR/{it.id}.png", f"LR/{it.id}.png"
            write_png(s.out_dir / hr_file, hr)
            write_png(s.out_dir / lr_file, lr)
            report.files_written += 2
            rows[it.id] = {
                "id": it.id, "source": rel, "source_sha256": src_hash, "crop_top": str(top), "crop_left": str(left),
                "crop_height": str(ch), "crop_width": str(cw), "hr_file": hr_file, "lr_file": lr_file,
                "hr_sha256": pixel_sha256(hr), "lr_sha256": pixel_sha256(lr), "notes": "; ".join(notes),
                **to_row(rec),
            }
            report.written.append(it.id)
            done += 1
            if s.progress and done % 50 == 0:
                log.info("prepare %s: %d pairs written", s.name, done)
    stale = sorted(set(old_rows) - {it.id for it in items})
    if stale:
        log.warning("%s: %d manifest rows are no longer part of this set and were dropped (e.g. %s)", s.name, len(stale), stale[0])
    ordered = [rows[it.id] for it in items if it.id in rows]
    if ordered:
        _write_if_changed(s.out_dir / "manifest.csv", _csv_text(columns, ordered), report)
        _write_if_changed(s.out_dir / "dataset.yaml", _dataset_yaml(s, len(ordered)), report)
    fail_path = s.out_dir / "failures.csv"
    if report.failures:
        _write_if_changed(fail_path, _csv_text(["id", "source", "error"], report.failures), report)
    elif fail_path.is_file():
        fail_path.unlink()
    return report


def run_prepare(cfg: DictConfig) -> int:
    """Entry point of ``srarena prepare``: 0 when every pair is written or verified, 1 otherwise."""
    s = settings_from_config(cfg)
    log.info("prepare %s: %d source images from %s, degradation %s, seed %d -> %s",
             s.name, len(s.files), s.source_root, s.preset.name, s.seed, s.out_dir)
    r = prepare(s)
    print(
        f"srarena prepare: {s.out_dir}\n"
        f"  {len(r.written)} pairs written, {len(r.verified)} verified unchanged, "
        f"{len(r.changed)} changed, {len(r.rebuilt)} rebuilt, {len(r.failures)} failed; {r.files_written} files written"
    )
    for c in r.changed[:20]:
        print(f"  changed: {c} (kept; pass overwrite=true to rebuild)")
    for c in r.rebuilt[:20]:
        print(f"  rebuilt: {c}")
    for f in r.failures[:20]:
        print(f"  failed: {f['id']} ({f['source']}): {f['error']}")
    if len(r.failures) > 20:
        print(f"  ... {len(r.failures) - 20} more failures in {s.out_dir / 'failures.csv'}")
    if r.written or r.verified:
        print(f"  evaluate it: srarena dataset=prepared dataset.name={s.out_dir.name} scale={s.preset.scale}")
    return r.exit_code
