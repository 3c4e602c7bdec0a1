"""NIQE through pyiqa, offline, with the official pristine parameters from the basicsr wheel.

pyiqa's ``niqe`` downloads ``niqe_modelparameters.mat``; the same numbers (the MATLAB release's
``modelparameters.mat``) ship inside basicsr's wheel as ``niqe_pris_params.npz``. We read that
file without importing basicsr (whose import fails on torchvision >= 0.17) and write it in the
``.mat`` layout pyiqa loads, once, atomically, into the weights directory.

Two presets, because the field uses two conventions that differ by up to a few tenths:
``niqe`` is pyiqa's (Y of YIQ = MATLAB ``rgb2gray`` luminance, rounded, no crop; this is the one
calibrated against the official MATLAB values), ``niqe_y`` is BasicSR's SR-table convention
(Y of studio-range YCbCr, rounded, ``crop_border = scale``).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import torch

from srarena.harness.metrics.registry import MetricContext, MetricSpec, register_metric
from srarena.harness.metrics.versions import library_version
from srarena.harness.weights import WeightSpec, register_weights, resolve_weights

VERSION = "1"
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


def _niqe(color_space: str, crop: int | str):
    def factory(ctx: MetricContext):
        from pyiqa.archs.niqe_arch import NIQE

        border = ctx.scale if crop == "scale" else int(crop)
        net = NIQE(test_y_channel=True, color_space=color_space, crop_border=border,
                   pretrained_model_path=str(resolve_weights(NIQE_WEIGHTS)))

        def f(sr: torch.Tensor, hr: torch.Tensor | None = None) -> torch.Tensor:
            with torch.inference_mode():
                return net(sr.to(torch.float64)).reshape(-1)

        return f

    return factory


_COMMON = {"input": "SR quantised to uint8", "dtype": "float64", "block": "96x96, no overlap",
           "y_rounding": "round to integer", "params": "official pristine (modelparameters.mat)"}

for _name, _cs, _crop, _colour, _ref in [
    ("niqe", "yiq", 0, "Y of YIQ (MATLAB rgb2gray weights)", "pyiqa niqe; MATLAB niqe.m (calibrated)"),
    ("niqe_y", "ycbcr", "scale", "Y of BT.601 studio-range YCbCr (MATLAB rgb2ycbcr)",
     "basicsr.metrics.calculate_niqe(convert_to='y')"),
]:
    register_metric(MetricSpec(
        name=_name, kind="nr", lower_better=True, value_range=(0.0, math.inf), library="pyiqa",
        version=f"{VERSION}+pyiqa-{library_version('pyiqa')}",
        conventions={**_COMMON, "colour": _colour, "crop_border": _crop, "reference": _ref},
        factory=_niqe(_cs, _crop), description="NIQE, no-reference naturalness (lower is better)",
    ))
