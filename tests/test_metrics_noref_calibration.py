"""NIQE and MS-SSIM against the official values and BasicSR's NIQE (weight-free, offline)."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from tests.conftest import calibration_image
import torch

from srarena.harness.metrics.registry import MetricContext, create_metric, get_spec


@pytest.fixture(autouse=True)
def _weights_in_tmp(tmp_path_factory, monkeypatch):
    # NIQE's parameter file is derived into a throw-away weights dir, never the user's.
    monkeypatch.setenv("SRARENA_WEIGHTS", str(tmp_path_factory.getbasetemp() / "weights"))
    monkeypatch.setenv("SRARENA_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _official(calibration_dir, row):
    with open(calibration_dir / "results_official.csv") as f:
        rows = {r[0]: r[1:] for r in csv.reader(f)}
    return rows["Method"], [float(v) for v in rows[row]]


def _load(path) -> torch.Tensor:
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    return torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255.0


def test_niqe_matches_official_row(calibration_dir):
    # pyiqa's own calibration tolerance for NIQE is rtol 6e-2; measured worst: I19, 5.1%.
    names, expected = _official(calibration_dir, "niqe")
    niqe = create_metric("niqe", MetricContext())
    got = [float(niqe(_load(calibration_image(calibration_dir, "dist", n)), None)[0]) for n in names]
    np.testing.assert_allclose(got, expected, rtol=6e-2)


def test_ms_ssim_matches_official_row(calibration_dir):
    # pyiqa's MS-SSIM is within 0.52% of the official row (I19 worst); its own table allows 1%.
    names, expected = _official(calibration_dir, "ms_ssim")
    ms = create_metric("ms_ssim", MetricContext())
    got = [float(ms(_load(calibration_image(calibration_dir, "dist", n)), _load(calibration_image(calibration_dir, "ref", n)))[0])
           for n in names]
    np.testing.assert_allclose(got, expected, rtol=1e-2)


@pytest.mark.parametrize("crop", [0, 4])
def test_niqe_y_matches_basicsr(basicsr, photos, crop):
    """``niqe_y`` (pyiqa, studio YCbCr Y, crop = scale) vs BasicSR's NumPy NIQE on photos.

    Same algorithm, two implementations: BasicSR filters with SciPy (``mode='nearest'``) and
    resizes in NumPy with Y in float32; pyiqa uses torch convolutions and float64. Measured
    differences on 288x384 crops of astronaut/coffee/chelsea: at most 0.14%; tolerance rtol 3e-3.
    """
    from basicsr.metrics.niqe import calculate_niqe

    ctx = MetricContext(scale=crop)
    niqe_y = create_metric("niqe_y", ctx) if crop else _niqe_y_nocrop()
    for name in ("astronaut", "coffee"):
        img = photos[name][:288, :384]
        ours = float(niqe_y(torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255, None)[0])
        ref = calculate_niqe(img[..., ::-1].astype(np.float64), crop_border=crop, input_order="HWC",
                             convert_to="y")
        assert ours == pytest.approx(float(ref), rel=3e-3), name


def _niqe_y_nocrop():
    return create_metric("niqe_y", MetricContext(scale=0))


def test_niqe_records_its_convention():
    rec = get_spec("niqe_y").record(MetricContext(scale=4))
    assert rec["crop_border"] == 4 and rec["preset"] == "niqe_y" and "pyiqa" in rec["version"]
