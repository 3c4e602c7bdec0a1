"""method=ssmoe through the harness interface: scales, Hydra ablation switches, determinism, training stages."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from srarena.methods.ssmoe import SSMoESR
from srarena.methods.ssmoe.blocks import SpaceMoE

from tests.conftest import REPO
from tests.ssmoe_tiny import tiny_kwargs


@pytest.mark.parametrize("scale,size", [(4, (9, 13)), (8, (5, 7))])
@pytest.mark.parametrize("decoder", ["vq", "fcd"])
def test_upscales_exactly_by_the_scale_and_is_seeded(scale, size, decoder):
    m = SSMoESR(**tiny_kwargs(decoder=decoder))
    lr = torch.rand(1, 3, *size)
    a = m.upscale(lr, scale, torch.Generator().manual_seed(0))
    assert a.shape == (1, 3, size[0] * scale, size[1] * scale) and 0 <= a.min() and a.max() <= 1
    torch.manual_seed(123)  # the global RNG must not matter
    assert torch.equal(a, m.upscale(lr, scale, torch.Generator().manual_seed(0)))
    assert not torch.equal(a, m.upscale(lr, scale, torch.Generator().manual_seed(1)))


def _compose(*overrides):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("run", overrides=["method=ssmoe_demo", "method.weights=null", *overrides])
    return cfg, instantiate(cfg.method)


def test_hydra_ablation_switches():
    _, full = _compose()
    assert full.arch.experts == 4 and "fcd" in full.nets and full.decoder == "fcd"
    assert sum(isinstance(m, SpaceMoE) and m.mode == "grouped" for m in full.nets.modules()) == 4 * 4
    _, ldm = _compose("method.sampling_experts.count=1", "method.space_moe=null", "method.decoder=vq")
    assert ldm.arch.experts == 1 and "fcd" not in ldm.nets
    assert not any(isinstance(m, SpaceMoE) for m in ldm.nets.modules())
    _, col = _compose("method.space_moe.inference=collapsed", "method.space_moe.experts=8")
    layers = [m for m in col.nets.modules() if isinstance(m, SpaceMoE)]
    assert layers and all(m.mode == "collapsed" and len(m.moe_blocks) == 1 and m.num_experts == 8 for m in layers)
    _, fast = _compose("method.sampler.steps=20", "method.sampler.spacing=trailing", "method.sampler.name=ddpm")
    assert fast.sampler.steps == 20 and fast.sampler.spacing == "trailing" and fast.cost_model().steps == 20
    _, aff = _compose("method.fcd.aff_blocks=9")
    assert aff.nets["fcd"].refine.num_aff_blocks == 9
    with pytest.raises(Exception, match="decoder"):
        _compose("method.decoder=nope")


def test_training_stage_outputs_route_timesteps_to_their_experts():
    from srarena.harness.training.protocol import TrainBatch

    m = SSMoESR(**tiny_kwargs(latent_scale="auto"))
    hr = torch.rand(8, 3, 32, 32)
    batch = TrainBatch(lr=torch.nn.functional.avg_pool2d(hr, 4), hr=hr)
    seen = []
    for k, e in enumerate(m.experts.experts):
        e.register_forward_pre_hook(lambda mod, args, k=k: seen.append((k, args[1].tolist())))
    out = m.training_outputs(batch, torch.Generator().manual_seed(0), "denoisers")
    assert out["pred"].shape == out["target"].shape == (8, 3, 8, 8)
    assert m.latent_scale > 0  # LDM's scale_by_std from the first batch
    for k, ts in seen:
        assert all(250 * k <= t < 250 * (k + 1) for t in ts) and len(ts) == 2  # sample i -> expert i mod 4
    ae = m.training_outputs(batch, torch.Generator().manual_seed(0), "autoencoder")
    assert ae["rec"].shape == ae["hr"].shape == hr.shape
    dec = m.training_outputs(batch, torch.Generator().manual_seed(0), "decoder")
    assert dec["sr"].shape == hr.shape and dec["sr"].requires_grad
    with pytest.raises(Exception, match="no training stage"):
        m.training_outputs(batch, torch.Generator(), "nope")


def test_after_step_shares_expert_weights_with_the_ramp():
    m = SSMoESR(**tiny_kwargs(momentum={"b_max": 0.3, "ramp_steps": 10}))
    layer = next(x for x in m.nets.modules() if isinstance(x, SpaceMoE))
    with torch.no_grad():
        for i, blk in enumerate(layer.moe_blocks):
            blk[0].weight.fill_(float(i))
    m.after_step(1, "denoisers")  # first step: b = 0 (no steps done before it)
    assert [float(b[0].weight.detach()[0, 0]) for b in layer.moe_blocks] == [0.0, 1.0, 2.0, 3.0]
    m.after_step(6, "denoisers")  # b = 0.3 * 5 / 10 = 0.15
    w0 = float(layer.moe_blocks[0][0].weight.detach()[0, 0])
    assert w0 == pytest.approx(0.85 * 0 + 0.15 * (1 + 2 + 3) / 3)
    before = float(layer.moe_blocks[1][0].weight.detach()[0, 0])
    m.after_step(7, "decoder")  # only after denoiser steps
    assert float(layer.moe_blocks[1][0].weight.detach()[0, 0]) == before


@pytest.mark.slow
def test_train_cli_runs_all_three_stages_and_exports_a_loadable_file(tmp_path):
    """`srarena train method=ssmoe_demo` with one step per stage (~40 s on 2 CPU cores)."""
    from srarena.methods.state_dicts import read_state_dict

    from tests.conftest import run_cli

    out = tmp_path / "demo.safetensors"
    env = {**__import__("os").environ, "SRARENA_OUTPUTS": str(tmp_path / "out"), "SRARENA_DATA": str(tmp_path / "data"),
           "OMP_NUM_THREADS": "1"}
    r = run_cli("train", "method=ssmoe_demo", "train.stages.0.steps=1", "train.stages.1.steps=1",
                "train.stages.2.steps=1", "train.data.crop=32", "train.data.batch_size=4", "tracking.enabled=false",
                "train.progress=false", f"train.export={out}", cwd=tmp_path, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    state, meta = read_state_dict(out)
    assert meta["method"] == "ssmoe" and {k.split(".")[0] for k in state} == {"experts", "vq", "fcd"}
    assert float(state["experts.latent_scale"]) > 0  # set from the first denoiser batch
    m = SSMoESR(**tiny_kwargs(weights=str(out), random_init=False, sampler={"name": "ddim", "steps": 2}))
    assert m.arch.denoiser["ch"] == 32  # the file's architecture, not the tiny YAML's
    assert m.upscale(torch.rand(1, 3, 8, 8), 4, torch.Generator().manual_seed(0)).shape == (1, 3, 32, 32)
