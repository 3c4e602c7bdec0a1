"""SR3 (Saharia et al., 2021): pixel-space conditional DDPM for super-resolution.

The denoiser is the DDPM U-Net (:mod:`srarena.methods.diffusion.unet`) fed ``concat(x_t, bicubic(lr))``
in [-1, 1]; it is trained to predict the noise and sampled with the shared DDPM/DDIM sampler.
One deliberate simplification, documented because it changes what a checkpoint means: SR3
conditions on the continuous noise level sqrt(alpha_bar) and samples it between grid points in
training; here the network sees the integer timestep like Ho et al.'s DDPM, and fast sampling
comes from the sampler's respacing (``sampler.steps``) instead of a re-tuned schedule.

``target`` chooses what the diffusion generates. ``image`` (the default, SR3 as published): x_0 is
the HR image in [-1, 1]. ``residual`` (SRDiff, Li et al. 2022): x_0 is the residual
``(hr - bicubic_up(lr)) / residual_scale`` with both images in [0, 1], so with ``residual_scale``
near the residual's standard deviation (~0.03-0.1 for bicubic x4 on natural photographs) x_0 has
roughly unit variance; the SR is ``bicubic_up(lr) + residual_scale * x_0``. The conditioning is the
same bicubic upsample in both cases. With ``clip_x0`` a residual's x_0 estimate is clamped per
pixel to the range that keeps the SR in [0, 1] (the residual analogue of clamping an image to
[-1, 1]), not to [-1, 1].

There are no official SR3 weights; ``weights`` points at a checkpoint written by
``srarena train method=sr3_demo`` (self-describing: its metadata carries the U-Net and schedule).
"""

from __future__ import annotations

import json
from typing import Any, Literal, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from srarena.harness.degradations.resize import imresize
from srarena.methods.base import BaseMethod, CostModel, MethodError
from srarena.methods.diffusion import DDPMUNet, UNetConfig, make_schedule, sample
from srarena.methods.diffusion.samplers import SamplerConfig
from srarena.methods.diffusion.schedules import Prediction
from srarena.methods.state_dicts import CheckpointError, load_into, locate, read_state_dict

Target = Literal["image", "residual"]
TARGETS: tuple[str, ...] = ("image", "residual")


