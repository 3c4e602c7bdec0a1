"""Where each part of the shared-skeleton LDM denoiser sits in other implementations' state dicts.

One walk over :class:`~srarena.methods.diffusion.unet.DDPMUNet` yields its parts in order (time
MLP, conv_in, each down entry, middle, each up entry, output); two naming rules turn a part into
a key prefix:

* **official / CompVis** (``openaimodel.UNetModel`` and MoESR's ``UNetModelWithFFNMoe``): ``input_blocks.N``
  (``N = 0`` is conv_in; each res block [+ attention [+ Space-MoE]] or downsampler is one N),
  ``middle_block.{0,1,2[,3]}``, ``output_blocks.N`` (the upsampler is the last layer of the block
  before it), ``time_embed.{0,2}``, ``out.{0,2}``. Inside a block the official attribute names are
  the ones :mod:`srarena.methods.ssmoe.blocks` uses, so the map is a prefix map;
* **diffusers** (``UNet2DModel``): ``down_blocks.L.{resnets,attentions}.J``,
  ``down_blocks.L.downsamplers.0``, ``mid_block.{resnets.0,attentions.0,resnets.1}``,
  ``up_blocks.I...``, ``time_embedding.linear_{1,2}``, ``conv_norm_out``; inside blocks diffusers
  renames (``norm1``, ``time_emb_proj``, ``to_q``...), handled by :mod:`.diffusers_convert`.

The structure rules are facts about the official modules (their constructor loops); no code of
theirs is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from srarena.methods.diffusion.unet import DDPMUNet
from srarena.methods.ssmoe.blocks import AttentionSpaceMoE, LDMAttention, LDMResBlock
from torch import nn

Kind = Literal["res", "attn", "moe", "down", "up", "linear", "conv", "norm"]


@dataclass(frozen=True)
class Part:
    ours: str  # prefix in our state dict (without trailing dot)
    kind: Kind
    official: str
    diffusers: str


def unet_parts(unet: DDPMUNet) -> Iterator[Part]:
    yield Part("temb.0", "linear", "time_embed.0", "time_embedding.linear_1")
    yield Part("temb.2", "linear", "time_embed.2", "time_embedding.linear_2")
    yield Part("conv_in", "conv", "input_blocks.0.0", "conv_in")
    levels = len(unet.cfg.ch_mult)
    level, j, n = 0, 0, 1
    for k, entry in enumerate(unet.down):
        ours = f"down.{k}"
        if isinstance(entry[0], LDMResBlock):
            yield from _block(ours, entry, f"input_blocks.{n}", f"down_blocks.{level}", j)
            j += 1
        else:
            yield Part(f"{ours}.0", "down", f"input_blocks.{n}.0.op", f"down_blocks.{level}.downsamplers.0.conv")
            level, j = level + 1, 0
        n += 1
    mid = list(unet.mid)
    yield Part("mid.0", "res", "middle_block.0", "mid_block.resnets.0")
    has_moe = isinstance(mid[1], AttentionSpaceMoE)
    yield from _attn("mid.1", mid[1], "middle_block.1", "middle_block.2", "mid_block.attentions.0")
    yield Part("mid.2", "res", f"middle_block.{3 if has_moe else 2}", "mid_block.resnets.1")
    up_idx, j, n = 0, 0, 0
    layers_in_last = 0
    for k, entry in enumerate(unet.up):
        ours = f"up.{k}"
        if isinstance(entry[0], LDMResBlock):
            yield from _block(ours, entry, f"output_blocks.{n}", f"up_blocks.{up_idx}", j)
            layers_in_last = 1 + sum(2 if isinstance(m, AttentionSpaceMoE) else 1 for m in list(entry)[1:])
            j += 1
            n += 1
        else:  # [Upsample, Conv]: the conv is the last layer of the previous official block
            yield Part(f"{ours}.1", "up", f"output_blocks.{n - 1}.{layers_in_last}.conv",
                       f"up_blocks.{up_idx}.upsamplers.0.conv")
            up_idx, j = up_idx + 1, 0
    assert up_idx == levels - 1
    yield Part("norm_out", "norm", "out.0", "conv_norm_out")
    yield Part("conv_out", "conv", "out.2", "conv_out")


def _block(ours: str, entry: nn.ModuleList, official: str, diffusers: str, j: int) -> Iterator[Part]:
    yield Part(f"{ours}.0", "res", f"{official}.0", f"{diffusers}.resnets.{j}")
    if len(entry) > 1:
        yield from _attn(f"{ours}.1", entry[1], f"{official}.1", f"{official}.2", f"{diffusers}.attentions.{j}")


def _attn(ours: str, module: nn.Module, official_attn: str, official_moe: str, diffusers: str) -> Iterator[Part]:
    if isinstance(module, AttentionSpaceMoE):
        yield Part(f"{ours}.attn", "attn", official_attn, diffusers)
        yield Part(f"{ours}.moe", "moe", official_moe, "")  # diffusers' UNet2DModel has no Space-MoE
    elif isinstance(module, LDMAttention):
        yield Part(ours, "attn", official_attn, diffusers)
    else:
        raise TypeError(f"{ours}: {type(module).__name__} is not an LDM attention block")


def official_prefix_map(unet: DDPMUNet) -> list[tuple[str, str]]:
    """(our prefix, official prefix) for every part, longest first (for prefix replacement)."""
    pairs = [(p.ours, p.official) for p in unet_parts(unet)]
    return sorted(pairs, key=lambda x: -len(x[0]))


def rename_prefix(key: str, pairs: list[tuple[str, str]]) -> str:
    for src, dst in pairs:
        if key == src or key.startswith(src + "."):
            return dst + key[len(src):]
    raise KeyError(key)


def to_official(state: dict, unet: DDPMUNet, prefix: str = "model.diffusion_model.") -> dict:
    """Our denoiser state dict -> official key names (for tests and for writing files)."""
    pairs = official_prefix_map(unet)
    return {prefix + rename_prefix(k, pairs): v for k, v in state.items()}


def from_official(state: dict, unet: DDPMUNet, prefix: str = "model.diffusion_model.") -> tuple[dict, list[str]]:
    """Official keys (under ``prefix``) -> ours; returns (converted, official keys that map nowhere)."""
    inverse = sorted(((o, u) for u, o in official_prefix_map(unet)), key=lambda x: -len(x[0]))
    out, unused = {}, []
    for k, v in state.items():
        if not k.startswith(prefix):
            continue
        try:
            out[rename_prefix(k[len(prefix):], inverse)] = v
        except KeyError:
            unused.append(k)
    return out, unused
