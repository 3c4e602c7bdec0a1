"""Uncertainty over the images of a test set: bootstrap CIs, paired tests, set statistics.

Why: SR test sets are small (Set5 has 5 images), so a 0.05 dB gap between two methods is
often noise. Every function takes an explicit ``seed`` and draws from its own
``numpy.random.Generator``; the same inputs and seed give the same interval on any machine.
Pure functions on arrays — the report module feeds them the per-image CSVs of MLflow runs.
The Fréchet distance of a set statistic (FID) comes from :mod:`srarena.harness.metrics.frechet`,
the one implementation the FID metric uses too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from srarena.harness.metrics.frechet import PairedGram, frechet_distance_features


@dataclass(frozen=True)
class Interval:
    estimate: float
    lo: float
    hi: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2


def _indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n))


def bootstrap_ci(values, *, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> Interval:
    """Percentile bootstrap CI of the mean over images."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Interval(np.nan, np.nan, np.nan, 0)
    if x.size == 1:
        return Interval(float(x[0]), float(x[0]), float(x[0]), 1)
    means = x[_indices(x.size, n_boot, seed)].mean(axis=1)
    a = (1 - confidence) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return Interval(float(x.mean()), float(lo), float(hi), int(x.size))


def paired_bootstrap_p(a, b, *, n_boot: int = 2000, seed: int = 0) -> float:
    """Two-sided p-value of "mean(a - b) = 0" by a paired bootstrap over images.

    The differences are centred (the null) and resampled; p is the share of resampled mean
    differences at least as extreme as the observed one. Identical arrays give p = 1.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return 1.0
    observed = d.mean()
    if np.allclose(d, 0):
        return 1.0
    centred = d - observed
    boot = centred[_indices(d.size, n_boot, seed)].mean(axis=1)
    return float((np.sum(np.abs(boot) >= abs(observed) - 1e-15) + 1) / (n_boot + 1))


def wilcoxon_p(a, b) -> float:
    """Two-sided Wilcoxon signed-rank p-value (exact for small N); 1.0 when all pairs tie."""
    from scipy.stats import wilcoxon

    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size < 2 or np.allclose(d, 0):
        return 1.0
    return float(wilcoxon(d).pvalue)


def paired_p(a, b, *, test: str = "bootstrap", n_boot: int = 2000, seed: int = 0) -> float:
    if test == "bootstrap":
        return paired_bootstrap_p(a, b, n_boot=n_boot, seed=seed)
    if test == "wilcoxon":
        return wilcoxon_p(a, b)
    raise ValueError(f"unknown paired test {test!r}; use 'bootstrap' or 'wilcoxon'")


def fid_features_ci(path, *, n_boot: int = 200, seed: int = 0, confidence: float = 0.95) -> Interval | None:
    """Bootstrap CI of FID over the images of a run's ``<preset>_features.npz``.

    Rows (an SR image and its HR) are resampled together: a paired bootstrap over the test set,
    both FID terms re-estimated on every resample. None when the file holds no paired HR features
    (e.g. a no-reference dataset scored against cached statistics). Note: resamples repeat
    images, and FID is biased upwards at small N, so the interval can sit above the estimate;
    read it as the spread at this N and compare FIDs only at equal N.
    """
    with np.load(path, allow_pickle=False) as z:
        sr, hr = z["sr"], z["hr"]
    if len(sr) < 2 or len(hr) != len(sr):
        return None
    if len(sr) <= sr.shape[1]:
        return bootstrap_fid_paired_gram(sr, hr, n_boot=n_boot, seed=seed, confidence=confidence)
    return bootstrap_set_statistic(sr, hr, frechet_distance_features, n_boot=n_boot, seed=seed,
                                   confidence=confidence, paired=True)


def bootstrap_fid_paired_gram(feats_sr, feats_hr, *, n_boot: int = 200, seed: int = 0,
                              confidence: float = 0.95) -> Interval:
    """``bootstrap_set_statistic(sr, hr, frechet_distance_features, paired=True)``, same draws and
    values, from three n x n Gram matrices computed once (:class:`~srarena.harness.metrics.frechet.PairedGram`):
    each resample costs an n x n SVD and no pass over the 2048-d features."""
    gram = PairedGram(feats_sr, feats_hr)
    full = gram.distance()
    rng = np.random.default_rng(seed)
    boots = np.array([gram.distance(rng.integers(0, gram.n, size=gram.n)) for _ in range(n_boot)])
    q = (1 - confidence) / 2
    lo, hi = np.quantile(boots, [q, 1 - q])
    return Interval(float(full), float(lo), float(hi), int(gram.n))


def bootstrap_set_statistic(
    feats_sr: np.ndarray,
    feats_hr: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float] = frechet_distance_features,
    *,
    n_boot: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
    paired: bool = True,
) -> Interval:
    """Bootstrap CI of a set statistic (FID, KID) over images.

    ``paired``: resample the same image indices in both sets (SR and its HR), which is what
    "over images" means for a paired test set. Features are ``(N, D)`` arrays. The estimate is
    the statistic on the full set; at small N FID is biased upwards, so report ``n`` with it.
    """
    a, b = np.asarray(feats_sr, dtype=np.float64), np.asarray(feats_hr, dtype=np.float64)
    n = a.shape[0]
    full = statistic(a, b)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for i in range(n_boot):
        ia = rng.integers(0, n, size=n)
        ib = ia if paired else rng.integers(0, b.shape[0], size=b.shape[0])
        stats[i] = statistic(a[ia], b[ib])
    q = (1 - confidence) / 2
    lo, hi = np.quantile(stats, [q, 1 - q])
    return Interval(float(full), float(lo), float(hi), int(n))


@dataclass(frozen=True)
class GroupStats:
    """Per method: the CI of one metric, and the p-value of its paired test vs the best."""

    ci: dict[str, Interval]
    p_vs_best: dict[str, float]
    best: str | None
    n_common: int


def compare_methods(
    per_image: Mapping[str, pd.Series],
    lower_better: bool,
    *,
    test: str = "bootstrap",
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> GroupStats:
    """CIs for each method and a paired test of each against the best mean.

    ``per_image`` maps a row label (method) to its per-image values indexed by image id; the
    paired test uses the images both methods scored, so a failed image never biases it.
    """
    ci = {m: bootstrap_ci(s.to_numpy(), n_boot=n_boot, seed=seed, confidence=confidence) for m, s in per_image.items()}
    finite = {m: c.estimate for m, c in ci.items() if np.isfinite(c.estimate)}
    if not finite:
        return GroupStats(ci, {}, None, 0)
    best = (min if lower_better else max)(finite, key=finite.get)
    p: dict[str, float] = {best: 1.0}
    n_common = 0
    for m, s in per_image.items():
        if m == best:
            continue
        common = s.index.intersection(per_image[best].index)
        n_common = max(n_common, len(common))
        p[m] = paired_p(s.loc[common].to_numpy(), per_image[best].loc[common].to_numpy(), test=test, n_boot=n_boot, seed=seed)
    return GroupStats(ci, p, best, n_common)
