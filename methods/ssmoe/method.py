"""SS-MoE latent-diffusion SR (Luo, Xiang et al. 2023, arXiv 2310.12004) behind srarena's method interface.

Pipeline for an LR image and scale s with the VQ-f4 autoencoder (f = 4):

1. condition ``c``: the LR in [-1, 1], MATLAB-bicubic-resized by s/f to the latent size (x4: the
   LR itself; x8: the LR x2), reflect-padded so the latent is a multiple of the U-Net's 2^levels;
2. latent: DDIM/DDPM from noise with the sampling experts — at timestep t only the expert whose
   interval holds t runs on ``concat(z_t, c)`` (epsilon prediction);
3. decode: the VQ decoder (``decoder: vq``) or the frequency-compensated decoder (``decoder: fcd``,
   which also encodes the LR bicubic-upsampled by s);
4. colour fix (AdaIN against ``c``), clamp, crop to exactly s x the LR size.

Ablations are configuration: ``sampling_experts.count`` (1 = LDM), ``space_moe`` (null = off,
``experts: N``, ``inference: grouped | collapsed``), ``decoder: vq | fcd``, ``sampler``
(``name``, ``steps``, ``eta``, ``spacing``). With one expert, no Space-MoE and ``decoder: vq`` this
is LDM-SR; ``ldm_sr: <diffusers folder>`` loads the released LDM-SR weights into it.

Weights: ``weights`` = a safetensors file written by ``srarena train method=ssmoe...`` (self-
describing: its metadata overrides the architecture keys); ``official`` = the released 8x files
(weight bundle ``ssmoe/official_8x`` or a folder holding them, :mod:`srarena.methods.ssmoe.official`);
``ldm_sr`` = a diffusers LDM-SR folder. At most one of the three.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from srarena.harness.degradations.resize import imresize
from srarena.methods.base import BaseMethod, CostModel, MethodError
from srarena.methods.diffusion import make_schedule
from srarena.methods.diffusion.samplers import timestep_sequence
from srarena.methods.diffusion.unet import UNetConfig
from srarena.methods.ssmoe.blocks import MOE_MODES, collapse_all, use_generator
from srarena.methods.ssmoe.colorfix import COLOR_FIXES
from srarena.methods.ssmoe.experts import (
    MomentumSchedule,
    SamplingExperts,
    build_denoiser,
    expert_bounds,
    route,
    share_momentum_all,
)
from srarena.methods.ssmoe.fcd import FCDParts, fcd_cost_paths, fcd_decode
from srarena.methods.ssmoe.sampling import SamplerOptions, run_sampler
from srarena.methods.state_dicts import (
    CheckpointError,
    load_into,
    locate,
    read_state_dict,
)
from torch import nn

DECODERS: tuple[str, ...] = ("vq", "fcd")
#: Keys of the method config that describe the networks (stored in checkpoints, restored from them).
ARCH_KEYS: tuple[str, ...] = ("denoiser", "sampling_experts", "space_moe", "vq", "decoder_arch", "schedule",
                              "prediction", "latent_scale")


@dataclass(frozen=True)
class Architecture:
    """Everything that decides parameter shapes: what a checkpoint must agree with."""

    denoiser: dict[str, Any]
    experts: int
    bounds: tuple[int, ...] | None
    moe_experts: int  # 0 = no Space-MoE
    moe_mult: int
    vq: dict[str, Any]
    fcd: dict[str, Any] | None  # None: no FCD parts built

    def unet_config(self, mode: str) -> UNetConfig:
        d = dict(self.denoiser)
        head = int(d.pop("head_channels", 32))
        opts: dict[str, Any] = {"head_channels": head}
        if self.moe_experts > 0:
            opts |= {"experts": self.moe_experts, "mult": self.moe_mult, "mode": mode}
        return UNetConfig.from_dict({
            **d, "res_block": "ldm", "embedding": "ldm",
            "attn_block": "ldm_space_moe" if self.moe_experts > 0 else "ldm", "attn_options": opts,
        })


def build_vq(cfg: Mapping[str, Any]) -> nn.Module:
    """The VQ-f4 autoencoder: diffusers' ``VQModel`` (the class LDM-SR's pipeline runs)."""
    from diffusers import VQModel

    return VQModel.from_config(dict(cfg))


class SSMoESR(BaseMethod):
    def __init__(
        self,
        scale: int = 4,
        scales: Sequence[int] = (4, 8),
        denoiser: Mapping[str, Any] | None = None,
        sampling_experts: Mapping[str, Any] | None = None,
        space_moe: Mapping[str, Any] | None = None,
        vq: Mapping[str, Any] | None = None,
        decoder: str = "vq",
        fcd: Mapping[str, Any] | None = None,
        schedule: Mapping[str, Any] | None = None,
        sampler: Mapping[str, Any] | None = None,
        prediction: str = "eps",
        color_fix: str = "adain",
        quantize: bool = True,
        latent_scale: float | str = 1.0,
        momentum: Mapping[str, Any] | None = None,
        fcd_latents: Mapping[str, Any] | None = None,
        weights: str | None = None,
        official: str | None = None,
        ldm_sr: str | None = None,
        use_ema: bool = True,
        random_init: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not (weights or official or ldm_sr or random_init):
            raise MethodError(
                "ssmoe: no weights given (weights=<trained .safetensors>, official=ssmoe/official_8x, or "
                "ldm_sr=<diffusers LDM-SR folder>); method=ssmoe_demo is the checkpoint trained here, "
                "random_init=true runs untrained networks"
            )
        if sum(x is not None and x != "" for x in (weights, official, ldm_sr)) > 1:
            raise MethodError("ssmoe: give at most one of weights, official, ldm_sr")
        state, meta, path = None, {}, None
        if weights:
            path = locate(str(weights))
            state, meta = read_state_dict(path)
            if meta.get("method") != "ssmoe":
                raise CheckpointError(f"{path}: not an ssmoe checkpoint (metadata method={meta.get('method')!r})")
            # the file describes the networks it holds; it overrides the YAML's architecture
            arch_meta = {k: _json_or_text(v) for k, v in meta.items() if k in ARCH_KEYS}
            denoiser = arch_meta.get("denoiser", denoiser)
            sampling_experts = arch_meta.get("sampling_experts", sampling_experts)
            space_moe = _merge_moe(arch_meta.get("space_moe", space_moe), space_moe)
            vq = arch_meta.get("vq", vq)
            schedule = arch_meta.get("schedule", schedule)
            prediction = arch_meta.get("prediction", prediction)
            latent_scale = arch_meta.get("latent_scale", latent_scale)
            if arch_meta.get("decoder_arch") is not None and decoder == "fcd":
                fcd = arch_meta["decoder_arch"]
        ldm_folder = None
        if ldm_sr:  # the released LDM-SR fixes the denoiser and VQ architecture
            from srarena.methods.ssmoe.diffusers_convert import (
                ldm_sr_architecture,
                ldm_sr_folder,
            )

            ldm_folder = ldm_sr_folder(str(ldm_sr))
            denoiser, vq = ldm_sr_architecture(ldm_folder)
        if decoder not in DECODERS:
            raise MethodError(f"ssmoe decoder must be one of {DECODERS}, not {decoder!r}")
        if color_fix not in COLOR_FIXES:
            raise MethodError(f"ssmoe color_fix must be one of {sorted(COLOR_FIXES)}, not {color_fix!r}")
        if prediction not in ("eps", "x0", "v"):
            raise MethodError(f"ssmoe prediction must be eps, x0 or v, not {prediction!r}")
        denoiser, vq, fcd, schedule = _plain(denoiser), _plain(vq), _plain(fcd), _plain(schedule)
        sampling_experts, space_moe = _plain(sampling_experts), _plain(space_moe)
        se = dict(sampling_experts or {"count": 1})
        moe = dict(space_moe) if space_moe else {}
        moe_experts = int(moe.get("experts", 0) or 0)
        self.moe_inference = str(moe.get("inference", "grouped"))
        if moe_experts and self.moe_inference not in MOE_MODES:
            raise MethodError(f"ssmoe space_moe.inference must be one of {MOE_MODES}, not {self.moe_inference!r}")
        self.arch = Architecture(
            denoiser=dict(denoiser or {}), experts=int(se.get("count", 1)),
            bounds=tuple(se["bounds"]) if se.get("bounds") is not None else None,
            moe_experts=moe_experts, moe_mult=int(moe.get("mult", 4)),
            vq=dict(vq or {}), fcd=dict(fcd or {}) if decoder == "fcd" else None,
        )
        self.decoder = decoder
        self.scale = int(scale)
        self.scales = tuple(int(s) for s in scales)
        self.schedule_cfg = dict(schedule or {"name": "scaled_linear", "timesteps": 1000,
                                              "beta_start": 0.0015, "beta_end": 0.0155})
        with torch.device("cpu"):  # the schedule is host data even when the networks are built on meta
            self.schedule = make_schedule(**self.schedule_cfg)
        self.sampler = SamplerOptions.from_dict(sampler)
        self.prediction = prediction
        self.color_fix = color_fix
        self.quantize = bool(quantize)
        self.latent_scale_auto = latent_scale == "auto"
        if not self.latent_scale_auto and not float(latent_scale) > 0:
            raise MethodError(f"ssmoe latent_scale must be > 0 or 'auto', got {latent_scale!r}")
        initial_scale = 0.0 if self.latent_scale_auto else float(latent_scale)
        self.momentum = MomentumSchedule(**dict(momentum or {}))
        self.fcd_latents = dict(fcd_latents or {"steps": 10})
        try:
            bounds = expert_bounds(self.arch.experts, self.schedule.T, self.arch.bounds)
        except ValueError as e:
            raise MethodError(f"ssmoe sampling_experts: {e}") from None

        with torch.random.fork_rng(devices=[]):  # reproducible init, global RNG untouched
            torch.manual_seed(int(seed))
            ucfg = self.arch.unet_config("grouped")
            self.nets["experts"] = SamplingExperts([build_denoiser(ucfg) for _ in range(self.arch.experts)], bounds,
                                                   latent_scale=initial_scale)
            self.nets["vq"] = build_vq(self.arch.vq)
            if self.arch.fcd is not None:
                self.nets["fcd"] = FCDParts(self.nets["vq"].config.block_out_channels, **self.arch.fcd)
        self.unet_cfg = ucfg
        self.vq_factor = 2 ** (len(self.nets["vq"].config.block_out_channels) - 1)

        if state is not None:
            self._load_own(state, path)
        elif official:
            from srarena.methods.ssmoe.official import load_official

            load_official(self, official, use_ema=use_ema)
        elif ldm_folder is not None:
            from srarena.methods.ssmoe.diffusers_convert import load_ldm_sr_folder

            load_ldm_sr_folder(self, ldm_folder)
        from srarena.methods.ssmoe import training  # noqa: F401  (registers the focal frequency loss)

        if self.arch.moe_experts and self.moe_inference == "collapsed":
            collapse_all(self.nets["experts"])
        self.nets.eval()

    # -- construction helpers -----------------------------------------------------------------
    def _load_own(self, state: Mapping[str, torch.Tensor], path: Path | None) -> None:
        if self.arch.fcd is None:  # a vq-decoder run of an FCD checkpoint: the FCD parts are unused
            state = {k: v for k, v in state.items() if not k.startswith("fcd.")}
        elif not any(k.startswith("fcd.") for k in state):
            raise CheckpointError(f"{path}: holds no FCD weights (fcd.*); run it with decoder=vq")
        load_into(self.nets, state, path or "<state>")

    @property
    def latent_scale(self) -> float:
        """Latents the diffusion runs on = VQ encoder output x this (LDM's ``scale_factor``).
        ``latent_scale: auto`` sets it from the first training batch to 1 / std of the latents
        (LDM's scale_by_std); it lives in the experts' state dict so checkpoints carry it."""
        value = float(self.experts.latent_scale)
        if value <= 0:
            raise MethodError("ssmoe latent_scale is 'auto' and not set yet: train the denoisers first")
        return value

    @property
    def experts(self) -> SamplingExperts:
        return self.nets["experts"]  # type: ignore[return-value]

    @property
    def vq(self) -> Any:
        return self.nets["vq"]

    def architecture_metadata(self) -> dict[str, object]:
        return {
            "method": "ssmoe",
            "denoiser": self.arch.denoiser,
            "sampling_experts": {"count": self.arch.experts, "bounds": list(self.experts.bounds)},
            "space_moe": {"experts": self.arch.moe_experts, "mult": self.arch.moe_mult} if self.arch.moe_experts else None,
            "vq": self.arch.vq,
            "decoder_arch": self.arch.fcd,
            "schedule": self.schedule_cfg,
            "prediction": self.prediction,
            "latent_scale": "auto" if self.latent_scale_auto else self.latent_scale,
        }

    # -- cost -----------------------------------------------------------------------------------
    def decode_paths(self) -> tuple[str, ...]:
        if self.decoder == "fcd":
            return fcd_cost_paths(self.vq, self.nets["fcd"], quantize=self.quantize)
        return (("vq.quantize",) if self.quantize else ()) + ("vq.post_quant_conv", "vq.decoder")

    def cost_model(self) -> CostModel:
        steps = self.sampler.num_steps(self.schedule.T)
        per_step = tuple(f"experts.experts.{k}" for k in range(self.arch.experts))
        return CostModel(per_step=per_step, per_image=self.decode_paths(), steps=steps)

    # -- inference ------------------------------------------------------------------------------
    def pad_multiple(self, scale: int) -> int:
        """LR padding multiple that makes the latent a multiple of the U-Net's size multiple."""
        m = self.unet_cfg.size_multiple * self.vq_factor
        if m % scale:
            raise MethodError(f"ssmoe x{scale}: the latent multiple {m // self.vq_factor} x f{self.vq_factor} "
                              f"is not a whole number of LR pixels")
        return m // scale

    def condition(self, lr: torch.Tensor, scale: int) -> torch.Tensor:
        """The LR at latent size in [-1, 1] (x4: itself; x8: MATLAB bicubic x2)."""
        factor = scale / self.vq_factor
        if factor < 1 or factor != int(factor):
            raise MethodError(f"ssmoe needs a scale that is a multiple of the VQ factor {self.vq_factor}, not x{scale}")
        c = lr if factor == 1 else imresize(lr, scale=factor)
        return c * 2 - 1

    def denoise(self, cond: torch.Tensor, sampler: SamplerOptions | None = None) -> Any:
        """``(z_t, t) -> eps`` for the shared sampler: the routed expert on ``concat(z_t, cond)``.

        On the meta device (paper-scale profiling without weights) t has no values to route on;
        the expert then comes from the chain's own timestep sequence, call by call."""
        sampler = sampler or self.sampler
        chain = iter(timestep_sequence(self.schedule.T, sampler.steps, sampler.spacing))

        def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            xin = torch.cat([x, cond], dim=1)
            if t.device.type == "meta":
                k = int(route(torch.tensor([next(chain)], device="cpu"), self.experts.bounds)[0])
                return self.experts.experts[k](xin, t)
            return self.experts(xin, t)

        return fn

    def sample_latent(self, cond: torch.Tensor, generator: torch.Generator, x_T: torch.Tensor | None = None,
                      sampler: SamplerOptions | None = None) -> torch.Tensor:
        shape = (cond.shape[0], self.unet_cfg.out_channels, *cond.shape[-2:])
        with use_generator(self.experts, generator):
            z = run_sampler(self.denoise(cond, sampler), shape, self.schedule, generator, sampler or self.sampler,
                            prediction=self.prediction, device=self.device, x_T=x_T)
        return z / self.latent_scale

    def decode(self, z: torch.Tensor, lr: torch.Tensor, scale: int) -> torch.Tensor:
        """Latent -> image in [-1, 1]; ``lr`` (padded, [0, 1]) feeds the FCD's encoder."""
        if self.decoder == "fcd":
            lr_up = imresize(lr, scale=scale) * 2 - 1
            return fcd_decode(self.vq, self.nets["fcd"], z, lr_up, quantize=self.quantize)
        return self.vq.decode(z, force_not_quantize=not self.quantize).sample

    @torch.no_grad()
    def upscale(self, lr: torch.Tensor, scale: int, generator: torch.Generator) -> torch.Tensor:
        self.check_scale(scale)
        self.nets.eval()
        lr = lr.to(self.device, torch.float32)
        h, w = lr.shape[-2:]
        m = self.pad_multiple(scale)
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            if ph >= h or pw >= w:
                lr = F.pad(lr, (0, pw, 0, ph), mode="replicate")
            else:
                lr = F.pad(lr, (0, pw, 0, ph), mode="reflect")
        cond = self.condition(lr, scale)
        z = self.sample_latent(cond, generator)
        out = self.decode(z, lr, scale)
        fix = COLOR_FIXES[self.color_fix]
        if fix is not None:
            out = fix(out, cond)
        out = (out.clamp(-1, 1) + 1) / 2
        return out[..., : h * scale, : w * scale].float()

    # -- training (srarena.harness.training.TrainableMethod) -------------------------------------
    def training_modules(self) -> dict[str, nn.Module]:
        mods: dict[str, nn.Module] = {"experts": self.experts, "vq": self.vq}
        if "fcd" in self.nets:
            mods["fcd"] = self.nets["fcd"]
        return mods

    def checkpoint_metadata(self) -> dict[str, object]:
        return {**self.architecture_metadata(), "scale": self.scale, "quantize": self.quantize}

    def training_outputs(self, batch: Any, generator: torch.Generator, stage: str) -> dict[str, torch.Tensor]:
        from srarena.methods.ssmoe.training import STAGE_OUTPUTS

        try:
            fn = STAGE_OUTPUTS[stage]
        except KeyError:
            raise MethodError(f"ssmoe has no training stage {stage!r}; stages: {sorted(STAGE_OUTPUTS)}") from None
        return fn(self, batch, generator)

    def after_step(self, step: int, stage: str) -> None:
        """Momentum weight sharing of the Space-MoE experts after every denoiser optimiser step."""
        if stage == "denoisers" and self.arch.moe_experts > 1:
            # ``step`` counts the steps done (1 after the first); the official ramp reads Lightning's
            # global_step inside optimizer_step, i.e. the steps done before this one.
            share_momentum_all(self.experts, self.momentum.b(step - 1))


def _merge_moe(from_file: Mapping[str, Any] | None, from_yaml: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The file fixes the Space-MoE shape; the YAML still chooses the inference mode."""
    if not from_file:
        return None
    out = dict(from_file)
    if from_yaml and "inference" in from_yaml:
        out["inference"] = from_yaml["inference"]
    return out


def _plain(value: Any) -> Any:
    """Hydra hands over DictConfig/ListConfig: plain dicts and lists (JSON metadata, comparisons)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or (hasattr(value, "__iter__") and type(value).__name__ == "ListConfig"):
        return [_plain(v) for v in value]
    return value


def _json_or_text(value: str) -> Any:
    """safetensors metadata values: JSON for structures and numbers, plain text for strings."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value
