"""LDM-SR: CompVis' latent-diffusion 4x upscaler (Rombach et al., CVPR 2022) through diffusers.

The released model (``CompVis/ldm-super-resolution-4x-openimages``, converted from
latent-diffusion's ``models/ldm/bsr_sr``) denoises a 3-channel VQ-f4 latent at the LR size,
conditioned by concatenating the LR image in [-1, 1]; the VQ decoder then returns 4x pixels.
srarena runs diffusers' own ``LDMSuperResolutionPipeline`` loaded from a local folder — no
reimplementation — and adds what the pipeline lacks for a benchmark:

* every random draw from the job's generator, on the CPU: the pipeline draws x_T with the
  generator it is given (a CPU generator: diffusers' ``randn_tensor`` then draws on the CPU and
  moves the noise to the model's device), but it calls ``scheduler.step`` without one, so DDIM's
  ``eta > 0`` noise would come from the global RNG *of the model's device* (a CUDA run would
  differ from a CPU run). For the duration of the call the scheduler's ``step`` is bound to the
  job's generator (:func:`_step_draws_from`), which diffusers' DDIM step accepts;
* timestep spacing: ``spacing`` (``leading`` | ``linspace`` | ``trailing``) replaces the model
  folder's ``timestep_spacing`` (``null`` keeps the folder's: ``leading`` for the released model);
* per-step accounting: the profiler's :func:`~srarena.harness.profiling.mark_step` runs before
  every U-Net call (a forward pre-hook held for the call);
* sizes: the U-Net halves the latent three times, so the LR is reflect-padded to a multiple of
  ``pad_multiple`` and the output cropped back to exactly 4x;
* a profiler cost model: the U-Net at every step; the VQ quantiser, ``post_quant_conv`` and
  decoder once per image (the VQ encoder is not used at inference: the LR image is the condition).

:data:`REAL_CONFIG` is the released architecture (from the original LDM config), so its size
and FLOPs can be measured without the weights (:func:`build_pipeline`).
"""

from __future__ import annotations

import functools
import inspect
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
import torch.nn.functional as F

from srarena.harness.weights import MissingWeightsError, WeightSpec, candidates, find_weights, register_weights
from srarena.harness.profiling import mark_step
from srarena.methods.base import BaseMethod, CostModel, MethodError

log = logging.getLogger(__name__)

HF_REPO = "CompVis/ldm-super-resolution-4x-openimages"
WEIGHTS = register_weights(
    WeightSpec(
        "ldm_sr/openimages_4x",
        "ldm-super-resolution-4x-openimages/model_index.json",
        f"https://huggingface.co/{HF_REPO} — the whole folder (model_index.json, unet/, vqvae/, "
        f"scheduler/): `huggingface-cli download {HF_REPO} --local-dir "
        "<weights dir>/ldm-super-resolution-4x-openimages`",
        "method ldm_sr",
        licence="Apache-2.0 (model card); latent-diffusion code MIT",
    )
)

