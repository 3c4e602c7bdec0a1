"""Training stages of SS-MoE (``srarena train method=ssmoe... train.stages=[...]``) and the focal frequency loss.

The shared loop (:mod:`srarena.harness.training`) trains, freezes and checkpoints the modules a
stage names; this module says what each stage computes from a batch (all randomness from the
loop's generator):

* ``autoencoder`` — the VQ-f4 on the HR crops: ``rec`` vs ``hr`` (both in [-1, 1]) and the VQ
  codebook/commitment term ``vq_loss`` (zero when the config decodes without quantisation). The
  paper starts from LDM's pretrained VQ-f4; the demo trains a small one here;
* ``denoisers`` — the LDM objective per sampling expert: sample i of the batch goes to expert
  ``i mod K`` and draws t uniformly from that expert's interval only; ``pred``/``target`` are the
  network output and the true noise (or x0/v). Latents are the VQ encoder's pre-quantisation
  output (as LDM-SR trains), times ``latent_scale``. Momentum weight sharing of the Space-MoE
  experts runs after every optimiser step (:meth:`SSMoESR.after_step`);
* ``decoder`` — the FCD's fusion and AFF parts on latents the trained denoisers produce from the
  batch's LR (a short DDIM chain, ``fcd_latents.steps``): ``sr`` vs ``hr``, for the VQ-GAN
  reconstruction loss (L1 here) plus the focal frequency loss (weight 10 in the paper).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from srarena.harness.degradations.resize import imresize
from srarena.harness.training.losses import register_loss
from srarena.methods.ssmoe.blocks import use_generator
from srarena.methods.ssmoe.fcd import fcd_decode
from srarena.methods.ssmoe.sampling import SamplerOptions


def focal_frequency_loss(pred: torch.Tensor, target: torch.Tensor, alpha: float = 1.0, patch_factor: int = 1,
                         ave_spectrum: bool = False, log_matrix: bool = False,
                         batch_matrix: bool = False) -> torch.Tensor:
    """Focal frequency loss (Jiang et al., ICCV 2021): the mean over frequencies of
    ``w(u, v) * |F_pred(u, v) - F_target(u, v)|^2`` on the orthonormal 2-D DFT of each of
    ``patch_factor^2`` patches per channel, with the spectrum weight
    ``w = |F_pred - F_target|^alpha`` (optionally ``log(1 + .)``) scaled to [0, 1] by its maximum
    per image, patch and channel (or over the batch) and not differentiated. Defaults as the
    authors' package."""
    def spectrum(x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if h % patch_factor or w % patch_factor:
            raise ValueError(f"focal frequency loss: size {(h, w)} is not divisible by patch_factor={patch_factor}")
        ph, pw = h // patch_factor, w // patch_factor
        patches = x.reshape(n, c, patch_factor, ph, patch_factor, pw).permute(0, 2, 4, 1, 3, 5)
        patches = patches.reshape(n, patch_factor * patch_factor, c, ph, pw)
        return torch.fft.fft2(patches.float(), norm="ortho")

    fp, ft = spectrum(pred), spectrum(target)
    if ave_spectrum:
        fp, ft = fp.mean(0, keepdim=True), ft.mean(0, keepdim=True)
    dist = (fp - ft).abs() ** 2  # (re)^2 + (im)^2
    weight = dist.sqrt() ** alpha
    if log_matrix:
        weight = torch.log(weight + 1.0)
    if batch_matrix:
        weight = weight / weight.max()
    else:
        weight = weight / weight.amax(dim=(-2, -1), keepdim=True)
    weight = torch.nan_to_num(weight, nan=0.0).clamp(0.0, 1.0).detach()
    return (weight * dist).mean()


register_loss("focal_frequency", focal_frequency_loss)


def _latents(method: Any, hr: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        h = method.vq.encode(hr * 2 - 1).latents
        if method.latent_scale_auto and float(method.experts.latent_scale) <= 0:  # LDM's scale_by_std
            method.experts.latent_scale.fill_(1.0 / float(h.float().std()))
        return h * method.latent_scale


def autoencoder_outputs(method: Any, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
    x = batch.hr * 2 - 1
    h = method.vq.encode(x).latents
    if method.quantize:
        q, vq_loss, _ = method.vq.quantize(h)
    else:
        q, vq_loss = h, h.new_zeros(())
    dec = method.vq.decoder(method.vq.post_quant_conv(q))
    return {"rec": dec, "hr": x, "vq_loss": vq_loss.reshape(()), "pred": dec, "target": x}


def denoiser_outputs(method: Any, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
    from srarena.methods.diffusion.training import sample_timesteps

    hr, lr = batch.hr, batch.lr
    scale = hr.shape[-1] // lr.shape[-1]
    z0 = _latents(method, hr)
    cond = method.condition(lr, scale)
    ranges = method.experts.ranges()
    b = hr.shape[0]
    t = sample_timesteps(b, generator, [ranges[i % len(ranges)] for i in range(b)], method.schedule.T).to(hr.device)
    noise = torch.randn(z0.shape, generator=generator).to(z0.device, z0.dtype)
    zt = method.schedule.q_sample(z0, t, noise)
    with use_generator(method.experts, generator):
        out = method.experts(torch.cat([zt, cond], dim=1), t)
    target = method.schedule.target(z0, t, noise, method.prediction)
    return {"pred": out, "target": target, "eps_pred": out, "eps": noise}


def decoder_outputs(method: Any, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
    hr, lr = batch.hr, batch.lr
    scale = hr.shape[-1] // lr.shape[-1]
    cond = method.condition(lr, scale)
    opts = SamplerOptions.from_dict({"name": "ddim", "steps": int(method.fcd_latents.get("steps", 10)),
                                     "eta": method.sampler.eta, "spacing": method.sampler.spacing})
    was = method.experts.training
    method.experts.eval()
    with torch.no_grad():
        z = method.sample_latent(cond, generator, sampler=opts)
    method.experts.train(was)
    lr_up = imresize(lr, scale=scale) * 2 - 1
    with use_generator(method.nets["fcd"], generator):
        sr = fcd_decode(method.vq, method.nets["fcd"], z, lr_up, quantize=method.quantize)
    x = hr * 2 - 1
    return {"sr": sr, "hr": x, "pred": sr, "target": x}


STAGE_OUTPUTS: dict[str, Callable[[Any, Any, torch.Generator], dict[str, torch.Tensor]]] = {
    "autoencoder": autoencoder_outputs,
    "denoisers": denoiser_outputs,
    "decoder": decoder_outputs,
}

__all__ = ["STAGE_OUTPUTS", "F", "focal_frequency_loss"]
