"""RRDBNet (ESRGAN's generator), and loading of the published ESRGAN / Real-ESRGAN / BSRGAN weights.

One network serves all three releases: Wang et al.'s ESRGAN (ECCVW 2018), Real-ESRGAN (ICCVW
2021) and Zhang et al.'s BSRGAN (ICCV 2021) differ in training data and degradations, not in the
generator. What differs is how each release *names* the layers, so loading is a table of key
layouts (:data:`LAYOUTS`) that map every known naming onto BasicSR's, plus an architecture
inferred from the tensors themselves (block count, width, growth, scale handling) — users point
``weights`` at a file and get the right network.

Scales: x4 is native (two nearest-neighbour x2 upsamplings, each followed by a conv). Real-ESRGAN
makes x2 / x1 models by pixel-unshuffling the input first (``upsampler: unshuffle``); ESRGAN-style
x8 and BSRGAN x2 models instead use log2(scale) upsampling convs (``upsampler: upconv``).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Literal, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from srarena.harness.weights import WeightSpec, register_weights
import srarena.methods.ncnn_import  # noqa: F401  (registers the ncnn .param reader)
from srarena.methods.base import BaseMethod, CostModel, MethodError
from srarena.methods.state_dicts import CheckpointError, StateDict, load_into, locate, read_state_dict
from srarena.methods.tiling import TileConfig, maybe_tiled

log = logging.getLogger(__name__)

Upsampler = Literal["unshuffle", "upconv"]


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RRDBArch:
    """Everything that shapes the tensors; the standard ESRGAN config is the default (16.7M)."""

    num_in_ch: int = 3
    num_out_ch: int = 3
    num_feat: int = 64
    num_block: int = 23
    num_grow_ch: int = 32
    scale: int = 4
    upsampler: Upsampler = "unshuffle"

    @property
    def num_upconv(self) -> int:
        """Number of (nearest x2 -> conv -> lrelu) stages."""
        log2 = int(round(math.log2(self.scale))) if self.scale >= 1 else -1
        if self.scale < 1 or 2**log2 != self.scale:
            raise MethodError(f"RRDBNet needs a power-of-two scale, not x{self.scale}")
        if self.upsampler == "unshuffle":
            return max(2, log2)
        if log2 < 1:
            raise MethodError("RRDBNet upsampler 'upconv' needs scale >= 2")
        return log2

    @property
    def unshuffle(self) -> int:
        """Pixel-unshuffle factor applied to the input (1 = none)."""
        return 2**self.num_upconv // self.scale


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; output scaled by 0.2 and added back (residual scaling)."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        g = num_grow_ch
        self.conv1 = nn.Conv2d(num_feat, g, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + g, g, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * g, g, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * g, g, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * g, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three RDBs, again with 0.2 residual scaling."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """The generator, with BasicSR's parameter names (``conv_first``, ``body.N.rdbK.convJ`` ...)."""

    def __init__(self, arch: RRDBArch = RRDBArch()) -> None:
        super().__init__()
        self.arch = arch
        a = arch
        self.conv_first = nn.Conv2d(a.num_in_ch * a.unshuffle**2, a.num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(a.num_feat, a.num_grow_ch) for _ in range(a.num_block)])
        self.conv_body = nn.Conv2d(a.num_feat, a.num_feat, 3, 1, 1)
        for i in range(1, a.num_upconv + 1):
            self.add_module(f"conv_up{i}", nn.Conv2d(a.num_feat, a.num_feat, 3, 1, 1))
        self.conv_hr = nn.Conv2d(a.num_feat, a.num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(a.num_feat, a.num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.arch.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.arch.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for i in range(1, self.arch.num_upconv + 1):
            up = getattr(self, f"conv_up{i}")
            feat = self.lrelu(up(F.interpolate(feat, scale_factor=2, mode="nearest")))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


# --------------------------------------------------------------------------------------------
# Key layouts of the published files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyLayout:
    """A naming convention: how to recognise it and how to rename its keys to BasicSR's."""

    name: str
    detect: Callable[[Mapping[str, torch.Tensor]], bool]
    to_basicsr: Callable[[StateDict], StateDict]


def _identity(sd: StateDict) -> StateDict:
    return dict(sd)


_ESRGAN_NEW = [  # ESRGAN repo's RRDBNet_arch.py; also BSRGAN (KAIR) and RealSR
    (r"^RRDB_trunk\.(\d+)\.RDB(\d)\.", r"body.\1.rdb\2."),
    (r"^trunk_conv\.", "conv_body."),
    (r"^upconv(\d)\.", r"conv_up\1."),
    (r"^HRconv\.", "conv_hr."),
]


def _esrgan_new(sd: StateDict) -> StateDict:
    out = {}
    for k, v in sd.items():
        for pat, rep in _ESRGAN_NEW:
            k = re.sub(pat, rep, k)
        out[k] = v
    return out


def _esrgan_old(sd: StateDict) -> StateDict:
    """The original ESRGAN release: one flattened ``nn.Sequential`` named ``model``.

    ``model.0`` is conv_first; ``model.1.sub.N.RDBk.convj.0`` the dense convs; ``model.1.sub.NB``
    the trunk conv; then (upsample, conv, lrelu) per x2 stage, so the upsampling convs sit at
    ``model.3, 6, 9 ...``, followed by conv_hr and conv_last two indices apart.
    """
    top = sorted({int(m.group(1)) for k in sd if (m := re.match(r"^model\.(\d+)\.(weight|bias)$", k))})
    top = [i for i in top if i != 0]
    if len(top) < 3:
        raise CheckpointError(f"old-style ESRGAN keys without upsampling convs: {sorted(sd)[:6]}")
    *ups, hr, last = top
    rename = {0: "conv_first"} | {i: f"conv_up{n + 1}" for n, i in enumerate(ups)}
    rename |= {hr: "conv_hr", last: "conv_last"}
    n_block = 1 + max(int(m.group(1)) for k in sd if (m := re.match(r"^model\.1\.sub\.(\d+)\.RDB", k)))
    out = {}
    for k, v in sd.items():
        if m := re.match(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$", k):
            out[f"body.{m[1]}.rdb{m[2]}.conv{m[3]}.{m[4]}"] = v
        elif m := re.match(rf"^model\.1\.sub\.{n_block}\.(weight|bias)$", k):
            out[f"conv_body.{m[1]}"] = v
        elif (m := re.match(r"^model\.(\d+)\.(weight|bias)$", k)) and int(m[1]) in rename:
            out[f"{rename[int(m[1])]}.{m[2]}"] = v
        else:
            raise CheckpointError(f"old-style ESRGAN key {k!r} has no place in RRDBNet")
    return out


#: Checked in order; the first layout whose ``detect`` is true converts the file.
LAYOUTS: list[KeyLayout] = [
    KeyLayout("basicsr", lambda sd: "conv_first.weight" in sd and any(k.startswith("body.") for k in sd), _identity),
    KeyLayout("esrgan", lambda sd: "conv_first.weight" in sd and any(k.startswith("RRDB_trunk.") for k in sd), _esrgan_new),
    KeyLayout("esrgan_old", lambda sd: "model.0.weight" in sd and any(k.startswith("model.1.sub.") for k in sd), _esrgan_old),
]


def to_basicsr_keys(sd: StateDict, path: Path | str) -> tuple[StateDict, str]:
    for layout in LAYOUTS:
        if layout.detect(sd):
            return layout.to_basicsr(sd), layout.name
    raise CheckpointError(
        f"{path}: not an RRDBNet state dict in any known layout ({[l.name for l in LAYOUTS]}); "
        f"first keys: {sorted(sd)[:6]}"
    )


def infer_arch(sd: Mapping[str, torch.Tensor], path: Path | str, scale: int | None = None) -> RRDBArch:
    """The architecture a BasicSR-named state dict was made for, read from its shapes."""
    try:
        first = sd["conv_first.weight"]
        blocks = {int(m[1]) for k in sd if (m := re.match(r"^body\.(\d+)\.", k))}
        n_up = len([k for k in sd if re.match(r"^conv_up\d+\.weight$", k)])
        num_in = first.shape[1]
        num_out = sd["conv_last.weight"].shape[0]
        grow = sd["body.0.rdb1.conv1.weight"].shape[0]
    except KeyError as e:
        raise CheckpointError(f"{path}: RRDBNet key {e} missing") from None
    unshuffle = int(round(math.sqrt(num_in / num_out))) if num_in != num_out else 1
    if unshuffle > 1:
        arch = RRDBArch(num_out, num_out, first.shape[0], len(blocks), grow, 2**n_up // unshuffle, "unshuffle")
    else:
        arch = RRDBArch(num_in, num_out, first.shape[0], len(blocks), grow, 2**n_up, "upconv" if n_up != 2 else "unshuffle")
    if scale is not None and scale != arch.scale:
        raise CheckpointError(f"{path}: is an x{arch.scale} RRDBNet, but the config asks for x{scale}")
    return arch


def load_rrdbnet(path: str | Path, scale: int | None = None) -> tuple[RRDBNet, dict[str, str]]:
    """Build the network a weight file describes and load it. Returns (net, info)."""
    path = Path(path)
    sd, meta = read_state_dict(path)
    sd, layout = to_basicsr_keys(sd, path)
    arch = infer_arch(sd, path, scale)
    net = RRDBNet(arch)
    load_into(net, sd, path)
    return net.eval(), {"layout": meta.get("layout", layout), "file": str(path), **{k: str(v) for k, v in asdict(arch).items()}}


# --------------------------------------------------------------------------------------------
# Official weight files (listed by `srarena weights status`)
# --------------------------------------------------------------------------------------------

_HUB = "~/.cache/torch/hub/checkpoints/"
WEIGHTS = {
    spec.key: register_weights(spec)
    for spec in (
        WeightSpec(
            "rrdbnet/esrgan_x4", "RRDB_ESRGAN_x4.pth",
            "https://github.com/xinntao/ESRGAN (README: Google Drive / Baidu links, models/RRDB_ESRGAN_x4.pth)",
            "method rrdbnet (weights=rrdbnet/esrgan_x4)", (_HUB + "RRDB_ESRGAN_x4.pth",), licence="Apache-2.0",
        ),
        WeightSpec(
            "rrdbnet/realesrgan_x4plus", "RealESRGAN_x4plus.pth",
            "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.0/RealESRGAN_x4plus.pth",
            "method rrdbnet (weights=rrdbnet/realesrgan_x4plus)", (_HUB + "RealESRGAN_x4plus.pth",),
            licence="BSD-3-Clause",
        ),
        WeightSpec(
            "rrdbnet/realesrnet_x4plus", "RealESRNet_x4plus.pth",
            "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.1.1/RealESRNet_x4plus.pth",
            "method rrdbnet (weights=rrdbnet/realesrnet_x4plus)", (_HUB + "RealESRNet_x4plus.pth",),
            licence="BSD-3-Clause",
        ),
        WeightSpec(
            "rrdbnet/realesrgan_x2plus", "RealESRGAN_x2plus.pth",
            "https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth",
            "method rrdbnet (weights=rrdbnet/realesrgan_x2plus, scales=[2])", (_HUB + "RealESRGAN_x2plus.pth",),
            licence="BSD-3-Clause",
        ),
        WeightSpec(
            "rrdbnet/bsrgan_x4", "BSRGAN.pth",
            "https://github.com/cszn/KAIR/releases/download/v1.0/BSRGAN.pth",
            "method rrdbnet (weights=rrdbnet/bsrgan_x4)", (_HUB + "BSRGAN.pth",), licence="Apache-2.0",
        ),
        WeightSpec(
            "rrdbnet/bsrgan_x2", "BSRGANx2.pth",
            "https://github.com/cszn/KAIR/releases/download/v1.0/BSRGANx2.pth",
            "method rrdbnet (weights=rrdbnet/bsrgan_x2, scales=[2])", (_HUB + "BSRGANx2.pth",), licence="Apache-2.0",
        ),
    )
}


# --------------------------------------------------------------------------------------------
# The method
# --------------------------------------------------------------------------------------------


class RRDBNetMethod(BaseMethod):
    """RRDBNet as an srarena method: deterministic, one network call per image (or per tile).

    ``weights``: a weight key (``rrdbnet/realesrgan_x4plus``), a file path (``.pth`` /
    ``.safetensors`` / ncnn ``.param``) or ``None`` for a randomly initialised network (training).
    The architecture comes from the file; the ``arch`` options only matter without weights, and
    a file that contradicts ``scale`` is refused.
    """

    def __init__(
        self,
        weights: str | None = None,
        scale: int = 4,
        arch: Mapping[str, object] | None = None,
        tile: int = 0,
        tile_overlap: int = 24,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.tiling = TileConfig(int(tile), int(tile_overlap))
        self.info: dict[str, str] = {}
        if weights:
            net, self.info = load_rrdbnet(locate(str(weights)), scale=int(scale))
        else:
            with torch.random.fork_rng(devices=[]):  # reproducible init, global RNG untouched
                torch.manual_seed(int(seed))
                net = RRDBNet(replace(RRDBArch(), scale=int(scale), **dict(arch or {})))
        self.nets["rrdb"] = net
        self.arch = net.arch
        self.scales = (self.arch.scale,)

    @property
    def net(self) -> RRDBNet:
        return self.nets["rrdb"]  # type: ignore[return-value]

    def cost_model(self) -> CostModel:
        # Feed-forward: one network evaluation is the one "step" (per tile when tiled).
        return CostModel(per_step=("rrdb",), steps=1)

    @torch.no_grad()
    def upscale(self, lr: torch.Tensor, scale: int, generator: torch.Generator) -> torch.Tensor:
        self.check_scale(scale)
        self.net.eval()
        x = lr.to(self.device, torch.float32)
        align = self.arch.unshuffle
        h, w = x.shape[-2:]
        ph, pw = (-h) % align, (-w) % align
        if ph or pw:  # pixel-unshuffle needs sizes divisible by its factor: reflect-pad, crop after
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        sr = maybe_tiled(self.net, x, scale, self.tiling, align=align)
        return sr[..., : h * scale, : w * scale]

    # -- training (srarena.harness.training.TrainableMethod) -----------------------------------------
    def trainable_module(self) -> nn.Module:
        return self.net

    def training_pair(
        self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prediction and target for the configured pixel losses: SR output vs HR."""
        return self.net(lr), hr

    def checkpoint_metadata(self) -> dict[str, object]:
        return {"method": "rrdbnet", "layout": "basicsr", "arch": asdict(self.arch)}
