"""Quality gate: passes within tolerance, fails on an injected regression, and gates the real
default benchmark (``srarena`` on the embedded set) against the committed baseline."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd
import pytest

from srarena.harness.reports import gate, synthetic

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
BASELINES = REPO / "reports" / "baselines"

SETTINGS = gate.GateSettings(tolerances={"psnr": 0.05, "ssim": 0.002, "lpips": 0.005, "niqe": 0.1, "fid": 1.0})
BASELINE = {"schema": 1, "entries": [{"method": "m", "dataset": "d", "scale": 4, "dataset_hash": "h",
                                      "metrics": {"psnr_y": 30.0, "ssim_y": 0.80, "lpips": 0.20, "fid": 20.0}}]}


def _current(**metrics) -> pd.DataFrame:
    row = {"run_id": "r", "start_time": 1, "method": "m", "dataset": "d", "scale": 4, "tags.dataset_hash": "h",
           "psnr_y": 30.0, "ssim_y": 0.80, "lpips": 0.20, "fid": 20.0}
    row.update(metrics)
    return pd.DataFrame([row])


def _status(result: pd.DataFrame) -> dict[str, str]:
    return dict(zip(result["metric"], result["status"]))


def test_within_tolerance_passes_in_both_directions():
    cur = _current(psnr_y=29.96, ssim_y=0.7985, lpips=0.204, fid=20.9)
    res = gate.compare(BASELINE, cur, SETTINGS)
    assert set(res["status"]) == {"ok"} and gate.exit_code(res, SETTINGS) == 0


@pytest.mark.parametrize("metric,value", [("psnr_y", 29.94), ("ssim_y", 0.7975), ("lpips", 0.2055), ("fid", 21.1)])
def test_injected_regression_fails(metric, value):
    res = gate.compare(BASELINE, _current(**{metric: value}), SETTINGS)
    assert _status(res)[metric] == "regressed"
    assert gate.exit_code(res, SETTINGS) == 1
    assert "REGRESSED" in gate.format_result(res).splitlines()[2]  # failures are listed first


def test_improvement_is_reported_not_failed():
    res = gate.compare(BASELINE, _current(psnr_y=30.5, lpips=0.1), SETTINGS)
    assert _status(res) == {"psnr_y": "improved", "ssim_y": "ok", "lpips": "improved", "fid": "ok"}
    assert gate.exit_code(res, SETTINGS) == 0


def test_missing_run_metric_and_changed_dataset_fail():
    res = gate.compare(BASELINE, _current(fid=math.nan), SETTINGS)
    assert _status(res)["fid"] == "missing" and gate.exit_code(res, SETTINGS) == 1
    lenient = gate.GateSettings(tolerances=SETTINGS.tolerances, fail_on_missing=False)
    assert gate.exit_code(res, lenient) == 0
    res = gate.compare(BASELINE, _current(**{"tags.dataset_hash": "other"}), SETTINGS)
    assert set(res["status"]) == {"dataset_changed"} and gate.exit_code(res, SETTINGS) == 1
    res = gate.compare(BASELINE, _current(method="other"), SETTINGS)
    assert res["status"].tolist() == ["missing"]


def test_tolerance_lookup_exact_name_wins_over_family():
    s = gate.GateSettings(tolerances={"psnr": 0.05, "psnr_rgb": 0.1})
    assert s.tolerance("psnr_y") == 0.05 and s.tolerance("psnr_rgb") == 0.1 and s.tolerance("musiq") is None


def _cfg(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("gate", overrides=overrides)


def test_update_then_check_then_injected_regression_via_mlflow(tmp_path, capsys):
    uri = synthetic.new_store(tmp_path)
    exp = synthetic.experiment(uri, "srarena", tmp_path / "artifacts")
    per_image = {"psnr_y": [30.0, 31.0, 29.0], "ssim_y": [0.8, 0.82, 0.78]}
    synthetic.log_run(uri, exp, method="bicubic", dataset="embedded", scale=4, per_image=per_image,
                      output_dir=tmp_path / "job0")
    common = [f"tracking.uri={uri}", f"baselines_dir={tmp_path / 'baselines'}", f"paths.outputs={tmp_path}"]
    assert gate.run_gate(_cfg(common + ["action=update"])) == 0
    saved = json.loads((tmp_path / "baselines" / "default.json").read_text())
    assert saved["entries"][0]["metrics"] == pytest.approx({"psnr_y": 30.0, "ssim_y": 0.8})
    assert gate.run_gate(_cfg(common)) == 0
    # a newer run 0.1 dB worse supersedes the old one and fails the gate
    synthetic.log_run(uri, exp, method="bicubic", dataset="embedded", scale=4, output_dir=tmp_path / "job1",
                      per_image={"psnr_y": [29.9, 30.9, 28.9], "ssim_y": [0.8, 0.82, 0.78]})
    capsys.readouterr()
    assert gate.run_gate(_cfg(common)) == 1
    out = capsys.readouterr().out
    assert "REGRESSED" in out and "-0.1000" in out and "FAILED" in out
    # within tolerance again
    synthetic.log_run(uri, exp, method="bicubic", dataset="embedded", scale=4, output_dir=tmp_path / "job2",
                      per_image={"psnr_y": [29.97, 30.97, 28.97], "ssim_y": [0.799, 0.819, 0.779]})
    assert gate.run_gate(_cfg(common)) == 0


def test_gate_errors_are_user_errors(tmp_path):
    from srarena.harness.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        gate.run_gate(_cfg([f"baselines_dir={tmp_path}", f"paths.outputs={tmp_path}"]))
    with pytest.raises(ConfigError, match="check' or 'update"):
        gate.run_gate(_cfg(["action=nope", f"paths.outputs={tmp_path}"]))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """Built datasets are reused when SRARENA_DATA points at a cache (CI sets it)."""
    env = os.environ.get("SRARENA_DATA")
    return Path(env) if env else tmp_path_factory.mktemp("srdata")


@pytest.mark.slow
def test_default_benchmark_passes_the_committed_baseline(tmp_path, data_dir, monkeypatch, capsys):
    """What the project's CI does: run the default benchmark, gate it against reports/baselines."""
    assert (BASELINES / "default.json").is_file(), "reports/baselines/default.json must be committed"
    for key, value in {"SRARENA_OUTPUTS": tmp_path / "outputs", "SRARENA_REPORTS": tmp_path / "reports",
                       "SRARENA_DATA": data_dir}.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    synthetic.new_store(tmp_path / "outputs")  # an empty, migrated store: saves MLflow's ~10 s schema setup
    # `srarena` with no arguments, in-process (the real CLI and Hydra app; no interpreter start-up)
    from srarena.harness import cli

    with pytest.raises(SystemExit) as done:
        cli.main(["runner.progress=false"])
    assert done.value.code == 0
    code = gate.run_gate(_cfg([f"baselines_dir={BASELINES}"]))
    out = capsys.readouterr().out
    print(out)
    assert code == 0, out
    assert "psnr_y" in out and "passed" in out
