"""THE metric table: one row per metric srarena can compute. Adding a metric is adding a row.

Each row (:class:`~srarena.harness.metrics.spec.MetricSpec`) says what a stored value *means*:
its name (what a user lists in ``conf/metrics/*.yaml``), kind (``fr`` full-reference, ``nr``
no-reference, ``set`` a statistic of the whole output set), direction, range, the library that
computes it and its version, the weight files it needs, every convention that changes the number,
how reports label and round it, and the factory that builds it (``"module:function"``, imported
only when the metric is created). The leaderboard, the paper tables, the statistics and the
quality gate take each metric's direction from here (through :mod:`.registry` and
``srarena.harness.reports.columns``) and from nowhere else; non-metric columns (time, memory,
parameters, FLOPs) have their own table in ``srarena.harness.reports.columns``.

Why a table in Python rather than modules that register themselves: reading it imports no
network or metric library, so the report and the gate know every direction without loading
torch models, and no hand-kept import list can forget a module.

A convention value ``"scale"`` means "the job's scale" (e.g. BasicSR's ``crop_border = scale``).
"""

from __future__ import annotations

import math

from srarena.harness.metrics.spec import MetricSpec

INF = math.inf
_IMPL = "srarena.harness.metrics."

# ---------------------------------------------------------------------------------------------
# conventions shared by several rows

_U8 = {"input": "SR quantised to uint8"}
_BASE = {**_U8, "dtype": "float64", "data_range": 255}
_Y = "Y of BT.601 studio-range YCbCr (MATLAB rgb2ycbcr)"
_WINDOW = "gaussian 11, sigma 1.5, valid"
_NIQE = {**_U8, "dtype": "float64", "block": "96x96, no overlap", "y_rounding": "round to integer",
         "params": "official pristine (modelparameters.mat)"}
_LPIPS = {**_U8, "dtype": "float32", "lpips_version": "0.1", "input_scaling": "[0,1] -> [-1,1]",
          "crop_border": 0}
_FID = {**_U8, "features": "Inception pool3, 2048-d",
        "reference_set": "HR images of the dataset (stats cached by content hash)",
        "stats": "float64 sums (mean, unbiased covariance)",
        "trace_sqrt": "eigenvalues of sqrt(S1) S2 sqrt(S1) (= scipy sqrtm form to 1e-7, ~2.5x faster, "
                      "stable when rank-deficient); options.fid_method=sqrtm for clean-fid's own function",
        "per_image_features": "options.fid_features_dir -> <preset>_features.npz "
                              "(float32 SR/HR rows, for the bootstrap over images)"}


def _fid(name: str, mode: str, weights: str, resize: str) -> MetricSpec:
    return MetricSpec(
        name=name, kind="set", lower_better=True, value_range=(0.0, INF), library="clean-fid", version="1",
        conventions={**_U8, "mode": mode, "resize": resize, **{k: v for k, v in _FID.items() if k != "input"}},
        factory=_IMPL + "fid:fid", params={"mode": mode, "name": name}, weights=(weights,),
        label="FID" if name == "fid" else f"FID ({mode})", precision=2,
        description="Frechet Inception Distance between SR and HR sets; reports N",
    )


# ---------------------------------------------------------------------------------------------
# the table

