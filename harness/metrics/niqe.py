"""NIQE through pyiqa, offline, with the official pristine parameters from the basicsr wheel.

pyiqa's ``niqe`` downloads ``niqe_modelparameters.mat``; the same numbers (the MATLAB release's
``modelparameters.mat``) ship inside basicsr's wheel as ``niqe_pris_params.npz``. We read that
file without importing basicsr (whose import fails on torchvision >= 0.17) and write it in the
``.mat`` layout pyiqa loads, once, atomically, into the weights directory.

Two rows of the metric table, because the field uses two conventions that differ by up to a few tenths:
``niqe`` is pyiqa's (Y of YIQ = MATLAB ``rgb2gray`` luminance, rounded, no crop; this is the one
calibrated against the official MATLAB values), ``niqe_y`` is BasicSR's SR-table convention
(Y of studio-range YCbCr, rounded, ``crop_border = scale``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from srarena.harness.metrics.spec import MetricContext
from srarena.harness.weights import WeightSpec, register_weights, resolve_weights

BASICSR_FILE = "metrics/niqe_pris_params.npz"


def basicsr_npz_path() -> Path:
    """The pristine-parameter file inside the installed basicsr package (not imported)."""
    spec = importlib.util.find_spec("basicsr")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("basicsr is not installed; its wheel carries niqe_pris_params.npz")
    path = Path(list(spec.submodule_search_locations)[0]) / BASICSR_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is absent from the basicsr installation")
    return path


def write_niqe_mat(target: Path) -> None:
    """Convert basicsr's ``.npz`` (``mu_pris_param``, ``cov_pris_param``) to pyiqa's ``.mat``."""
    import scipy.io

    with np.load(basicsr_npz_path()) as z:
        mu = np.asarray(z["mu_pris_param"], dtype=np.float64).reshape(1, -1)
        cov = np.asarray(z["cov_pris_param"], dtype=np.float64)
    if mu.shape != (1, 36) or cov.shape != (36, 36):
        raise ValueError(f"unexpected NIQE parameter shapes {mu.shape}, {cov.shape}")
    with open(target, "wb") as f:
        scipy.io.savemat(f, {"mu_prisparam": mu, "cov_prisparam": cov})


NIQE_WEIGHTS = register_weights(
    WeightSpec(
        key="metric/niqe_pristine_params",
        filename="niqe_modelparameters.mat",
        source="https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/niqe_modelparameters.mat",
        used_by="niqe, niqe_y",
        library_paths=("{hub}/pyiqa/niqe_modelparameters.mat",),
        licence="NIQE release (LIVE, UT Austin): research use",
        derive=write_niqe_mat,
        derived_from="basicsr wheel: basicsr/metrics/niqe_pris_params.npz (converted offline)",
    )
)


def niqe(ctx: MetricContext, color_space: str, crop_border: int | str):
    """pyiqa's NIQE on the Y of ``color_space`` (``yiq`` or ``ycbcr``), rounded, with the official
    pristine parameters; ``crop_border`` is pixels or ``"scale"`` (the job's scale)."""
    from pyiqa.archs.niqe_arch import NIQE

    border = ctx.scale if crop_border == "scale" else int(crop_border)
    net = NIQE(test_y_channel=True, color_space=color_space, crop_border=border,
               pretrained_model_path=str(resolve_weights(NIQE_WEIGHTS)))

    def f(sr: torch.Tensor, hr: torch.Tensor | None = None) -> torch.Tensor:
        with torch.inference_mode():
            return net(sr.to(torch.float64)).reshape(-1)

    return f
