"""LPIPS and MUSIQ: plumbing with stand-in weights (values not checked), the torchmetrics
cross-check, and calibration against the official values when the real files are present."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from tests.conftest import calibration_image
import torch

from srarena.harness.metrics.registry import MetricContext, create_metric
from srarena.harness.weights import find_weights


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("SRARENA_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("SRARENA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def _pair(seed=0, size=64):
    rng = np.random.default_rng(seed)
    hr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-30, 30, hr.shape), 0, 255).astype(np.uint8)
    return sr, hr


def _t(img):
    return torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255


def test_lpips_standin_backbone_agrees_with_torchmetrics_values_not_calibrated(env):
    """The same (random) AlexNet in the torch hub cache feeds torchmetrics' LPIPS and ours:
    equal values prove our backbone mapping, heads, scaling and [-1,1] convention match
    torchmetrics (which loads the backbone itself). Absolute values mean nothing."""
    from srarena.harness.metrics import standins

    tm = pytest.importorskip("torchmetrics.image.lpip")
    standins.write_torchvision("alexnet", env / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth")
    ours = create_metric("lpips", MetricContext())
    theirs = tm.LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True).eval()
    for seed in range(2):
        sr, hr = _pair(seed)
        a = float(ours(_t(sr), _t(hr))[0])
        b = float(theirs(_t(sr).float(), _t(hr).float()))
        assert a == pytest.approx(b, rel=1e-5, abs=1e-7)
        assert a > 0 and float(ours(_t(hr), _t(hr))[0]) == pytest.approx(0, abs=1e-7)


def test_musiq_runs_end_to_end_with_standin_weights_values_not_checked(env):
    from srarena.harness.metrics import standins
    from srarena.harness.metrics.evaluator import Evaluator

    standins.write_musiq(env / "weights" / "musiq_koniq_ckpt-e95806b9.pth")
    ev = Evaluator(["musiq"], MetricContext())
    assert ev.skipped == {}
    out = ev.update_batch([_pair(0, 96), _pair(1, 96)])
    assert len(out) == 2 and all(np.isfinite(o["musiq"]) for o in out)


def test_missing_weights_are_skipped_with_the_file_name(env):
    from srarena.harness.metrics.evaluator import Evaluator

    ev = Evaluator(["psnr_y", "lpips", "lpips_vgg", "musiq"], MetricContext())
    assert ev.skipped["lpips"].startswith("missing weight file 'alexnet-owt-7be5be79.pth'")
    assert "vgg16-397923af.pth" in ev.skipped["lpips_vgg"]
    assert "musiq_koniq_ckpt-e95806b9.pth" in ev.skipped["musiq"]
    assert set(ev.update(*_pair())) == {"psnr_y"}


def _calibration(calibration_dir, row):
    with open(calibration_dir / "results_official.csv") as f:
        rows = {r[0]: r[1:] for r in csv.reader(f)}
    read = lambda p: _t(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB))  # noqa: E731
    return [(read(calibration_image(calibration_dir, "dist", n)), read(calibration_image(calibration_dir, "ref", n)), float(v))
            for n, v in zip(rows["Method"], rows[row])]


def test_lpips_matches_official_row(calibration_dir):
    from srarena.harness.metrics.perceptual import BACKBONES

    if find_weights(BACKBONES["alex"]) is None:
        pytest.skip("missing weight file alexnet-owt-7be5be79.pth (srarena weights status)")
    f = create_metric("lpips", MetricContext())
    for d, r, want in _calibration(calibration_dir, "lpips"):
        assert float(f(d, r)[0]) == pytest.approx(want, rel=1e-2)  # pyiqa's tolerance


def test_musiq_matches_official_row(calibration_dir):
    from srarena.harness.metrics.musiq import MUSIQ_KONIQ

    if find_weights(MUSIQ_KONIQ) is None:
        pytest.skip("missing weight file musiq_koniq_ckpt-e95806b9.pth (srarena weights status)")
    f = create_metric("musiq", MetricContext())
    for d, _, want in _calibration(calibration_dir, "musiq"):
        assert float(f(d, None)[0]) == pytest.approx(want, rel=1e-2)
