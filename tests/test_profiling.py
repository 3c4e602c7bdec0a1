"""FLOPs against analytic counts (and fvcore), per call and per image through a cost model."""

from __future__ import annotations

import pytest
import torch

from srarena.harness.profiling import count_flops, count_params, mark_step, measure, profile_cost


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 4, 1), torch.nn.Flatten(), torch.nn.Linear(4 * 16 * 16, 10),
    ).eval()


def _net_macs(h=16, w=16):
    return 8 * 3 * 9 * h * w + 4 * 8 * 1 * h * w + 4 * h * w * 10


def test_conv_flops_equal_analytic_count():
    conv = torch.nn.Conv2d(3, 16, 3, padding=1)
    x = torch.zeros(2, 3, 32, 32)
    assert count_flops(conv, x) == 2 * (2 * 16 * 3 * 9 * 32 * 32)  # FLOPs = 2 x MACs


def test_small_net_flops_equal_analytic_count():
    assert count_flops(_net(), torch.zeros(1, 3, 16, 16)) == 2 * _net_macs()


def test_flops_match_fvcore_macs():
    fvcore = pytest.importorskip("fvcore.nn")
    x = torch.zeros(1, 3, 16, 16)
    macs = fvcore.FlopCountAnalysis(_net(), x).unsupported_ops_warnings(False).total()
    assert count_flops(_net(), x) == 2 * macs


class _TwoNetMethod:
    """A 'diffusion-like' method: the denoiser runs `steps` times, a decoder once."""

    def __init__(self, steps=3):
        self.nets = torch.nn.ModuleDict({"unet": torch.nn.Conv2d(3, 3, 3, padding=1),
                                         "decoder": torch.nn.Conv2d(3, 3, 1)})
        self.steps = steps

    def upscale(self, lr, scale, generator):
        x = torch.nn.functional.interpolate(lr, scale_factor=scale)
        for _ in range(self.steps):
            mark_step()
            x = self.nets["unet"](x)
        return self.nets["decoder"](x)

    def num_params(self):
        return count_params(self.nets)

    def cost_model(self):
        from srarena.methods.base import CostModel

        return CostModel(per_step=("unet",), per_image=("decoder",), steps=self.steps,
                         calls={"unet": self.steps, "decoder": 1})


def test_per_call_and_per_image_flops_from_cost_model():
    m = _TwoNetMethod(steps=3)
    rep = profile_cost(m, torch.zeros(1, 3, 8, 8), scale=2)
    hw = 16 * 16
    per_call = {k: mc.flops_per_call for k, mc in rep.modules.items()}
    assert per_call == {"unet": 2 * 3 * 3 * 9 * hw, "decoder": 2 * 3 * 3 * hw}
    assert {k: mc.calls for k, mc in rep.modules.items()} == {"unet": 3, "decoder": 1}
    assert rep.flops_per_image == 3 * per_call["unet"] + per_call["decoder"]
    assert rep.steps == 3 and rep.flops_per_step == per_call["unet"]
    # params_active = the per-step network + the once-per-image one (issue 11: nothing vanishes)
    assert rep.params == 84 + 12 and (rep.params_step, rep.params_once, rep.params_active) == (84, 12, 96)
    assert rep.as_metrics()["flops_call_unet_g"] == per_call["unet"] / 1e9 and not rep.warnings


def test_measure_on_cpu_reports_time():
    with measure("cpu") as m:
        _net()(torch.zeros(1, 3, 16, 16))
    assert m.seconds > 0 and m.working_memory_bytes == 0  # CPU memory: cpu_memory_peak (untimed pass)
