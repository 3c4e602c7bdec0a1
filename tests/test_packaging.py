"""The built wheel: exactly one top-level package, every data file it needs, and it runs installed.

Why this test: an editable install (what developers and CI use) reads conf/, datasets/ and the
demo checkpoints from the checkout, so a wheel without them would pass every other test and run
nothing for a user who installs from an index. Here the wheel is built from a copy of the
checkout, installed into a folder of its own (``pip install --target``, no dependencies: the test
environment's are reused, no torch is pulled), and run from another folder with only that folder
on ``PYTHONPATH``: the default benchmark through the ``srarena`` console script, one demo method
through ``python -m srarena``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DATA_ROOTS = ("harness", "methods", "conf", "datasets", "srarena")  # folders the wheel maps under srarena/
BUILD_FILES = ("setup.py", "pyproject.toml", "README.md")


def _source_files() -> list[str]:
    """What a clean checkout holds of the package: git's view when there is one."""
    try:
        out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", *DATA_ROOTS],
                             capture_output=True, text=True, check=True, timeout=60).stdout.split()
    except (OSError, subprocess.SubprocessError):
        out = [p.relative_to(REPO).as_posix() for root in DATA_ROOTS for p in (REPO / root).rglob("*") if p.is_file()]
    return sorted(f for f in out if "__pycache__" not in f and (REPO / f).is_file())


def _pip(*args: str, cwd: Path) -> None:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    proc = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    files = _source_files()
    for rel in [*files, *BUILD_FILES]:  # a copy: no build/ or egg-info left in the checkout
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"), str(src), cwd=root)
    (wheel,) = (root / "dist").glob("srarena-*.whl")
    site = root / "site"
    _pip("install", "--no-deps", "--no-compile", "-q", "--target", str(site), str(wheel), cwd=root)
    return {"root": root, "wheel": wheel, "site": site, "files": files}


def test_wheel_holds_one_top_level_package_and_every_file_of_the_checkout(built):
    with zipfile.ZipFile(built["wheel"]) as z:
        names = set(z.namelist())
        top_level = z.read(next(n for n in names if n.endswith(".dist-info/top_level.txt"))).decode().split()
    tops = {n.split("/")[0] for n in names}
    dist_info = [t for t in tops if t.endswith(".dist-info")]
    assert tops == {"srarena", *dist_info} and len(dist_info) == 1
    assert top_level == ["srarena"]
    expected = {f if f.startswith("srarena/") else f"srarena/{f}" for f in built["files"]}
    missing = sorted(expected - names)
    assert not missing, f"files of the checkout absent from the wheel: {missing}"
    # the data a run needs, spelled out
    assert {"srarena/conf/run.yaml", "srarena/conf/metrics/default.yaml", "srarena/conf/method/rrdbnet_demo.yaml",
            "srarena/datasets/embedded.yaml", "srarena/methods/checkpoints/README.md"} <= names
    assert any(n.startswith("srarena/methods/checkpoints/") and n.endswith(".safetensors") for n in names)
    assert len([n for n in names if n.startswith("srarena/conf/") and n.endswith(".yaml")]) == \
        len(list((REPO / "conf").rglob("*.yaml")))
    assert {f"srarena/datasets/{p.name}" for p in (REPO / "datasets").glob("*.yaml")} <= names


def _env(built, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "SRARENA_", "PYTHON")) and k != "VIRTUAL_ENV"}
    data = os.environ.get("SRARENA_DATA") or str(work / "data")  # CI may point at a cache of built sets
    env.update(PYTHONPATH=str(built["site"]), SRARENA_OUTPUTS=str(work / "outputs"),
               SRARENA_REPORTS=str(work / "reports"), SRARENA_DATA=data, SRARENA_WEIGHTS=str(work / "weights"),
               PYTHONNOUSERSITE="1")
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _jobs(work: Path) -> dict[str, dict]:
    """Latest finished job per method, from the MLflow store the installed copy wrote."""
    from srarena.harness.reports import runs as runs_mod

    runs = runs_mod.load_runs(f"sqlite:///{work / 'outputs' / 'mlflow.db'}", runs_mod.Selection(experiments=("srarena",)))
    return {str(r["method"]): r.to_dict() for _, r in runs_mod.latest(runs, runs_mod.KEYS).iterrows()}


def test_installed_wheel_runs_the_default_benchmark_and_a_demo_method_from_another_folder(built):
    work = built["root"] / "elsewhere"
    work.mkdir()
    env = _env(built, work)
    where = _run([sys.executable, "-c", "import srarena, srarena.harness, srarena.methods; "
                  "print(srarena.__file__, srarena.harness.__file__, srarena.PACKAGE_ROOT)"], work, env).stdout.split()
    assert all(Path(p).resolve().is_relative_to(built["site"].resolve()) for p in where), where
    assert not (built["site"] / "harness").exists() and not (built["site"] / "methods").exists()

    # the default benchmark, as a user types it (the console script the wheel installs)
    script = built["site"] / "bin" / "srarena"
    assert script.is_file()
    proc = _run([sys.executable, str(script), "runner.progress=false"], work, env)
    assert "bicubic" in proc.stdout
    # one demo method, its checkpoint read from the installed package (PSNR only: the default job above
    # already exercised the other metrics; this keeps the test short)
    proc = _run([sys.executable, "-m", "srarena", "method=rrdbnet_demo", "runner.progress=false", "runner.warmup=0",
                 "metrics.presets=[psnr_y]"], work, env)
    assert "rrdbnet_demo" in proc.stdout

    board = (work / "reports" / "leaderboard.md").read_text()
    assert "| bicubic | embedded | 4 |" in board and "| rrdbnet_demo | embedded | 4 |" in board
    jobs = _jobs(work)
    bicubic, demo = jobs["bicubic"], jobs["rrdbnet_demo"]
    assert str(bicubic["tags.git_commit"]).startswith("release-")  # installed: the release is the version
    # the installed copy computes what the checkout's committed baseline says, to float64 rounding
    base = json.loads((REPO / "reports" / "baselines" / "default.json").read_text())["entries"][0]["metrics"]
    for name in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb"):
        assert bicubic[name] == pytest.approx(base[name], abs=1e-9), name
    # a trained demo network, not random weights: it beats bicubic on every image
    rows = {}
    for m in ("bicubic", "rrdbnet_demo"):
        with open(Path(jobs[m]["tags.output_dir"]) / "per_image.csv") as f:
            rows[m] = {r["id"]: float(r["psnr_y"]) for r in csv.DictReader(f)}
    assert rows["bicubic"].keys() == rows["rrdbnet_demo"].keys() and len(rows["bicubic"]) == 5
    assert all(rows["rrdbnet_demo"][i] > rows["bicubic"][i] for i in rows["bicubic"])
    assert demo["n_failed"] == 0 and bicubic["n_failed"] == 0
    # nothing was written into the checkout or the working folder's parent
    assert not (built["site"] / "outputs").exists()
