"""Bootstrap CIs and paired tests: reproducible for a fixed seed, sensible on known data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from srarena.harness.metrics.frechet import frechet_distance_features
from srarena.harness.reports import stats


def test_bootstrap_ci_is_reproducible_for_a_fixed_seed():
    x = np.random.default_rng(3).normal(28.0, 2.0, 30)
    a = stats.bootstrap_ci(x, n_boot=1000, seed=7)
    b = stats.bootstrap_ci(x, n_boot=1000, seed=7)
    c = stats.bootstrap_ci(x, n_boot=1000, seed=8)
    assert a == b
    assert (a.lo, a.hi) != (c.lo, c.hi)
    assert a.lo < x.mean() < a.hi and a.n == 30
    # roughly mean ± 1.96 sd/sqrt(n)
    assert abs(a.half_width - 1.96 * x.std(ddof=1) / np.sqrt(30)) < 0.25


def test_bootstrap_ci_edge_cases():
    assert stats.bootstrap_ci([5.0]).lo == 5.0
    assert np.isnan(stats.bootstrap_ci([]).estimate)
    assert stats.bootstrap_ci([1.0, np.nan, 3.0]).n == 2


def test_paired_tests_detect_shift_and_accept_noise():
    rng = np.random.default_rng(0)
    base = rng.normal(30, 3, 40)
    shifted = base + 0.2 + rng.normal(0, 0.05, 40)
    noisy = base + rng.normal(0, 0.5, 40)
    assert stats.paired_bootstrap_p(shifted, base, seed=0) < 0.01
    assert stats.wilcoxon_p(shifted, base) < 0.01
    assert stats.paired_bootstrap_p(noisy, base, seed=0) > 0.05
    assert stats.paired_bootstrap_p(base, base) == 1.0 and stats.wilcoxon_p(base, base) == 1.0
    assert stats.paired_bootstrap_p(shifted, base, seed=4) == stats.paired_bootstrap_p(shifted, base, seed=4)


def test_compare_methods_uses_the_direction_and_common_images():
    idx = [f"i{k}" for k in range(10)]
    good = pd.Series(np.linspace(0.1, 0.2, 10), index=idx)
    bad = pd.Series(np.linspace(0.3, 0.4, 10), index=idx).drop("i3")  # one failed image
    res = stats.compare_methods({"good": good, "bad": bad}, lower_better=True, n_boot=500, seed=0)
    assert res.best == "good" and res.p_vs_best["good"] == 1.0 and res.p_vs_best["bad"] < 0.05
    assert res.n_common == 9
    res = stats.compare_methods({"good": good, "bad": bad}, lower_better=False, n_boot=500, seed=0)
    assert res.best == "bad"


def test_frechet_distance_and_its_bootstrap_over_images():
    rng = np.random.default_rng(1)
    hr = rng.normal(0, 1, (200, 8))
    same = rng.normal(0, 1, (200, 8))
    far = rng.normal(1.0, 1, (200, 8))
    assert frechet_distance_features(hr, hr, method="sqrtm") < 1e-6
    d_far = frechet_distance_features(far, hr, method="sqrtm")
    assert abs(d_far - 8.0) < 2.0  # ||mu||^2 = 8 for a unit shift in 8 dims
    ci = stats.bootstrap_set_statistic(far, hr, n_boot=100, seed=3)
    assert ci == stats.bootstrap_set_statistic(far, hr, n_boot=100, seed=3)
    assert ci.lo < d_far < ci.hi and ci.n == 200
    near = stats.bootstrap_set_statistic(same, hr, n_boot=100, seed=3)
    assert near.hi < ci.lo


def test_gram_form_of_the_frechet_distance_is_exact():
    rng = np.random.default_rng(4)
    for n1, n2, d in [(12, 15, 40), (60, 50, 8)]:  # N < D (Gram path) and N > D (D x D path)
        a = rng.normal(0, 1, (n1, d))
        b = rng.normal(0.3, 1.3, (n2, d)) @ rng.normal(size=(d, d))
        assert frechet_distance_features(a, b) == pytest.approx(frechet_distance_features(a, b, method="sqrtm"), rel=1e-8)


def test_fid_bootstrap_from_a_features_file_is_reproducible(tmp_path):
    from srarena.harness.reports import synthetic

    path, fid = synthetic.fid_features(tmp_path / "fid_features.npz", 12, dim=64, seed=1)
    ci = stats.fid_features_ci(path, n_boot=150, seed=5)
    assert ci == stats.fid_features_ci(path, n_boot=150, seed=5)
    assert ci != stats.fid_features_ci(path, n_boot=150, seed=6)
    assert ci.n == 12 and ci.estimate == pytest.approx(fid, rel=1e-9) and ci.lo < ci.hi
    with np.load(path) as z:  # the Gram shortcut draws and scores exactly like the generic bootstrap
        generic = stats.bootstrap_set_statistic(z["sr"], z["hr"], frechet_distance_features, n_boot=150, seed=5)
    assert (ci.lo, ci.hi) == pytest.approx((generic.lo, generic.hi), rel=1e-9)
