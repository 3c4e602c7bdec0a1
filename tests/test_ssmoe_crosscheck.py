"""Cross-implementation check: ssmoe's LDM ablation vs diffusers' LDM-SR pipeline (method=ldm_sr)
on one tiny random LDM of the released classes — same image for the same seed, sampler and steps."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from srarena.methods.ldm_sr import LDMSR, REAL_CONFIG, build_pipeline
from srarena.methods.ssmoe import SSMoESR
from srarena.methods.ssmoe.diffusers_convert import (
    unet_from_diffusers,
    unet_to_diffusers,
)

TINY_LDM = {
    "unet": {
        "sample_size": 16, "in_channels": 6, "out_channels": 3, "layers_per_block": 2,
        "block_out_channels": [16, 32, 32], "down_block_types": ["DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
        "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D"], "attention_head_dim": 8, "norm_num_groups": 8,
    },
    "vqvae": {
        "in_channels": 3, "out_channels": 3, "latent_channels": 3, "num_vq_embeddings": 32, "vq_embed_dim": 3,
        "block_out_channels": [8, 8, 8], "layers_per_block": 1, "norm_num_groups": 4,
        "down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3,
    },
    "scheduler": REAL_CONFIG["scheduler"],
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ldm") / "tiny-ldm-sr"
    build_pipeline(TINY_LDM).save_pretrained(str(path))
    return path


def _pair(folder, steps: int, eta: float):
    ref = LDMSR(weights=str(folder), steps=steps, eta=eta, pad_multiple=4)
    ours = SSMoESR(scale=4, scales=[4], ldm_sr=str(folder), sampling_experts={"count": 1}, space_moe=None,
                   decoder="vq", color_fix="none", sampler={"name": "ddim", "steps": steps, "eta": eta, "spacing": "leading"})
    return ref, ours


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_same_image_as_ldm_sr(folder, eta):
    ref, ours = _pair(folder, steps=5, eta=eta)
    assert ours.num_params() == ref.num_params()
    lr = torch.rand(1, 3, 10, 14, generator=torch.Generator().manual_seed(1))  # padded to 12x16 by both
    a = ref.upscale(lr, 4, torch.Generator().manual_seed(7))
    b = ours.upscale(lr, 4, torch.Generator().manual_seed(7))
    assert a.shape == b.shape == (1, 3, 40, 56)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


def test_denoiser_outputs_match_and_state_dicts_round_trip(folder):
    ref, ours = _pair(folder, steps=2, eta=0.0)
    x, t = torch.randn(2, 6, 8, 12), torch.tensor([17, 901])
    expert = ours.experts.experts[0]
    with torch.no_grad():
        torch.testing.assert_close(expert(x, t), ref.pipe.unet(x, t).sample, atol=1e-5, rtol=1e-5)
    back = unet_to_diffusers(expert.state_dict(), expert)
    dstate = ref.pipe.unet.state_dict()
    assert set(back) == set(dstate)
    assert all(torch.equal(back[k], dstate[k]) for k in dstate)
    assert set(unet_from_diffusers(dstate, expert)) == set(expert.state_dict())
