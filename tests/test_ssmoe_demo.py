"""The committed demo checkpoint (methods/checkpoints/ssmoe_demo_x4.safetensors): it loads through its
method YAML, is deterministic for a seed, and beats its own untrained initialisation by >= 3 dB PSNR-Y
on the embedded eval images (x4, LR by MATLAB bicubic)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")

from tests.conftest import REPO

CKPT = REPO / "methods" / "checkpoints" / "ssmoe_demo_x4.safetensors"


def _method(*overrides: str):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("run", overrides=["method=ssmoe_demo", *overrides])
    return instantiate(cfg.method)


def _psnr_y(method, folder: Path) -> float:
    from srarena.harness.data.io import quantise, read_image, to_tensor
    from srarena.harness.degradations.resize import imresize
    from srarena.harness.metrics.registry import MetricContext, create_metric

    psnr = create_metric("psnr_y", MetricContext(scale=4))
    values = []
    for path in sorted(folder.glob("*.png")):
        hr = to_tensor(read_image(path)[0])
        lr = torch.from_numpy(quantise(imresize(hr, scale=0.25))).permute(2, 0, 1)[None].float() / 255
        sr = method.upscale(lr, 4, torch.Generator().manual_seed(0))
        values.append(float(psnr(to_tensor(quantise(sr)).double(), to_tensor(quantise(hr)).double())))
    return sum(values) / len(values)


def test_checkpoint_is_committed_small_and_self_describing():
    from srarena.methods.state_dicts import read_state_dict

    assert CKPT.is_file() and CKPT.stat().st_size < 40 * 2**20
    state, meta = read_state_dict(CKPT)
    assert meta["method"] == "ssmoe" and "config" in meta and "seed" in meta
    assert {k.split(".")[0] for k in state} == {"experts", "vq", "fcd"}


def test_deterministic_for_a_seed():
    m = _method("method.sampler.steps=5")
    lr = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    a = m.upscale(lr, 4, torch.Generator().manual_seed(11))
    assert torch.equal(a, m.upscale(lr, 4, torch.Generator().manual_seed(11)))
    assert not torch.equal(a, m.upscale(lr, 4, torch.Generator().manual_seed(12)))


@pytest.mark.slow
def test_trained_beats_untrained_by_3_db(tmp_path):
    from srarena.harness.data.embedded import ensure_embedded

    folder = ensure_embedded(tmp_path / "data", "eval")
    trained = _method()
    untrained = _method("method.weights=null")  # same architecture (the YAML's), seed-0 initialisation
    assert trained.num_params() == untrained.num_params()
    untrained.experts.latent_scale.fill_(float(trained.experts.latent_scale))  # as set by the first batch
    p_trained, p_untrained = _psnr_y(trained, folder), _psnr_y(untrained, folder)
    print(f"PSNR-Y on embedded eval: trained {p_trained:.2f} dB, untrained {p_untrained:.2f} dB")
    assert p_trained >= p_untrained + 3.0
