"""The released 8x weights' layout: official key names, EMA, FA-VAE, and clear errors."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from srarena.harness.weights import registered_weights
from srarena.methods.ssmoe import SSMoESR
from srarena.methods.ssmoe.costs import VARIANTS, build_variant
from srarena.methods.ssmoe.keymaps import to_official
from srarena.methods.ssmoe.official import (
    BUNDLE_KEY,
    ema_name,
    fa_vae_state,
    vq_to_taming,
)
from srarena.methods.state_dicts import CheckpointError

from tests.ssmoe_tiny import tiny_kwargs


def test_paper_scale_official_key_names():
    """Names from the official module structure (UNetModelWithFFNMoe, 4 levels, attention at the
    4th): Space-MoE at input_blocks.{10,11}.2, middle_block.2, output_blocks.{0,1,2}.2 with 16 experts."""
    m = build_variant(next(v for v in VARIANTS if v.name == "full_g16"))
    keys = set(to_official(m.experts.experts[0].state_dict(), m.experts.experts[0]))
    p = "model.diffusion_model."
    moe = sorted({k.split(".moe_")[0][len(p):] for k in keys if ".moe_" in k})
    assert moe == ["input_blocks.10.2", "input_blocks.11.2", "middle_block.2", "output_blocks.0.2",
                   "output_blocks.1.2", "output_blocks.2.2"]
    assert sum(".moe_blocks." in k for k in keys) == 6 * 16 * 4
    for k in ["time_embed.0.weight", "input_blocks.0.0.weight", "input_blocks.3.0.op.weight",
              "input_blocks.4.0.skip_connection.weight", "input_blocks.10.1.qkv.weight", "middle_block.3.out_layers.3.weight",
              "output_blocks.2.3.conv.weight", "output_blocks.5.1.conv.weight", "output_blocks.8.1.conv.weight",
              "output_blocks.11.0.in_layers.0.weight", "input_blocks.11.2.moe_blocks.15.3.bias", "out.2.weight"]:
        assert p + k in keys, k
    assert ema_name(p + "input_blocks.0.0.weight") == "model_ema.diffusion_modelinput_blocks00weight"
    assert len(keys) == len(m.experts.experts[0].state_dict())


def _official_files(src: SSMoESR, folder, stage_name="moe_stage{k}.ckpt", ema=True):
    folder.mkdir(exist_ok=True)
    for k, e in enumerate(src.experts.experts):
        off = to_official(e.state_dict(), e)
        state = {kk: torch.zeros_like(v) for kk, v in off.items()}  # raw weights differ from EMA
        if ema:
            state |= {ema_name(kk): v for kk, v in off.items()}
        state |= {"betas": torch.zeros(1000), "model_ema.num_updates": torch.tensor(3)}
        torch.save(state, folder / stage_name.format(k=k))
    fcd = src.nets["fcd"].state_dict()
    fa = vq_to_taming(src.vq.state_dict(), 3)
    fa |= {"decoder." + k: v for k, v in fcd.items() if k.startswith("fusion_layer_")}
    fa |= {"decoder.unet_1." + k[len("refine."):]: v for k, v in fcd.items() if k.startswith("refine.")}
    torch.save(fa | {"loss.discriminator.main.0.weight": torch.zeros(1)}, folder / "fa_vae.pth")
    return fa


def _randomised(seed=3):
    m = SSMoESR(**tiny_kwargs(seed=seed))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.nets.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return m


def test_loads_official_layout_and_upscales_identically(tmp_path):
    src = _randomised()
    fa = _official_files(src, tmp_path / "w", stage_name="model_stage{k}.ckpt")  # the README's names
    assert "decoder.up.0.block.1.conv2.weight" in fa and "encoder.down.0.downsample.conv.weight" in fa
    assert "decoder.mid.attn_1.q.weight" in fa and fa["decoder.mid.attn_1.q.weight"].ndim == 4
    assert any(k.startswith("decoder.fusion_layer_1.encode_enc_2.0.rdb1.conv1") for k in fa)
    assert any(k.startswith("decoder.unet_1.conv1.filter.w1") for k in fa)
    dst = SSMoESR(**tiny_kwargs(official=str(tmp_path / "w"), random_init=False))
    lr = torch.rand(1, 3, 8, 8)
    for scale in (4, 8):
        torch.testing.assert_close(dst.upscale(lr, scale, torch.Generator().manual_seed(1)),
                                   src.upscale(lr, scale, torch.Generator().manual_seed(1)))
    plain = SSMoESR(**tiny_kwargs(official=str(tmp_path / "w"), random_init=False, decoder="vq"))
    assert "fcd" not in plain.nets  # the FA-VAE's base VQ weights alone


def test_clear_errors(tmp_path):
    src = _randomised()
    _official_files(src, tmp_path / "noema", ema=False)
    with pytest.raises(CheckpointError, match="no EMA weights"):
        SSMoESR(**tiny_kwargs(official=str(tmp_path / "noema"), random_init=False))
    SSMoESR(**tiny_kwargs(official=str(tmp_path / "noema"), random_init=False, use_ema=False))
    with pytest.raises(CheckpointError, match="U-Net keys missing"):  # a file of another architecture
        SSMoESR(**tiny_kwargs(official=str(tmp_path / "noema"), random_init=False, use_ema=False,
                              denoiser={**tiny_kwargs()["denoiser"], "num_res_blocks": 2}))
    stage = tmp_path / "noema" / "moe_stage2.ckpt"
    torch.save({**torch.load(stage), "model.diffusion_model.input_blocks.99.0.weight": torch.zeros(1)}, stage)
    with pytest.raises(CheckpointError, match=r"unexpected U-Net keys.*input_blocks\.99"):
        SSMoESR(**tiny_kwargs(official=str(tmp_path / "noema"), random_init=False, use_ema=False))
    with pytest.raises(CheckpointError, match=r"missing official MoESR files for \['stage0'"):
        SSMoESR(**tiny_kwargs(official=str(tmp_path), random_init=False))
    bad = {"decoder.up.0.block.0.norm1.weight": torch.zeros(16), "decoder.bogus.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="decoder.bogus"):
        fa_vae_state(src, bad, "fa_vae.pth")
    with pytest.raises(Exception, match="no weights given"):
        SSMoESR(**tiny_kwargs(random_init=False))


def test_bundle_is_registered_with_its_five_files():
    bundle = registered_weights()[BUNDLE_KEY]
    assert [f.role for f in bundle.files] == ["stage0", "stage1", "stage2", "stage3", "fa_vae"]
    assert bundle.files[0].filename.endswith("moe_stage0.ckpt") and bundle.files[-1].filename.endswith("fa_vae.pth")


def test_weights_status_lists_the_bundle(tmp_path):
    from tests.conftest import REPO, run_cli

    r = run_cli("weights", "status", cwd=tmp_path, env={**__import__("os").environ, "SRARENA_WEIGHTS": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert BUNDLE_KEY in r.stdout and "fa_vae.pth" in r.stdout and str(REPO)
