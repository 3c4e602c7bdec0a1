"""Weight resolution order, actionable errors, offline derivation, status and fetch."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from srarena.harness import weights as w


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    wd, hub = tmp_path / "weights", tmp_path / "torch"
    monkeypatch.setenv("SRARENA_WEIGHTS", str(wd))
    monkeypatch.setenv("SRARENA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(hub))
    return wd, hub / "hub"


def _spec(**kw):
    base = dict(key="test/x", filename="x.pth", source="https://example.org/x.pth", used_by="test",
                library_paths=("{hub}/checkpoints/x.pth",))
    return w.WeightSpec(**{**base, **kw})


def test_weights_dir_wins_over_library_cache(dirs):
    wd, hub = dirs
    spec = _spec()
    (hub / "checkpoints").mkdir(parents=True)
    (hub / "checkpoints" / "x.pth").write_bytes(b"lib")
    assert w.resolve_weights(spec) == hub / "checkpoints" / "x.pth"  # {hub} follows TORCH_HOME
    wd.mkdir()
    (wd / "x.pth").write_bytes(b"project")
    assert w.resolve_weights(spec) == wd / "x.pth"


def test_missing_error_names_file_directory_and_source(dirs):
    wd, _ = dirs
    with pytest.raises(w.MissingWeightsError) as e:
        w.resolve_weights(_spec())
    first = str(e.value).splitlines()[0]  # what the evaluator shows as the skip reason
    assert "x.pth" in first and str(wd / "x.pth") in first and "https://example.org/x.pth" in first


def test_niqe_params_derived_offline_from_basicsr_wheel(dirs):
    scipy_io = pytest.importorskip("scipy.io")
    from srarena.harness.metrics.niqe import NIQE_WEIGHTS, basicsr_npz_path

    wd, _ = dirs
    assert w.weight_status(NIQE_WEIGHTS).state == "derivable"
    path = w.resolve_weights(NIQE_WEIGHTS)
    assert path == wd / "niqe_modelparameters.mat"
    assert [p.name for p in wd.iterdir()] == ["niqe_modelparameters.mat"]  # no temp file left
    mat = scipy_io.loadmat(path)
    with np.load(basicsr_npz_path()) as z:
        np.testing.assert_array_equal(mat["mu_prisparam"].ravel(), z["mu_pris_param"].ravel())
        np.testing.assert_array_equal(mat["cov_prisparam"], z["cov_pris_param"])
    assert w.weight_status(NIQE_WEIGHTS).state == "present"


def test_fetch_downloads_atomically_and_checks_sha256(dirs, tmp_path):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"weights!")
    good = _spec(source=src.as_uri(), sha256=hashlib.sha256(b"weights!").hexdigest())
    out = tmp_path / "usb"
    assert w.fetch_weights(good, out).read_bytes() == b"weights!"
    bad = _spec(key="test/y", filename="y.pth", source=src.as_uri(), sha256="0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        w.fetch_weights(bad, out)
    assert sorted(p.name for p in out.iterdir()) == ["x.pth"]


def test_fetch_refuses_a_source_that_is_not_a_link(dirs, tmp_path):
    spec = _spec(source="Google Drive, see the README")
    with pytest.raises(w.MissingWeightsError):
        w.fetch_weights(spec, tmp_path)


def test_weights_cli_status_lists_metrics_and_methods(dirs, capsys):
    from srarena.harness.weights_cli import run_weights

    cfg = OmegaConf.create({"paths": {"weights": str(dirs[0])}, "action": "status", "only": []})
    assert run_weights(cfg) == 0
    out = capsys.readouterr().out
    for key in ("metric/niqe_pristine_params", "metric/lpips_alex_backbone", "metric/musiq_koniq",
                "metric/fid_inception_torchscript"):
        assert key in out
    assert "alexnet-owt-7be5be79.pth" in out and "download.pytorch.org" in out


def test_weights_cli_fetch_into_target(dirs, tmp_path, capsys):
    from srarena.harness.weights_cli import run_weights

    target = tmp_path / "copy_me"
    cfg = OmegaConf.create({"paths": {"weights": str(dirs[0])}, "action": "fetch",
                            "target": str(target), "only": ["metric/niqe_pristine_params"]})
    assert run_weights(cfg) == 0  # derivable offline: no network needed
    assert (target / "niqe_modelparameters.mat").is_file()


def test_conf_weights_yaml_shape():
    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "weights.yaml")
    assert list(cfg.defaults) == [{"paths": "default"}, "_self_"]
    assert cfg.action == "status"
