"""The DDPM U-Net of Ho et al. (2020), configurable enough for SR3 and later diffusion methods.

Structure (as in the paper's appendix B): a 3x3 input conv; per resolution level
``num_res_blocks`` residual blocks (GroupNorm -> SiLU -> conv, timestep embedding added between
the two convs, dropout before the second) with single-head self-attention at the levels in
``attn_levels``; strided-conv downsampling; a middle of res-attn-res; a mirrored up path with
skip concatenations and nearest-neighbour upsampling; GroupNorm -> SiLU -> 3x3 output conv.
Timesteps enter through a sinusoidal embedding and a two-layer MLP (width 4 x ``ch``).

Resolutions are named by level index (0 = full size), not pixels, because SR inputs have any
size. Conditioning by concatenation (SR3, LDM-SR) is just ``in_channels`` > ``out_channels``.

The skeleton is shared; its parts are chosen by name from registries, so a method family plugs
its own blocks in without a second U-Net: ``RES_BLOCKS`` (residual block classes, ``(cin, cout, temb,
dropout, groups, **res_options)``), ``ATTN_BLOCKS`` (classes, ``(ch, groups, **attn_options)``),
``DOWNSAMPLE`` / ``UPSAMPLE`` (``(ch) -> [modules]``) and ``EMBEDDINGS`` (``(t, dim)``: the sinusoidal
embedding flavour). A block's ``forward`` takes ``(h, emb)``; anything else in a level takes
``h`` only. Time may be fractional (continuous-time or noise-level conditioning): the embedding
never truncates it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

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
    res_block: str = "ddpm"  # key of RES_BLOCKS
    attn_block: str = "ddpm"  # key of ATTN_BLOCKS
    downsample: str = "conv"  # key of DOWNSAMPLE
    upsample: str = "nearest_conv"  # key of UPSAMPLE
    embedding: str = "ddpm"  # key of EMBEDDINGS
    temb_mult: int = 4  # width of the time-embedding MLP, in multiples of ``ch``
    res_options: dict[str, Any] = field(default_factory=dict)
    attn_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        d = dict(d)
        for key in ("ch_mult", "attn_levels"):
            if key in d:
                d[key] = tuple(d[key])
        for key in ("res_options", "attn_options"):
            if key in d:
                d[key] = dict(d[key] or {})
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown U-Net option(s) {sorted(unknown)}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def __hash__(self) -> int:  # dict fields: hash the JSON-able form
        return hash(repr(self.to_dict()))

    @property
    def size_multiple(self) -> int:
        """Input sizes must be multiples of this (one halving per level below the top)."""
        return 2 ** (len(self.ch_mult) - 1)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer sinusoids of the (possibly fractional) timestep, as in the DDPM code:
    ``[sin, cos]`` with frequencies ``10000^(-i/(half-1))``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([args.sin(), args.cos()], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def timestep_embedding_ldm(t: torch.Tensor, dim: int) -> torch.Tensor:
    """The latent-diffusion / guided-diffusion flavour: ``[cos, sin]`` with frequencies
    ``10000^(-i/half)`` (diffusers: ``flip_sin_to_cos=True, freq_shift=0``)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([args.cos(), args.sin()], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


EMBEDDINGS: dict[str, Callable[[torch.Tensor, int], torch.Tensor]] = {
    "ddpm": timestep_embedding,
    "ldm": timestep_embedding_ldm,
}


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


def downsample_conv(ch: int) -> list[nn.Module]:
    """Strided 3x3 convolution (DDPM, LDM)."""
    return [nn.Conv2d(ch, ch, 3, stride=2, padding=1)]


def upsample_nearest_conv(ch: int) -> list[nn.Module]:
    """Nearest-neighbour x2 then a 3x3 convolution (DDPM, LDM)."""
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1)]


#: Block registries of the shared skeleton; method packages add their own entries on import.
RES_BLOCKS: dict[str, Callable[..., nn.Module]] = {"ddpm": ResBlock}
ATTN_BLOCKS: dict[str, Callable[..., nn.Module]] = {"ddpm": AttnBlock}
#: Resamplers return the modules of one level transition, applied in order.
DOWNSAMPLE: dict[str, Callable[[int], list[nn.Module]]] = {"conv": downsample_conv}
UPSAMPLE: dict[str, Callable[[int], list[nn.Module]]] = {"nearest_conv": upsample_nearest_conv}


def _pick(registry: dict[str, Callable[..., Any]], key: str, what: str) -> Callable[..., Any]:
    try:
        return registry[key]
    except KeyError:
        raise ValueError(f"unknown U-Net {what} {key!r}; registered: {sorted(registry)}") from None


def takes_embedding(block: nn.Module) -> bool:
    """Blocks of the time-conditioned kinds get ``(h, emb)``; samplers of size get ``h``."""
    return isinstance(block, tuple(RES_BLOCKS.values()) + tuple(ATTN_BLOCKS.values()))


class DDPMUNet(nn.Module):
    def __init__(self, cfg: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        ch, g, temb = cfg.ch, cfg.groups, cfg.temb_mult * cfg.ch
        Res = _pick(RES_BLOCKS, cfg.res_block, "res_block")
        Attn = _pick(ATTN_BLOCKS, cfg.attn_block, "attn_block")
        Down = _pick(DOWNSAMPLE, cfg.downsample, "downsample")
        Up = _pick(UPSAMPLE, cfg.upsample, "upsample")
        self.embed = _pick(EMBEDDINGS, cfg.embedding, "embedding")

        def res(cin: int, cout: int) -> nn.Module:
            return Res(cin, cout, temb, cfg.dropout, g, **cfg.res_options)

        def attn(c: int) -> nn.Module:
            return Attn(c, g, **cfg.attn_options)

        self.temb = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        skips, cur = [ch], ch
        for level, mult in enumerate(cfg.ch_mult):
            for _ in range(cfg.num_res_blocks):
                blocks = [res(cur, ch * mult)]
                cur = ch * mult
                if level in cfg.attn_levels:
                    blocks.append(attn(cur))
                self.down.append(nn.ModuleList(blocks))
                skips.append(cur)
            if level != len(cfg.ch_mult) - 1:
                self.down.append(nn.ModuleList(Down(cur)))
                skips.append(cur)
        self.mid = nn.ModuleList([res(cur, cur), attn(cur), res(cur, cur)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.ch_mult))):
            for _ in range(cfg.num_res_blocks + 1):
                blocks = [res(cur + skips.pop(), ch * mult)]
                cur = ch * mult
                if level in cfg.attn_levels:
                    blocks.append(attn(cur))
                self.up.append(nn.ModuleList(blocks))
            if level != 0:
                self.up.append(nn.ModuleList(Up(cur)))
        self.norm_out = _norm(cur, g)
        self.conv_out = nn.Conv2d(cur, cfg.out_channels, 3, padding=1)

    @staticmethod
    def _run(blocks: nn.ModuleList, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for b in blocks:
            h = b(h, emb) if takes_embedding(b) else b(h)
        return h

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        m = self.cfg.size_multiple
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(f"DDPMUNet input {tuple(x.shape[-2:])} must be a multiple of {m}")
        emb = self.temb(self.embed(t, self.cfg.ch))
        hs = [self.conv_in(x)]
        for blocks in self.down:
            hs.append(self._run(blocks, hs[-1], emb))
        h = self._run(self.mid, hs[-1], emb)
        for blocks in self.up:
            if isinstance(blocks[0], tuple(RES_BLOCKS.values())):  # a block, not a resampler
                h = torch.cat([h, hs.pop()], dim=1)
            h = self._run(blocks, h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))
