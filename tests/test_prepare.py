"""``srarena prepare`` end to end on real photos: outputs, idempotence, regeneration, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import run_cli
import yaml
from hydra import compose, initialize_config_dir

from srarena.harness.data.io import read_image, to_tensor, quantise
from srarena.harness.data.manifests import MissingDatasetError
from srarena.harness.degradations.pipeline import degrade_one
from srarena.harness.degradations.records import from_row
from srarena.harness.degradations.resize import imresize
from srarena.harness.errors import DataError
from srarena.harness.prepare import plan_crops, prepare, run_prepare, settings_from_config

REPO = Path(__file__).resolve().parents[1]


def _cfg(data: Path, *overrides: str):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("prepare", overrides=[f"paths.data={data}", "progress=false", *overrides])


def _write(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    assert cv2.imwrite(str(path), arr)


@pytest.fixture()
def source(tmp_path, photos) -> Path:
    src = tmp_path / "src"
    for name, img in photos.items():
        _write(src / f"{name}.png", img[:160, :200])
    return src


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_prepare_writes_a_dataset_and_second_run_writes_nothing(tmp_path, source):
    cfg = _cfg(tmp_path / "data", f"source.hr_dir={source}", "crop.size=128", "crop.per_image=2", "name=t")
    s = settings_from_config(cfg)
    first = prepare(s)
    out = tmp_path / "data" / "prepared" / "t"
    assert first.exit_code == 0 and len(first.written) == 6 and not first.failures
    rows = _rows(out)
    assert [r["id"] for r in rows] == sorted(f"{n}_{j:03d}" for n in ("astronaut", "chelsea", "coffee") for j in range(2))
    for r in rows:
        hr, _ = read_image(out / r["hr_file"])
        lr, _ = read_image(out / r["lr_file"])
        assert hr.shape == (128, 128, 3) and lr.shape == (32, 32, 3)
        assert (int(r["crop_top"]), int(r["crop_left"])) == plan_crops(0, r["source"][:-4], int(r["id"][-3:]), 160, 200, 128)
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    assert (meta["name"], meta["scale"], meta["hr_dir"], meta["lr_dir"], meta["seed"]) == ("t", 4, "HR", "LR", 0)
    assert meta["degradation"]["preset"] == "stablesr" and meta["n_pairs"] == 6
    # The runner's paired-folder dataset reads it as is.
    from srarena.harness.data.paired import PairedFolderDataset

    ds = PairedFolderDataset(out / "HR", scale=4, lr_dir=out / "LR")
    assert len(ds) == 6 and not ds.unmatched_lr
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    second = prepare(settings_from_config(cfg))
    assert second.exit_code == 0 and second.files_written == 0 and len(second.verified) == 6 and not second.written
    assert mtimes == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def test_manifest_rows_regenerate_the_lr_bit_for_bit(tmp_path, source):
    cfg = _cfg(tmp_path / "data", f"source.hr_dir={source}", "degradation=realesrgan", "crop.size=128", "name=r")
    assert run_prepare(cfg) == 0
    out = tmp_path / "data" / "prepared" / "r"
    for row in _rows(out):
        hr, _ = read_image(out / row["hr_file"])
        lr, _ = read_image(out / row["lr_file"])
        regenerated = quantise(degrade_one(to_tensor(hr), from_row(row)))
        assert np.array_equal(regenerated, lr), row["id"]


def test_changed_file_is_reported_and_rebuilt_only_on_request(tmp_path, source, capsys):
    overrides = (f"source.hr_dir={source}", "crop.size=64", "name=c")
    assert run_prepare(_cfg(tmp_path / "data", *overrides)) == 0
    out = tmp_path / "data" / "prepared" / "c"
    lr_path = out / "LR" / "chelsea_000.png"
    original = lr_path.read_bytes()
    img, _ = read_image(lr_path)
    img[0, 0] = 255 - img[0, 0]
    _write(lr_path, img)
    tampered = lr_path.read_bytes()
    assert run_prepare(_cfg(tmp_path / "data", *overrides)) == 1
    assert "chelsea_000: LR/chelsea_000.png changed" in capsys.readouterr().out
    assert lr_path.read_bytes() == tampered  # reported, not silently rewritten
    assert run_prepare(_cfg(tmp_path / "data", *overrides, "overwrite=true")) == 0
    assert np.array_equal(read_image(lr_path)[0], cv2.cvtColor(cv2.imdecode(np.frombuffer(original, np.uint8), 1), cv2.COLOR_BGR2RGB))
    # A missing output is simply rebuilt.
    (out / "HR" / "coffee_000.png").unlink()
    s = settings_from_config(_cfg(tmp_path / "data", *overrides))
    r = prepare(s)
    assert r.written == ["coffee_000"] and r.exit_code == 0


def test_bad_inputs_become_recorded_failures(tmp_path, photos):
    src = tmp_path / "bad"
    _write(src / "gray.png", cv2.cvtColor(photos["chelsea"][:96, :96], cv2.COLOR_RGB2GRAY))
    deep = (photos["coffee"][:96, :96].astype(np.uint16) * 257)
    _write(src / "deep16.png", deep)
    _write(src / "tiny.png", photos["astronaut"][:40, :40])
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    cfg = _cfg(tmp_path / "data", f"source.hr_dir={src}", "crop.size=64", "name=b")
    s = settings_from_config(cfg)
    r = prepare(s)
    assert r.exit_code == 1
    failed = {f["id"]: f["error"] for f in r.failures}
    assert set(failed) == {"broken_000", "tiny_000"}
    assert "smaller than the 64x64 crop" in failed["tiny_000"]
    assert "not a decodable image" in failed["broken_000"]
    notes = {row["id"]: row["notes"] for row in _rows(s.out_dir)}
    assert notes == {"deep16_000": "16-bit input rounded to 8-bit", "gray_000": "gray input replicated to RGB"}
    with open(s.out_dir / "failures.csv", newline="") as f:
        assert {row["id"] for row in csv.DictReader(f)} == {"broken_000", "tiny_000"}


def test_bicubic_x8_protocol(tmp_path, source):
    cfg = _cfg(tmp_path / "data", f"source.hr_dir={source}", "prepare=bicubic_x8", "crop.size=128", "limit=4", "name=b8")
    assert cfg.degradation.name == "bicubic_x8" and cfg.crop.per_image == 7
    assert run_prepare(cfg) == 0
    out = tmp_path / "data" / "prepared" / "b8"
    rows = _rows(out)
    assert len(rows) == 4
    for row in rows:
        hr, _ = read_image(out / row["hr_file"])
        lr, _ = read_image(out / row["lr_file"])
        assert lr.shape == (16, 16, 3)
        assert np.array_equal(lr, quantise(imresize(to_tensor(hr), scale=1 / 8)))


def test_full_images_are_modcropped(tmp_path, photos):
    src = tmp_path / "odd"
    _write(src / "a.png", photos["coffee"][:101, :142])
    cfg = _cfg(tmp_path / "data", f"source.hr_dir={src}", "degradation=bicubic_x4", "name=f")
    assert run_prepare(cfg) == 0
    row = _rows(tmp_path / "data" / "prepared" / "f")[0]
    assert (row["crop_height"], row["crop_width"]) == ("100", "140")


def test_other_settings_under_the_same_name_are_refused(tmp_path, source):
    assert run_prepare(_cfg(tmp_path / "data", f"source.hr_dir={source}", "crop.size=64", "name=x")) == 0
    with pytest.raises(DataError, match="different settings \\(seed differ"):
        run_prepare(_cfg(tmp_path / "data", f"source.hr_dir={source}", "crop.size=64", "name=x", "seed=1"))


def test_every_protocol_and_preset_composes(tmp_path, source):
    pairs = [("stablesr_512", "realesrgan"), ("bicubic_x8", "stablesr"), ("full", "bicubic_x4"), ("full", "bicubic_x8")]
    for protocol, degradation in pairs:
        cfg = _cfg(tmp_path, f"source.hr_dir={source}", f"prepare={protocol}", f"degradation={degradation}")
        s = settings_from_config(cfg)
        assert s.preset.name == degradation and len(s.files) == 3
    expected = {"stablesr_512": ("stablesr", 512, 30), "bicubic_x8": ("bicubic_x8", 512, 7), "full": ("stablesr", None, 1)}
    for protocol, (deg, size, n) in expected.items():
        cfg = _cfg(tmp_path, f"source.hr_dir={source}", f"prepare={protocol}")
        assert (cfg.degradation.name, cfg.crop.size, cfg.crop.per_image) == (deg, size, n)


def test_missing_dataset_says_what_to_download(tmp_path):
    with pytest.raises(MissingDatasetError) as e:
        run_prepare(_cfg(tmp_path / "data", "source.dataset=div2k_val"))
    msg = str(e.value)
    assert "DIV2K_valid_HR.zip" in msg and str(tmp_path / "data" / "raw" / "div2k_val" / "DIV2K_valid_HR") in msg


def test_manifest_dataset_as_source(tmp_path, photos):
    raw = tmp_path / "data" / "raw" / "set5" / "HR"
    for i in range(5):
        _write(raw / f"img{i}.png", list(photos.values())[i % 3][:68, :72])
    cfg = _cfg(tmp_path / "data", "source.dataset=set5", "degradation=bicubic_x4")
    assert run_prepare(cfg) == 0
    assert len(_rows(tmp_path / "data" / "prepared" / "set5_bicubic_x4_full_s0")) == 5


def test_cli_config_error_is_one_line_not_a_traceback(tmp_path, source):
    p = run_cli("prepare", f"paths.data={tmp_path}", f"source.hr_dir={source}", "degradation.jpeg_range=[95,30]",
                cwd=tmp_path, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "degradation.jpeg_range: lo 95 > hi 30" in p.stderr and "Traceback" not in p.stderr
