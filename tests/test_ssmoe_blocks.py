"""SS-MoE building blocks: shapes, routing, momentum sharing, collapse, FFT filter, focal frequency loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from srarena.methods.diffusion.unet import ATTN_BLOCKS, RES_BLOCKS
from srarena.methods.ssmoe.aff import (
    AFFBlock,
    AFFUNet,
    FrequencyFilter,
    InvertedResidual,
)
from srarena.methods.ssmoe.blocks import (
    AttentionSpaceMoE,
    LDMAttention,
    LDMResBlock,
    SpaceMoE,
    collapse_all,
    collapse_space_moe,
    use_generator,
)
from srarena.methods.ssmoe.experts import (
    MomentumSchedule,
    SamplingExperts,
    build_denoiser,
    expert_bounds,
    route,
    share_momentum,
)
from srarena.methods.ssmoe.fcd import (
    FCDParts,
    FusionBlock,
    encoder_features,
    fcd_decode,
)
from srarena.methods.ssmoe.training import focal_frequency_loss

from tests.ssmoe_tiny import TINY_DENOISER, TINY_VQ


def _randomise(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_blocks_are_registered_in_the_shared_skeleton():
    assert RES_BLOCKS["ldm"] is LDMResBlock
    assert ATTN_BLOCKS["ldm"] is LDMAttention and ATTN_BLOCKS["ldm_space_moe"] is AttentionSpaceMoE


@pytest.mark.parametrize("moe", [None, "grouped", "collapsed"])
def test_denoiser_shapes(moe):
    cfg = dict(TINY_DENOISER)
    head = cfg.pop("head_channels")
    opts = {"head_channels": head} | ({"experts": 4, "mult": 2, "mode": moe} if moe else {})
    net = build_denoiser({**cfg, "res_block": "ldm", "embedding": "ldm",
                          "attn_block": "ldm_space_moe" if moe else "ldm", "attn_options": opts})
    g = torch.Generator().manual_seed(0)
    with use_generator(net, g):
        out = net(torch.randn(2, 6, 12, 20), torch.tensor([3, 999]))
    assert out.shape == (2, 3, 12, 20)
    n_moe = sum(isinstance(m, SpaceMoE) for m in net.modules())
    # after every self-attention: each attention level's res blocks (down 1 + up 2) and the middle
    assert n_moe == (0 if moe is None else 1 + 2 + 1)


def test_module_shapes():
    x = torch.randn(2, 16, 8, 12)
    assert LDMResBlock(16, 32, 64, 0.0, 8)(x, torch.randn(2, 64)).shape == (2, 32, 8, 12)
    assert LDMAttention(16, 8, head_channels=8)(x).shape == x.shape
    assert SpaceMoE(16, 4, 2, mode="collapsed")(x).shape == x.shape
    assert InvertedResidual(16, 32)(x).shape == (2, 32, 8, 12)
    assert AFFBlock(16, 32, num_blocks=4)(x).shape == (2, 32, 8, 12)
    assert AFFUNet(16, refine_blocks=1, num_blocks=4)(x).shape == x.shape
    assert AFFUNet(16, refine_blocks=4, num_blocks=4).num_aff_blocks == 9
    assert FusionBlock(16, rrdb=1, grow=8)(x, x).shape == x.shape


def test_fcd_shapes_through_a_vq():
    from diffusers import VQModel

    vq = VQModel.from_config(TINY_VQ)
    parts = FCDParts(TINY_VQ["block_out_channels"], fusion_rrdb=1, fusion_grow=8, aff_blocks=6, aff_filter_blocks=4)
    assert parts.levels == (1,)
    lr_up = torch.rand(1, 3, 32, 40) * 2 - 1
    feats = encoder_features(vq, lr_up, parts.levels)
    assert feats[1].shape == (1, 32, 16, 20)
    out = fcd_decode(vq, parts, torch.randn(1, 3, 8, 10), lr_up)
    assert out.shape == (1, 3, 32, 40)


def test_expert_routing_by_timestep():
    bounds = expert_bounds(4, 1000)
    assert bounds == (0, 250, 500, 750, 1000)
    t = torch.tensor([0, 249, 250, 499, 500, 749, 750, 999])
    assert route(t, bounds).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert (route(torch.arange(1000), bounds) == torch.arange(1000) // 250).all()  # official t // 250

    class Tag(torch.nn.Module):
        def __init__(self, k: int) -> None:
            super().__init__()
            self.k = k

        def forward(self, x, t):
            return torch.full_like(x, float(self.k))

    experts = SamplingExperts([Tag(k) for k in range(4)], bounds)
    out = experts(torch.zeros(8, 1, 2, 2), t)
    assert out[:, 0, 0, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError):
        expert_bounds(3, 1000)


def test_momentum_sharing_arithmetic():
    layer = SpaceMoE(8, experts=4, mult=2)
    _randomise(layer)
    before = [[blk[i].weight.detach().clone() for i in (0, 3)] for blk in layer.moe_blocks]
    biases = [blk[3].bias.detach().clone() for blk in layer.moe_blocks]
    norm = layer.moe_norm.weight.detach().clone()
    b = 0.3
    share_momentum(layer, b)
    for i, blk in enumerate(layer.moe_blocks):
        for j, idx in enumerate((0, 3)):
            others = sum(before[k][j] for k in range(4) if k != i) / 3
            torch.testing.assert_close(blk[idx].weight, (1 - b) * before[i][j] + b * others)
        torch.testing.assert_close(blk[3].bias, (1 - b) * biases[i] + b * sum(biases[k] for k in range(4) if k != i) / 3)
    assert torch.equal(layer.moe_norm.weight, norm)  # the LayerNorm is not shared


def test_momentum_schedules():
    official = MomentumSchedule()  # b = min(0.3 * step / 1e4, 0.3)
    assert official.b(0) == 0.0 and official.b(5000) == pytest.approx(0.15) and official.b(20000) == 0.3
    paper = MomentumSchedule(b_max=0.001, ramp_steps=0)  # gamma = 1 - b = 0.999
    assert paper.b(0) == paper.b(10**6) == 0.001
    with pytest.raises(ValueError):
        MomentumSchedule(b_max=1.5)


def test_collapse_identity_and_cost():
    layer = SpaceMoE(16, experts=4, mult=2)
    _randomise(layer, 1)
    one = collapse_space_moe(layer)
    assert len(one.moe_blocks) == 1 and one.mode == "collapsed"
    for idx in (0, 3):
        for name in ("weight", "bias"):
            mean = torch.stack([getattr(b[idx], name) for b in layer.moe_blocks]).mean(0)
            torch.testing.assert_close(getattr(one.moe_blocks[0][idx], name), mean)
    ffn = sum(p.numel() for p in layer.moe_blocks[0].parameters())
    assert sum(p.numel() for p in one.parameters()) == ffn + sum(p.numel() for p in layer.moe_norm.parameters())
    # the collapsed layer is exactly an FFN: LayerNorm -> mean expert -> residual
    x = torch.randn(2, 16, 4, 4)
    tokens = one.moe_norm(x.flatten(2).transpose(1, 2))
    ref = x + one.moe_blocks[0](tokens).transpose(1, 2).reshape(x.shape)
    torch.testing.assert_close(one(x), ref)
    # FLOPs: grouped (every token through one expert) == collapsed == one FFN
    from torch.utils.flop_counter import FlopCounterMode

    def flops(m):
        with FlopCounterMode(display=False) as mode, use_generator(m, torch.Generator().manual_seed(0)):
            m(x)
        return mode.get_total_flops()

    assert flops(layer) == flops(one) == 2 * 2 * 16 * (16 * 32 + 32 * 16)
    net = torch.nn.Sequential(SpaceMoE(16, 4), SpaceMoE(16, 4))
    assert collapse_all(net) == 2 and all(m.mode == "collapsed" for m in net)


def test_space_moe_grouping_is_a_permutation_from_the_generator():
    layer = SpaceMoE(8, experts=4, mult=2)
    _randomise(layer, 2)
    x = torch.randn(1, 8, 4, 6)
    with pytest.raises(RuntimeError, match="generator"):
        layer(x)
    with use_generator(layer, torch.Generator().manual_seed(5)):
        a = layer(x)
    with use_generator(layer, torch.Generator().manual_seed(5)):
        b = layer(x)
    with use_generator(layer, torch.Generator().manual_seed(6)):
        c = layer(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # token by token: the output of token p is the expert of its group applied to token p
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(5))
    tokens = layer.moe_norm(x.flatten(2).transpose(1, 2))[0]
    group_of = torch.empty(24, dtype=torch.long)
    for k, idx in enumerate(perm.tensor_split(4)):
        group_of[idx] = k
    ref = torch.stack([layer.moe_blocks[int(group_of[p])](tokens[p]) for p in range(24)])
    torch.testing.assert_close(a[0].flatten(1).T - x[0].flatten(1).T, ref)
    assert layer.generator is None  # restored after the block


def test_fft_filter_is_invertible_at_identity_weights():
    filt = FrequencyFilter(16, num_blocks=4)
    with torch.no_grad():
        for p in (filt.w1, filt.w2, filt.b1, filt.b2):
            p.zero_()
        filt.b1[0].fill_(1.0)                    # layer 1: LeakyReLU(1) = 1 (real)
        filt.b2[0].fill_(1.0 + filt.threshold)   # layer 2: 1 + threshold, soft-shrunk to exactly 1
    x = torch.randn(2, 16, 9, 14, dtype=torch.float32)
    spec = torch.fft.rfft2(x, norm="ortho")
    mask = filt.mask(spec)
    torch.testing.assert_close(mask, torch.ones_like(mask))
    torch.testing.assert_close(filt(x) - x, x, atol=1e-5, rtol=1e-5)  # irfft2(rfft2(x) * 1) = x


def test_focal_frequency_loss_against_its_formula():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 3, 4, 6, generator=g), torch.rand(2, 3, 4, 6, generator=g)
    fa, fb = np.fft.fft2(a.double().numpy(), norm="ortho"), np.fft.fft2(b.double().numpy(), norm="ortho")
    d2 = np.abs(fa - fb) ** 2
    for alpha in (1.0, 2.0):
        w = np.sqrt(d2) ** alpha
        w = w / w.max(axis=(-2, -1), keepdims=True)  # per image and channel
        ref = float((w * d2).mean())
        assert float(focal_frequency_loss(a, b, alpha=alpha)) == pytest.approx(ref, rel=1e-5)
    w = np.sqrt(d2) / np.sqrt(d2).max()
    assert float(focal_frequency_loss(a, b, batch_matrix=True)) == pytest.approx(float((w * d2).mean()), rel=1e-5)
    assert float(focal_frequency_loss(a, a)) == 0.0
    # the weight is not differentiated: the gradient is that of sum(w * |dF|^2) / n with w fixed
    p = a.clone().requires_grad_(True)
    focal_frequency_loss(p, b).backward()
    assert torch.isfinite(p.grad).all()
    with pytest.raises(ValueError, match="patch_factor"):
        focal_frequency_loss(a, b, patch_factor=4)
