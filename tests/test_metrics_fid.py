"""FID: arithmetic, streaming statistics, the reference cache, and the plumbing with stand-ins."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srarena.harness.metrics import fid as F
from srarena.harness.metrics.registry import MetricContext


def _gauss(rng, n, d, shift=0.0, scale=1.0):
    return rng.normal(size=(n, d)) * scale + shift


def test_self_fid_is_zero():
    rng = np.random.default_rng(0)
    x = _gauss(rng, 400, 32)
    mu, cov = np.mean(x, 0), np.cov(x, rowvar=False)
    for method in ("sqrtm", "eig"):
        assert abs(F.frechet_distance(mu, cov, mu, cov, method)) < 1e-6


def test_sqrtm_and_eigenvalue_forms_agree():
    rng = np.random.default_rng(1)
    a, b = _gauss(rng, 300, 48), _gauss(rng, 250, 48, shift=0.3, scale=1.5) @ rng.normal(size=(48, 48))
    args = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert F.frechet_distance(*args, "sqrtm") == pytest.approx(F.frechet_distance(*args, "eig"), rel=1e-7)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(2)
    d1, d2 = rng.uniform(0.1, 3, 16), rng.uniform(0.1, 3, 16)
    m1, m2 = rng.normal(size=16), rng.normal(size=16)
    expected = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2)
    for method in ("sqrtm", "eig"):
        got = F.frechet_distance(m1, np.diag(d1), m2, np.diag(d2), method)
        assert got == pytest.approx(expected, rel=1e-10)


def test_streamed_statistics_independent_of_batch_size():
    rng = np.random.default_rng(3)
    x = _gauss(rng, 97, 20, shift=5.0)
    ref_mu, ref_cov = x.mean(0), np.cov(x, rowvar=False)
    for bs in (1, 7, 97):
        s = F.GaussianStats(20)
        for i in range(0, len(x), bs):
            s.update(x[i:i + bs])
        mu, cov = s.mean_cov()
        np.testing.assert_allclose(mu, ref_mu, rtol=1e-12)
        np.testing.assert_allclose(cov, ref_cov, rtol=1e-9, atol=1e-12)


def test_statistics_memory_is_flat_in_dataset_size():
    s = F.GaussianStats(64)
    before = s.nbytes
    for _ in range(50):
        s.update(np.ones((4, 64)))
    assert s.nbytes == before


def test_set_digest_is_order_independent_and_content_sensitive():
    a, b = np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.uint8)
    assert F.hr_set_digest([a, b]) == F.hr_set_digest([b, a]) != F.hr_set_digest([a, a])
    assert F.image_digest(a) != F.image_digest(np.zeros((4, 3, 4), np.uint8))


class _ToyExtractor(F.Extractor):
    """8-d features (channel means and stds + 2), counting network calls."""

    def __init__(self):
        super().__init__("toy", "clean", lambda x: x, self._net, "cpu", dim=8)
        self.calls = 0

    def _net(self, x):
        self.calls += 1
        f = torch.cat([x.mean((2, 3)), x.std((2, 3)), x.amax((1, 2, 3))[:, None],
                       x.amin((1, 2, 3))[:, None]], 1)
        return f


def _images(rng, n, size=24):
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def _t(img):
    return torch.from_numpy(img).permute(2, 0, 1)[None].double() / 255


def test_fid_reference_cache_roundtrip_and_skip(tmp_path):
    rng = np.random.default_rng(4)
    hr, sr = _images(rng, 12), _images(rng, 12)
    first = F.FID("fid", _ToyExtractor(), batch_size=5, cache_root=tmp_path)
    for s, h in zip(sr, hr):
        first.update(_t(s), _t(h))
    v1 = first.compute()
    assert v1["fid_n"] == 12 and v1["fid_n_ref"] == 12
    assert any("rank-deficient" in w for w in first.warnings) is False  # N=12 >= dim 8
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # atomic: no temp file left

    ext = _ToyExtractor()
    second = F.FID("fid", ext, batch_size=5, cache_root=tmp_path,
                   reference_digest=F.hr_set_digest(hr))
    for s, h in zip(sr, hr):
        second.update(_t(s), _t(h))
    v2 = second.compute()
    assert v2["fid"] == pytest.approx(v1["fid"], rel=1e-9)
    assert ext.calls == 3  # ceil(12 / 5) SR batches, no HR batches: the cache was used

    stale = F.FID("fid", _ToyExtractor(), cache_root=tmp_path, reference_digest=F.hr_set_digest(hr))
    for s in sr:
        stale.update(_t(s), _t(s))  # different HR than the digest promised
    with pytest.raises(ValueError, match="differ"):
        stale.compute()


def test_fid_warns_when_n_below_feature_dim(tmp_path):
    rng = np.random.default_rng(5)
    m = F.FID("fid", _ToyExtractor(), cache_root=tmp_path)
    for s, h in zip(_images(rng, 4), _images(rng, 4)):
        m.update(_t(s), _t(h))
    with pytest.warns(UserWarning, match="rank-deficient"):
        out = m.compute()
    assert out["fid_n"] == 4


def _run_toy(tmp_path, hr, sr, ext, **kw):
    m = F.FID("fid", ext, batch_size=5, cache_root=tmp_path / "stats", **kw)
    for s, h in zip(sr, hr):
        m.update(_t(s), _t(h))
    return m.compute()


def test_fid_streams_per_image_features_and_caches_hr_features(tmp_path):
    """Features file: one float32 row per image, SR and its HR on the same row; the FID of
    the saved rows is the reported FID; a later run with cached HR statistics gets the same HR
    rows from the features cache (no HR Inception), reordered to its own image order."""
    rng = np.random.default_rng(8)
    hr, sr = _images(rng, 11), _images(rng, 11)
    out = _run_toy(tmp_path, hr, sr, _ToyExtractor(), features_path=tmp_path / "a" / "fid_features.npz")
    with np.load(tmp_path / "a" / "fid_features.npz") as z:
        f_sr, f_hr, order, source = z["sr"], z["hr"], z["hr_digest"], str(z["hr_source"])
    assert f_sr.shape == f_hr.shape == (11, 8) and f_sr.dtype == np.float32 and source == "computed"
    assert list(order) == [F.image_digest(h) for h in hr]
    assert not list((tmp_path / "a").glob(".*part"))  # side files removed
    again = F.frechet_distance(f_sr.mean(0), np.cov(f_sr, rowvar=False), f_hr.mean(0), np.cov(f_hr, rowvar=False), "eig")
    assert again == pytest.approx(out["fid"], rel=1e-5)
    assert len(list((tmp_path / "stats").glob("*.features.npy"))) == 1

    perm = rng.permutation(11)
    ext = _ToyExtractor()
    out2 = _run_toy(tmp_path, [hr[i] for i in perm], [sr[i] for i in perm], ext,
                    features_path=tmp_path / "b" / "fid_features.npz", reference_digest=F.hr_set_digest(hr))
    assert ext.calls == 3  # SR only: HR statistics and features came from the cache
    assert out2["fid"] == pytest.approx(out["fid"], rel=1e-9)
    with np.load(tmp_path / "b" / "fid_features.npz") as z:
        assert str(z["hr_source"]) == "cache"
        np.testing.assert_array_equal(z["hr"], f_hr[perm])
        np.testing.assert_allclose(z["sr"], f_sr[perm], rtol=1e-6)


def test_fid_cached_stats_without_features_recompute_hr(tmp_path):
    rng = np.random.default_rng(9)
    hr, sr = _images(rng, 9), _images(rng, 9)
    _run_toy(tmp_path, hr, sr, _ToyExtractor())  # statistics cached, no features
    ext = _ToyExtractor()
    _run_toy(tmp_path, hr, sr, ext, features_path=tmp_path / "f.npz", reference_digest=F.hr_set_digest(hr))
    assert ext.calls == 4  # 2 SR + 2 HR batches: HR went through the network again
    with np.load(tmp_path / "f.npz") as z:
        assert z["hr"].shape == (9, 8) and str(z["hr_source"]) == "computed"


def test_fid_failure_leaves_no_side_files(tmp_path):
    m = F.FID("fid", _ToyExtractor(), cache_root=tmp_path, features_path=tmp_path / "f.npz")
    m.update(_t(_images(np.random.default_rng(0), 1)[0]), _t(_images(np.random.default_rng(1), 1)[0]))
    with pytest.raises(ValueError, match="at least 2"):
        m.compute()
    assert list(tmp_path.glob("*f.npz*")) == []


# --- stand-in weights: plumbing only --------------------------------------------------------


@pytest.fixture
def standin_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SRARENA_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("SRARENA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def test_fid_clean_runs_end_to_end_with_standin_weights_values_not_checked(standin_env, monkeypatch):
    """Resolution of ``inception-2015-12-05.pt`` from the weights dir, clean-fid's clean resize
    and TorchScript wrapper, streaming, caching and the evaluator's output keys. The stand-in
    network is random, so the value means nothing; the 2048-d sqrtm is replaced by the (tested)
    diagonal closed form to keep the test fast."""
    from srarena.harness.metrics import standins
    from srarena.harness.metrics.evaluator import Evaluator

    standins.write_torchscript_inception(standin_env / "weights" / "inception-2015-12-05.pt")
    monkeypatch.setattr(F, "frechet_distance", lambda m1, s1, m2, s2, method="sqrtm": float(
        np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(np.clip(np.diag(s1), 0, None))
                                         - np.sqrt(np.clip(np.diag(s2), 0, None))) ** 2)))
    ev = Evaluator(["psnr_y", "fid"], MetricContext(scale=2, options={"fid_batch_size": 2}))
    assert ev.skipped == {}
    rng = np.random.default_rng(6)
    for _ in range(3):
        hr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        sr = np.clip(hr.astype(int) + rng.integers(-20, 20, hr.shape), 0, 255).astype(np.uint8)
        assert set(ev.update(sr, hr)) == {"psnr_y"}
    with pytest.warns(UserWarning, match="rank-deficient"):
        out = ev.finalize()
    assert set(out) == {"fid", "fid_n", "fid_n_ref"} and out["fid_n"] == 3
    assert np.isfinite(out["fid"]) and out["fid"] >= 0
    assert ev.records["fid"]["mode"] == "clean" and ev.records["fid"]["warnings"]
    assert len(list((standin_env / "cache" / "fid_stats").glob("clean-*.npz"))) == 1


def test_fid_features_file_through_the_evaluator_with_standin_weights(standin_env, monkeypatch):
    """``options.fid_features_dir`` (what the runner passes): ``fid_features.npz`` holds N x 2048
    float32 SR and HR rows and the FID recomputed from them is the reported ``fid`` (with the
    same diagonal stand-in for the 2048-d trace as above; the full form is tested in stats)."""
    from srarena.harness.metrics import standins
    from srarena.harness.metrics.evaluator import Evaluator

    def diag_fd(m1, s1, m2, s2, method="sqrtm"):
        return float(np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(np.clip(np.diag(s1), 0, None))
                                                      - np.sqrt(np.clip(np.diag(s2), 0, None))) ** 2))

    standins.write_torchscript_inception(standin_env / "weights" / "inception-2015-12-05.pt")
    monkeypatch.setattr(F, "frechet_distance", diag_fd)
    out_dir = standin_env / "job"
    ev = Evaluator(["fid"], MetricContext(scale=2, options={"fid_batch_size": 2, "fid_features_dir": str(out_dir)}))
    rng = np.random.default_rng(10)
    for _ in range(5):
        hr = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        ev.update(np.clip(hr.astype(int) + rng.integers(-30, 30, hr.shape), 0, 255).astype(np.uint8), hr)
    with pytest.warns(UserWarning, match="rank-deficient"):
        out = ev.finalize()
    with np.load(out_dir / "fid_features.npz") as z:
        sr, hr = z["sr"], z["hr"]
    assert sr.shape == hr.shape == (5, 2048) and sr.dtype == hr.dtype == np.float32
    again = diag_fd(sr.mean(0), np.cov(sr, rowvar=False), hr.mean(0), np.cov(hr, rowvar=False))
    assert again == pytest.approx(out["fid"], rel=1e-4)
    assert sorted(p.name for p in out_dir.iterdir()) == ["fid_features.npz"]


def test_fid_missing_weights_skip_names_the_file(standin_env):
    from srarena.harness.metrics.evaluator import Evaluator

    ev = Evaluator(["fid", "fid_legacy_pytorch"], MetricContext())
    assert "inception-2015-12-05.pt" in ev.skipped["fid"]
    assert "pt_inception-2015-12-05-6726825d.pth" in ev.skipped["fid_legacy_pytorch"]
    assert ev.finalize() == {}


def test_fid_legacy_pytorch_loads_resolved_state_dict_standin_values_not_checked(standin_env):
    """clean-fid's legacy_pytorch network loads our resolved file (through a throw-away hub
    dir), not a download; features have the Inception pool3 shape."""
    from srarena.harness.metrics import standins

    standins.write_pt_inception(standin_env / "weights" / "pt_inception-2015-12-05-6726825d.pth")
    ext = F.build_extractor("legacy_pytorch")
    img = np.random.default_rng(7).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    feats = ext.features([ext.prepare(img)])
    assert feats.shape == (1, 2048) and np.isfinite(feats).all()
    assert torch.hub.get_dir() == str(standin_env / "torch" / "hub")  # hub dir not left pinned


# --- real weights: calibration ----------------------------------------------------------------


def test_fid_clean_matches_cleanfid_folder_api(calibration_dir, tmp_path, monkeypatch):
    """With the real TorchScript Inception: the streamed value equals clean-fid's own
    ``compute_fid(dist, ref, mode='clean')`` on the calibration folders (rtol 1e-3)."""
    from srarena.harness.weights import find_weights

    path = find_weights(F.TORCHSCRIPT_INCEPTION)
    if path is None:
        pytest.skip("missing weight file inception-2015-12-05.pt (srarena weights status)")
    import cv2
    from cleanfid import fid as cleanfid

    monkeypatch.setenv("SRARENA_CACHE", str(tmp_path))
    m = F.FID("fid", F.build_extractor("clean"), cache_root=tmp_path)
    for p in sorted((calibration_dir / "dist").iterdir()):
        read = lambda q: cv2.cvtColor(cv2.imread(str(q)), cv2.COLOR_BGR2RGB)  # noqa: E731
        m.update(_t(read(p)), _t(read(calibration_dir / "ref" / p.name)))
    with pytest.warns(UserWarning):
        ours = m.compute()["fid"]
    ref = cleanfid.compute_fid(str(calibration_dir / "dist"), str(calibration_dir / "ref"),
                               mode="clean", device=torch.device("cpu"), num_workers=0)
    assert ours == pytest.approx(ref, rel=1e-3)
