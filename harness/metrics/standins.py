"""Stand-in weight files: right format and shapes, random values.

They exist so tests and speed benchmarks can exercise weight resolution, loading and the whole
metric plumbing on a machine where the real files cannot be downloaded. Scores computed with them
mean nothing; nothing here is ever used unless a caller writes these files on purpose.
"""

from __future__ import annotations

from pathlib import Path

import torch


class _StandInInceptionTS(torch.nn.Module):
    """Same call signature as NVIDIA's TorchScript Inception (``layers``, ``return_features``)."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 3, stride=2), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(8), torch.nn.Flatten(),
        )  # 32 * 8 * 8 = 2048 features

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.layers((x - 128.0) / 128.0)


def write_torchscript_inception(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(_StandInInceptionTS().eval()), str(path))
    return path


def write_pt_inception(path: Path, seed: int = 0) -> Path:
    """pytorch-fid's FID Inception architecture (clean-fid's copy), random init."""
    import cleanfid.inception_pytorch as ip

    torch.manual_seed(seed)
    net = ip._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = ip.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = ip.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = ip.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = ip.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = ip.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = ip.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = ip.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = ip.FIDInceptionE_1(1280)
    net.Mixed_7c = ip.FIDInceptionE_2(2048)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


def write_torchvision(arch: str, path: Path, seed: int = 0) -> Path:
    """A torchvision classifier's state dict (``alexnet``, ``vgg16``), random init."""
    import torchvision

    torch.manual_seed(seed)
    net = getattr(torchvision.models, arch)(weights=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path


def write_musiq(path: Path, seed: int = 0) -> Path:
    """pyiqa's MUSIQ with a one-output (KonIQ) head, random init."""
    from pyiqa.archs.musiq_arch import MUSIQ

    torch.manual_seed(seed)
    net = MUSIQ(pretrained=False, num_class=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path