METRICS: tuple[MetricSpec, ...] = (
    # --- fidelity: PSNR / SSIM (srarena's own, checked against BasicSR and pyiqa) -------------
    MetricSpec(
        name="psnr_y", kind="fr", lower_better=False, value_range=(0.0, INF), library="srarena", version="1",
        conventions={**_BASE, "colour": _Y, "y_rounding": "none", "crop_border": "scale",
                     "reference": "basicsr.metrics.calculate_psnr(test_y_channel=True)"},
        factory=_IMPL + "psnr_ssim:psnr_y", label="PSNR", precision=2,
        description="PSNR on Y, the SR-paper default"),
    MetricSpec(
        name="ssim_y", kind="fr", lower_better=False, value_range=(0.0, 1.0), library="srarena", version="1",
        conventions={**_BASE, "colour": _Y, "y_rounding": "none", "crop_border": "scale", "window": _WINDOW,
                     "reference": "basicsr.metrics.calculate_ssim(test_y_channel=True)"},
        factory=_IMPL + "psnr_ssim:ssim_y", label="SSIM", precision=4,
        description="SSIM on Y, the SR-paper default"),
    MetricSpec(
        name="psnr_rgb", kind="fr", lower_better=False, value_range=(0.0, INF), library="srarena", version="1",
        conventions={**_BASE, "colour": "RGB", "crop_border": "scale", "reference": "basicsr.metrics.calculate_psnr"},
        factory=_IMPL + "psnr_ssim:psnr_rgb", label="PSNR-RGB", precision=2,
        description="PSNR over the three RGB channels"),
    MetricSpec(
        name="ssim_rgb", kind="fr", lower_better=False, value_range=(0.0, 1.0), library="srarena", version="1",
        conventions={**_BASE, "colour": "RGB (mean of per-channel SSIM)", "crop_border": "scale",
                     "window": _WINDOW, "reference": "basicsr.metrics.calculate_ssim"},
        factory=_IMPL + "psnr_ssim:ssim_rgb", label="SSIM-RGB", precision=4,
        description="SSIM averaged over RGB channels"),
    MetricSpec(
        name="psnr_y_pyiqa", kind="fr", lower_better=False, value_range=(0.0, INF), library="srarena", version="1",
        conventions={**_BASE, "colour": _Y, "y_rounding": "none", "crop_border": "scale", "mse_eps": 1e-8,
                     "data_range": 1, "reference": "pyiqa psnr(test_y_channel=True, color_space='ycbcr')"},
        factory=_IMPL + "psnr_ssim:psnr_y_pyiqa", label="PSNR (pyiqa)", precision=2,
        description="PSNR-Y as pyiqa computes it (eps added to MSE on the [0,1] scale)"),
    MetricSpec(
        name="ssim_y_pyiqa", kind="fr", lower_better=False, value_range=(0.0, 1.0), library="srarena", version="1",
        conventions={**_BASE, "colour": _Y, "y_rounding": "round to integer", "crop_border": "scale",
                     "cs_clamp": "relu", "reference": "pyiqa ssim(test_y_channel=True, color_space='ycbcr')"},
        factory=_IMPL + "psnr_ssim:ssim_y_pyiqa", label="SSIM (pyiqa)", precision=4,
        description="SSIM-Y as pyiqa computes it (rounded Y, non-negative contrast term)"),
    MetricSpec(
        name="psnr_rgb_official", kind="fr", lower_better=False, value_range=(0.0, INF), library="srarena",
        version="1",
        conventions={**_BASE, "colour": "RGB", "crop_border": 0, "reference": "pyiqa calibration table, row 'psnr'"},
        factory=_IMPL + "psnr_ssim:psnr_rgb_official", label="PSNR (official)", precision=2,
        description="PSNR on RGB without crop"),
    MetricSpec(
        name="ssim_gray_official", kind="fr", lower_better=False, value_range=(0.0, 1.0), library="srarena",
        version="1",
        conventions={**_BASE, "colour": "MATLAB rgb2gray, rounded", "crop_border": 0, "downsample": "none",
                     "window": _WINDOW, "reference": "Wang et al. ssim.m; pyiqa calibration table, row 'ssim'"},
        factory=_IMPL + "psnr_ssim:ssim_gray_official", label="SSIM (official)", precision=4,
        description="SSIM of the original MATLAB implementation"),
    # --- MS-SSIM (pyiqa's calibrated implementation) ---------------------------------------
    MetricSpec(
        name="ms_ssim", kind="fr", lower_better=False, value_range=(0.0, 1.0), library="pyiqa", version="1",
        conventions={**_U8, "dtype": "float64", "colour": "Y of YIQ (MATLAB rgb2gray weights), rounded",
                     "crop_border": 0, "scales": 5, "downsample": "none", "reference": "pyiqa ms_ssim (calibrated)"},
        factory=_IMPL + "msssim:ms_ssim", label="MS-SSIM", precision=4,
        description="Multi-scale SSIM"),
    # --- perceptual: LPIPS (lpips package; backbone from the weights resolver) -------------
    MetricSpec(
        name="lpips", kind="fr", lower_better=True, value_range=(0.0, 1.0), library="lpips", version="1",
        conventions={**_LPIPS, "backbone": "alex",
                     "reference": "lpips.LPIPS(net='alex'); pyiqa lpips; torchmetrics LPIPS"},
        factory=_IMPL + "perceptual:lpips_metric", params={"net": "alex"}, weights=("metric/lpips_alex_backbone",),
        label="LPIPS", precision=4, description="LPIPS v0.1 with alex features (lower is better)"),
    MetricSpec(
        name="lpips_vgg", kind="fr", lower_better=True, value_range=(0.0, 1.0), library="lpips", version="1",
        conventions={**_LPIPS, "backbone": "vgg",
                     "reference": "lpips.LPIPS(net='vgg'); pyiqa lpips; torchmetrics LPIPS"},
        factory=_IMPL + "perceptual:lpips_metric", params={"net": "vgg"}, weights=("metric/lpips_vgg_backbone",),
        label="LPIPS-VGG", precision=4, description="LPIPS v0.1 with vgg features (lower is better)"),
    # --- no-reference: NIQE (two conventions), MUSIQ -----------------------------------------
    MetricSpec(
        name="niqe", kind="nr", lower_better=True, value_range=(0.0, INF), library="pyiqa", version="1",
        conventions={**_NIQE, "colour": "Y of YIQ (MATLAB rgb2gray weights)", "crop_border": 0,
                     "reference": "pyiqa niqe; MATLAB niqe.m (calibrated)"},
        factory=_IMPL + "niqe:niqe", params={"color_space": "yiq", "crop_border": 0},
        weights=("metric/niqe_pristine_params",), label="NIQE", precision=3,
        description="NIQE, no-reference naturalness (lower is better)"),
    MetricSpec(
        name="niqe_y", kind="nr", lower_better=True, value_range=(0.0, INF), library="pyiqa", version="1",
        conventions={**_NIQE, "colour": _Y, "crop_border": "scale",
                     "reference": "basicsr.metrics.calculate_niqe(convert_to='y')"},
        factory=_IMPL + "niqe:niqe", params={"color_space": "ycbcr", "crop_border": "scale"},
        weights=("metric/niqe_pristine_params",), label="NIQE-Y", precision=3,
        description="NIQE, no-reference naturalness (lower is better)"),
    MetricSpec(
        name="musiq", kind="nr", lower_better=False, value_range=(0.0, 100.0), library="pyiqa", version="1",
        conventions={**_U8, "dtype": "float32", "head": "KonIQ-10k",
                     "scales": "native + longer side 224, 384 (pyiqa defaults)", "reference": "pyiqa musiq"},
        factory=_IMPL + "musiq:musiq", weights=("metric/musiq_koniq",), label="MUSIQ", precision=2,
        description="MUSIQ multi-scale transformer IQA, KonIQ-10k MOS scale"),
    # --- set statistics: FID in clean-fid's three modes ---------------------------------------
    _fid("fid", "clean", "metric/fid_inception_torchscript", "PIL bicubic on float32 to 299x299 (clean-fid)"),
    _fid("fid_legacy_tensorflow", "legacy_tensorflow", "metric/fid_inception_torchscript",
         "inside the network, TF-style bilinear to 299x299"),
    _fid("fid_legacy_pytorch", "legacy_pytorch", "metric/fid_inception_pytorch",
         "torch bilinear (align_corners=False) to 299x299"),
)
