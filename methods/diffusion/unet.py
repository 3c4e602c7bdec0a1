"""The DDPM U-Net of Ho et al. (2020), configurable enough for SR3 and later diffusion methods.

Structure (as in the paper's appendix B): a 3x3 input conv; per resolution level
``num_res_blocks`` residual blocks (GroupNorm -> SiLU -> conv, timestep embedding added between
the two convs, dropout before the second) with single-head self-attention at the levels in
``attn_levels``; strided-conv downsampling; a middle of res-attn-res; a mirrored up path with
skip concatenations and nearest-neighbour upsampling; GroupNorm -> SiLU -> 3x3 output conv.
Timesteps enter through a sinusoidal embedding and a two-layer MLP (width 4 x ``ch``).

Resolutions are named by level index (0 = full size), not pixels, because SR inputs have any
size. Conditioning by concatenation (SR3, LDM-SR) is just ``in_channels`` > ``out_channels``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 6
    out_channels: int = 3
    ch: int = 64
    ch_mult: tuple[int, ...] = (1, 2, 4, 8)
    num_res_blocks: int = 2
    attn_levels: tuple[int, ...] = (3,)
    dropout: float = 0.0
    groups: int = 32

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        for key in ("ch_mult", "attn_levels"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def size_multiple(self) -> int:
        """Input sizes must be multiples of this (one halving per level below the top)."""
        return 2 ** (len(self.ch_mult) - 1)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer sinusoids of the (possibly fractional) timestep, as in the DDPM code."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([args.sin(), args.cos()], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _norm(ch: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, ch), ch, eps=1e-6)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, dropout: float, groups: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2, self.drop = _norm(cout, groups), nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with a residual connection."""

    def __init__(self, ch: int, groups: int) -> None:
        super().__init__()
        self.norm = _norm(ch, groups)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.proj(out.transpose(1, 2).reshape(b, c, h, w))


class DDPMUNet(nn.Module):
    def __init__(self, cfg: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        ch, g, temb = cfg.ch, cfg.groups, 4 * cfg.ch
        self.temb = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        skips, cur = [ch], ch
        for level, mult in enumerate(cfg.ch_mult):
            for _ in range(cfg.num_res_blocks):
                blocks = [ResBlock(cur, ch * mult, temb, cfg.dropout, g)]
                cur = ch * mult
                if level in cfg.attn_levels:
                    blocks.append(AttnBlock(cur, g))
                self.down.append(nn.ModuleList(blocks))
                skips.append(cur)
            if level != len(cfg.ch_mult) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(cur, cur, 3, stride=2, padding=1)]))
                skips.append(cur)
        self.mid = nn.ModuleList([ResBlock(cur, cur, temb, cfg.dropout, g), AttnBlock(cur, g), ResBlock(cur, cur, temb, cfg.dropout, g)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.ch_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                blocks = [ResBlock(cur + skips.pop(), ch * mult, temb, cfg.dropout, g)]
                cur = ch * mult
                if level in cfg.attn_levels:
                    blocks.append(AttnBlock(cur, g))
                self.up.append(nn.ModuleList(blocks))
            if level != 0:
                self.up.append(nn.ModuleList([nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cur, cur, 3, padding=1)]))
        self.norm_out = _norm(cur, g)
        self.conv_out = nn.Conv2d(cur, cfg.out_channels, 3, padding=1)

    @staticmethod
    def _run(blocks: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for b in blocks:
            h = b(h, emb) if isinstance(b, (ResBlock, AttnBlock)) else b(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        m = self.cfg.size_multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(f"DDPMUNet input {tuple(x.shape[-2:])} must be a multiple of {m}")
        emb = self.temb(timestep_embedding(t, self.cfg.ch))
        hs = [self.conv_in(x)]
        for blocks in self.down:
            hs.append(self._run(blocks, hs[-1], emb))
        h = self._run(self.mid, hs[-1], emb)
        for blocks in self.up:
            if isinstance(blocks[0], ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            h = self._run(blocks, h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))
