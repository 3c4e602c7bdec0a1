"""SR3 (Saharia et al., 2021): pixel-space conditional DDPM for super-resolution.

The denoiser is the DDPM U-Net (:mod:`methods.diffusion.unet`) fed ``concat(x_t, bicubic(lr))``
in [-1, 1]; it is trained to predict the noise and sampled with the shared DDPM/DDIM sampler.
One deliberate simplification, documented because it changes what a checkpoint means: SR3
conditions on the continuous noise level sqrt(alpha_bar) and samples it between grid points in
training; here the network sees the integer timestep like Ho et al.'s DDPM, and fast sampling
comes from the sampler's respacing (``sampler.steps``) instead of a re-tuned schedule.

There are no official SR3 weights; ``weights`` points at a checkpoint written by
``srarena train method=sr3_demo`` (self-describing: its metadata carries the U-Net and schedule).
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from harness.degradations.resize import imresize
from methods.base import BaseMethod, CostModel, MethodError, register_method
from methods.diffusion import DDPMUNet, UNetConfig, make_schedule, sample
from methods.diffusion.schedules import Prediction
from methods.state_dicts import CheckpointError, load_into, locate, read_state_dict


@register_method("sr3")
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
            except (json.JSONDecodeError, TypeError) as e:
                raise CheckpointError(f"{path}: malformed SR3 metadata ({e})") from None
        self.unet_cfg = UNetConfig.from_dict(unet_cfg)
        if self.unet_cfg.in_channels != 2 * self.unet_cfg.out_channels:
            raise MethodError("SR3's U-Net takes x_t and the upsampled LR: in_channels = 2 x out_channels")
        self.schedule_cfg = schedule_cfg
        self.schedule = make_schedule(**schedule_cfg)
        self.sampler = {"name": "ddim", "steps": 50, "eta": 0.0, **dict(sampler or {})}
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
        steps = len(range(self.schedule.T)) if self.sampler["steps"] is None else min(int(self.sampler["steps"]), self.schedule.T)
        return CostModel(calls={"unet": steps}, steps=steps)

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

        def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return self.unet(torch.cat([x, cond], dim=1), t)

        x0 = sample(
            denoise, tuple(cond.shape[:1]) + (self.unet_cfg.out_channels,) + tuple(cond.shape[2:]),
            self.schedule, generator, sampler=str(self.sampler["name"]), steps=self.sampler["steps"],
            eta=self.sampler.get("eta"), prediction=self.prediction, clip_x0=self.clip_x0, device=self.device,
        )
        return ((x0[..., : h * scale, : w * scale] + 1) / 2).float()

    # -- training (harness.training.TrainableMethod) -----------------------------------------
    def trainable_module(self) -> nn.Module:
        return self.unet

    def training_pair(
        self, lr: torch.Tensor, hr: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(network output, its target) for a uniformly drawn timestep: the DDPM objective."""
        x0 = hr * 2 - 1
        cond = self.condition(lr, tuple(hr.shape[-2:]))
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
        }
