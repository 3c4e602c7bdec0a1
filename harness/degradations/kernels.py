"""Blur kernels of the Real-ESRGAN degradation model, built in float64 from explicit parameters.

Each builder is a pure function of its parameters (no randomness: sampling lives in
``sampling.py``), so a kernel can be rebuilt from a manifest record. Conventions follow
``basicsr.data.degradations`` so that identical parameters give identical kernels: the grid is
centred on the middle tap, x runs along columns, the covariance is ``U diag(sx^2, sy^2) U^T``
with ``U`` the rotation by ``theta``.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "KERNEL_TYPES",
    "mesh_grid",
    "sigma_matrix",
    "gaussian_kernel",
    "generalized_gaussian_kernel",
    "plateau_kernel",
    "sinc_kernel",
    "pad_kernel",
    "pulse_kernel",
    "build_kernel",
]

# Types a preset's kernel_list may name; "sinc" is chosen by sinc_prob, not by kernel_list.
KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
_F64 = torch.float64


def mesh_grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(xx, yy) integer offsets from the centre tap of an odd ``size`` x ``size`` kernel."""
    if size % 2 != 1 or size < 1:
        raise ValueError(f"kernel size must be a positive odd number, got {size}")
    ax = torch.arange(-(size // 2), size // 2 + 1, dtype=_F64)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return xx, yy


def sigma_matrix(sigma_x: float, sigma_y: float, theta: float) -> torch.Tensor:
    """Covariance of a Gaussian with axis scales (sigma_x, sigma_y) rotated by theta radians."""
    c, s = math.cos(theta), math.sin(theta)
    u = torch.tensor([[c, -s], [s, c]], dtype=_F64)
    d = torch.diag(torch.tensor([sigma_x**2, sigma_y**2], dtype=_F64))
    return u @ d @ u.T


def _quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float, isotropic: bool) -> torch.Tensor:
    """x^T Sigma^-1 x on the grid; isotropic kernels ignore sigma_y and theta (as BasicSR does)."""
    if isotropic:
        cov = torch.diag(torch.tensor([sigma_x**2, sigma_x**2], dtype=_F64))
    else:
        cov = sigma_matrix(sigma_x, sigma_y, theta)
    inv = torch.linalg.inv(cov)
    xx, yy = mesh_grid(size)
    # Same association as BasicSR's sum(grid @ inv * grid): keeps results equal to ~1 ulp.
    a = xx * inv[0, 0] + yy * inv[1, 0]
    b = xx * inv[0, 1] + yy * inv[1, 1]
    return a * xx + b * yy


def _normalise(k: torch.Tensor) -> torch.Tensor:
    return k / k.sum()


def gaussian_kernel(size: int, sigma_x: float, sigma_y: float, theta: float, isotropic: bool) -> torch.Tensor:
    """Bivariate (an)isotropic Gaussian, normalised to sum 1."""
    return _normalise(torch.exp(-0.5 * _quadratic_form(size, sigma_x, sigma_y, theta, isotropic)))


def generalized_gaussian_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float, isotropic: bool
) -> torch.Tensor:
    """exp(-0.5 q^beta): beta < 1 gives heavier tails, beta > 1 a flatter top than a Gaussian."""
    q = _quadratic_form(size, sigma_x, sigma_y, theta, isotropic)
    return _normalise(torch.exp(-0.5 * torch.pow(q, beta)))


def plateau_kernel(
    size: int, sigma_x: float, sigma_y: float, theta: float, beta: float, isotropic: bool
) -> torch.Tensor:
    """1 / (1 + q^beta): a plateau-shaped kernel (Real-ESRGAN's out-of-focus blur model)."""
    q = _quadratic_form(size, sigma_x, sigma_y, theta, isotropic)
    return _normalise(torch.reciprocal(torch.pow(q, beta) + 1))


def sinc_kernel(size: int, omega: float) -> torch.Tensor:
    """Circular low-pass (2-D sinc) filter with cutoff ``omega`` radians: ringing and overshoot."""
    if size % 2 != 1:
        raise ValueError(f"sinc kernel size must be odd, got {size}")
    c = (size - 1) / 2
    idx = torch.arange(size, dtype=_F64)
    r = torch.sqrt((idx[:, None] - c) ** 2 + (idx[None, :] - c) ** 2)
    with torch.no_grad():
        k = omega * torch.special.bessel_j1(omega * r) / (2 * math.pi * r)
    k[size // 2, size // 2] = omega**2 / (4 * math.pi)  # the limit at r = 0
    return _normalise(k)


def pad_kernel(k: torch.Tensor, pad_to: int) -> torch.Tensor:
    """Zero-pad a square odd kernel to ``pad_to`` x ``pad_to`` (the batch shape of the pipeline)."""
    size = k.shape[-1]
    if pad_to < size or (pad_to - size) % 2:
        raise ValueError(f"cannot pad a {size}x{size} kernel to {pad_to}x{pad_to}")
    p = (pad_to - size) // 2
    return torch.nn.functional.pad(k, (p, p, p, p))


def pulse_kernel(size: int) -> torch.Tensor:
    """The identity filter: what the final step uses when no sinc is drawn."""
    k = torch.zeros(size, size, dtype=_F64)
    k[size // 2, size // 2] = 1.0
    return k


def build_kernel(
    kind: str,
    size: int,
    sigma_x: float | None = None,
    sigma_y: float | None = None,
    theta: float | None = None,
    beta: float | None = None,
    omega: float | None = None,
    pad_to: int | None = None,
) -> torch.Tensor:
    """Any kernel of the model from the fields a manifest records; float64, optionally padded."""
    iso = kind.endswith("iso") and not kind.endswith("aniso")
    sx = float(sigma_x) if sigma_x is not None else math.nan
    sy = float(sigma_y) if sigma_y is not None else sx
    th = float(theta) if theta is not None else 0.0
    if kind == "sinc":
        k = sinc_kernel(size, float(omega))
    elif kind == "pulse":
        k = pulse_kernel(size)
    elif kind in ("iso", "aniso"):
        k = gaussian_kernel(size, sx, sy, th, isotropic=iso)
    elif kind in ("generalized_iso", "generalized_aniso"):
        k = generalized_gaussian_kernel(size, sx, sy, th, float(beta), isotropic=iso)
    elif kind in ("plateau_iso", "plateau_aniso"):
        k = plateau_kernel(size, sx, sy, th, float(beta), isotropic=iso)
    else:
        raise ValueError(f"unknown kernel type {kind!r}; expected one of {KERNEL_TYPES + ('sinc', 'pulse')}")
    return pad_kernel(k, pad_to) if pad_to else k
