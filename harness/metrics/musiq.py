"""MUSIQ (KonIQ-10k head) through pyiqa's architecture, with weights from the resolver.

pyiqa's own ``create_metric('musiq')`` downloads on first use; we build its ``MUSIQ`` module with
``pretrained_model_path`` pointing at the resolved file, so an offline machine with the file in
the weights directory (or pyiqa's cache) works, and one without it skips MUSIQ with the reason.
"""

from __future__ import annotations

import torch

from srarena.harness.metrics.spec import MetricContext
from srarena.harness.weights import WeightSpec, register_weights, resolve_weights

_HF = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main/"

MUSIQ_KONIQ = register_weights(WeightSpec(
    key="metric/musiq_koniq",
    filename="musiq_koniq_ckpt-e95806b9.pth",
    source=_HF + "musiq_koniq_ckpt-e95806b9.pth",
    used_by="musiq",
    library_paths=("{hub}/pyiqa/musiq_koniq_ckpt-e95806b9.pth",),
    licence="Apache-2.0 (google-research/musiq), ported by pyiqa",
))


def build_musiq(path: str, device: str) -> torch.nn.Module:
    """pyiqa's MUSIQ with a KonIQ head (one output), weights from ``path``, in eval mode."""
    from pyiqa.archs.musiq_arch import MUSIQ

    return MUSIQ(pretrained="koniq10k", pretrained_model_path=path).eval().to(device)


def musiq(ctx: MetricContext):
    net = build_musiq(str(resolve_weights(MUSIQ_KONIQ)), ctx.device)

    def f(sr: torch.Tensor, hr: torch.Tensor | None = None) -> torch.Tensor:
        with torch.inference_mode():
            return net(sr.to(ctx.device, torch.float32)).reshape(-1).double()

    return f
