"""Tiny ssmoe architectures for the tests (seconds on CPU); not a test module itself."""

from __future__ import annotations

from typing import Any

TINY_DENOISER = {"in_channels": 6, "out_channels": 3, "ch": 16, "ch_mult": [1, 2, 2], "num_res_blocks": 1,
                 "attn_levels": [2], "groups": 8, "head_channels": 8}
TINY_VQ = {"in_channels": 3, "out_channels": 3, "latent_channels": 3, "num_vq_embeddings": 32, "vq_embed_dim": 3,
           "block_out_channels": [16, 32, 32], "layers_per_block": 1, "norm_num_groups": 8,
           "down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3}
TINY_FCD = {"fusion_rrdb": 1, "fusion_grow": 8, "aff_blocks": 6, "aff_filter_blocks": 4, "drop_path": 0.0}


def tiny_kwargs(**over: Any) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "scale": 4, "scales": [4, 8], "denoiser": TINY_DENOISER, "sampling_experts": {"count": 4},
        "space_moe": {"experts": 4, "mult": 2, "inference": "grouped"}, "vq": TINY_VQ, "decoder": "fcd", "fcd": TINY_FCD,
        "sampler": {"name": "ddim", "steps": 4, "eta": 1.0, "spacing": "leading"}, "random_init": True,
    }
    kw.update(over)
    return kw
