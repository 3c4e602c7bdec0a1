"""Each degradation op against its BasicSR counterpart, for identical parameters, on real photos.

Tolerances (float32 images in [0, 1]):
  kernels (float64): Gaussian / generalized / plateau 1e-12; sinc 1e-7 (torch's Bessel J1 vs scipy's)
  filter2d vs filter2D: 1e-6 (same taps; only summation order may differ: observed 0)
  usm_sharpen vs USMSharp: 5e-6 on > 99% of values, 1e-3 max, 1e-6 mean (separable vs 2-D
    51x51 filter; the hard threshold mask flips on a few pixels at float-error distance)
  Gaussian / Poisson noise vs *_pt with the same seed: exact
  JPEG vs cv2.imencode / BasicSR add_jpg_compression at the same quality: exact
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from srarena.harness.degradations.filters import filter2d, usm_sharpen
from srarena.harness.degradations.jpeg import jpeg_compress
from srarena.harness.degradations.kernels import build_kernel
from srarena.harness.degradations.noise import gaussian_noise, poisson_noise


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255.0


@pytest.fixture(scope="module")
def crops(photos) -> torch.Tensor:
    """Three real 192x192 photo crops as one float batch."""
    return torch.cat([_t(img[64:256, 96:288]) for img in photos.values()])


KERNEL_CASES = [
    ("iso", 7, dict(sigma_x=0.7)),
    ("iso", 21, dict(sigma_x=3.0)),
    ("aniso", 13, dict(sigma_x=0.4, sigma_y=2.7, theta=-2.1)),
    ("generalized_iso", 9, dict(sigma_x=1.3, beta=0.6)),
    ("generalized_aniso", 15, dict(sigma_x=2.2, sigma_y=0.9, theta=0.8, beta=3.5)),
    ("plateau_iso", 11, dict(sigma_x=1.1, beta=1.4)),
    ("plateau_aniso", 19, dict(sigma_x=0.5, sigma_y=1.9, theta=3.0, beta=1.9)),
]


def _basicsr_kernel(deg, kind: str, size: int, p: dict) -> np.ndarray:
    iso = not kind.endswith("aniso")
    sx = p["sigma_x"]
    sy, th = p.get("sigma_y", sx), p.get("theta", 0.0)
    if kind in ("iso", "aniso"):
        return deg.bivariate_Gaussian(size, sx, sy, th, isotropic=iso)
    if kind.startswith("generalized"):
        return deg.bivariate_generalized_Gaussian(size, sx, sy, th, p["beta"], isotropic=iso)
    return deg.bivariate_plateau(size, sx, sy, th, p["beta"], isotropic=iso)


@pytest.mark.parametrize("kind,size,params", KERNEL_CASES, ids=[c[0] + str(c[1]) for c in KERNEL_CASES])
def test_kernels_match_basicsr(basicsr, kind, size, params):
    from basicsr.data import degradations as deg

    ours = build_kernel(kind, size, **params).numpy()
    ref = _basicsr_kernel(deg, kind, size, params)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    padded = build_kernel(kind, size, pad_to=21, **params).numpy()
    p = (21 - size) // 2
    np.testing.assert_allclose(padded, np.pad(ref, ((p, p), (p, p))), rtol=0, atol=1e-12)


@pytest.mark.parametrize("size,omega", [(7, math.pi / 3), (11, 2.9), (13, math.pi / 5), (21, 1.7)])
def test_sinc_kernel_matches_basicsr(basicsr, size, omega):
    from basicsr.data.degradations import circular_lowpass_kernel

    ours = build_kernel("sinc", size, omega=omega, pad_to=21).numpy()
    np.testing.assert_allclose(ours, circular_lowpass_kernel(omega, size, pad_to=21), rtol=0, atol=1e-7)


def test_filter2d_matches_basicsr(basicsr, crops):
    from basicsr.utils.img_process_util import filter2D

    kernels = torch.stack(
        [
            build_kernel("aniso", 13, 0.4, 2.7, -2.1, pad_to=21),
            build_kernel("sinc", 21, omega=0.9, pad_to=21),
            build_kernel("plateau_iso", 7, 1.1, beta=1.4, pad_to=21),
        ]
    ).float()
    # One kernel per sample (grouped conv in BasicSR) and one kernel for all.
    torch.testing.assert_close(filter2d(crops, kernels), filter2D(crops, kernels), rtol=0, atol=1e-6)
    torch.testing.assert_close(filter2d(crops, kernels[0]), filter2D(crops, kernels[:1]), rtol=0, atol=1e-6)
    # The pulse is the identity, exactly.
    pulse = build_kernel("pulse", 21).float()
    assert torch.equal(filter2d(crops, pulse), crops)


def test_usm_matches_basicsr(basicsr, crops):
    from basicsr.utils.img_process_util import USMSharp

    ref = USMSharp(radius=50)(crops, weight=0.5, threshold=10)
    ours = usm_sharpen(crops, weight=0.5, radius=50, threshold=10)
    diff = (ours - ref).abs()
    # Same filter; where |I - blur(I)| * 255 sits within float error of the threshold the hard
    # mask can flip, which moves the soft mask by <= 1e-3 on a few pixels.
    assert (diff <= 5e-6).float().mean() > 0.99
    assert diff.max() < 1e-3
    assert diff.mean() < 1e-6
    assert (ours - crops).abs().max() > 0.05  # it does sharpen


@pytest.mark.parametrize("gray", [False, True])
def test_gaussian_noise_matches_basicsr(basicsr, crops, gray):
    from basicsr.data.degradations import add_gaussian_noise_pt

    x = crops[1:2]
    torch.manual_seed(1234)
    ref = add_gaussian_noise_pt(x, sigma=torch.tensor([17.5]), gray_noise=torch.tensor([float(gray)]), clip=True)
    ours = gaussian_noise(x, [17.5], [gray], [torch.Generator().manual_seed(1234)], clip=True)
    assert torch.equal(ours, ref)
    if gray:  # one field for all channels: channel differences are the image's own
        d = ours - x
        unclipped = ((ours > 0) & (ours < 1)).all(1)
        assert torch.allclose(d[:, 0][unclipped], d[:, 1][unclipped], atol=1e-6)


@pytest.mark.parametrize("gray", [False, True])
def test_poisson_noise_matches_basicsr(basicsr, crops, gray):
    from basicsr.data.degradations import add_poisson_noise_pt

    x = crops[2:3]
    torch.manual_seed(99)
    ref = add_poisson_noise_pt(x, scale=torch.tensor([2.2]), gray_noise=torch.tensor([float(gray)]), clip=True)
    ours = poisson_noise(x, [2.2], [gray], [torch.Generator().manual_seed(99)], clip=True)
    assert torch.equal(ours, ref)


@pytest.mark.parametrize("quality", [30, 61, 95, 100])
def test_jpeg_matches_cv2(basicsr, photos, quality):
    from basicsr.data.degradations import add_jpg_compression

    rgb = photos["coffee"][:200, :264]
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    ref = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    ours = jpeg_compress(_t(rgb), [quality])
    assert torch.equal(ours, _t(ref))
    # BasicSR's numpy op (float BGR in) gives the same pixels.
    bsr = add_jpg_compression(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.float32) / 255.0, quality)
    assert torch.equal(ours, _t(np.round(cv2.cvtColor(bsr, cv2.COLOR_BGR2RGB) * 255).astype(np.uint8)))


def test_ops_are_batched_per_sample(crops):
    """Per-sample levels and generators: sample i of a batch equals sample i alone."""
    gens = lambda: [torch.Generator().manual_seed(s) for s in (1, 2, 3)]  # noqa: E731
    batch = gaussian_noise(crops, [5.0, 10.0, 20.0], [False, True, False], gens())
    for i in range(3):
        alone = gaussian_noise(crops[i : i + 1], [[5.0, 10.0, 20.0][i]], [i == 1], [gens()[i]])
        assert torch.equal(batch[i : i + 1], alone)
    q = jpeg_compress(crops, [40, 70, 90])
    assert torch.equal(q[2:3], jpeg_compress(crops[2:3], [90]))
