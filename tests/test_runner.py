"""The runner records bad inputs and bad method outputs per image and goes on."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
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


class AlwaysFails(BaseMethod):
    def upscale(self, lr, scale, generator):
        raise RuntimeError("this method never works")


def _compose_run(tmp_path, hr_dir, *overrides):
    from hydra import compose, initialize_config_dir

    from tests.conftest import REPO

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("run", overrides=[
            f"paths.outputs={tmp_path / 'out'}", f"paths.reports={tmp_path / 'reports'}", "dataset=folder",
            f"dataset.hr_dir={hr_dir}", "metrics=default", "metrics.presets=[psnr_y]", "runner.progress=false",
            "device=cpu", "leaderboard.print_after_run=false", *overrides])


def test_a_job_whose_images_all_fail_exits_nonzero_and_its_run_is_failed(tmp_path, photos, capsys, monkeypatch):
    import mlflow

    from srarena.harness.app import run

    # mlflow.set_tracking_uri (earlier tests, and this one) exports MLFLOW_TRACKING_URI: pin it here
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")

    write_png(tmp_path / "HR" / "a.png", photos["astronaut"][:64, :64])
    write_png(tmp_path / "HR" / "b.png", photos["coffee"][:64, :64])
    cfg = _compose_run(tmp_path, tmp_path / "HR", "method=bicubic", "method._target_=tests.test_runner.AlwaysFails",
                       "~method.scales", "+method_name=always_fails")
    assert run(cfg) == 1
    err = capsys.readouterr()
    assert "2 of 2 images failed" in err.out and "every image failed" in err.err
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["srarena"], output_format="pandas")
    assert list(runs["status"]) == ["FAILED"] and list(runs["tags.method"]) == ["always_fails"]
    # a partly failed job succeeds and says how many failed
    (tmp_path / "HR" / "c.png").write_bytes(b"\x89PNG garbage")
    cfg = _compose_run(tmp_path, tmp_path / "HR", "method=bicubic")
    assert run(cfg) == 0
    assert "1 of 3 images failed" in capsys.readouterr().out


class CountingBicubic(Bicubic):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def upscale(self, lr, scale, generator):
        self.calls += 1
        return super().upscale(lr, scale, generator)


def test_profiling_runs_once_per_distinct_input_size(tmp_path, photos):
    hr = tmp_path / "HR"
    write_png(hr / "a.png", photos["astronaut"][:64, :64])
    write_png(hr / "b.png", photos["chelsea"][:64, :64])
    write_png(hr / "c.png", photos["coffee"][:128, :96])
    m = CountingBicubic()
    result = Runner(m, "bicubic", PairedFolderDataset(hr, scale=4), ["psnr_y"], tmp_path / "out", progress=False,
                    warmup=1).run()
    assert m.calls == 1 + 2 + 3  # warm-up, one profiling pass per LR size (16x16, 32x24), the timed calls
    rows = {r["id"]: r for r in result.rows}
    assert 0 < rows["a"]["flops_per_image_g"] == rows["b"]["flops_per_image_g"] < rows["c"]["flops_per_image_g"]
    assert rows["a"]["peak_memory_mb"] == rows["b"]["peak_memory_mb"] < rows["c"]["peak_memory_mb"]
    assert result.aggregates["peak_memory_mb"] == rows["c"]["peak_memory_mb"]
    agg = result.aggregates  # no networks: one "step" that is the whole image
    assert agg["steps"] == 1 and agg["params_active_m"] == 0 and agg["flops_per_step_g"] == agg["flops_per_image_g"] > 0


def test_cost_figures_are_averaged_over_sizes(tmp_path, photos):
    from srarena.methods.rrdbnet import RRDBNetMethod

    hr = tmp_path / "HR"
    write_png(hr / "a.png", photos["astronaut"][:64, :64])
    write_png(hr / "b.png", photos["coffee"][:128, :128])
    m = RRDBNetMethod(arch={"num_feat": 8, "num_block": 1, "num_grow_ch": 4})
    result = Runner(m, "rrdbnet", PairedFolderDataset(hr, scale=4), ["psnr_y"], tmp_path / "out", progress=False).run()
    a, b = (r["flops_per_image_g"] for r in result.rows)
    assert b == pytest.approx(4 * a, rel=1e-9)  # 4x the pixels
    agg = result.aggregates
    assert agg["flops_per_image_g"] == pytest.approx((a + b) / 2) and agg["flops_per_step_g"] == agg["flops_per_image_g"]
    assert agg["params_step_m"] == agg["params_active_m"] == agg["params_m"] == m.num_params() / 1e6
    assert agg["steps"] == 1 and agg["nfe_per_step"] == 0 and agg["calls_rrdb"] == 1
