"""Frequency-compensated decoder (FCD): the VQ-f4 decoder with LR encoder features fused in and an
AFF refinement U-Net before its output layers (MoESR's ``VQModelResiUnet``/``Decoder_Mix_Unet``).

The VQ-f4 autoencoder itself is diffusers' ``VQModel`` (the class ``method=ldm_sr`` runs). The FCD
adds two trainable parts, kept in :class:`FCDParts`:

* ``fusion_layer_{l}`` for every decoder level l except the top and the bottom (level 1 of the
  3-level VQ-f4): ``ResBlock(2C -> C) -> n x RRDB -> ResBlock(C -> C)`` on the concatenation of the
  encoder's level-l features of the bicubic-upsampled LR and the decoder's level-l features;
  ``out = dec + w * fused`` (w = 1);
* ``refine``: :class:`~srarena.methods.ssmoe.aff.AFFUNet` on the top-level decoder features.

:func:`fcd_decode` runs the decoder with both inserted, calling the VQModel's own sub-modules.
The encoder runs only as deep as the deepest fused level (the official code runs the whole
encoder and discards its output; the report counts what that costs).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from srarena.methods.rrdbnet import RRDB
from srarena.methods.ssmoe.aff import AFFUNet
from torch import nn


def _norm(ch: int) -> nn.GroupNorm:
    """taming's ``Normalize``: GroupNorm(32, eps 1e-6)."""
    return nn.GroupNorm(math.gcd(32, ch), ch, eps=1e-6)


class FuseResBlock(nn.Module):
    """Official ``vqmodel.ResBlock``: norm-SiLU-conv twice, 1x1 ``conv_out`` skip when widths differ."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_out = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(torch.nn.functional.silu(self.norm1(x)))
        h = self.conv2(torch.nn.functional.silu(self.norm2(h)))
        return h + (self.conv_out(x) if self.conv_out is not None else x)


class FusionBlock(nn.Module):
    """Official ``Fuse_sft_block_RRDB``: encoder features fused into the decoder's."""

    def __init__(self, ch: int, rrdb: int = 2, grow: int = 32) -> None:
        super().__init__()
        self.encode_enc_1 = FuseResBlock(2 * ch, ch)
        self.encode_enc_2 = nn.Sequential(*[RRDB(ch, grow) for _ in range(rrdb)])
        self.encode_enc_3 = FuseResBlock(ch, ch)

    def forward(self, enc: torch.Tensor, dec: torch.Tensor, w: float = 1.0) -> torch.Tensor:
        fused = self.encode_enc_3(self.encode_enc_2(self.encode_enc_1(torch.cat([enc, dec], dim=1))))
        return dec + w * fused


def fusion_levels(num_levels: int) -> tuple[int, ...]:
    """Decoder levels that receive encoder features: all but the top (0) and the bottom."""
    return tuple(range(1, num_levels - 1))


class FCDParts(nn.Module):
    """What the FCD adds to a VQ-f4 autoencoder of width ``ch`` and multipliers ``ch_mult``."""

    def __init__(self, block_out_channels: tuple[int, ...] | list[int], fusion_rrdb: int = 2, fusion_grow: int = 32,
                 fusion_weight: float = 1.0, aff_blocks: int = 9, aff_filter_blocks: int = 8,
                 aff_hidden_factor: int = 1, aff_threshold: float = 0.01, drop_path: float = 0.1) -> None:
        super().__init__()
        chs = [int(c) for c in block_out_channels]
        self.levels = fusion_levels(len(chs))
        self.fusion_weight = float(fusion_weight)
        for level in self.levels:
            self.add_module(f"fusion_layer_{level}", FusionBlock(chs[level], fusion_rrdb, fusion_grow))
        if aff_blocks < 5:
            raise ValueError(f"the AFF refinement U-Net has at least 5 AFF blocks, got aff_blocks={aff_blocks}")
        self.refine = AFFUNet(chs[0], aff_blocks - 5, num_blocks=aff_filter_blocks, hidden_factor=aff_hidden_factor,
                              threshold=aff_threshold, drop_path=drop_path)

    def fusion(self, level: int) -> FusionBlock:
        return getattr(self, f"fusion_layer_{level}")


def encoder_features(vq: Any, x: torch.Tensor, levels: tuple[int, ...]) -> dict[int, torch.Tensor]:
    """Features of ``vq.encoder`` at the given levels (after the level's res blocks, before its
    downsampler), running the encoder no deeper than needed."""
    enc = vq.encoder
    h = enc.conv_in(x)
    feats: dict[int, torch.Tensor] = {}
    deepest = max(levels) if levels else -1
    for level, block in enumerate(enc.down_blocks):
        if level > deepest:
            break
        for resnet in block.resnets:
            h = resnet(h, None)
        if level in levels:
            feats[level] = h
        if level < deepest and block.downsamplers is not None:
            for down in block.downsamplers:
                h = down(h)
    return feats


def fcd_decode(vq: Any, parts: FCDParts, z: torch.Tensor, lr_up: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """Decode latent ``z`` with the FCD; ``lr_up`` is the LR upsampled to the output size in [-1, 1]."""
    feats = encoder_features(vq, lr_up, parts.levels)
    q = vq.quantize(z)[0] if quantize else z
    dec = vq.decoder
    h = dec.mid_block(dec.conv_in(vq.post_quant_conv(q)), None)
    top = len(dec.up_blocks) - 1
    for j, block in enumerate(dec.up_blocks):
        level = top - j  # diffusers' up_blocks run from the bottom level up
        for resnet in block.resnets:
            h = resnet(h, None)
        if level in parts.levels:
            h = parts.fusion(level)(feats[level], h, parts.fusion_weight)
        if block.upsamplers is not None:
            for up in block.upsamplers:
                h = up(h)
    h = parts.refine(h)
    return dec.conv_out(dec.conv_act(dec.conv_norm_out(h)))


def fcd_cost_paths(vq: Any, parts: FCDParts, vq_path: str = "vq", fcd_path: str = "fcd",
                   quantize: bool = True) -> tuple[str, ...]:
    """Paths (in the method's ``nets``) of exactly the modules :func:`fcd_decode` calls, for the
    cost model (a ModuleList is never called itself, so its members are listed)."""
    deepest = max(parts.levels) if parts.levels else -1
    e, d = f"{vq_path}.encoder", f"{vq_path}.decoder"
    paths = [f"{e}.conv_in"]
    for level, block in enumerate(vq.encoder.down_blocks):
        if level > deepest:
            break
        paths += [f"{e}.down_blocks.{level}.resnets.{i}" for i in range(len(block.resnets))]
        if level < deepest and block.downsamplers is not None:
            paths += [f"{e}.down_blocks.{level}.downsamplers.{i}" for i in range(len(block.downsamplers))]
    paths += [f"{vq_path}.quantize"] if quantize else []
    paths += [f"{vq_path}.post_quant_conv", f"{d}.conv_in", f"{d}.mid_block"]
    top = len(vq.decoder.up_blocks) - 1
    for j, block in enumerate(vq.decoder.up_blocks):
        paths += [f"{d}.up_blocks.{j}.resnets.{i}" for i in range(len(block.resnets))]
        if top - j in parts.levels:
            paths.append(f"{fcd_path}.fusion_layer_{top - j}")
        if block.upsamplers is not None:
            paths += [f"{d}.up_blocks.{j}.upsamplers.{i}" for i in range(len(block.upsamplers))]
    paths += [f"{fcd_path}.refine", f"{d}.conv_norm_out", f"{d}.conv_out"]
    return tuple(paths)
