"""LDM-SR plumbing through diffusers' pipeline, on a tiny random model of the same classes."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("diffusers")

from srarena.harness.weights import MissingWeightsError, registered_weights  # noqa: E402
from srarena.methods.ldm_sr import LDMSR, REAL_CONFIG, build_pipeline  # noqa: E402
from srarena.methods.base import MethodError  # noqa: E402

TINY = {
    "unet": {
        "sample_size": 16, "in_channels": 6, "out_channels": 3, "layers_per_block": 1,
        "block_out_channels": [16, 32], "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
        "up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "attention_head_dim": 8, "norm_num_groups": 8,
    },
    "vqvae": {
        "in_channels": 3, "out_channels": 3, "latent_channels": 3, "num_vq_embeddings": 32, "vq_embed_dim": 3,
        "block_out_channels": [8, 8, 8], "layers_per_block": 1, "norm_num_groups": 4,
        "down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3,
    },
    "scheduler": REAL_CONFIG["scheduler"],
}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ldm") / "ldm-super-resolution-4x-openimages"
    build_pipeline(TINY).save_pretrained(str(folder))
    return folder


def test_loads_local_folder_and_upscales_exactly_4x(tiny_dir):
    m = LDMSR(weights=str(tiny_dir), steps=3, eta=1.0, pad_multiple=2)
    lr = torch.rand(1, 3, 11, 9)
    out = m.upscale(lr, 4, torch.Generator().manual_seed(0))
    assert out.shape == (1, 3, 44, 36) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    assert m.num_params() == sum(p.numel() for p in m.pipe.unet.parameters()) + sum(
        p.numel() for p in m.pipe.vqvae.parameters()
    )
    assert m.cost_model().calls["unet"] == 3


def test_all_randomness_comes_from_the_generator(tiny_dir):
    m = LDMSR(weights=str(tiny_dir), steps=3, eta=1.0, pad_multiple=2)
    lr = torch.rand(1, 3, 8, 8)
    a = m.upscale(lr, 4, torch.Generator().manual_seed(1))
    torch.manual_seed(123)  # the global RNG (DDIM's eta noise) must not matter
    b = m.upscale(lr, 4, torch.Generator().manual_seed(1))
    c = m.upscale(lr, 4, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_weights_directory_key_and_clear_errors(tiny_dir, monkeypatch, tmp_path):
    assert "ldm_sr/openimages_4x" in registered_weights()
    monkeypatch.setenv("SRARENA_WEIGHTS", str(tiny_dir.parent))
    assert LDMSR(steps=1).num_params() > 0  # found through the weights directory
    monkeypatch.setenv("SRARENA_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(MissingWeightsError, match="model_index.json"):
        LDMSR(steps=1)
    with pytest.raises(MethodError, match="no model_index.json"):
        LDMSR(weights=str(tmp_path))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model_index.json").write_text(json.dumps({"_class_name": "Nope"}))
    with pytest.raises(MethodError, match="broken"):
        LDMSR(weights=str(tmp_path / "broken"))


def test_method_yaml_instantiates(tiny_dir, monkeypatch):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from tests.conftest import REPO

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("run", overrides=["method=ldm_sr", f"method.weights={tiny_dir}", "method.steps=2"])
    m = instantiate(cfg.method)
    assert isinstance(m, LDMSR) and m.steps == 2


def test_real_config_has_the_published_size():
    """The released architecture, built without weights: 168.95M as the SS-MoE paper lists."""
    with torch.device("meta"):
        pipe = build_pipeline(REAL_CONFIG)
    unet = sum(p.numel() for p in pipe.unet.parameters())
    vq = sum(p.numel() for p in pipe.vqvae.parameters())
    assert (unet, vq) == (113_622_563, 55_322_782)
    assert round((unet + vq) / 1e6, 2) == 168.95


def test_measured_cost_spacing_and_cpu_noise(tiny_dir):
    from srarena.harness.profiling import profile_cost
    from srarena.harness.randomness import audit_draws

    m = LDMSR(weights=str(tiny_dir), steps=3, eta=1.0, pad_multiple=2, spacing="trailing")
    assert m.pipe.scheduler.config.timestep_spacing == "trailing"
    rep = profile_cost(m, torch.rand(1, 3, 8, 8), 4, torch.Generator().manual_seed(0))
    assert rep.steps == 3 and rep.modules["unet"].calls == 3 and rep.modules["vqvae.decoder"].calls == 1
    assert not rep.warnings
    unet = sum(p.numel() for p in m.pipe.unet.parameters())
    once = sum(p.numel() for n in ("quantize", "post_quant_conv", "decoder") for p in getattr(m.pipe.vqvae, n).parameters())
    assert rep.params_step == unet and rep.params_once == once  # the VQ encoder does not run
    assert rep.params_active < rep.params == m.num_params()
    assert rep.flops_per_step == rep.modules["unet"].flops_per_call
    m.pipe.scheduler.set_timesteps(3)
    from srarena.methods.diffusion import timestep_sequence

    assert m.pipe.scheduler.timesteps.tolist() == timestep_sequence(1000, 3, "trailing") == [999, 666, 332]
    with audit_draws() as log:  # x_T and the DDIM eta noise: all from the CPU generator
        m.upscale(torch.zeros(1, 3, 8, 8), 4, torch.Generator().manual_seed(0))
    assert len(log.draws) == 1 + 3 and log.violations == []
    with pytest.raises(MethodError, match="spacing"):
        LDMSR(weights=str(tiny_dir), spacing="uniform")
    assert "step" not in vars(m.pipe.scheduler)  # the generator is unbound after the call
