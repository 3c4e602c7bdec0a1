"""SS-MoE cost accounting: paper-scale parameter counts (meta device) and measured FLOPs per step."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("diffusers")

from srarena.harness.profiling import profile_cost
from srarena.methods.ssmoe import SSMoESR
from srarena.methods.ssmoe.costs import VARIANTS, build_variant

from tests.ssmoe_tiny import tiny_kwargs

VARIANT = {v.name: v for v in VARIANTS}


def test_paper_scale_parameter_counts_on_the_meta_device():
    ldm = build_variant(VARIANT["ldm"])
    assert ldm.num_params() == 168_945_345  # LDM-SR's released architecture (methods/ldm_sr.py)
    assert next(ldm.nets.parameters()).device.type == "meta"
    full = build_variant(VARIANT["full_c16"])  # 4 experts, Space-MoE collapsed, FCD with 9 AFF blocks
    assert full.num_params() == 605_298_986 and round(full.num_params() / 1e6, 2) == 605.30  # the paper's figure
    assert full.num_params() - ldm.num_params() == 436_353_641  # paper: +436.35M
    # the paper's count is one FFN per Space-MoE layer: 4 U-Nets x 6 layers x (FFN + LayerNorm) of width 640
    ffn = 640 * 2560 + 2560 + 2560 * 640 + 640
    assert full.num_params() - ldm.num_params() == 3 * 113_622_563 + 4 * 6 * (ffn + 2 * 640) + sum(
        p.numel() for p in full.nets["fcd"].parameters())


def _tiny(**over):
    return SSMoESR(**tiny_kwargs(**{"decoder": "vq", **over}))


def test_four_sampling_experts_cost_one_expert_per_step():
    lr = torch.rand(1, 3, 8, 8)
    one = profile_cost(_tiny(sampling_experts={"count": 1}), lr, 4, torch.Generator().manual_seed(0))
    four = profile_cost(_tiny(sampling_experts={"count": 4}), lr, 4, torch.Generator().manual_seed(0))
    assert four.steps == one.steps == 4 and not four.warnings
    assert four.flops_per_step == one.flops_per_step
    assert four.flops_per_image == one.flops_per_image
    expert = sum(p.numel() for p in _tiny().experts.experts[0].parameters())
    assert four.params_step == one.params_step == expert
    assert four.params - one.params == 3 * expert


def test_collapsed_space_moe_costs_the_same_flops_fewer_parameters():
    lr = torch.rand(1, 3, 8, 8)
    g = profile_cost(_tiny(), lr, 4, torch.Generator().manual_seed(0))
    c = profile_cost(_tiny(space_moe={"experts": 4, "mult": 2, "inference": "collapsed"}), lr, 4,
                     torch.Generator().manual_seed(0))
    assert g.flops_per_step == c.flops_per_step
    ffn32 = 32 * 64 + 64 + 64 * 32 + 32  # one expert of a width-32 layer (the tiny denoiser's bottom), mult 2
    assert g.params - c.params == 4 * 4 * 3 * ffn32  # 4 sampling experts x 4 layers x 3 extra FFNs each
