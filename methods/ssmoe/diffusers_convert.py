"""diffusers' LDM-SR (``UNet2DModel`` + ``VQModel``) <-> the ssmoe modules.

``method=ldm_sr`` runs the released LDM-SR through diffusers' own classes; ``method=ssmoe`` with
one sampling expert, no Space-MoE and ``decoder: vq`` is the same model on srarena's U-Net
skeleton. :func:`unet_from_diffusers` moves a ``UNet2DModel`` state dict into the skeleton (the
VQ-f4 is diffusers' ``VQModel`` in both, so its state dict is taken as it is), so the two
implementations can be run on one checkpoint and checked against each other
(``tests/test_ssmoe_crosscheck.py``).

Inside blocks diffusers renames the CompVis parameters: res blocks ``in_layers.0 -> norm1``,
``in_layers.2 -> conv1``, ``emb_layers.1 -> time_emb_proj``, ``out_layers.0 -> norm2``,
``out_layers.3 -> conv2``, ``skip_connection -> conv_shortcut``; attention ``norm -> group_norm``,
the fused 1x1 ``qkv`` conv -> three Linear ``to_q``/``to_k``/``to_v`` (the legacy layout interleaves
heads: rows ``[head][q|k|v][channel]``), ``proj_out -> to_out.0``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from srarena.methods.diffusion.unet import DDPMUNet
from srarena.methods.ssmoe.keymaps import unet_parts
from srarena.methods.state_dicts import CheckpointError, load_into

RES_NAMES = {
    "in_layers.0": "norm1", "in_layers.2": "conv1", "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2", "out_layers.3": "conv2", "skip_connection": "conv_shortcut",
}


def _heads(unet: DDPMUNet, prefix: str) -> int:
    return unet.get_submodule(prefix).heads


def unet_from_diffusers(dstate: Mapping[str, torch.Tensor], unet: DDPMUNet) -> dict[str, torch.Tensor]:
    """A diffusers ``UNet2DModel`` state dict as the skeleton's (LDM blocks, no Space-MoE)."""
    out: dict[str, torch.Tensor] = {}
    for part in unet_parts(unet):
        d, o = part.diffusers, part.ours
        if part.kind == "moe":
            raise CheckpointError("a diffusers UNet2DModel has no Space-MoE layers: build the denoiser without space_moe")
        if part.kind == "res":
            for ours_name, d_name in RES_NAMES.items():
                for p in ("weight", "bias"):
                    key = f"{d}.{d_name}.{p}"
                    if key in dstate:
                        out[f"{o}.{ours_name}.{p}"] = dstate[key]
        elif part.kind == "attn":
            heads = _heads(unet, o)
            out[f"{o}.norm.weight"] = dstate[f"{d}.group_norm.weight"]
            out[f"{o}.norm.bias"] = dstate[f"{d}.group_norm.bias"]
            q, k, v = (dstate[f"{d}.to_{n}.weight"] for n in "qkv")
            c = q.shape[0]
            w = torch.stack([t.reshape(heads, c // heads, c) for t in (q, k, v)], dim=1).reshape(3 * c, c)
            qb, kb, vb = (dstate[f"{d}.to_{n}.bias"] for n in "qkv")
            b = torch.stack([t.reshape(heads, c // heads) for t in (qb, kb, vb)], dim=1).reshape(3 * c)
            out[f"{o}.qkv.weight"], out[f"{o}.qkv.bias"] = w[..., None], b
            out[f"{o}.proj_out.weight"] = dstate[f"{d}.to_out.0.weight"][..., None]
            out[f"{o}.proj_out.bias"] = dstate[f"{d}.to_out.0.bias"]
        else:
            for p in ("weight", "bias"):
                out[f"{o}.{p}"] = dstate[f"{d}.{p}"]
    return out


def unet_to_diffusers(state: Mapping[str, torch.Tensor], unet: DDPMUNet) -> dict[str, torch.Tensor]:
    """Inverse of :func:`unet_from_diffusers` (the round trip is tested)."""
    out: dict[str, torch.Tensor] = {}
    for part in unet_parts(unet):
        d, o = part.diffusers, part.ours
        if part.kind == "moe":
            raise CheckpointError("Space-MoE layers have no place in a diffusers UNet2DModel")
        if part.kind == "res":
            for ours_name, d_name in RES_NAMES.items():
                for p in ("weight", "bias"):
                    if f"{o}.{ours_name}.{p}" in state:
                        out[f"{d}.{d_name}.{p}"] = state[f"{o}.{ours_name}.{p}"]
        elif part.kind == "attn":
            heads = _heads(unet, o)
            w, b = state[f"{o}.qkv.weight"][..., 0], state[f"{o}.qkv.bias"]
            c = w.shape[1]
            wq, wk, wv = w.reshape(heads, 3, c // heads, c).unbind(1)
            bq, bk, bv = b.reshape(heads, 3, c // heads).unbind(1)
            for n, tw, tb in (("q", wq, bq), ("k", wk, bk), ("v", wv, bv)):
                out[f"{d}.to_{n}.weight"], out[f"{d}.to_{n}.bias"] = tw.reshape(c, c), tb.reshape(c)
            out[f"{d}.group_norm.weight"], out[f"{d}.group_norm.bias"] = state[f"{o}.norm.weight"], state[f"{o}.norm.bias"]
            out[f"{d}.to_out.0.weight"] = state[f"{o}.proj_out.weight"][..., 0]
            out[f"{d}.to_out.0.bias"] = state[f"{o}.proj_out.bias"]
        else:
            for p in ("weight", "bias"):
                out[f"{d}.{p}"] = state[f"{o}.{p}"]
    return out


def denoiser_config_from_diffusers(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The skeleton options of a diffusers LDM-SR ``UNet2DModel`` config (the ``denoiser`` YAML block)."""
    chs = list(cfg["block_out_channels"])
    ch = chs[0]
    if any(c % ch for c in chs):
        raise CheckpointError(f"UNet2DModel block_out_channels {chs} are not multiples of the first")
    attn = [i for i, t in enumerate(cfg["down_block_types"]) if t.startswith("Attn")]
    return {
        "in_channels": cfg["in_channels"], "out_channels": cfg["out_channels"], "ch": ch,
        "ch_mult": [c // ch for c in chs], "num_res_blocks": cfg["layers_per_block"], "attn_levels": attn,
        "groups": cfg.get("norm_num_groups", 32), "head_channels": cfg["attention_head_dim"],
    }


def ldm_sr_folder(folder: str) -> Path:
    """A diffusers LDM-SR folder from a path or the ``ldm_sr`` weight key."""
    from srarena.methods.ldm_sr import WEIGHTS

    if str(folder) == WEIGHTS.key:
        from srarena.harness.weights import resolve_weights

        return resolve_weights(WEIGHTS).parent
    path = Path(folder).expanduser()
    if not (path / "model_index.json").is_file():
        raise CheckpointError(f"ldm_sr weights {path}: no model_index.json there (a diffusers LDM-SR folder)")
    return path


def ldm_sr_architecture(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(denoiser options, VQModel config) of a diffusers LDM-SR folder, from its JSON configs."""
    import json

    try:
        ucfg = json.loads((folder / "unet" / "config.json").read_text())
        vcfg = json.loads((folder / "vqvae" / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{folder}: unreadable unet/ or vqvae/ config.json ({e})") from None
    vq = {k: v for k, v in vcfg.items() if not k.startswith("_")}
    return denoiser_config_from_diffusers(ucfg), vq


def load_ldm_sr_folder(method: Any, folder: Path) -> None:
    """Load a diffusers LDM-SR folder (``unet/``, ``vqvae/``) into every sampling expert and the VQ."""
    from diffusers import UNet2DModel, VQModel

    if method.arch.moe_experts:
        raise CheckpointError("LDM-SR weights have no Space-MoE layers: set space_moe: null to load them")
    unet = UNet2DModel.from_pretrained(str(folder), subfolder="unet", local_files_only=True)
    vq = VQModel.from_pretrained(str(folder), subfolder="vqvae", local_files_only=True)
    for k, expert in enumerate(method.experts.experts):
        load_into(expert, unet_from_diffusers(unet.state_dict(), expert), f"{folder}/unet (expert {k})")
    load_into(method.vq, vq.state_dict(), f"{folder}/vqvae")
