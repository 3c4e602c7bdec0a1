"""The latent-diffusion (openaimodel) blocks and the Space-MoE FFN, registered into the shared U-Net.

The SS-MoE denoiser is LDM-SR's U-Net (Rombach et al.'s ``openaimodel.UNetModel``) with one
addition: a feed-forward layer of N experts after every self-attention block (Luo et al. 2023,
"Space-MoE"). The shared skeleton (:mod:`srarena.methods.diffusion.unet`) already has LDM's
topology (conv_in, per level ``num_res_blocks`` res blocks [+ attention], strided-conv
downsampling, res-attn-res middle, mirrored up path with skip concatenation, nearest+conv
upsampling, GroupNorm-SiLU-conv out); what differs from Ho et al.'s blocks is registered here on
import, so the LDM-SR denoiser is the skeleton with ``res_block="ldm"`` and ``attn_block="ldm"`` and
the SS-MoE denoiser the same with ``attn_block="ldm_space_moe"``:

* ``RES_BLOCKS["ldm"]`` — :class:`LDMResBlock`: GroupNorm eps 1e-5 (LDM's ``normalization``; the
  DDPM block uses 1e-6), zero-initialised output conv, attribute names of the official code
  (``in_layers``/``emb_layers``/``out_layers``/``skip_connection``) so checkpoints map 1:1.
* ``ATTN_BLOCKS["ldm"]`` — :class:`LDMAttention`: multi-head self-attention with a fixed number of
  channels per head and the *legacy* QKV layout (``QKVAttentionLegacy``: the 1x1 qkv projection's
  output is split into heads first, then into q, k, v), zero-initialised ``proj_out``.
* ``ATTN_BLOCKS["ldm_space_moe"]`` — :class:`AttentionSpaceMoE`: :class:`LDMAttention` followed by
  a :class:`SpaceMoE` feed-forward layer (``.moe``).

Every random draw (the Space-MoE token permutation) comes from a ``torch.Generator`` handed to the
module with :func:`use_generator`; the method sets it from the job's generator for each image.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from srarena.methods.diffusion.unet import ATTN_BLOCKS, RES_BLOCKS
from torch import nn

MoEMode = Literal["grouped", "collapsed"]
MOE_MODES: tuple[str, ...] = ("grouped", "collapsed")


def ldm_norm(ch: int, groups: int = 32, eps: float = 1e-5) -> nn.GroupNorm:
    """LDM's ``normalization(ch)``: GroupNorm(32, ch), eps 1e-5 (gcd for the small demo widths)."""
    return nn.GroupNorm(math.gcd(groups, ch), ch, eps=eps)


