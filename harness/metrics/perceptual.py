"""LPIPS v0.1 through the ``lpips`` package (BSD-2): linear heads ship in its wheel, the
ImageNet backbone (AlexNet by default, VGG16 option) comes from the weights resolver.

``lpips.LPIPS(pretrained=True)`` would ask torchvision to download the backbone; we build it with
``pnet_rand=True`` (no download) and load the torchvision state dict we resolved ourselves, mapping
``features.<i>.*`` onto the package's ``slice<k>.<i>.*``. Inputs are [0, 1] RGB scaled to [-1, 1]
(``normalize=True``), exactly as the official code and pyiqa's ``lpips`` preset do.
"""

from __future__ import annotations

import torch

from srarena.harness.metrics.spec import MetricContext
from srarena.harness.weights import WeightSpec, register_weights, resolve_weights

_TV = "https://download.pytorch.org/models/"

BACKBONES = {
    "alex": register_weights(WeightSpec(
        key="metric/lpips_alex_backbone", filename="alexnet-owt-7be5be79.pth",
        source=_TV + "alexnet-owt-7be5be79.pth", used_by="lpips (AlexNet backbone)",
        library_paths=("{hub}/checkpoints/alexnet-owt-7be5be79.pth",), licence="BSD-3 (torchvision)",
    )),
    "vgg": register_weights(WeightSpec(
        key="metric/lpips_vgg_backbone", filename="vgg16-397923af.pth",
        source=_TV + "vgg16-397923af.pth", used_by="lpips_vgg (VGG16 backbone)",
        library_paths=("{hub}/checkpoints/vgg16-397923af.pth",), licence="BSD-3 (torchvision)",
    )),
}


def load_backbone(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy a torchvision AlexNet/VGG16 state dict into an ``lpips.LPIPS`` model's ``net``."""
    own = model.net.state_dict()
    mapped = {}
    for key in own:  # e.g. "slice2.3.weight" -> "features.3.weight"
        _, idx, param = key.split(".", 2)
        mapped[key] = state[f"features.{idx}.{param}"]
    model.net.load_state_dict(mapped, strict=True)


def build_lpips(net: str, backbone_path: str, device: str = "cpu") -> torch.nn.Module:
    import lpips

    model = lpips.LPIPS(pretrained=True, net=net, version="0.1", pnet_rand=True, verbose=False)
    load_backbone(model, torch.load(backbone_path, map_location="cpu", weights_only=True))
    return model.eval().to(device)


def lpips_metric(ctx: MetricContext, net: str = "alex"):
    """LPIPS v0.1 with the ``net`` backbone (``alex`` or ``vgg``) from the weights resolver."""
    model = build_lpips(net, str(resolve_weights(BACKBONES[net])), ctx.device)

    def f(sr: torch.Tensor, hr: torch.Tensor | None) -> torch.Tensor:
        with torch.inference_mode():
            a, b = (t.to(ctx.device, torch.float32) for t in (sr, hr))
            return model(a, b, normalize=True).reshape(-1).double()

    return f