class SR3(BaseMethod):
    def __init__(
        self,
        weights: str | None = None,
        scale: int = 4,
        unet: Mapping[str, Any] | None = None,
        schedule: Mapping[str, Any] | None = None,
        sampler: Mapping[str, Any] | None = None,
        prediction: Prediction = "eps",
        clip_x0: bool = True,
        seed: int = 0,
        target: Target = "image",
        residual_scale: float = 0.05,
    ) -> None:
        super().__init__()
        unet_cfg = dict(unet or {})
        schedule_cfg = dict(schedule or {"name": "linear", "timesteps": 1000})
        state, path = None, None
        if weights:
            path = locate(str(weights))
            state, meta = read_state_dict(path)
            # The file describes the network it holds; it overrides the YAML's architecture.
            try:
                if "unet" in meta:
                    unet_cfg = json.loads(meta["unet"])
                if "schedule" in meta:
                    schedule_cfg = json.loads(meta["schedule"])
                if "scale" in meta and int(meta["scale"]) != int(scale):
                    raise CheckpointError(f"{path}: trained for x{meta['scale']}, config asks for x{scale}")
                prediction = meta.get("prediction", prediction)  # type: ignore[assignment]
                # Files from before `target` existed hold image-space models.
                target = meta.get("target", "image")  # type: ignore[assignment]
                if target not in TARGETS:
                    raise CheckpointError(f"{path}: unknown SR3 target {target!r} (known: {TARGETS})")
                if "residual_scale" in meta:
                    residual_scale = float(meta["residual_scale"])
            except (json.JSONDecodeError, TypeError, ValueError) as e:
                raise CheckpointError(f"{path}: malformed SR3 metadata ({e})") from None
        if target not in TARGETS:
            raise MethodError(f"SR3 target must be one of {TARGETS}, not {target!r}")
        if not float(residual_scale) > 0:
            raise MethodError(f"SR3 residual_scale must be > 0, got {residual_scale}")
        self.target: Target = target
        self.residual_scale = float(residual_scale)
        self.unet_cfg = UNetConfig.from_dict(unet_cfg)
        if self.unet_cfg.in_channels != 2 * self.unet_cfg.out_channels:
            raise MethodError("SR3's U-Net takes x_t and the upsampled LR: in_channels = 2 x out_channels")
        self.schedule_cfg = schedule_cfg
        self.schedule = make_schedule(**schedule_cfg)
        try:
            self.sampler = SamplerConfig.from_dict(sampler)
        except (TypeError, ValueError) as e:
            raise MethodError(f"SR3 sampler: {e}") from None
        self.prediction: Prediction = prediction
        self.clip_x0 = bool(clip_x0)
        self.scale = int(scale)
        self.scales = (self.scale,)
        with torch.random.fork_rng(devices=[]):  # reproducible init, global RNG untouched
            torch.manual_seed(int(seed))
            self.nets["unet"] = DDPMUNet(self.unet_cfg)
        if state is not None:
            load_into(self.nets["unet"], state, path)
        self.nets.eval()

    @property
    def unet(self) -> DDPMUNet:
        return self.nets["unet"]  # type: ignore[return-value]

    def cost_model(self) -> CostModel:
        steps = self.sampler.num_steps(self.schedule.T)
        return CostModel(per_step=("unet",), steps=steps, calls={"unet": steps})

    def condition(self, lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The bicubic-upsampled LR in [-1, 1] that SR3 concatenates to x_t."""
        return imresize(lr, scale=self.scale, size=size) * 2 - 1

    def upscale(self, lr: torch.Tensor, scale: int, generator: torch.Generator) -> torch.Tensor:
        self.check_scale(scale)
        self.unet.eval()
        lr = lr.to(self.device, torch.float32)
        h, w = lr.shape[-2:]
        cond = self.condition(lr, (h * scale, w * scale))
        # The U-Net halves the size per level: reflect-pad the HR grid, crop after sampling.
        m = self.unet_cfg.size_multiple
        ph, pw = (-cond.shape[-2]) % m, (-cond.shape[-1]) % m
        if ph or pw:
            cond = F.pad(cond, (0, pw, 0, ph), mode="reflect")
        shape = tuple(cond.shape[:1]) + (self.unet_cfg.out_channels,) + tuple(cond.shape[2:])
        run = dict(self.sampler.kwargs(), device=self.device)

        if self.target == "image":
            def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return self.unet(torch.cat([x, cond], dim=1), t)

            x0 = sample(denoise, shape, self.schedule, generator, prediction=self.prediction,
                        clip_x0=self.clip_x0, **run)  # type: ignore[arg-type]
            return ((x0[..., : h * scale, : w * scale] + 1) / 2).float()

        up = (cond + 1) / 2
        lo, hi = -up / self.residual_scale, (1 - up) / self.residual_scale  # SR in [0, 1]

        def denoise_x0(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            """The network's x_0 estimate, clamped to the SR's valid range; fed as x0-prediction."""
            _, x0 = self.schedule.to_eps_x0(x, t, self.unet(torch.cat([x, cond], dim=1), t), self.prediction)
            return torch.maximum(torch.minimum(x0, hi), lo) if self.clip_x0 else x0

        res = sample(denoise_x0, shape, self.schedule, generator, prediction="x0", clip_x0=False, **run)  # type: ignore[arg-type]
        return (up + self.residual_scale * res)[..., : h * scale, : w * scale].float()

    # -- training (srarena.harness.training.TrainableMethod) -----------------------------------------
    def trainable_module(self) -> nn.Module:
        return self.unet

    def training_pair(
        self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(network output, its target) for a uniformly drawn timestep: the DDPM objective."""
        up = imresize(lr, scale=self.scale, size=tuple(hr.shape[-2:]))
        cond = up * 2 - 1
        x0 = hr * 2 - 1 if self.target == "image" else (hr - up) / self.residual_scale
        b = hr.shape[0]
        t = torch.randint(self.schedule.T, (b,), generator=generator).to(hr.device)
        noise = torch.randn(hr.shape, generator=generator).to(hr.device, hr.dtype)
        xt = self.schedule.q_sample(x0, t, noise)
        out = self.unet(torch.cat([xt, cond], dim=1), t)
        return out, self.schedule.target(x0, t, noise, self.prediction)

    def checkpoint_metadata(self) -> dict[str, object]:
        return {
            "method": "sr3", "scale": self.scale, "unet": self.unet_cfg.to_dict(),
            "schedule": self.schedule_cfg, "prediction": self.prediction,
            "target": self.target, "residual_scale": self.residual_scale,
        }
