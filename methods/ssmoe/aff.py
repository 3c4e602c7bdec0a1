"""Adaptive frequency filtering (AFF) blocks and the refinement U-Net of the frequency-compensated decoder.

AFF (Huang et al. 2023, "Adaptive Frequency Filters as Efficient Global Token Mixers"), as the
MoESR decoder uses it: ``GroupNorm -> inverted residual (MobileNetV2: 1x1 expand x4, depthwise
3x3, 1x1 reduce, BatchNorm + LeakyReLU(0.1)) -> + 1x1 skip -> GroupNorm -> frequency filter ->
residual``. The filter takes ``rfft2`` (orthonormal) of the features, runs a block-diagonal complex
two-layer MLP (``num_blocks`` blocks, LeakyReLU(0.1) between) on the spectrum, soft-shrinks it
(threshold 0.01), multiplies the result with the spectrum (a learned, content-adaptive mask) and
returns ``irfft2`` of the product plus the filter's input.

The refinement U-Net (official ``UNetAff``) has three encoder AFF blocks (two 2x max-pools),
``refine_blocks`` AFF blocks at the bottom, and two decoder AFF blocks after sub-pixel upsampling
and skip concatenation: ``5 + refine_blocks`` AFF blocks in all — 9 in the official network
(``refine_blocks=4``), 6 in the paper's text (``refine_blocks=1``).

Parameter names follow the official modules so released weights load by a fixed prefix map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_divisible(v: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding (nearest multiple of 8, never more than 10% below ``v``)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class ConvLayer(nn.Module):
    """conv (no bias) -> BatchNorm -> optional LeakyReLU(0.1); keys ``block.conv``, ``block.norm``."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.block = nn.Sequential()
        self.block.add_module("conv", nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False))
        self.block.add_module("norm", nn.BatchNorm2d(cout))
        if act:
            self.block.add_module("act", nn.LeakyReLU(0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class InvertedResidual(nn.Module):
    """MobileNetV2 block, stride 1; residual only when the widths match."""

    def __init__(self, cin: int, cout: int, expand: float = 4.0) -> None:
        super().__init__()
        hidden = make_divisible(round(cin * expand))
        self.block = nn.Sequential()
        if expand != 1:
            self.block.add_module("exp_1x1", ConvLayer(cin, hidden, 1))
        self.block.add_module("conv_3x3", ConvLayer(hidden, hidden, 3, groups=hidden))
        self.block.add_module("red_1x1", ConvLayer(hidden, cout, 1, act=False))
        self.residual = cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class FrequencyFilter(nn.Module):
    """AFNO-style adaptive spectral filter (official ``AFNO2D_channelfirst``), channels first."""

    def __init__(self, channels: int, num_blocks: int = 8, hidden_factor: int = 1, threshold: float = 0.01,
                 init_scale: float = 0.02) -> None:
        super().__init__()
        if channels % num_blocks:
            raise ValueError(f"AFF filter: {channels} channels do not split into {num_blocks} blocks")
        self.num_blocks, self.threshold = num_blocks, float(threshold)
        bs = channels // num_blocks
        hs = bs * hidden_factor
        # [0] real part, [1] imaginary part of each block-diagonal complex weight
        self.w1 = nn.Parameter(init_scale * torch.randn(2, num_blocks, bs, hs))
        self.b1 = nn.Parameter(init_scale * torch.randn(2, num_blocks, hs))
        self.w2 = nn.Parameter(init_scale * torch.randn(2, num_blocks, hs, bs))
        self.b2 = nn.Parameter(init_scale * torch.randn(2, num_blocks, bs))

    @staticmethod
    def _cmul(re: torch.Tensor, im: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block-wise complex (re + i im) @ (w[0] + i w[1]) + (b[0] + i b[1]); x is (B, k, i, H, W)."""
        mm = lambda x, m: torch.einsum("bkihw,kio->bkohw", x, m)
        out_re = mm(re, w[0]) - mm(im, w[1]) + b[0][None, :, :, None, None]
        out_im = mm(im, w[0]) + mm(re, w[1]) + b[1][None, :, :, None, None]
        return out_re, out_im

    def mask(self, spec: torch.Tensor) -> torch.Tensor:
        """The complex mask the MLP computes from the spectrum ``spec`` (B, C, H, W//2+1)."""
        b, c, h, w = spec.shape
        x = spec.reshape(b, self.num_blocks, c // self.num_blocks, h, w)
        re, im = self._cmul(x.real, x.imag, self.w1, self.b1)
        re, im = F.leaky_relu(re, 0.1), F.leaky_relu(im, 0.1)
        re, im = self._cmul(re, im, self.w2, self.b2)
        out = F.softshrink(torch.stack([re, im], dim=-1), self.threshold)
        return torch.view_as_complex(out.contiguous()).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        xf = x.float()
        h, w = xf.shape[-2:]
        spec = torch.fft.rfft2(xf, dim=(-2, -1), norm="ortho")
        y = torch.fft.irfft2(self.mask(spec) * spec, s=(h, w), dim=(-2, -1), norm="ortho")
        return y.to(dtype) + x


class DropPath(nn.Module):
    """Stochastic depth per sample; the mask is drawn from ``self.generator`` (see ``use_generator``)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)
        self.generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        draw = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), generator=self.generator)
        return x * (draw < keep).to(x.device, x.dtype) / keep


class AFFBlock(nn.Module):
    def __init__(self, cin: int, cout: int, num_blocks: int = 8, hidden_factor: int = 1, threshold: float = 0.01,
                 drop_path: float = 0.0, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.mlp = InvertedResidual(cin, cout, mlp_ratio)
        self.up_dim = nn.Conv2d(cin, cout, 1)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.filter = FrequencyFilter(cout, num_blocks, hidden_factor, threshold)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.mlp(self.norm1(x)) + self.up_dim(x)
        return h + self.drop_path(self.filter(self.norm2(h)))


def _groups(ch: int) -> int:
    """GroupNorm(32) as the official blocks; fewer groups for demo widths that 32 does not divide."""
    for g in (32, 16, 8, 4, 2):
        if ch % g == 0:
            return g
    return 1


def subpel_up(cin: int, cout: int) -> nn.Sequential:
    """1x1 conv to 4*cout channels then PixelShuffle(2) (keys ``.0``)."""
    return nn.Sequential(nn.Conv2d(cin, cout * 4, 1), nn.PixelShuffle(2))


class AFFUNet(nn.Module):
    """Official ``UNetAff(ch, ch, ch_mul=[1, 1, 2, 2])`` with ``refine_blocks`` bottom blocks."""

    def __init__(self, ch: int, refine_blocks: int = 4, ch_mult: tuple[int, int, int, int] = (1, 1, 2, 2),
                 num_blocks: int = 8, hidden_factor: int = 1, threshold: float = 0.01, drop_path: float = 0.1) -> None:
        super().__init__()
        if refine_blocks < 0:
            raise ValueError(f"AFF U-Net: refine_blocks must be >= 0, got {refine_blocks}")
        m = ch_mult
        kw = {"num_blocks": num_blocks, "hidden_factor": hidden_factor, "threshold": threshold, "drop_path": drop_path}
        self.conv1 = AFFBlock(ch, m[1] * ch, **kw)
        self.conv2 = AFFBlock(m[1] * ch, m[2] * ch, **kw)
        self.conv3 = AFFBlock(m[2] * ch, m[3] * ch, **kw)
        self.context_refine = nn.ModuleList([AFFBlock(m[3] * ch, m[3] * ch, **kw) for _ in range(refine_blocks)])
        self.up_conv3 = AFFBlock(2 * m[2] * ch, m[2] * ch, **kw)
        self.up_conv2 = AFFBlock(2 * m[1] * ch, ch, **kw)
        self.up3 = subpel_up(m[3] * ch, m[2] * ch)
        self.up2 = subpel_up(m[2] * ch, m[1] * ch)

    @property
    def num_aff_blocks(self) -> int:
        return 5 + len(self.context_refine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ValueError(f"AFF U-Net input {tuple(x.shape[-2:])} must be a multiple of 4 (two 2x pools)")
        x1 = self.conv1(x)
        x2 = self.conv2(F.max_pool2d(x1, 2))
        x3 = self.conv3(F.max_pool2d(x2, 2))
        for block in self.context_refine:
            x3 = block(x3)
        d3 = self.up_conv3(torch.cat([x2, self.up3(x3)], dim=1))
        return self.up_conv2(torch.cat([x1, self.up2(d3)], dim=1))
