"""Shared fixtures: real photographs, the calibration pairs, and reference libraries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
#: pyiqa's calibration pairs and official values, in the project (lossless PNG; PROVENANCE.md).
CALIBRATION = REPO / "tests" / "data" / "pyiqa_calibration"


def calibration_image(root: Path, kind: str, name: str) -> Path:
    """The stored file of a calibration image named as in ``results_official.csv`` (``I03.bmp``):
    the BMPs of pyiqa's release are kept as pixel-identical PNGs."""
    return root / kind / f"{Path(name).stem}.png"


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m srarena ARGS`` on *this checkout's* code (not whatever the console script
    of an editable install points at), as a user's shell would run it."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "srarena", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def import_basicsr():
    """Import BasicSR 1.4.2 on torchvision >= 0.17, which dropped ``functional_tensor``.

    BasicSR only needs ``rgb_to_grayscale`` from it, which ``functional`` still provides.
    """
    pytest.importorskip("torchvision")
    import torchvision.transforms.functional as tvf

    sys.modules.setdefault("torchvision.transforms.functional_tensor", tvf)
    return pytest.importorskip("basicsr")


@pytest.fixture(scope="session")
def basicsr():
    return import_basicsr()


@pytest.fixture(scope="session")
def calibration_dir() -> Path:
    if not (CALIBRATION / "results_official.csv").is_file():
        pytest.fail(f"calibration data missing from the project: expected {CALIBRATION}")
    return CALIBRATION


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real RGB photographs shipped inside scikit-image's wheel (uint8 HWC)."""
    import skimage.data as d

    return {"astronaut": d.astronaut(), "chelsea": d.chelsea(), "coffee": d.coffee()}
