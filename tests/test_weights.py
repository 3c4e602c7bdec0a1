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


# ---------------------------------------------------------------------------------------------
# bundles: several files (or a model folder plus adapters) under one key


def _bundle(key: str = "test/bundle") -> w.WeightBundle:
    return w.WeightBundle(
        key=key,
        used_by="test method",
        files=(
            w.BundleFile("base", "sd-turbo", "https://huggingface.co/stabilityai/sd-turbo (whole folder)",
                         marker="model_index.json"),
            w.BundleFile("lora", "s3diff.pkl", "https://example.org/s3diff.pkl"),
            w.BundleFile("de_net", "de_net.pth", "https://example.org/de_net.pth"),
            w.BundleFile("ema", "ema.pth", "https://example.org/ema.pth", optional=True),
        ),
    )


def test_bundle_missing_error_lists_every_missing_file(dirs):
    wd, _ = dirs
    (wd / "sd-turbo").mkdir(parents=True)  # a folder without its marker is not complete
    (wd / "de_net.pth").write_bytes(b"x")
    with pytest.raises(w.MissingWeightsError) as e:
        w.resolve_bundle(_bundle())
    msg = str(e.value)
    first = msg.splitlines()[0]
    assert "missing 2 of 4" in first and "sd-turbo/" in first and "s3diff.pkl" in first and str(wd) in first
    assert "de_net.pth" not in first and "ema.pth" not in msg  # present / optional files are not listed
    assert str(wd / "sd-turbo") in msg and "https://huggingface.co/stabilityai/sd-turbo" in msg
    assert str(wd / "s3diff.pkl") in msg and "https://example.org/s3diff.pkl" in msg
    assert isinstance(e.value, w.MissingBundleError) and [f.role for f in e.value.missing] == ["base", "lora"]


def test_bundle_resolves_folders_files_and_optional(dirs, tmp_path):
    wd, hub = dirs
    (wd / "sd-turbo").mkdir(parents=True)
    (wd / "sd-turbo" / "model_index.json").write_text("{}")
    (wd / "s3diff.pkl").write_bytes(b"a")
    elsewhere = tmp_path / "lib" / "de_net.pth"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"b")
    b = _bundle()
    b = w.WeightBundle(b.key, tuple(
        f if f.role != "de_net" else w.BundleFile("de_net", "de_net.pth", f.source, library_paths=(str(elsewhere),))
        for f in b.files), b.used_by)
    paths = w.resolve_bundle(b)
    assert paths == {"base": wd / "sd-turbo", "lora": wd / "s3diff.pkl", "de_net": elsewhere}  # no optional ema
    (wd / "ema.pth").write_bytes(b"c")
    assert w.resolve_bundle(b)["ema"] == wd / "ema.pth"


def test_bundle_registry_status_rows_and_locate(dirs):
    from srarena.methods.state_dicts import CheckpointError, locate
    from srarena.harness.weights_cli import status_rows

    wd, _ = dirs
    b = w.register_weights(_bundle("test/reg_bundle"))
    (wd).mkdir(parents=True)
    (wd / "s3diff.pkl").write_bytes(b"a")
    rows = status_rows(["test/reg_bundle"])
    assert [r["key"] for r in rows] == [
        "test/reg_bundle", "test/reg_bundle[base]", "test/reg_bundle[lora]", "test/reg_bundle[de_net]",
        "test/reg_bundle[ema]",
    ]
    assert [r["state"] for r in rows] == ["missing", "missing", "present", "missing", "optional"]
    assert rows[0]["file"] == "bundle: 1 of 4 present" and rows[1]["file"] == "sd-turbo/"
    assert rows[2]["path"] == str(wd / "s3diff.pkl") and rows[3]["path"] == str(wd / "de_net.pth")
    with pytest.raises(w.MissingBundleError):  # one file of a bundle resolves once the bundle does
        locate("test/reg_bundle[lora]")
    with pytest.raises(CheckpointError, match=r"bundle of 4 files.*\[<role>\]"):
        locate("test/reg_bundle")
    (wd / "sd-turbo").mkdir()
    (wd / "sd-turbo" / "model_index.json").write_text("{}")
    (wd / "de_net.pth").write_bytes(b"b")
    assert locate("test/reg_bundle[lora]") == wd / "s3diff.pkl"
    assert [r["state"] for r in status_rows(["test/reg_bundle"])][:4] == ["present"] * 4
    with pytest.raises(KeyError, match="no file with role 'vae'"):
        locate("test/reg_bundle[vae]")
    with pytest.raises(KeyError, match="not a bundle"):
        w.resolve_bundle("metric/lpips_alex_backbone")


def test_bundle_rejects_duplicate_roles():
    f = w.BundleFile("unet", "a.pth", "x")
    with pytest.raises(ValueError, match="more than once"):
        w.WeightBundle("k", (f, f), "m")


def test_weights_cli_lists_bundles_and_fetches_direct_links(dirs, tmp_path, capsys, monkeypatch):
    from srarena.harness.weights_cli import run_weights

    src = tmp_path / "remote"
    src.mkdir()
    (src / "e0.pth").write_bytes(b"expert0")
    (src / "e1.pth").write_bytes(b"expert1")
    bundle = w.register_weights(w.WeightBundle("test/cli_bundle", (
        w.BundleFile("expert0", "moe/e0.pth", (src / "e0.pth").as_uri(), hashlib.sha256(b"expert0").hexdigest()),
        w.BundleFile("expert1", "moe/e1.pth", (src / "e1.pth").as_uri()),
        w.BundleFile("vae", "moe/vae", "https://huggingface.co/some/repo (folder)", marker="config.json"),
    ), "method moe"))
    cfg = OmegaConf.create({"paths": {"weights": str(dirs[0])}, "action": "status", "only": [bundle.key]})
    assert run_weights(cfg) == 0
    out = capsys.readouterr().out
    assert "test/cli_bundle[expert0]" in out and "moe/vae/" in out and "0 of 1 available" in out
    assert "get moe/e1.pth (test/cli_bundle[expert1]) from file://" in out
    target = tmp_path / "usb"
    cfg = OmegaConf.create({"paths": {"weights": str(dirs[0])}, "action": "fetch", "target": str(target),
                            "only": [bundle.key]})
    assert run_weights(cfg) == 1  # the folder has no direct link ...
    out = capsys.readouterr().out
    assert "FAILED   test/cli_bundle" in out and "moe/vae/" in out
    assert (target / "moe" / "e0.pth").read_bytes() == b"expert0"  # ... but both files came
    assert (target / "moe" / "e1.pth").read_bytes() == b"expert1"
    (target / "moe" / "e0.pth").write_bytes(b"tampered")
    monkeypatch.setenv("SRARENA_WEIGHTS", str(target))
    cfg = OmegaConf.create({"paths": {"weights": str(target)}, "action": "status", "only": [bundle.key],
                            "verify": True})
    assert run_weights(cfg) == 0
    out = capsys.readouterr().out
    import re

    assert re.search(r"^corrupt +test/cli_bundle\[expert0\]", out, re.M)
    assert re.search(r"^present +test/cli_bundle\[expert1\]", out, re.M)
