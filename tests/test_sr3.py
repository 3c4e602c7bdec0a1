"""SR3: conditional pixel-space DDPM on the shared diffusion module."""

from __future__ import annotations

import json

import pytest
import torch

from srarena.harness.degradations.resize import imresize
from srarena.methods.base import MethodError
from srarena.methods.sr3 import SR3
from srarena.methods.state_dicts import CheckpointError, save_safetensors

TINY = dict(
    unet={"in_channels": 6, "out_channels": 3, "ch": 8, "ch_mult": [1, 2], "num_res_blocks": 1,
          "attn_levels": [1], "dropout": 0.0, "groups": 4},
    schedule={"name": "linear", "timesteps": 100},
    sampler={"name": "ddim", "steps": 4, "eta": 0.5},
)


def test_upscale_is_exactly_scaled_and_seeded():
    m = SR3(**TINY)
    lr = torch.rand(1, 3, 5, 7)
    a = m.upscale(lr, 4, torch.Generator().manual_seed(0))
    b = m.upscale(lr, 4, torch.Generator().manual_seed(0))
    c = m.upscale(lr, 4, torch.Generator().manual_seed(1))
    assert a.shape == (1, 3, 20, 28)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert m.cost_model().calls == {"unet": 4} and m.cost_model().steps == 4


def test_training_pair_is_the_ddpm_objective():
    m = SR3(**TINY)
    g = torch.Generator().manual_seed(0)
    pred, target = m.training_pair(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 16, 16), g)
    assert pred.shape == target.shape == (2, 3, 16, 16)
    g = torch.Generator().manual_seed(0)
    torch.randint(100, (2,), generator=g)
    torch.testing.assert_close(target, torch.randn(2, 3, 16, 16, generator=g))  # eps target
    assert pred.requires_grad


def test_checkpoint_is_self_describing(tmp_path):
    m = SR3(**TINY)
    path = tmp_path / "sr3.safetensors"
    save_safetensors(path, m.unet.state_dict(), m.checkpoint_metadata())
    loaded = SR3(weights=str(path), sampler=TINY["sampler"])  # architecture from the file
    assert loaded.unet_cfg == m.unet_cfg and loaded.schedule.T == 100
    lr = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(
        loaded.upscale(lr, 4, torch.Generator().manual_seed(3)), m.upscale(lr, 4, torch.Generator().manual_seed(3))
    )
    with pytest.raises(CheckpointError, match="sr3.safetensors.*x4.*x2"):
        SR3(weights=str(path), scale=2)
    meta = m.checkpoint_metadata() | {"unet": "{not json"}
    save_safetensors(tmp_path / "bad.safetensors", m.unet.state_dict(), meta)
    with pytest.raises(CheckpointError, match="bad.safetensors.*malformed"):
        SR3(weights=str(tmp_path / "bad.safetensors"))
    meta = m.checkpoint_metadata() | {"unet": json.dumps({**TINY["unet"], "ch": 16})}
    save_safetensors(tmp_path / "other.safetensors", m.unet.state_dict(), meta)
    with pytest.raises(CheckpointError, match="other.safetensors.*does not fit"):
        SR3(weights=str(tmp_path / "other.safetensors"))


def test_residual_target_round_trips():
    """x_0 is (hr - bicubic_up(lr)) / residual_scale; the SR is bicubic_up(lr) + residual."""
    m = SR3(**TINY, target="residual", residual_scale=0.05, prediction="x0")
    lr, hr = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 16, 16)
    _, target = m.training_pair(lr, hr, torch.Generator().manual_seed(0))
    torch.testing.assert_close(target, (hr - imresize(lr, scale=4, size=(16, 16))) / 0.05)
    # A network that predicts a zero residual returns the bicubic upsample (clamped to [0, 1]:
    # x_0 is clamped to the range that keeps the SR valid, and bicubic overshoots it).
    torch.nn.init.zeros_(m.unet.conv_out.weight)
    torch.nn.init.zeros_(m.unet.conv_out.bias)
    lr = torch.rand(1, 3, 5, 7)  # 20x28: padded to the U-Net's multiple, then cropped
    sr = m.upscale(lr, 4, torch.Generator().manual_seed(0))
    torch.testing.assert_close(sr, imresize(lr, scale=4, size=(20, 28)).clamp(0, 1), atol=1e-5, rtol=0)
    # Untrained (eps) nets: the clamped x_0 keeps the SR inside [0, 1].
    sr = SR3(**TINY, target="residual").upscale(lr, 4, torch.Generator().manual_seed(0))
    assert sr.shape == (1, 3, 20, 28) and sr.min() >= -1e-5 and sr.max() <= 1 + 1e-5
    with pytest.raises(MethodError, match="target"):
        SR3(**TINY, target="latent")
    with pytest.raises(MethodError, match="residual_scale"):
        SR3(**TINY, target="residual", residual_scale=0.0)


def test_checkpoint_records_the_target(tmp_path):
    m = SR3(**TINY, target="residual", residual_scale=0.08)
    meta = m.checkpoint_metadata()
    assert meta["target"] == "residual" and meta["residual_scale"] == 0.08
    assert SR3(**TINY).checkpoint_metadata()["target"] == "image"  # the default: SR3 as published
    save_safetensors(tmp_path / "res.safetensors", m.unet.state_dict(), meta)
    # The file wins over the YAML's target / residual_scale.
    loaded = SR3(weights=str(tmp_path / "res.safetensors"), sampler=TINY["sampler"], target="image", residual_scale=1.0)
    assert loaded.target == "residual" and loaded.residual_scale == 0.08
    lr = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(
        loaded.upscale(lr, 4, torch.Generator().manual_seed(3)), m.upscale(lr, 4, torch.Generator().manual_seed(3))
    )
    # Files written before `target` existed hold image-space models, whatever the YAML says.
    old = {k: v for k, v in meta.items() if k not in ("target", "residual_scale")}
    save_safetensors(tmp_path / "old.safetensors", m.unet.state_dict(), old)
    assert SR3(weights=str(tmp_path / "old.safetensors"), target="residual").target == "image"
    save_safetensors(tmp_path / "bad.safetensors", m.unet.state_dict(), meta | {"target": "latent"})
    with pytest.raises(CheckpointError, match="bad.safetensors.*latent"):
        SR3(weights=str(tmp_path / "bad.safetensors"))


def test_sampler_options_from_yaml_and_measured_steps():
    from srarena.harness.profiling import profile_cost

    m = SR3(**{**TINY, "sampler": {"name": "ddim", "steps": 1, "eta": 0.0, "spacing": "trailing"}})
    seen = []
    hook = m.unet.register_forward_pre_hook(lambda _m, args: seen.append(int(args[1][0])))
    rep = profile_cost(m, torch.rand(1, 3, 4, 4), 4)
    hook.remove()
    assert seen == [99] and rep.steps == 1 and not rep.warnings  # one step from noise at t = T-1
    assert rep.params_step == m.num_params() and rep.flops_per_step == rep.modules["unet"].flops_per_call
    with pytest.raises(MethodError, match="sampler.*spacing"):
        SR3(**{**TINY, "sampler": {"name": "ddim", "spacing": "uniform"}})
