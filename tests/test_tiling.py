"""Tiled inference equals untiled inference when the overlap covers the receptive field."""

from __future__ import annotations

import pytest
import torch

from srarena.methods.rrdbnet import RRDBArch, RRDBNet
from srarena.methods.tiling import TileConfig, maybe_tiled, tiled_upscale


@pytest.mark.parametrize("scale, upsampler", [(4, "unshuffle"), (2, "unshuffle"), (2, "upconv")])
def test_tiled_equals_untiled(scale, upsampler):
    torch.manual_seed(0)
    net = RRDBNet(RRDBArch(num_feat=8, num_block=1, num_grow_ch=4, scale=scale, upsampler=upsampler)).eval()
    # Receptive-field radius: 17 LR-resolution convs + (up to) 4 at higher resolution < 20 px.
    x = torch.rand(1, 3, 46, 38)
    align = net.arch.unshuffle
    with torch.no_grad():
        full = net(x)
        tiled = tiled_upscale(net, x, scale, tile=16, overlap=22, align=align)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max().item() < 1e-5


def test_small_overlap_differs_and_disabled_tiling_is_identity():
    torch.manual_seed(0)
    net = RRDBNet(RRDBArch(num_feat=8, num_block=1, num_grow_ch=4)).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        full = net(x)
        assert (tiled_upscale(net, x, 4, tile=16, overlap=0) - full).abs().max() > 1e-4
        assert torch.equal(maybe_tiled(net, x, 4, TileConfig(tile=0)), full)


def test_tiler_checks_the_function_and_alignment():
    with pytest.raises(ValueError, match="expected"):
        tiled_upscale(lambda t: t, torch.rand(1, 3, 8, 8), 2, tile=4, overlap=1)
    with pytest.raises(ValueError, match="align=2"):
        tiled_upscale(lambda t: t, torch.rand(1, 3, 7, 8), 1, tile=4, overlap=1, align=2)