class LDMResBlock(nn.Module):
    """openaimodel ``ResBlock`` (no scale-shift norm, no up/down): the shared skeleton's signature."""

    def __init__(self, cin: int, cout: int, temb: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(ldm_norm(cin, groups), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(temb, cout))
        self.out_layers = nn.Sequential(
            ldm_norm(cout, groups), nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(cout, cout, 3, padding=1)
        )
        nn.init.zeros_(self.out_layers[3].weight)  # LDM's zero_module: each block starts as identity
        nn.init.zeros_(self.out_layers[3].bias)
        self.skip_connection = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb_layers(emb)[:, :, None, None].to(x.dtype)
        return self.skip_connection(x) + self.out_layers(h)


class LDMAttention(nn.Module):
    """openaimodel ``AttentionBlock`` with ``QKVAttentionLegacy`` (heads of ``head_channels``)."""

    def __init__(self, ch: int, groups: int, head_channels: int = 32) -> None:
        super().__init__()
        if ch % head_channels:
            raise ValueError(f"attention width {ch} is not a multiple of head_channels={head_channels}")
        self.heads = ch // head_channels
        self.norm = ldm_norm(ch, groups)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.proj_out = nn.Conv1d(ch, ch, 1)
        nn.init.zeros_(self.proj_out.weight)
        nn.init.zeros_(self.proj_out.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, *spatial = x.shape
        flat = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(flat))  # (b, 3c, T), legacy layout: [head][q|k|v][ch]
        d = c // self.heads
        q, k, v = qkv.reshape(b, self.heads, 3 * d, -1).split(d, dim=2)  # each (b, heads, d, T)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        h = self.proj_out(out.transpose(-1, -2).reshape(b, c, -1))
        return (flat + h).reshape(b, c, *spatial)


def _ffn(ch: int, mult: int, dropout: float) -> nn.Sequential:
    """One expert: Linear(C, mult*C) - GELU - Dropout - Linear(mult*C, C) (official indices 0 and 3)."""
    return nn.Sequential(nn.Linear(ch, mult * ch), nn.GELU(), nn.Dropout(dropout), nn.Linear(mult * ch, ch))


class SpaceMoE(nn.Module):
    """Space-MoE feed-forward layer: LayerNorm, a random permutation of the h*w tokens split into N
    equal groups, expert i on group i, inverse permutation, residual.

    ``mode="grouped"`` keeps the random grouping (the official inference); ``"collapsed"`` holds a
    single FFN whose weights are the mean of the experts' (the paper's inference; see
    :func:`collapse_space_moe`). A token count that N does not divide is split into groups whose
    sizes differ by one (``torch.tensor_split``); the official code needs h*w divisible by N.
    """

    def __init__(self, ch: int, experts: int = 16, mult: int = 4, dropout: float = 0.0,
                 mode: MoEMode = "grouped") -> None:
        super().__init__()
        if mode not in MOE_MODES:
            raise ValueError(f"Space-MoE mode must be one of {MOE_MODES}, not {mode!r}")
        if experts < 1:
            raise ValueError(f"Space-MoE needs at least one expert, got {experts}")
        self.mode: MoEMode = mode
        self.num_experts = int(experts)
        self.moe_norm = nn.LayerNorm(ch)
        n = 1 if mode == "collapsed" else self.num_experts
        self.moe_blocks = nn.ModuleList([_ffn(ch, mult, dropout) for _ in range(n)])
        self.generator: torch.Generator | None = None  # set per image / batch by use_generator

    def permutation(self, n: int, device: torch.device) -> torch.Tensor:
        if self.generator is None:
            raise RuntimeError(
                "SpaceMoE (grouped) draws a token permutation: give it a generator with "
                "srarena.methods.ssmoe.blocks.use_generator(module, generator)"
            )
        return torch.randperm(n, generator=self.generator).to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        feat = self.moe_norm(x.flatten(2).transpose(1, 2))  # (b, hw, c)
        if self.mode == "collapsed" or len(self.moe_blocks) == 1:
            out = self.moe_blocks[0](feat)
        else:
            perm = self.permutation(h * w, x.device)
            groups = feat[:, perm].tensor_split(len(self.moe_blocks), dim=1)
            mixed = torch.cat([blk(g) for blk, g in zip(self.moe_blocks, groups)], dim=1)
            out = torch.empty_like(mixed)
            out[:, perm] = mixed  # inverse permutation
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class AttentionSpaceMoE(nn.Module):
    """Self-attention then the Space-MoE FFN (official: ``AttentionBlock`` then ``FeedForwardMoe``)."""

    def __init__(self, ch: int, groups: int, head_channels: int = 32, experts: int = 16, mult: int = 4,
                 mode: MoEMode = "grouped", dropout: float = 0.0) -> None:
        super().__init__()
        self.attn = LDMAttention(ch, groups, head_channels)
        self.moe = SpaceMoE(ch, experts, mult, dropout, mode)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.moe(self.attn(x))


RES_BLOCKS.setdefault("ldm", LDMResBlock)
ATTN_BLOCKS.setdefault("ldm", LDMAttention)
ATTN_BLOCKS.setdefault("ldm_space_moe", AttentionSpaceMoE)


# -- operations on trained layers ----------------------------------------------------------------

def space_moe_layers(module: nn.Module) -> list[SpaceMoE]:
    return [m for m in module.modules() if isinstance(m, SpaceMoE)]


@torch.no_grad()
def collapse_space_moe(layer: SpaceMoE) -> SpaceMoE:
    """A ``collapsed`` layer whose single FFN is the plain mean of ``layer``'s experts (weights and
    biases; the LayerNorm is shared). The official averaging branch computes
    ``beta = N - 1/N`` by operator precedence (15.94 for N=16) instead of ``(N-1)/N``; this is the
    mean the paper describes."""
    first = layer.moe_blocks[0]
    ch, hidden = first[0].in_features, first[0].out_features
    out = SpaceMoE(ch, layer.num_experts, hidden // ch, first[2].p, "collapsed").to(first[0].weight)
    out.moe_norm.load_state_dict(layer.moe_norm.state_dict())
    for idx in (0, 3):
        for name in ("weight", "bias"):
            stacked = torch.stack([getattr(blk[idx], name) for blk in layer.moe_blocks])
            getattr(out.moe_blocks[0][idx], name).copy_(stacked.mean(0))
    return out


def collapse_all(module: nn.Module) -> int:
    """Replace every grouped Space-MoE layer inside ``module`` by its collapsed mean; returns the count."""
    count = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, SpaceMoE) and child.mode == "grouped":
                setattr(parent, name, collapse_space_moe(child))
                count += 1
    return count


@contextlib.contextmanager
def use_generator(module: nn.Module, generator: torch.Generator | None) -> Iterator[None]:
    """Every random draw inside ``module`` (Space-MoE permutations, drop-path masks) comes from
    ``generator`` for the duration of the block."""
    targets = [m for m in module.modules() if hasattr(m, "generator") and isinstance(m, nn.Module)]
    saved = [m.generator for m in targets]
    for m in targets:
        m.generator = generator
    try:
        yield
    finally:
        for m, g in zip(targets, saved):
            m.generator = g
