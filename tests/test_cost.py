"""Measured cost (issue 11, item 5): per-step FLOPs and active parameters of routed experts,
data-dependent call counts, FLOPs at two input sizes, declared-vs-measured warnings."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from srarena.harness.profiling import count_params, mark_step, profile_cost
from srarena.methods.base import BaseMethod, CostModel
from srarena.methods.diffusion import make_schedule, sample


def conv_flops(cin: int, cout: int, k: int, h: int, w: int) -> int:
    return 2 * cin * cout * k * k * h * w  # FLOPs = 2 x MACs (no bias term counted)


class RoutedExperts(BaseMethod):
    """Four expert denoisers, each owning a quarter of the timesteps (SS-MoE's routing), a
    conditioning encoder shared by all steps, a decoder that runs once per image."""

    def __init__(self, steps: int = 8, T: int = 100, widths=(8, 8, 8, 8)) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.nets["shared"] = nn.Conv2d(3, 4, 1)
        self.nets["experts"] = nn.ModuleList(nn.Conv2d(3 + 4, 3, 3, padding=1) for _ in widths)
        self.nets["decoder"] = nn.Conv2d(3, 3, 1)
        self.schedule = make_schedule("linear", T)
        self.steps = steps

    def cost_model(self) -> CostModel:
        return CostModel(per_step=("shared", "experts"), per_image=("decoder",), steps=self.steps)

    def upscale(self, lr, scale, generator):
        up = nn.functional.interpolate(lr, scale_factor=scale)
        experts, T = self.nets["experts"], self.schedule.T

        def denoise(x, t):
            cond = self.nets["shared"](up)
            return experts[int(t[0]) * len(experts) // T](torch.cat([x, cond], 1))

        x = sample(denoise, tuple(up.shape), self.schedule, generator, steps=self.steps, spacing="trailing")
        return self.nets["decoder"](x)


def test_routed_experts_flops_per_step_and_active_params():
    m = RoutedExperts(steps=8)
    rep = profile_cost(m, torch.rand(1, 3, 6, 5), 2)
    h, w = 12, 10
    expert = conv_flops(7, 3, 3, h, w)
    shared = conv_flops(3, 4, 1, h, w)
    decoder = conv_flops(3, 3, 1, h, w)
    assert rep.steps == 8
    assert rep.flops_per_step == expert + shared  # one expert (whichever is routed) + the shared encoder
    assert rep.flops_per_image == 8 * (expert + shared) + decoder
    # every expert ran (8 steps over 4 quarters of the timesteps), two calls each
    assert [rep.modules[f"experts.{i}"].calls for i in range(4)] == [2, 2, 2, 2]
    one_expert, shared_p = count_params(m.nets["experts"][0]), count_params(m.nets["shared"])
    assert rep.params_step == one_expert + shared_p
    assert rep.params_once == count_params(m.nets["decoder"])
    assert rep.params_active == one_expert + shared_p + count_params(m.nets["decoder"])
    assert rep.params == m.num_params() == 4 * one_expert + shared_p + count_params(m.nets["decoder"])
    metrics = rep.as_metrics()
    assert metrics["params_step_m"] == rep.params_step / 1e6 and metrics["calls_experts_2"] == 2
    assert not rep.warnings


def test_experts_of_different_size_report_the_largest_step():
    """Active parameters per step are those of the heaviest step, not an average."""

    class Uneven(RoutedExperts):
        def __init__(self):
            super().__init__(steps=4)
            self.nets["experts"][3] = nn.Sequential(nn.Conv2d(7, 16, 3, padding=1), nn.Conv2d(16, 3, 1))

    m = Uneven()
    rep = profile_cost(m, torch.rand(1, 3, 4, 4), 2)
    assert rep.params_step == count_params(m.nets["experts"][3]) + count_params(m.nets["shared"])


class Adaptive(BaseMethod):
    """A module called a data-dependent number of times (an adaptive solver's function)."""

    def __init__(self) -> None:
        super().__init__()
        self.nets["f"] = nn.Conv2d(3, 3, 1, bias=False)
        nn.init.eye_(self.nets["f"].weight[:, :, 0, 0])
        self.nets["f"].weight.data *= 0.5
        self.expected_calls = 0

    def cost_model(self) -> CostModel:
        return CostModel(per_step=("f",), evals=("f",), steps=2)

    def upscale(self, lr, scale, generator):
        x = nn.functional.interpolate(lr, scale_factor=scale)
        out = torch.zeros_like(x)
        for k in range(2):
            mark_step()
            y = x * (k + 1)
            # halve until below a threshold: the count depends on the input's values
            while y.abs().max() > 1e-3:
                y = self.nets["f"](y)
                self.expected_calls += 1
            out = out + y
        return out


@pytest.mark.parametrize("amplitude", [1.0, 1000.0])
def test_data_dependent_calls_are_counted_exactly(amplitude):
    m = Adaptive()
    rep = profile_cost(m, torch.full((1, 3, 4, 4), amplitude), 2)
    n = m.expected_calls
    assert n > 2 and rep.modules["f"].calls == n  # every call, not a declared count
    assert rep.nfe_per_step == n / 2 and rep.steps == 2
    assert rep.flops_per_image == n * conv_flops(3, 3, 1, 8, 8)


def test_flops_at_two_input_sizes():
    m = RoutedExperts(steps=4)
    small = profile_cost(m, torch.rand(1, 3, 6, 5), 2)
    big = profile_cost(m, torch.rand(1, 3, 12, 10), 2)
    assert small.flops_per_image == 4 * (conv_flops(7, 3, 3, 12, 10) + conv_flops(3, 4, 1, 12, 10)) + conv_flops(3, 3, 1, 12, 10)
    assert big.flops_per_image == 4 * small.flops_per_image  # convs scale with the pixel count
    assert big.params_active == small.params_active


def test_a_declared_cost_model_that_disagrees_is_a_warning_with_both_numbers(caplog):
    class Wrong(RoutedExperts):
        def cost_model(self):
            return CostModel(per_step=("shared", "experts"), per_image=("decoder",), steps=50,
                             calls={"decoder": 2, "experts.0": 1})

    with caplog.at_level(logging.WARNING):
        rep = profile_cost(Wrong(steps=8), torch.rand(1, 3, 4, 4), 2)
    text = " | ".join(rep.warnings)
    assert "declares 50 sampling steps, 8 were measured" in text
    assert "declares 2 calls of 'decoder' per image, 1 were measured" in text
    assert "declares 1 calls of 'experts.0' per image, 2 were measured" in text
    assert rep.steps == 8 and "8 were measured" in caplog.text  # the measurement wins


def test_a_network_that_never_runs_is_reported():
    class Idle(RoutedExperts):
        def cost_model(self):
            return CostModel(per_step=("shared", "experts"), per_image=("decoder", "idle"), steps=8)

    m = Idle(steps=8)
    m.nets["idle"] = nn.Conv2d(3, 3, 1)
    rep = profile_cost(m, torch.rand(1, 3, 4, 4), 2)
    assert rep.warnings == ["per_image network 'idle' never ran"] and rep.params_once == count_params(m.nets["decoder"])
    with pytest.raises(ValueError, match="'nope'.*not a module"):
        profile_cost(type("X", (Idle,), {"cost_model": lambda self: CostModel(per_step=("nope",))})(), torch.rand(1, 3, 4, 4), 2)


def test_feed_forward_method_without_marks_is_one_step():
    from srarena.methods.rrdbnet import RRDBNetMethod

    m = RRDBNetMethod(arch={"num_feat": 8, "num_block": 1, "num_grow_ch": 4})
    rep = profile_cost(m, torch.rand(1, 3, 8, 8), 4)
    assert rep.steps == 1 and rep.flops_per_step == rep.flops_per_image > 0
    assert rep.params_step == rep.params == m.num_params() and rep.params_once == 0


def test_mark_step_outside_profiling_is_a_no_op():
    mark_step()  # nothing records: must not raise
