"""Device-independent randomness (issue 11, item 3), checked on the CPU: every draw of every
method uses the CPU generator of (seed, image id) and draws on the CPU — also when the method
runs on another device (the `meta` device stands in for a GPU here) — and outputs do not depend
on the run or the order of images. The same checks on a real GPU are in test_cuda.py."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from srarena.harness.randomness import audit_draws, image_generator
from srarena.methods.bicubic import Bicubic
from srarena.methods.rrdbnet import RRDBNetMethod
from srarena.methods.sr3 import SR3

TINY_SR3 = dict(
    unet={"in_channels": 6, "out_channels": 3, "ch": 8, "ch_mult": [1, 2], "num_res_blocks": 1,
          "attn_levels": [1], "dropout": 0.0, "groups": 4},
    schedule={"name": "linear", "timesteps": 100},
    sampler={"name": "ddpm", "steps": 4},  # ancestral: noise at every step
)


@functools.lru_cache(maxsize=1)
def tiny_ldm():
    pytest.importorskip("diffusers")
    from srarena.methods.ldm_sr import LDMSR, build_pipeline
    from tests.test_ldm_sr import TINY

    torch.manual_seed(0)
    return LDMSR.from_pipeline(build_pipeline(TINY), steps=3, eta=1.0, pad_multiple=2)


METHODS = {
    "sr3": lambda: SR3(**TINY_SR3),
    "sr3_residual": lambda: SR3(**TINY_SR3, target="residual", prediction="x0"),
    "ldm_sr": tiny_ldm,
    "rrdbnet": lambda: RRDBNetMethod(arch={"num_feat": 8, "num_block": 1, "num_grow_ch": 4}),
    "bicubic": Bicubic,
}
RANDOM = {"sr3", "sr3_residual", "ldm_sr"}


def test_image_generator_is_cpu_and_depends_on_seed_and_id_only():
    g = image_generator(0, "img1")
    assert g.device.type == "cpu"
    a, b = torch.rand(4, generator=g), torch.rand(4, generator=image_generator(0, "img1"))
    assert torch.equal(a, b) and not torch.equal(a, torch.rand(4, generator=image_generator(0, "img2")))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_draw_uses_the_cpu_generator(name):
    method = METHODS[name]()
    lr = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode(), audit_draws() as log:
        out = method.upscale(lr, 4, image_generator(0, "a"))
    assert out.shape == (1, 3, 24, 24)
    assert log.violations == []
    assert (len(log.draws) > 0) == (name in RANDOM)  # the audit does see the diffusion methods' draws


@pytest.mark.parametrize("name", ["sr3", "sr3_residual"])
def test_draws_stay_on_the_cpu_when_the_method_runs_elsewhere(name):
    """On the `meta` device (shapes only, like a GPU in that it is not the CPU) every draw is
    still made on the CPU with the CPU generator, then moved."""
    method = METHODS[name]().to("meta")
    with torch.inference_mode(), audit_draws() as log:
        out = method.upscale(torch.rand(1, 3, 6, 6).to("meta"), 4, image_generator(0, "a"))
    assert out.device.type == "meta" and out.shape == (1, 3, 24, 24)
    randn = [d for d in log.draws if d.op == "randn"]
    assert len(randn) == 1 + 3 and all(d.ok for d in randn)  # x_T + one per step but the last


def test_audit_flags_global_and_device_draws():
    with audit_draws() as log:
        torch.randn(3)  # global RNG
        torch.randn_like(torch.zeros(2))  # always the global RNG
        torch.randn(3, generator=torch.Generator().manual_seed(0))
        torch.nn.functional.dropout(torch.ones(4), 0.5, training=True)
        torch.nn.functional.dropout(torch.ones(4), 0.5, training=False)  # no draw
    assert [d.op for d in log.violations] == ["randn", "randn_like", "dropout"] and len(log.draws) == 4


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_outputs_equal_between_runs(name):
    method = METHODS[name]()
    lr = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    a = method.upscale(lr, 4, image_generator(0, "x"))
    torch.manual_seed(1234)  # the global RNG must not matter
    b = method.upscale(lr, 4, image_generator(0, "x"))
    c = method.upscale(lr, 4, image_generator(0, "y"))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_runner_outputs_do_not_depend_on_image_order(tmp_path, photos):
    from srarena.harness.data.io import read_image, write_png
    from srarena.harness.data.paired import PairedFolderDataset
    from srarena.harness.runner import Runner

    hr = tmp_path / "HR"
    for i, (name, img) in enumerate(photos.items()):
        write_png(hr / f"{name}.png", img[100 + 8 * i : 132 + 8 * i, 100:128])
    outs = {}
    for order in ("forward", "reverse"):
        ds = PairedFolderDataset(hr, scale=4)
        if order == "reverse":
            ds.ids = list(reversed(ds.ids))
        Runner(SR3(**TINY_SR3), "sr3", ds, ["psnr_y"], tmp_path / order, progress=False, warmup=0,
               profile=False, seed=7).run()
        outs[order] = {p.stem: read_image(p)[0] for p in (tmp_path / order / "images").glob("*.png")}
    assert sorted(outs["forward"]) == sorted(photos)
    for name in photos:
        np.testing.assert_array_equal(outs["forward"][name], outs["reverse"][name])
