"""RRDBNet: standard size, every published key layout, refusal of unsafe or wrong files."""

from __future__ import annotations

import pickle
import re

import pytest
import torch

from srarena.methods.rrdbnet import RRDBArch, RRDBNet, RRDBNetMethod, _esrgan_old, infer_arch, load_rrdbnet
from srarena.methods.state_dicts import CheckpointError, save_safetensors

SMALL = RRDBArch(num_feat=8, num_block=2, num_grow_ch=4)


def _net(arch: RRDBArch = SMALL, seed: int = 0) -> RRDBNet:
    torch.manual_seed(seed)
    return RRDBNet(arch).eval()


def _out(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net(x)


def test_standard_config_has_16_7m_parameters():
    n = sum(p.numel() for p in RRDBNet().parameters())
    assert n == 16_697_987  # ESRGAN / Real-ESRGAN x4plus / BSRGAN generator
    assert RRDBNetMethod().num_params() == n


# Renamers from BasicSR names to the other official layouts (inverse of the loader's tables).
def to_esrgan_new(sd):
    out = {}
    for k, v in sd.items():
        k = re.sub(r"^body\.(\d+)\.rdb(\d)\.", r"RRDB_trunk.\1.RDB\2.", k)
        k = k.replace("conv_body.", "trunk_conv.").replace("conv_hr.", "HRconv.")
        k = re.sub(r"^conv_up(\d)\.", r"upconv\1.", k)
        out[k] = v
    return out


def to_esrgan_old(sd, num_block, num_up):
    top = {"conv_first": 0, **{f"conv_up{i}": 3 * i for i in range(1, num_up + 1)}}
    top |= {"conv_hr": 3 * num_up + 2, "conv_last": 3 * num_up + 4}
    out = {}
    for k, v in sd.items():
        name, kind = k.rsplit(".", 1)
        if m := re.match(r"^body\.(\d+)\.rdb(\d)\.conv(\d)$", name):
            out[f"model.1.sub.{m[1]}.RDB{m[2]}.conv{m[3]}.0.{kind}"] = v
        elif name == "conv_body":
            out[f"model.1.sub.{num_block}.{kind}"] = v
        else:
            out[f"model.{top[name]}.{kind}"] = v
    return out


@pytest.mark.parametrize(
    "layout",
    ["params_ema", "params", "bare", "module_prefix", "esrgan_new", "esrgan_old", "safetensors"],
)
def test_loads_every_official_layout(tmp_path, layout):
    net = _net()
    sd = net.state_dict()
    path = tmp_path / "w.pth"
    if layout == "params_ema":  # Real-ESRGAN: EMA weights preferred over the raw ones
        torch.save({"params_ema": sd, "params": {k: v * 0 for k, v in sd.items()}}, path)
    elif layout == "params":
        torch.save({"params": sd}, path)
    elif layout == "bare":
        torch.save(sd, path)
    elif layout == "module_prefix":
        torch.save({f"module.{k}": v for k, v in sd.items()}, path)
    elif layout == "esrgan_new":  # ESRGAN RRDB_ESRGAN_x4.pth, BSRGAN.pth
        torch.save(to_esrgan_new(sd), path)
    elif layout == "esrgan_old":  # the original ESRGAN release
        torch.save(to_esrgan_old(sd, SMALL.num_block, 2), path)
    else:
        path = tmp_path / "w.safetensors"
        save_safetensors(path, sd, {"layout": "basicsr"})
    loaded, info = load_rrdbnet(path)
    assert loaded.arch == SMALL
    x = torch.rand(1, 3, 12, 10)
    torch.testing.assert_close(_out(loaded, x), _out(net, x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "arch, scale_in",
    [
        (RRDBArch(num_feat=8, num_block=1, num_grow_ch=4, scale=2), 2),  # Real-ESRGAN x2plus
        (RRDBArch(num_feat=8, num_block=1, num_grow_ch=4, scale=1), 1),  # x1 via unshuffle 4
        (RRDBArch(num_feat=8, num_block=1, num_grow_ch=4, scale=8, upsampler="upconv"), 8),
        (RRDBArch(num_feat=8, num_block=1, num_grow_ch=4, scale=2, upsampler="upconv"), 2),  # BSRGANx2
    ],
)
def test_scale_variants_roundtrip(tmp_path, arch, scale_in):
    net = _net(arch)
    x = torch.rand(1, 3, 8, 12)
    assert _out(net, x).shape[-2:] == (8 * scale_in, 12 * scale_in)
    torch.save({"params_ema": net.state_dict()}, tmp_path / "v.pth")
    loaded, _ = load_rrdbnet(tmp_path / "v.pth", scale=scale_in)
    assert loaded.arch.scale == scale_in and loaded.arch.unshuffle == arch.unshuffle
    old = to_esrgan_old(net.state_dict(), 1, arch.num_upconv)
    assert infer_arch(_esrgan_old(old), "x").num_upconv == arch.num_upconv


def test_method_odd_size_with_unshuffle_is_exactly_scaled(tmp_path):
    arch = RRDBArch(num_feat=8, num_block=1, num_grow_ch=4, scale=2)
    save_safetensors(tmp_path / "x2.safetensors", _net(arch).state_dict(), {})
    m = RRDBNetMethod(weights=str(tmp_path / "x2.safetensors"), scale=2)
    out = m.upscale(torch.rand(1, 3, 7, 9), 2, torch.Generator().manual_seed(0))
    assert out.shape == (1, 3, 14, 18)


class NotATensor:
    pass


def test_refuses_pickles_with_objects(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"params": {"conv_first.weight": NotATensor()}}, f)
    with pytest.raises(CheckpointError, match="evil.pth.*weights_only=True"):
        load_rrdbnet(path)


def test_refuses_non_tensor_entries_and_garbage(tmp_path):
    torch.save({"conv_first.weight": torch.zeros(1), "note": "hello"}, tmp_path / "mixed.pth")
    with pytest.raises(CheckpointError, match="mixed.pth.*not a plain tensor state dict"):
        load_rrdbnet(tmp_path / "mixed.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        load_rrdbnet(tmp_path / "junk.safetensors")
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="other.pth.*not an RRDBNet"):
        load_rrdbnet(tmp_path / "other.pth")


def test_refuses_wrong_scale_and_wrong_shapes(tmp_path):
    torch.save(_net().state_dict(), tmp_path / "x4.pth")
    with pytest.raises(CheckpointError, match="x4.pth.*x4 RRDBNet.*x2"):
        load_rrdbnet(tmp_path / "x4.pth", scale=2)
    sd = _net().state_dict()
    sd["body.0.rdb1.conv2.weight"] = torch.zeros(4, 5, 3, 3)
    torch.save(sd, tmp_path / "bent.pth")
    with pytest.raises(CheckpointError, match="bent.pth.*other shapes"):
        load_rrdbnet(tmp_path / "bent.pth")


def test_unknown_weight_reference_is_named():
    with pytest.raises(CheckpointError, match="no_such_file.pth"):
        RRDBNetMethod(weights="no_such_file.pth")


def test_committed_demo_checkpoint_beats_bicubic_on_psnr_y(tmp_path):
    """methods/checkpoints/rrdbnet_demo_x4.safetensors vs MATLAB bicubic on the embedded eval set."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from srarena.harness.data.embedded import ensure_embedded
    from srarena.harness.data.io import quantise, read_image, to_tensor
    from srarena.harness.degradations.resize import imresize
    from srarena.harness.metrics.registry import MetricContext, create_metric
    from srarena.methods.bicubic import Bicubic
    from tests.conftest import REPO

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        demo = instantiate(compose("run", overrides=["method=rrdbnet_demo"]).method)
    psnr = create_metric("psnr_y", MetricContext(scale=4))
    totals = {"demo": 0.0, "bicubic": 0.0}
    for path in sorted(ensure_embedded(tmp_path, "eval").glob("*.png")):
        hr = to_tensor(read_image(path)[0])
        lr = torch.from_numpy(quantise(imresize(hr, scale=0.25))).permute(2, 0, 1)[None].float() / 255
        for name, m in (("demo", demo), ("bicubic", Bicubic())):
            sr = to_tensor(quantise(m.upscale(lr, 4, torch.Generator()))).double()
            totals[name] += float(psnr(sr, hr.double()))
    assert totals["demo"] / 5 > totals["bicubic"] / 5 + 0.3  # measured margin: +0.41 dB
