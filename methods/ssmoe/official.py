"""The released MoESR 8x weights as one weight bundle, mapped into the ssmoe modules.

Files (official README / ``sr_8x_inf/inf_moe_8x.sh``): four stage U-Nets ``moe_stage{0..3}.ckpt``
(the README calls them ``model_stage{x}.ckpt``; both names are accepted in a folder) and the
frequency-augmented VQ-f4 ``fa_vae.pth``. Layouts, from the loading code:

* a stage file is a flat state dict loaded non-strictly into ``LatentDiffusion``: the U-Net under
  ``model.diffusion_model.*`` and its EMA copy under ``model_ema.*`` with the dots of each name
  removed (LitEma: ``model_ema.diffusion_modelinput_blocks00weight``); the official script copies
  the EMA weights into the model before sampling, so ``use_ema=True`` (default) loads those. Other
  keys (``first_stage_model.*``, schedule buffers, ``model_ema.decay``/``num_updates``) are ignored
  and listed in the load report;
* ``fa_vae.pth`` is a plain state dict of ``VQModelResiUnet``: taming-layout ``encoder.*``,
  ``decoder.*`` (with ``decoder.fusion_layer_1.*`` and the AFF U-Net ``decoder.unet_1.*``),
  ``quantize.embedding.weight``, ``quant_conv.*``, ``post_quant_conv.*``. The taming VQ names are
  mapped to diffusers' ``VQModel`` (this package's VQ-f4) by :func:`vq_from_taming`.

Stage k is sampling expert k (t in [250k, 250(k+1))). A file that does not fit — missing or
unexpected U-Net/EMA/FA-VAE keys, other shapes — fails with the list of keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from srarena.harness.weights import BundleFile, WeightBundle, register_weights
from srarena.methods.ssmoe.keymaps import (
    from_official,
    official_prefix_map,
    rename_prefix,
)
from srarena.methods.state_dicts import CheckpointError, load_into, read_state_dict

SOURCE = "https://huggingface.co/amandaa/moe_sr (Unet/ and first_stage_models/vq-f4/fa_vae.pth), from the README of tencent-ailab/Frequency_Aug_VAE_MoESR"
BUNDLE_KEY = "ssmoe/official_8x"
STAGE_NAMES = ("moe_stage{k}.ckpt", "model_stage{k}.ckpt")
FOLDER = "moesr_8x"

BUNDLE = register_weights(WeightBundle(
    BUNDLE_KEY,
    tuple(BundleFile(f"stage{k}", f"{FOLDER}/moe_stage{k}.ckpt", SOURCE) for k in range(4))
    + (BundleFile("fa_vae", f"{FOLDER}/fa_vae.pth", SOURCE),),
    used_by="method ssmoe (official 8x weights: conf/method/ssmoe_official_x8.yaml)",
    licence="Apache-2.0 (tencent-ailab/Frequency_Aug_VAE_MoESR)",
))


# -- U-Net stage files ---------------------------------------------------------------------------

def ema_name(official_key: str, prefix: str = "model.") -> str:
    """LitEma's buffer name of a parameter of ``LatentDiffusion.model``: dots removed."""
    return "model_ema." + official_key[len(prefix):].replace(".", "")


def expert_state(unet: torch.nn.Module, state: Mapping[str, torch.Tensor], path: Path | str,
                 use_ema: bool = True) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Our denoiser's state dict from one stage file; returns it and the file keys left unused."""
    pairs = official_prefix_map(unet)  # type: ignore[arg-type]
    names = {key: "model.diffusion_model." + rename_prefix(key, pairs) for key in unet.state_dict()}
    expected = set(names.values()) | {ema_name(o) for o in names.values()}
    out: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    used: set[str] = set()
    for key, off in names.items():
        src = ema_name(off) if use_ema else off
        if src in state:
            out[key] = state[src]
            used.add(src)
        else:
            missing.append(src)
    if missing:
        has_ema = any(k.startswith("model_ema.diffusion_model") for k in state)
        hint = " (the file has no EMA weights: use_ema=false loads model.diffusion_model.*)" if use_ema and not has_ema else ""
        raise CheckpointError(f"{path}: {len(missing)} U-Net keys missing{hint}, e.g. {missing[:6]}")
    stray = sorted(k for k in state if k not in expected
                   and k.startswith(("model.diffusion_model.", "model_ema.diffusion_model")))
    if stray:
        raise CheckpointError(f"{path}: {len(stray)} unexpected U-Net keys (another architecture?), e.g. {stray[:6]}")
    return out, sorted(k for k in state if k not in used)


# -- FA-VAE -------------------------------------------------------------------------------------

