"""End to end: the real `srarena` CLI on the embedded set, checked against an independent recomputation."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SRARENA_"))}
    env.update(SRARENA_OUTPUTS=str(root / "outputs"), SRARENA_REPORTS=str(root / "reports"),
               SRARENA_DATA=str(root / "data"), SRARENA_WEIGHTS=str(root / "weights"))
    return root, env


def srarena(workdir, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    root, env = workdir
    return run_cli(*args, cwd=root, env=env, timeout=timeout)


def _runs(root: Path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / 'outputs' / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=["srarena"], output_format="pandas")


def test_default_run_end_to_end(workdir, basicsr):
    from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim

    root, _ = workdir
    proc = srarena(workdir, "runner.progress=false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = _runs(root)
    jobs = runs[runs["tags.srarena.kind"] == "job"]
    assert len(jobs) == 1
    run = jobs.iloc[0]
    assert run["tags.method"] == "bicubic" and run["tags.dataset"] == "embedded" and run["tags.scale"] == "4"
    assert run["tags.git_commit"] and run["tags.dataset_hash"] and "crop_border=4" in run["tags.metric.psnr_y"]
    assert run["params.method._target_"] == "srarena.methods.bicubic.Bicubic"

    out_dir = Path(run["tags.output_dir"])
    with open(out_dir / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    hr_dir = root / "data" / "embedded" / "v1" / "eval" / "HR"
    hr_files = sorted(hr_dir.glob("*.png"))
    assert len(rows) == len(hr_files) == 5
    # Independent recomputation: BasicSR on the saved PNGs (BGR as cv2 reads them).
    psnrs, ssims = [], []
    for hr_path in hr_files:
        sr = cv2.imread(str(out_dir / "images" / hr_path.name))
        hr = cv2.imread(str(hr_path))
        psnrs.append(calculate_psnr(sr, hr, 4, test_y_channel=True))
        ssims.append(calculate_ssim(sr, hr, 4, test_y_channel=True))
    assert run["metrics.psnr_y"] == pytest.approx(np.mean(psnrs), abs=1e-6)
    assert run["metrics.ssim_y"] == pytest.approx(np.mean(ssims), abs=1e-6)
    assert run["metrics.psnr_y"] > 20
    board = (root / "reports" / "leaderboard.md").read_text()
    assert "| bicubic | embedded | 4 |" in board and "psnr_y ↑" in board
    assert "bicubic" in proc.stdout


def test_multirun_makes_parent_and_children(workdir):
    root, _ = workdir
    proc = srarena(workdir, "-m", "method=bicubic", "scale=2,4", "runner.progress=false", "runner.save_images=false")
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = _runs(root)
    parents = runs[runs["tags.srarena.kind"] == "sweep"]
    assert len(parents) == 1
    children = runs[runs["tags.mlflow.parentRunId"] == parents.iloc[0]["run_id"]]
    assert sorted(children["tags.scale"]) == ["2", "4"]
    assert "| bicubic | embedded | 2 |" in proc.stdout and "| bicubic | embedded | 4 |" in proc.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["method=nonexistent"], "unknown method 'nonexistent'. Available: bicubic"),
        (["dataset=folder", "dataset.hr_dir=/no/such/dir"], "HR folder /no/such/dir does not exist"),
        (["dataset=folder"], "dataset.hr_dir"),
        (["frobnicate"], "unknown command 'frobnicate'"),
    ],
)
def test_bad_input_gets_a_clear_message(workdir, args, message):
    proc = srarena(workdir, *args, "tracking.enabled=false")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
