"""The runner records bad inputs and bad method outputs per image and goes on."""

from __future__ import annotations

import csv
import json

import numpy as np
import torch

from srarena.harness.data.io import read_image, write_png
from srarena.harness.data.paired import PairedFolderDataset
from srarena.harness.runner import Runner, image_generator
from srarena.methods.base import BaseMethod
from srarena.methods.bicubic import Bicubic


class Flaky(BaseMethod):
    """Returns a wrong shape for one image and NaNs for another."""

    name = "flaky"

    def upscale(self, lr, scale, generator):
        sr = torch.nn.functional.interpolate(lr, scale_factor=scale, mode="nearest")
        mean = lr.mean().item()
        if mean > 0.6:
            return sr[..., :-1]
        if mean < 0.2:
            return sr * float("nan")
        return sr


def _folder(tmp_path, photos):
    hr = tmp_path / "HR"
    write_png(hr / "ok.png", photos["astronaut"][:64, :64])
    write_png(hr / "bright.png", np.full((64, 64, 3), 230, np.uint8))
    write_png(hr / "dark.png", np.full((64, 64, 3), 10, np.uint8))
    (hr / "broken.png").write_bytes(b"\x89PNG garbage")
    return hr


def test_failures_are_recorded_and_the_run_goes_on(tmp_path, photos):
    ds = PairedFolderDataset(_folder(tmp_path, photos), scale=4)
    result = Runner(Flaky(), "flaky", ds, ["psnr_y", "ssim_y"], tmp_path / "out", progress=False).run()
    status = {r["id"]: r for r in result.rows}
    assert status["ok"]["status"] == "ok" and status["ok"]["psnr_y"] > 10
    assert "shape" in status["bright"]["error"] and status["bright"]["status"] == "failed"
    assert "NaN" in status["dark"]["error"]
    assert status["broken"]["error"].startswith("load:")
    assert result.aggregates["n_failed"] == 3 and result.aggregates["n_ok"] == 1
    with open(tmp_path / "out" / "per_image.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert len(summary["failures"]) == 3
    assert summary["metric_conventions"]["psnr_y"]["crop_border"] == 4


def test_saved_png_is_what_was_scored(tmp_path, photos):
    hr = tmp_path / "HR"
    write_png(hr / "a.png", photos["coffee"][:96, :128])
    ds = PairedFolderDataset(hr, scale=4)
    result = Runner(Bicubic(), "bicubic", ds, ["psnr_y"], tmp_path / "out", progress=False).run()
    sr, _ = read_image(tmp_path / "out" / "images" / "a.png")
    from srarena.harness.metrics.registry import MetricContext, create_metric

    t = lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].double() / 255  # noqa: E731
    expect = create_metric("psnr_y", MetricContext(scale=4))(t(sr), t(ds.load("a").hr)).item()
    assert result.rows[0]["psnr_y"] == expect


def test_generator_depends_on_seed_and_id_only():
    a = torch.rand(4, generator=image_generator(0, "img1"))
    b = torch.rand(4, generator=image_generator(0, "img1"))
    c = torch.rand(4, generator=image_generator(0, "img2"))
    d = torch.rand(4, generator=image_generator(1, "img1"))
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, d)


def test_metric_with_missing_weights_is_skipped_not_dropped(tmp_path, photos, monkeypatch):
    from srarena.harness.metrics import registry
    from srarena.harness.weights import MissingWeightsError, WeightSpec

    spec = WeightSpec(key="test/fake", filename="fake.pth", source="nowhere", used_by="fake_metric")

    def factory(ctx):
        raise MissingWeightsError(spec, [tmp_path / "fake.pth"])

    registry.available_metrics()  # load the built-in presets first
    fake = registry.MetricSpec("fake_metric", "fr", True, (0, 1), "test", "0", {}, factory)
    monkeypatch.setitem(registry._REGISTRY, "fake_metric", fake)
    write_png(tmp_path / "HR" / "a.png", photos["astronaut"][:64, :64])
    ds = PairedFolderDataset(tmp_path / "HR", scale=4)
    result = Runner(Bicubic(), "bicubic", ds, ["psnr_y", "fake_metric"], tmp_path / "out", progress=False).run()
    assert "fake.pth" in result.skipped_metrics["fake_metric"]
    assert result.rows[0]["fake_metric"] == "skipped" and result.rows[0]["psnr_y"] > 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert "fake.pth" in summary["skipped_metrics"]["fake_metric"]