def _taming_rules(levels: int) -> list[tuple[re.Pattern[str], Any]]:
    """taming (LDM) Encoder/Decoder names -> diffusers Encoder/Decoder names."""
    res = {"nin_shortcut": "conv_shortcut"}

    def block(m: re.Match[str]) -> str:
        return res.get(m.group(1), m.group(1))

    return [
        (re.compile(r"^encoder\.down\.(\d+)\.block\.(\d+)\.(\w+)\.(.+)$"),
         lambda m: f"encoder.down_blocks.{m[1]}.resnets.{m[2]}.{res.get(m[3], m[3])}.{m[4]}"),
        (re.compile(r"^encoder\.down\.(\d+)\.downsample\.conv\.(.+)$"),
         lambda m: f"encoder.down_blocks.{m[1]}.downsamplers.0.conv.{m[2]}"),
        (re.compile(r"^decoder\.up\.(\d+)\.block\.(\d+)\.(\w+)\.(.+)$"),
         lambda m: f"decoder.up_blocks.{levels - 1 - int(m[1])}.resnets.{m[2]}.{res.get(m[3], m[3])}.{m[4]}"),
        (re.compile(r"^decoder\.up\.(\d+)\.upsample\.conv\.(.+)$"),
         lambda m: f"decoder.up_blocks.{levels - 1 - int(m[1])}.upsamplers.0.conv.{m[2]}"),
        (re.compile(r"^(encoder|decoder)\.mid\.block_(\d)\.(\w+)\.(.+)$"),
         lambda m: f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}.{res.get(m[3], m[3])}.{m[4]}"),
        (re.compile(r"^(encoder|decoder)\.mid\.attn_1\.norm\.(.+)$"), lambda m: f"{m[1]}.mid_block.attentions.0.group_norm.{m[2]}"),
        (re.compile(r"^(encoder|decoder)\.mid\.attn_1\.([qkv])\.(.+)$"), lambda m: f"{m[1]}.mid_block.attentions.0.to_{m[2]}.{m[3]}"),
        (re.compile(r"^(encoder|decoder)\.mid\.attn_1\.proj_out\.(.+)$"), lambda m: f"{m[1]}.mid_block.attentions.0.to_out.0.{m[2]}"),
        (re.compile(r"^(encoder|decoder)\.norm_out\.(.+)$"), lambda m: f"{m[1]}.conv_norm_out.{m[2]}"),
        (re.compile(r"^(encoder|decoder)\.(conv_in|conv_out)\.(.+)$"), lambda m: f"{m[1]}.{m[2]}.{m[3]}"),
        (re.compile(r"^(quantize\.embedding\.weight|quant_conv\..+|post_quant_conv\..+)$"), lambda m: m[1]),
    ]


