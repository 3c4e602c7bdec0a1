"""The one training loop: end to end through `conf/train.yaml`, resume, MLflow, errors."""

from __future__ import annotations

from pathlib import Path

import json

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from srarena.harness.data.io import write_png
from srarena.harness.errors import ConfigError
from srarena.harness.tracking import git_commit
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
    # self-describing: the full resolved config, the seed and the code's commit travel with the file
    config = OmegaConf.create(meta["config"])
    assert config.train.steps == 4 and config.method.arch.num_feat == 8 and config.seed == 0
    assert "${" not in meta["config"] and meta["seed"] == "0"
    assert meta["git_commit"] == git_commit() and meta["git_commit"] not in ("", "unknown")
    stages = json.loads(meta["stages"])
    assert [s["name"] for s in stages] == ["train"] and stages[0]["train"] == {"rrdb": {}}
    assert json.loads(meta["losses"]) == [{"name": "l1", "weight": 1.0, "inputs": ["sr", "hr"]}]
    assert json.loads(meta["modules"]) == ["rrdb"] and meta["layout"] == "basicsr" and meta["method"] == "rrdbnet"
    m = RRDBNetMethod(weights=str(out / "model.safetensors"))  # the export is a usable checkpoint
    assert m.upscale(torch.rand(1, 3, 6, 6), 4, torch.Generator()).shape == (1, 3, 24, 24)
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["srarena-train"])
    assert len(runs) == 1 and runs["tags.srarena.kind"][0] == "train"
    assert runs["params.train.steps"][0] == "4" and "metrics.loss" in runs


def _tiny_loop(hr_dir: Path, ckpt: Path, steps: int, log_fn, ema: float = 0.0):
    from srarena.harness.training.data import load_hr_images
    from srarena.harness.training.loop import LoopConfig, train_loop
    from srarena.harness.training.stages import parse_stages

    method = RRDBNetMethod(arch={"num_feat": 8, "num_block": 1, "num_grow_ch": 4})
    synth, scale = degradation_synth(OmegaConf.load(REPO / "conf" / "degradation" / "bicubic_x4.yaml"), 0)
    sampler = CropSampler(load_hr_images(hr_dir), synth, scale, crop=32, batch_size=2, seed=0)
    train = {"steps": steps, "ema_decay": ema, "losses": [{"name": "l1"}],
             "optim": {"lr": 1e-3, "schedule": "cosine", "warmup_steps": 2}}
    cfg = LoopConfig(parse_stages(train, ["rrdb"]), log_every=1, checkpoint_every=1, progress=False)
    result = train_loop(method, sampler, cfg, torch.device("cpu"), ckpt, log_fn)
    return method.net, result


def test_resume_continues_exactly(tmp_path, hr_dir):
    lrs: dict[str, list[float]] = {"a": [], "b": []}
    straight, _ = _tiny_loop(hr_dir, tmp_path / "a.safetensors", 6, lambda s, v: lrs["a"].append(v["lr"]), ema=0.9)

    class Interrupt(Exception):
        pass

    def crash_at_3(step: int, values: dict) -> None:
        lrs["b"].append(values["lr"])
        if step == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        _tiny_loop(hr_dir, tmp_path / "b.safetensors", 6, crash_at_3, ema=0.9)
    resumed, result = _tiny_loop(hr_dir, tmp_path / "b.safetensors", 6, lambda s, v: lrs["b"].append(v["lr"]), ema=0.9)
    assert result.step == 6 and result.trained == ("rrdb",)
    assert lrs["a"] == lrs["b"]  # warmup + cosine continue where they stopped
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k  # bit for bit


def test_sr3_trains_through_the_same_loop(tmp_path, hr_dir):
    cfg = compose_train(
        tmp_path, hr_dir, "method=sr3_demo", "method.unet.ch=8", "method.unet.groups=4",
        "train.steps=2", "train.run_name=sr3", "tracking.enabled=false",
    )
    assert run_train(cfg) == 0
    _, meta = read_state_dict(tmp_path / "out" / "train" / "sr3" / "model.safetensors")
    assert meta["method"] == "sr3" and '"ch": 8' in meta["unet"]


def test_blind_degradation_records_travel_with_the_batch(hr_dir):
    from srarena.harness.degradations.pipeline import degrade_one
    from srarena.harness.training.data import load_hr_images

    deg = OmegaConf.load(REPO / "conf" / "degradation" / "stablesr.yaml")
    synth, scale = degradation_synth(deg, seed=0)
    sampler = CropSampler(load_hr_images(hr_dir), synth, scale, crop=64, batch_size=2, seed=0)
    b = sampler.batch(5)
    assert scale == 4 and b.lr.shape == (2, 3, 16, 16) and b.hr.shape == (2, 3, 64, 64) and len(b) == 2
    b2 = sampler.batch(5)
    assert torch.equal(b.lr, b2.lr) and torch.equal(b.hr, b2.hr) and b.records == b2.records
    assert not torch.equal(sampler.batch(6).hr, b.hr)
    # one record per sample, with the sampled parameters a degradation estimator learns from
    assert [r["image_id"] for r in b.records] == b.ids and b.ids[0].startswith("train/5/0/")
    for key in ("k1_type", "k1_sigma_x", "n1_level", "j1_quality", "n2_level"):
        assert key in b.records[0], sorted(b.records[0])
    assert b.records[0]["n1_level"] != b.records[1]["n1_level"]
    for i in range(2):  # each record alone regenerates its sample's LR
        assert torch.equal(degrade_one(b.hr[i : i + 1], b.records[i]), b.lr[i : i + 1])


def test_configuration_errors(tmp_path, hr_dir):
    with pytest.raises(ConfigError, match="unknown loss 'l7'"):
        WeightedLoss([{"name": "l7"}])
    with pytest.raises(ConfigError, match="multiple of the scale"):
        CropSampler({"x": torch.rand(3, 64, 64)}, lambda h, i: (h, []), 4, 30, 1, 0)
    with pytest.raises(ConfigError, match="larger than images"):
        CropSampler({"x": torch.rand(3, 16, 16)}, lambda h, i: (h, []), 4, 32, 1, 0)
    cfg = compose_train(tmp_path, hr_dir, "method=bicubic", "tracking.enabled=false")
    with pytest.raises(ConfigError, match="not trainable"):
        run_train(cfg)
    cfg = compose_train(tmp_path, hr_dir, *TINY_RRDB, "tracking.enabled=false",
                        "train.stages=[{name: a, steps: 2, train: {unet: {}}}]")
    with pytest.raises(ConfigError, match=r"unknown module 'unet'; the method's training modules are \['rrdb'\]"):
        run_train(cfg)
