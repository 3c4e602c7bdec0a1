"""``srarena report`` end to end on a synthetic MLflow store: every output, marks in place."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from srarena.harness.reports import plots

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    from hydra import compose, initialize_config_dir

    from srarena.harness.reports import synthetic
    from srarena.harness.reports.app import run_report

    root = tmp_path_factory.mktemp("report")
    uri = synthetic.demo_store(root)
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("report", overrides=[
            f"tracking.uri={uri}", f"out_dir={root / 'reports'}", f"paths.outputs={root}", "stats.n_boot=300",
            "figures.perception_distortion.y=[lpips]", "figures.quality_vs_steps.metrics=[psnr_y]",
            "figures.quality_vs_flops.metrics=[lpips]",
        ])
    assert run_report(cfg) == 0
    return root / "reports"


def test_report_writes_every_output(report):
    names = {p.relative_to(report).as_posix() for p in report.rglob("*") if p.is_file()}
    for ext in ("md", "tex", "csv", "html"):
        assert f"leaderboard.{ext}" in names
    for layout in ("sr_table1", "efficiency", "steps_sweep"):
        assert {f"tables/{layout}.md", f"tables/{layout}.tex", f"tables/{layout}.csv"} <= names
    assert "tables/x8_single.md" not in names  # no x8 runs: skipped, not an empty table
    assert {"figures/pd_Set5_x4_lpips.png", "figures/steps_Set5_x4_psnr_y.png", "figures/flops_Set5_x4_lpips.png",
            "comparisons/Set5_x4_astronaut.png"} <= names


def test_paper_table_marks_and_set_metric_n(report):
    tex = (report / "tables" / "sr_table1.tex").read_text()
    assert r"\multicolumn{4}{c}{Set5} & \multicolumn{4}{c}{Urban100}" in tex
    assert "FID (N=3)" in tex and "FID (N=2)" in tex
    row = next(line for line in tex.splitlines() if line.startswith("ssmoe"))
    assert row.count(r"\textbf") == 8  # ssmoe is best everywhere in the demo (PSNR up, LPIPS/FID down)
    row = next(line for line in tex.splitlines() if line.startswith("sr3"))
    assert row.count(r"\underline") == 8
    eff = pd.read_csv(report / "tables" / "efficiency.csv")
    assert eff.set_index("method").loc["ssmoe", "params_active_m:mark"] == "second"
    assert eff.set_index("method").loc["bicubic", "time_per_image_s:mark"] == "best"


def test_leaderboard_csv_has_confidence_intervals_and_p_values(report):
    lb = pd.read_csv(report / "leaderboard.csv")
    assert (lb["psnr_y:ci_lo"] <= lb["psnr_y"]).all() and (lb["psnr_y"] <= lb["psnr_y:ci_hi"]).all()
    assert lb["psnr_y:p_vs_best"].between(0, 1).all()
    assert lb["fid:ci_lo"].isna().all()  # a set metric has no per-image values
    assert "time_per_image_s:ci_lo" not in lb.columns or lb["time_per_image_s:ci_lo"].isna().all()


def test_comparison_grid_uses_the_same_crop_for_every_method():
    rng = np.random.default_rng(0)
    hr = np.zeros((64, 64, 3), np.uint8)
    hr[40:60, 8:28] = rng.integers(0, 255, (20, 20, 3))  # the only texture
    top, left, h, w = plots.pick_crop(hr, 16)
    assert 24 <= top <= 48 and 0 <= left <= 24 and (h, w) == (16, 16)
    fig = plots.comparison_grid(hr, hr[::4, ::4], {"a": hr, "b": hr}, scale=4, crop=(top, left, h, w))
    assert len(fig.axes) == 5  # full HR, HR crop, LR crop, a, b
    plots.plt.close(fig)


def test_fid_gets_a_bootstrap_ci_and_n_from_a_features_artifact(tmp_path):
    """A run with ``fid_features.npz`` gets FID's CI and N (seeded: two reports agree);
    a run without it keeps an empty CI."""
    from hydra import compose, initialize_config_dir

    from srarena.harness.reports import synthetic
    from srarena.harness.reports.app import run_report

    uri = synthetic.new_store(tmp_path)
    exp = synthetic.experiment(uri, "srarena", tmp_path / "mlartifacts")
    feats, fid = synthetic.fid_features(tmp_path / "feats" / "fid_features.npz", 10, seed=2)
    psnr = {"psnr_y": list(np.linspace(25, 27, 10))}
    synthetic.log_run(uri, exp, method="a", dataset="D", scale=4, per_image=psnr, metrics={"fid": fid, "fid_n": 10.0},
                      artifacts=[feats], output_dir=tmp_path / "job_a")
    synthetic.log_run(uri, exp, method="b", dataset="D", scale=4, per_image=psnr, metrics={"fid": fid + 5, "fid_n": 10.0},
                      output_dir=tmp_path / "job_b")
    outs = []
    for k in range(2):
        with initialize_config_dir(str(CONF), version_base="1.3"):
            cfg = compose("report", overrides=[f"tracking.uri={uri}", f"out_dir={tmp_path / f'r{k}'}", f"paths.outputs={tmp_path}",
                                               "stats.n_boot=100", "stats.set_n_boot=100", "figures.enabled=false",
                                               "leaderboard.html=false", "tables=[]"])
        assert run_report(cfg) == 0
        outs.append(tmp_path / f"r{k}")
    lb = pd.read_csv(outs[0] / "leaderboard.csv").set_index("method")
    assert lb.at["a", "fid:ci_lo"] < lb.at["a", "fid:ci_hi"] and lb.at["a", "fid:n"] == 10
    assert np.isnan(lb.at["b", "fid:ci_lo"]) and np.isnan(lb.at["b", "fid:n"])
    assert (outs[0] / "leaderboard.csv").read_text() == (outs[1] / "leaderboard.csv").read_text()
    md = (outs[0] / "leaderboard.md").read_text()
    assert "(N=10)" in md and "paired bootstrap over the N images" in md
