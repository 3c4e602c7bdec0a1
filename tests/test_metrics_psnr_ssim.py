"""PSNR/SSIM presets against BasicSR, pyiqa and the official (MATLAB) calibration values."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from tests.conftest import calibration_image
import torch

from srarena.harness.data.io import read_image
from srarena.harness.data.paired import bicubic_lr
from srarena.harness.degradations.resize import imresize
from srarena.harness.metrics.registry import MetricContext, available_metrics, create_metric, get_spec


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).double() / 255.0


def _metric(name: str, scale: int) -> float:
    return create_metric(name, MetricContext(scale=scale))


@pytest.fixture(scope="module")
def sr_pairs(photos):
    """Real SR outputs: MATLAB-bicubic x4 of a bicubic LR, quantised as a user saves them."""
    pairs = {}
    for name, hr in photos.items():
        hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
        lr = bicubic_lr(hr, 4)
        sr = imresize(_t(lr), scale=4).clamp(0, 1).mul(255).round().byte()[0].permute(1, 2, 0).numpy()
        pairs[name] = (sr, hr)
    return pairs


@pytest.mark.parametrize("scale", [4, 8])
def test_default_presets_equal_basicsr(basicsr, sr_pairs, scale):
    from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim

    for name, (sr, hr) in sr_pairs.items():
        # BasicSR reads images with OpenCV: it expects BGR.
        ref_p = calculate_psnr(sr[..., ::-1], hr[..., ::-1], scale, test_y_channel=True)
        ref_s = calculate_ssim(sr[..., ::-1], hr[..., ::-1], scale, test_y_channel=True)
        assert abs(_metric("psnr_y", scale)(_t(sr), _t(hr)).item() - ref_p) <= 1e-6, name
        assert abs(_metric("ssim_y", scale)(_t(sr), _t(hr)).item() - ref_s) <= 1e-6, name
        ref_p = calculate_psnr(sr[..., ::-1], hr[..., ::-1], scale)
        ref_s = calculate_ssim(sr[..., ::-1], hr[..., ::-1], scale)
        assert abs(_metric("psnr_rgb", scale)(_t(sr), _t(hr)).item() - ref_p) <= 1e-6, name
        assert abs(_metric("ssim_rgb", scale)(_t(sr), _t(hr)).item() - ref_s) <= 1e-6, name


def _calibration_pairs(calibration_dir):
    with open(calibration_dir / "results_official.csv") as f:
        rows = {r[0]: r[1:] for r in csv.reader(f)}
    for i, name in enumerate(rows["Method"]):
        dist, _ = read_image(calibration_image(calibration_dir, "dist", name))
        ref, _ = read_image(calibration_image(calibration_dir, "ref", name))
        yield name, dist, ref, {k: v[i] for k, v in rows.items()}


def test_default_presets_equal_basicsr_on_calibration_pairs(basicsr, calibration_dir):
    """On near-identical pairs (PSNR-Y ~57 dB) BasicSR's float32 Y conversion is visible:
    measured deviation up to 7.6e-6 dB from the float64 value, hence 1e-5 here; SSIM 1e-8."""
    from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim

    for name, dist, ref, _ in _calibration_pairs(calibration_dir):
        ref_p = calculate_psnr(dist[..., ::-1], ref[..., ::-1], 4, test_y_channel=True)
        ref_s = calculate_ssim(dist[..., ::-1], ref[..., ::-1], 4, test_y_channel=True)
        assert abs(_metric("psnr_y", 4)(_t(dist), _t(ref)).item() - ref_p) <= 1e-5, name
        assert abs(_metric("ssim_y", 4)(_t(dist), _t(ref)).item() - ref_s) <= 1e-6, name


def test_pyiqa_presets_equal_pyiqa(calibration_dir):
    pyiqa = pytest.importorskip("pyiqa")
    kw = dict(test_y_channel=True, color_space="ycbcr", crop_border=4, device="cpu")
    ref_psnr = pyiqa.create_metric("psnr", **kw)
    ref_ssim = pyiqa.create_metric("ssim", **kw)
    values = {}
    for name, dist, ref, _ in _calibration_pairs(calibration_dir):
        d, r = _t(dist), _t(ref)  # pyiqa fed float64, like ours, so 1e-6 holds
        ours_p, ours_s = _metric("psnr_y_pyiqa", 4)(d, r).item(), _metric("ssim_y_pyiqa", 4)(d, r).item()
        assert abs(ours_p - ref_psnr(d, r).item()) <= 1e-6, name
        assert abs(ours_s - ref_ssim(d, r).item()) <= 1e-6, name
        values[name] = (ours_p, _metric("psnr_y", 4)(d, r).item(), ours_s, _metric("ssim_y", 4)(d, r).item())
    # The documented difference between the two conventions (issue 4): I04 PSNR-Y, I03 SSIM-Y.
    assert values["I04.bmp"][0] == pytest.approx(57.2762, abs=1e-4)
    assert values["I04.bmp"][1] == pytest.approx(57.2995, abs=1e-4)
    assert values["I04.bmp"][1] - values["I04.bmp"][0] > 0.02


def test_official_rows(calibration_dir):
    for name, dist, ref, official in _calibration_pairs(calibration_dir):
        p = _metric("psnr_rgb_official", 0)(_t(dist), _t(ref)).item()
        s = _metric("ssim_gray_official", 0)(_t(dist), _t(ref)).item()
        assert round(p, 2) == pytest.approx(float(official["psnr"]), abs=1e-9), name
        assert round(s, 4) == pytest.approx(float(official["ssim"]), abs=1e-9), name


def test_identical_images():
    x = torch.rand(2, 3, 40, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x = (x * 255).round() / 255
    assert math.isinf(_metric("psnr_y", 4)(x, x)[0].item())
    assert torch.allclose(_metric("ssim_y", 4)(x, x), torch.ones(2, dtype=torch.float64))


def test_every_preset_records_its_conventions():
    for name in available_metrics():
        rec = get_spec(name).record(MetricContext(scale=4))
        assert rec["preset"] == name and rec["version"]
        if get_spec(name).kind == "fr" and name.startswith(("psnr", "ssim")):
            assert {"colour", "crop_border", "data_range", "input"} <= set(rec)
    assert get_spec("psnr_y").record(MetricContext(scale=8))["crop_border"] == 8


def test_unknown_preset_lists_available():
    with pytest.raises(KeyError, match="psnr_y"):
        get_spec("psnr_nope")