def vq_from_taming(state: Mapping[str, torch.Tensor], levels: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """taming-layout VQ keys -> diffusers ``VQModel`` keys (1x1 attention convs -> Linear); returns
    (converted, keys that are not VQ keys)."""
    rules = _taming_rules(levels)
    out, rest = {}, []
    for k, v in state.items():
        for pattern, fn in rules:
            m = pattern.match(k)
            if m:
                new = fn(m)
                if ".attentions.0." in new and new.endswith(".weight") and v.ndim == 4:
                    v = v[:, :, 0, 0]
                out[new] = v
                break
        else:
            rest.append(k)
    return out, rest


def vq_to_taming(state: Mapping[str, torch.Tensor], levels: int) -> dict[str, torch.Tensor]:
    """Inverse of :func:`vq_from_taming` (tests build official-layout files with it)."""
    inv_res = {"conv_shortcut": "nin_shortcut"}
    out = {}
    for k, v in state.items():
        new = k
        if (m2 := re.match(r"^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(.+)$", k)):
            new = f"encoder.down.{m2[1]}.block.{m2[2]}.{inv_res.get(m2[3], m2[3])}.{m2[4]}"
        if (m2 := re.match(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$", k)):
            new = f"encoder.down.{m2[1]}.downsample.conv.{m2[2]}"
        if (m2 := re.match(r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(\w+)\.(.+)$", k)):
            new = f"decoder.up.{levels - 1 - int(m2[1])}.block.{m2[2]}.{inv_res.get(m2[3], m2[3])}.{m2[4]}"
        if (m2 := re.match(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$", k)):
            new = f"decoder.up.{levels - 1 - int(m2[1])}.upsample.conv.{m2[2]}"
        if (m2 := re.match(r"^(encoder|decoder)\.mid_block\.resnets\.(\d)\.(\w+)\.(.+)$", k)):
            new = f"{m2[1]}.mid.block_{int(m2[2]) + 1}.{inv_res.get(m2[3], m2[3])}.{m2[4]}"
        if (m2 := re.match(r"^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.+)$", k)):
            name = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}[m2[2]]
            new = f"{m2[1]}.mid.attn_1.{name}.{m2[3]}"
            if name != "norm" and m2[3] == "weight":
                v = v[:, :, None, None]
        if (m2 := re.match(r"^(encoder|decoder)\.conv_norm_out\.(.+)$", k)):
            new = f"{m2[1]}.norm_out.{m2[2]}"
        out[new] = v
    return out


def fa_vae_state(method: Any, state: Mapping[str, torch.Tensor], path: Path | str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``fa_vae.pth`` -> the method's ``vq.*`` and ``fcd.*`` keys; returns (state, ignored keys)."""
    levels = len(method.vq.config.block_out_channels)
    vq, rest = vq_from_taming(state, levels)
    out = {f"vq.{k}": v for k, v in vq.items()}
    ignored = []
    for k in rest:
        if k.startswith("decoder.unet_1."):
            out["fcd.refine." + k[len("decoder.unet_1."):]] = state[k]
        elif k.startswith("decoder.fusion_layer_"):
            out["fcd." + k[len("decoder."):]] = state[k]
        else:
            ignored.append(k)
    bad = [k for k in ignored if k.startswith(("encoder.", "decoder."))]
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} encoder/decoder keys fit no FA-VAE module, e.g. {bad[:6]}")
    return out, ignored


# -- the bundle ---------------------------------------------------------------------------------

def official_files(ref: str) -> dict[str, Path]:
    """role -> file, from the bundle key (weights directory) or a folder holding the five files."""
    path = Path(str(ref)).expanduser()
    if path.is_dir():
        found: dict[str, Path] = {}
        for k in range(4):
            for pattern in STAGE_NAMES:
                cand = path / pattern.format(k=k)
                if cand.is_file():
                    found[f"stage{k}"] = cand
                    break
        if (path / "fa_vae.pth").is_file():
            found["fa_vae"] = path / "fa_vae.pth"
        missing = [r for r in ("stage0", "stage1", "stage2", "stage3", "fa_vae") if r not in found]
        if missing:
            raise CheckpointError(
                f"{path}: missing official MoESR files for {missing} (expected moe_stage0..3.ckpt "
                f"[or model_stage0..3.ckpt] and fa_vae.pth; get them from {SOURCE})"
            )
        return found
    if str(ref) != BUNDLE_KEY:
        raise CheckpointError(f"ssmoe official={ref!r}: neither the bundle key {BUNDLE_KEY!r} nor a folder")
    from srarena.harness.weights import resolve_bundle

    return resolve_bundle(BUNDLE_KEY)


def load_official(method: Any, ref: str, use_ema: bool = True) -> dict[str, list[str]]:
    """Load the four stage U-Nets into the sampling experts and ``fa_vae.pth`` into the VQ and FCD.
    Returns, per file, the keys it held that this model does not use (reported, not an error)."""
    if method.arch.experts != 4:
        raise CheckpointError(f"the official weights are 4 sampling experts; the config has {method.arch.experts}")
    files = official_files(ref)
    report: dict[str, list[str]] = {}
    for k, expert in enumerate(method.experts.experts):
        path = files[f"stage{k}"]
        state, _ = read_state_dict(path)
        mapped, unused = expert_state(expert, state, path, use_ema)
        load_into(expert, mapped, path)
        report[f"stage{k}"] = unused
    path = files["fa_vae"]
    state, _ = read_state_dict(path)
    mapped, ignored = fa_vae_state(method, state, path)
    own = method.nets.state_dict()
    if "fcd" not in method.nets:  # decoder=vq: the FA-VAE's fusion and AFF weights are not used
        ignored += sorted(k for k in mapped if k.startswith("fcd."))
        mapped = {k: v for k, v in mapped.items() if not k.startswith("fcd.")}
    wanted = {k for k in own if k.startswith(("vq.", "fcd."))}
    missing = sorted(wanted - set(mapped))
    extra = sorted(set(mapped) - set(own))
    if missing or extra:
        raise CheckpointError(f"{path}: does not fit the FA-VAE: {len(missing)} missing (e.g. {missing[:6]}), "
                              f"{len(extra)} unexpected (e.g. {extra[:6]})")
    load_into(method.nets, {**{k: v for k, v in own.items() if k.startswith("experts.")}, **mapped}, path)
    report["fa_vae"] = ignored
    return report


__all__ = [
    "BUNDLE_KEY",
    "ema_name",
    "expert_state",
    "fa_vae_state",
    "from_official",
    "load_official",
    "vq_from_taming",
    "vq_to_taming",
]