#: The released architecture, from latent-diffusion ``models/ldm/bsr_sr/config.yaml``: U-Net
#: model_channels 160, channel_mult (1,2,2,4), 2 res blocks, attention at downsampling factor 8
#: (the 16 in its attention_resolutions is never reached with 4 levels), 32 channels per head;
#: VQ-f4 with ch 128, ch_mult (1,2,4), 3 latent channels, 8192 codes; betas linear in sqrt
#: space from 0.0015 to 0.0155 over 1000 steps.
REAL_CONFIG: dict[str, dict[str, Any]] = {
    "unet": {
        "sample_size": 64, "in_channels": 6, "out_channels": 3, "layers_per_block": 2,
        "block_out_channels": [160, 320, 320, 640],
        "down_block_types": ["DownBlock2D", "DownBlock2D", "DownBlock2D", "AttnDownBlock2D"],
        "up_block_types": ["AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
        "attention_head_dim": 32, "norm_num_groups": 32, "act_fn": "silu",
        "flip_sin_to_cos": True, "freq_shift": 0,
    },
    "vqvae": {
        "in_channels": 3, "out_channels": 3, "latent_channels": 3, "num_vq_embeddings": 8192,
        "vq_embed_dim": 3, "block_out_channels": [128, 256, 512], "layers_per_block": 2,
        "down_block_types": ["DownEncoderBlock2D"] * 3, "up_block_types": ["UpDecoderBlock2D"] * 3,
        "norm_num_groups": 32, "act_fn": "silu", "sample_size": 256,
    },
    "scheduler": {
        "num_train_timesteps": 1000, "beta_start": 0.0015, "beta_end": 0.0155,
        "beta_schedule": "scaled_linear", "clip_sample": False, "set_alpha_to_one": True,
    },
}


def build_pipeline(config: Mapping[str, Mapping[str, Any]] = REAL_CONFIG):
    """A randomly initialised pipeline of the given architecture (sizes, FLOPs, plumbing tests)."""
    from diffusers import DDIMScheduler, LDMSuperResolutionPipeline, UNet2DModel, VQModel

    return LDMSuperResolutionPipeline(
        vqvae=VQModel(**config["vqvae"]),
        unet=UNet2DModel(**config["unet"]),
        scheduler=DDIMScheduler(**config["scheduler"]),
    )


def _load_pipeline(folder: Path | str, local_only: bool = True):
    from diffusers import LDMSuperResolutionPipeline

    return LDMSuperResolutionPipeline.from_pretrained(str(folder), local_files_only=local_only)


SPACINGS = ("leading", "linspace", "trailing")  # diffusers' DDIMScheduler.timestep_spacing


@contextmanager
def _step_draws_from(scheduler: Any, generator: torch.Generator) -> Iterator[None]:
    """Bind ``generator`` to ``scheduler.step`` while the pipeline runs (it passes none)."""
    if "generator" not in inspect.signature(scheduler.step).parameters:  # a deterministic scheduler
        yield
        return
    scheduler.step = functools.partial(scheduler.step, generator=generator)
    try:
        yield
    finally:
        del scheduler.step  # back to the class's method


class LDMSR(BaseMethod):
    """``weights``: a folder holding ``model_index.json`` (or the weight key); ``None`` looks in
    the weights directory, then in the Hugging Face cache (``local_files_only``)."""

    def __init__(
        self,
        weights: str | None = None,
        steps: int = 100,
        eta: float = 1.0,
        pad_multiple: int = 8,
        progress: bool = False,
        spacing: str | None = None,
    ) -> None:
        super().__init__()
        self.steps, self.eta, self.pad_multiple = int(steps), float(eta), int(pad_multiple)
        self.scales = (4,)
        self._attach(self._open(weights), spacing, progress)

    def _attach(self, pipe: Any, spacing: str | None, progress: bool) -> None:
        if spacing is not None:
            if spacing not in SPACINGS:
                raise MethodError(f"ldm_sr spacing must be one of {SPACINGS} or null, not {spacing!r}")
            pipe.scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, timestep_spacing=spacing)
        self.pipe = pipe
        self.pipe.set_progress_bar_config(disable=not progress)
        self.nets["unet"] = self.pipe.unet
        self.nets["vqvae"] = self.pipe.vqvae
        self.nets.eval()

    @staticmethod
    def _open(weights: str | None):
        if weights and weights != WEIGHTS.key:
            folder = Path(weights).expanduser()
            if folder.is_file():
                folder = folder.parent
            if not (folder / "model_index.json").is_file():
                raise MethodError(f"ldm_sr weights {folder}: no model_index.json there (a diffusers folder)")
            return LDMSR._from(folder)
        found = find_weights(WEIGHTS)
        if found is not None:
            return LDMSR._from(found.parent)
        try:  # a copy that diffusers / huggingface_hub already downloaded
            return _load_pipeline(HF_REPO, local_only=True)
        except Exception:
            raise MissingWeightsError(WEIGHTS, candidates(WEIGHTS) + [Path(f"<huggingface cache>/{HF_REPO}")]) from None

    @staticmethod
    def _from(folder: Path):
        try:
            return _load_pipeline(folder)
        except Exception as e:
            raise MethodError(f"ldm_sr: {folder} is not a loadable LDMSuperResolutionPipeline folder ({e})") from None

    @classmethod
    def from_pipeline(cls, pipe: Any, **kwargs: Any) -> "LDMSR":
        """Wrap an existing pipeline (tests, notebooks) without touching the disk."""
        self = cls.__new__(cls)
        BaseMethod.__init__(self)
        self.steps, self.eta = int(kwargs.get("steps", 100)), float(kwargs.get("eta", 1.0))
        self.pad_multiple, self.scales = int(kwargs.get("pad_multiple", 8)), (4,)
        self._attach(pipe, kwargs.get("spacing"), progress=False)
        return self

    def to(self, device: torch.device | str) -> "LDMSR":
        super().to(device)
        self.pipe.to(self.device)
        return self

    def cost_model(self) -> CostModel:
        return CostModel(
            per_step=("unet",), per_image=("vqvae.quantize", "vqvae.post_quant_conv", "vqvae.decoder"),
            steps=self.steps, calls={"unet": self.steps, "vqvae.post_quant_conv": 1, "vqvae.decoder": 1},
        )

    @torch.no_grad()
    def upscale(self, lr: torch.Tensor, scale: int, generator: torch.Generator) -> torch.Tensor:
        self.check_scale(scale)
        h, w = lr.shape[-2:]
        m = self.pad_multiple
        x = lr.to(self.device, torch.float32) * 2 - 1
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        if generator.device.type != "cpu":
            raise MethodError("ldm_sr draws its noise on the CPU: pass a CPU torch.Generator")
        hook = self.pipe.unet.register_forward_pre_hook(lambda *_: mark_step())
        try:
            with _step_draws_from(self.pipe.scheduler, generator):
                out = self.pipe(image=x, num_inference_steps=self.steps, eta=self.eta, generator=generator,
                                output_type="pt").images
        finally:
            hook.remove()
        out = torch.as_tensor(out)
        return out[..., : h * scale, : w * scale].float()
