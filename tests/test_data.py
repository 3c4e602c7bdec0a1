"""Paired datasets, image decoding with conversion notes, and the embedded default set."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from srarena.harness.data.embedded import ensure_embedded, load_manifest
from srarena.harness.data.io import ImageReadError, pixel_sha256, read_image, write_png
from srarena.harness.data.paired import PairedFolderDataset, PairError, bicubic_lr, modcrop
from srarena.harness.errors import DataError


def test_pairs_by_stem_not_by_order(tmp_path, photos):
    hr, lr = tmp_path / "HR", tmp_path / "LR"
    imgs = {"a": photos["astronaut"][:64, :64], "b": photos["coffee"][:64, :64], "c": photos["chelsea"][:64, :64]}
    for k, v in imgs.items():
        write_png(hr / f"{k}.png", v)
    # LR names sort differently from HR names; 'c' has no LR; 'z' has no HR.
    write_png(lr / "bx4.png", bicubic_lr(imgs["b"], 4))
    write_png(lr / "ax4.png", bicubic_lr(imgs["a"], 4))
    write_png(lr / "zx4.png", bicubic_lr(imgs["a"], 4))
    ds = PairedFolderDataset(hr, scale=4, lr_dir=lr, lr_suffix="x4")
    assert ds.ids == ["a", "b", "c"]
    assert ds.unmatched_lr == ["z"] and ds.unmatched_hr == ["c"]
    pair = ds.load("b")
    assert np.array_equal(pair.hr, imgs["b"]) and np.array_equal(pair.lr, bicubic_lr(imgs["b"], 4))
    with pytest.raises(PairError, match="no LR file"):
        ds.load("c")


def test_modcrop_and_synthesised_lr(tmp_path, photos):
    img = photos["chelsea"]  # 300x451
    write_png(tmp_path / "HR" / "cat.png", img)
    ds = PairedFolderDataset(tmp_path / "HR", scale=8)
    pair = ds.load("cat")
    assert pair.hr.shape == (296, 448, 3) and pair.lr.shape == (37, 56, 3)
    assert np.array_equal(pair.hr, modcrop(img, 8))
    assert any("modcropped" in n for n in pair.meta["notes"])
    assert pair.meta["lr_source"] == "matlab_bicubic"


def test_lr_of_wrong_size_is_a_pair_error(tmp_path, photos):
    write_png(tmp_path / "HR" / "x.png", photos["astronaut"][:64, :64])
    write_png(tmp_path / "LR" / "x.png", photos["astronaut"][:10, :10])
    with pytest.raises(PairError, match="expected 16x16"):
        PairedFolderDataset(tmp_path / "HR", 4, tmp_path / "LR").load("x")


def test_missing_folder_message(tmp_path):
    with pytest.raises(DataError, match="does not exist.*dataset.hr_dir"):
        PairedFolderDataset(tmp_path / "nope", 4)


@pytest.mark.parametrize(
    "ext, make, note",
    [
        (".png", lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), "gray"),
        (".png", lambda a: cv2.cvtColor(a, cv2.COLOR_RGB2BGRA), "alpha"),
        (".png", lambda a: a[..., ::-1].astype(np.uint16) * 257, "16-bit"),
        (".tif", lambda a: a[..., ::-1].astype(np.uint16) * 257, "16-bit"),
        (".bmp", lambda a: a[..., ::-1], None),
        (".jpg", lambda a: a[..., ::-1], None),
    ],
)
def test_read_conversions_are_noted(tmp_path, photos, ext, make, note):
    rgb = photos["coffee"][:32, :48]
    path = tmp_path / f"img{ext}"
    assert cv2.imwrite(str(path), make(rgb))
    img, notes = read_image(path)
    assert img.dtype == np.uint8 and img.shape == (32, 48, 3)
    if note is None:
        assert notes == []
    else:
        assert any(note in n for n in notes)
    if note == "16-bit" or (note is None and ext != ".jpg"):
        assert np.array_equal(img, rgb)  # lossless paths round-trip exactly


def test_unreadable_and_empty_files(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("bad.png", "empty.png", "missing.png"):
        with pytest.raises(ImageReadError, match=name):
            read_image(tmp_path / name)


def test_embedded_manifest_and_build(tmp_path):
    manifest = load_manifest()
    splits = {s: {im["id"] for im in manifest["images"] if im["split"] == s} for s in ("eval", "train")}
    assert splits["eval"] and splits["train"] and not (splits["eval"] & splits["train"])
    for im in manifest["images"]:
        assert im["origin"]["distribution"] in {"scikit-image", "scikit-learn", "matplotlib"}
        assert len(im["sha256"]) == 64 and len(im["size"]) == 2
    folder = ensure_embedded(tmp_path, "eval")
    by_id = {im["id"]: im for im in manifest["images"]}
    files = sorted(folder.glob("*.png"))
    assert {p.stem for p in files} == splits["eval"]
    for p in files:
        img, _ = read_image(p)
        assert pixel_sha256(img) == by_id[p.stem]["sha256"], p.stem
        assert list(img.shape[:2]) == by_id[p.stem]["size"]
    mtimes = [p.stat().st_mtime_ns for p in files]
    assert ensure_embedded(tmp_path, "eval") == folder  # second call: nothing rebuilt
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    with pytest.raises(DataError):
        ensure_embedded(tmp_path, "test")


def test_manifest_dataset_pairs_realsr_layout(tmp_path, photos):
    """RealSR keeps HR and LR side by side (Canon_001_HR.png / Canon_001_LR4.png)."""
    from srarena.harness.data.manifests import MissingDatasetError
    from srarena.harness.data.paired import manifest_dataset

    with pytest.raises(MissingDatasetError, match="RealSR"):
        manifest_dataset("realsr_v3", tmp_path, 4, part="Canon")
    for part in ("Canon", "Nikon"):
        folder = tmp_path / "raw" / "realsr_v3" / "RealSR(V3)" / part / "Test" / "4"
        for i in range(1, 51):
            hr = np.roll(photos["astronaut"][:32, :32], i, axis=1)
            write_png(folder / f"{part}_{i:03d}_HR.png", hr)
            write_png(folder / f"{part}_{i:03d}_LR4.png", bicubic_lr(hr, 4))
    ds = manifest_dataset("realsr_v3", tmp_path, 4, part="Nikon")
    assert len(ds) == 50 and ds.ids[0] == "Nikon_001" and ds.name == "realsr_v3_Nikon"
    pair = ds.load("Nikon_007")
    assert pair.lr.shape == (8, 8, 3) and pair.meta["lr_path"].endswith("Nikon_007_LR4.png")
    with pytest.raises(DataError, match="choose one"):
        manifest_dataset("realsr_v3", tmp_path, 4)
    with pytest.raises(DataError, match="scale=4"):
        manifest_dataset("realsr_v3", tmp_path, 2, part="Canon")
