"""Figures (matplotlib, PNG): perception–distortion plane, quality vs steps / FLOPs, visual grids.

Pure: DataFrames or arrays in, a ``Figure`` out; :func:`save` is the only side effect. The
Agg backend is forced so plotting works on CI machines without a display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402


def _better_note(ax, lower_better: bool | None, axis: str) -> None:
    if lower_better is None:
        return
    text = "lower is better" if lower_better else "higher is better"
    if axis == "x":
        ax.set_xlabel(f"{ax.get_xlabel()}  ({text})")
    else:
        ax.set_ylabel(f"{ax.get_ylabel()}  ({text})")


def perception_distortion(
    df: pd.DataFrame, x: str, y: str, *, label: str = "method", x_lower: bool | None = False,
    y_lower: bool | None = True, title: str = "", xlabel: str | None = None, ylabel: str | None = None,
) -> Figure:
    """One point per row: distortion (PSNR) on x, perception (LPIPS/NIQE) on y (Blau & Michaeli)."""
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for _, r in df.iterrows():
        ax.scatter(r[x], r[y], s=36)
        ax.annotate(str(r[label]), (r[x], r[y]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    _better_note(ax, x_lower, "x")
    _better_note(ax, y_lower, "y")
    ax.set_title(title or f"Perception–distortion: {y} vs {x}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def quality_vs(
    df: pd.DataFrame, x: str, y: str, *, hue: str = "method", logx: bool = False, lower_better: bool | None = None,
    title: str = "", xlabel: str | None = None, ylabel: str | None = None,
) -> Figure:
    """One line per ``hue`` value, sorted by ``x`` (steps, or FLOPs per image with ``logx``)."""
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    data = df.dropna(subset=[x, y])
    if logx:
        data = data[pd.to_numeric(data[x], errors="coerce") > 0]  # zero-cost baselines have no place on a log axis
    for name, grp in data.groupby(hue, sort=True):
        grp = grp.sort_values(x)
        ax.plot(grp[x].astype(float), grp[y].astype(float), marker="o", label=str(name))
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    _better_note(ax, lower_better, "y")
    ax.set_title(title or f"{y} vs {xlabel or x}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pick_crop(hr: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of the most textured window of ``hr`` (largest gradient energy),
    on a coarse grid: deterministic, and where SR methods differ most visibly."""
    gray = hr.astype(np.float64).mean(axis=2) if hr.ndim == 3 else hr.astype(np.float64)
    h, w = gray.shape
    size = min(size, h, w)
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    integral = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    step = max(1, size // 4)
    best, where = -1.0, (0, 0)
    for top in range(0, max(1, h - size) + 1, step):
        for left in range(0, max(1, w - size) + 1, step):
            b, r = min(top + size - 1, energy.shape[0]), min(left + size - 1, energy.shape[1])
            e = integral[b, r] - integral[top, r] - integral[b, left] + integral[top, left]
            if e > best:
                best, where = e, (top, left)
    return where[0], where[1], size, size


def comparison_grid(
    hr: np.ndarray, lr: np.ndarray | None, outputs: Mapping[str, np.ndarray], *, scale: int,
    crop: tuple[int, int, int, int] | None = None, crop_size: int = 64, title: str = "",
    captions: Mapping[str, str] | None = None,
) -> Figure:
    """The HR image with the crop outlined, then the same zoomed crop of HR, LR and each method.

    The LR crop is the corresponding ``1/scale`` window shown with nearest-neighbour zoom, so
    a reader sees the input the methods had.
    """
    top, left, h, w = crop or pick_crop(hr, crop_size)
    panels: list[tuple[str, np.ndarray]] = [("HR", hr[top : top + h, left : left + w])]
    if lr is not None:
        t, l_, hh, ww = top // scale, left // scale, max(1, h // scale), max(1, w // scale)
        panels.append((f"LR (x{scale})", lr[t : t + hh, l_ : l_ + ww]))
    for name, img in outputs.items():
        panels.append((name, img[top : top + h, left : left + w]))
    n = len(panels) + 1
    fig, axes = plt.subplots(1, n, figsize=(2.0 * n, 2.4), dpi=120)
    axes[0].imshow(hr)
    axes[0].add_patch(Rectangle((left, top), w, h, fill=False, edgecolor="red", linewidth=1.5))
    axes[0].set_title("HR (full)", fontsize=8)
    for ax, (name, img) in zip(axes[1:], panels):
        ax.imshow(img, interpolation="nearest")
        cap = (captions or {}).get(name, "")
        ax.set_title(f"{name}\n{cap}" if cap else name, fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def thumbnail(img: np.ndarray, crop: tuple[int, int, int, int], size: int = 96) -> bytes:
    """PNG bytes of the crop, for the HTML leaderboard (nearest resize, no extra dependency)."""
    import io

    from PIL import Image

    top, left, h, w = crop
    patch = Image.fromarray(np.ascontiguousarray(img[top : top + h, left : left + w]))
    buf = io.BytesIO()
    patch.resize((size, size), Image.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def available(df: pd.DataFrame, cols: Sequence[str]) -> bool:
    return all(c in df.columns and df[c].notna().any() for c in cols)
