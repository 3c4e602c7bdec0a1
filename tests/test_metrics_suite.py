"""The preset table and the one-pass evaluator: config sets, provenance, batching, skipping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from srarena.harness.metrics.evaluator import Evaluator
from srarena.harness.metrics.registry import MetricContext, available_metrics, get_spec

CONF = Path(__file__).resolve().parents[1] / "conf" / "metrics"


@pytest.mark.parametrize("name", ["default", "paper", "full"])
def test_metric_sets_name_registered_presets(name):
    presets = list(OmegaConf.load(CONF / f"{name}.yaml").presets)
    assert set(presets) <= set(available_metrics())
    if name == "paper":
        assert presets == ["psnr_y", "ssim_y", "lpips", "fid", "musiq", "niqe"]


def test_every_preset_declares_its_conventions():
    for name in available_metrics():
        spec = get_spec(name)
        rec = spec.record(MetricContext(scale=4))
        assert rec["preset"] == name and rec["version"] and spec.library
        assert spec.kind in ("fr", "nr", "set") and spec.value_range[0] < spec.value_range[1]
        assert "input" in spec.conventions


def _pairs(n, seed=0, size=48):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        hr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        out.append((np.clip(hr.astype(int) + rng.integers(-15, 15, hr.shape), 0, 255).astype(np.uint8), hr))
    return out


def test_update_batch_equals_update(tmp_path, monkeypatch):
    monkeypatch.setenv("SRARENA_WEIGHTS", str(tmp_path))
    names = ["psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"]
    pairs = _pairs(3) + [(p[0][:40], p[1][:40]) for p in _pairs(2, seed=1)]  # two shapes
    one = Evaluator(names, MetricContext(scale=2))
    many = Evaluator(names, MetricContext(scale=2))
    singles = [one.update(s, h) for s, h in pairs]
    batched = many.update_batch(pairs)
    for a, b in zip(singles, batched):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], rel=1e-12)


def test_image_failure_is_nan_with_reason_not_a_made_up_number(tmp_path, monkeypatch):
    monkeypatch.setenv("SRARENA_WEIGHTS", str(tmp_path))
    ev = Evaluator(["psnr_y", "niqe"], MetricContext(scale=1))
    sr, hr = _pairs(1, size=24)[0]  # smaller than one 96x96 NIQE block
    out = ev.update(sr, hr)
    assert np.isfinite(out["psnr_y"])
    assert np.isnan(out["niqe"]) == ("niqe" in ev.failures)


def test_no_reference_dataset_scores_only_nr_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("SRARENA_WEIGHTS", str(tmp_path))
    ev = Evaluator(["psnr_y", "niqe"], MetricContext(scale=1))
    sr = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    assert set(ev.update(sr, None)) == {"niqe"}
