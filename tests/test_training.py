"""The one training loop: end to end through `conf/train.yaml`, resume, MLflow, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from srarena.harness.data.io import write_png
from srarena.harness.errors import ConfigError
from srarena.harness.training.app import run_train
from srarena.harness.training.data import CropSampler, degradation_synth
from srarena.harness.training.losses import WeightedLoss
from srarena.methods.rrdbnet import RRDBNetMethod
from srarena.methods.state_dicts import read_state_dict
from tests.conftest import REPO

TINY_RRDB = ["method=rrdbnet_demo", "method.arch.num_feat=8", "method.arch.num_block=1", "method.arch.num_grow_ch=4"]


@pytest.fixture(scope="module")
def hr_dir(tmp_path_factory, photos) -> Path:
    folder = tmp_path_factory.mktemp("hr")
    for name, img in photos.items():
        write_png(folder / f"{name}.png", img[:80, :96])
    return folder


def compose_train(tmp_path: Path, hr_dir: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"paths.outputs={tmp_path / 'out'}", f"paths.data={tmp_path / 'data'}",
                f"train.data.hr_dir={hr_dir}", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
                "train.data.crop=32", "train.data.batch_size=2", "train.progress=false", "device=cpu",
                "train.log_every=2", "train.checkpoint_every=2", *overrides,
            ],
        )


def test_train_end_to_end_logs_exports_and_loads(tmp_path, hr_dir):
    cfg = compose_train(tmp_path, hr_dir, *TINY_RRDB, "train.steps=4", "train.run_name=e2e")
    assert run_train(cfg) == 0
    out = tmp_path / "out" / "train" / "e2e"
    sd, meta = read_state_dict(out / "model.safetensors")
    assert meta["kind"] == "model" and meta["trained_steps"] == "4" and "conv_first.weight" in sd
    m = RRDBNetMethod(weights=str(out / "model.safetensors"))  # the export is a usable checkpoint
    assert m.upscale(torch.rand(1, 3, 6, 6), 4, torch.Generator()).shape == (1, 3, 24, 24)
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["srarena-train"])
    assert len(runs) == 1 and runs["tags.srarena.kind"][0] == "train"
    assert runs["params.train.steps"][0] == "4" and "metrics.loss" in runs


def _tiny_loop(hr_dir: Path, ckpt: Path, steps: int, log_fn, ema: float = 0.0):
    from omegaconf import OmegaConf

    from srarena.harness.training.data import load_hr_images
    from srarena.harness.training.loop import LoopConfig, train_loop

    method = RRDBNetMethod(arch={"num_feat": 8, "num_block": 1, "num_grow_ch": 4})
    synth, scale = degradation_synth(OmegaConf.load(REPO / "conf" / "degradation" / "bicubic_x4.yaml"), 0)
    sampler = CropSampler(load_hr_images(hr_dir), synth, scale, crop=32, batch_size=2, seed=0)
    cfg = LoopConfig(steps=steps, lr=1e-3, schedule="cosine", warmup_steps=2, ema_decay=ema,
                     log_every=1, checkpoint_every=1, progress=False)
    return train_loop(method, sampler, WeightedLoss([{"name": "l1"}]), cfg, torch.device("cpu"), ckpt, log_fn)


def test_resume_continues_exactly(tmp_path, hr_dir):
    lrs: dict[str, list[float]] = {"a": [], "b": []}
    straight = _tiny_loop(hr_dir, tmp_path / "a.safetensors", 6, lambda s, v: lrs["a"].append(v["lr"]), ema=0.9)

    class Interrupt(Exception):
        pass

    def crash_at_3(step: int, values: dict) -> None:
        lrs["b"].append(values["lr"])
        if step == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        _tiny_loop(hr_dir, tmp_path / "b.safetensors", 6, crash_at_3, ema=0.9)
    resumed = _tiny_loop(hr_dir, tmp_path / "b.safetensors", 6, lambda s, v: lrs["b"].append(v["lr"]), ema=0.9)
    assert lrs["a"] == pytest.approx(lrs["b"])  # warmup + cosine continue where they stopped
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=k)


def test_sr3_trains_through_the_same_loop(tmp_path, hr_dir):
    cfg = compose_train(
        tmp_path, hr_dir, "method=sr3_demo", "method.unet.ch=8", "method.unet.groups=4",
        "train.steps=2", "train.run_name=sr3", "tracking.enabled=false",
    )
    assert run_train(cfg) == 0
    _, meta = read_state_dict(tmp_path / "out" / "train" / "sr3" / "model.safetensors")
    assert meta["method"] == "sr3" and '"ch": 8' in meta["unet"]


def test_blind_degradation_and_determinism(hr_dir):
    from srarena.harness.training.data import load_hr_images
    from omegaconf import OmegaConf

    deg = OmegaConf.load(REPO / "conf" / "degradation" / "stablesr.yaml")
    synth, scale = degradation_synth(deg, seed=0)
    sampler = CropSampler(load_hr_images(hr_dir), synth, scale, crop=64, batch_size=2, seed=0)
    lr, hr = sampler.batch(5)
    assert scale == 4 and lr.shape == (2, 3, 16, 16) and hr.shape == (2, 3, 64, 64)
    lr2, hr2 = sampler.batch(5)
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2)
    assert not torch.equal(sampler.batch(6)[1], hr)


def test_configuration_errors(tmp_path, hr_dir):
    with pytest.raises(ConfigError, match="unknown loss 'l7'"):
        WeightedLoss([{"name": "l7"}])
    with pytest.raises(ConfigError, match="multiple of the scale"):
        CropSampler({"x": torch.rand(3, 64, 64)}, lambda h, i: h, 4, 30, 1, 0)
    with pytest.raises(ConfigError, match="larger than images"):
        CropSampler({"x": torch.rand(3, 16, 16)}, lambda h, i: h, 4, 32, 1, 0)
    cfg = compose_train(tmp_path, hr_dir, "method=bicubic", "tracking.enabled=false")
    with pytest.raises(ConfigError, match="not trainable"):
        run_train(cfg)
