"""Honest memory (issue 11, item 6): `peak_memory_mb` is what the method needed during
`upscale` (its weights + the peak of what it allocated), not the process high-water mark."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from srarena.harness.data.paired import Pair
from srarena.harness.profiling import cpu_memory_peak, resident_bytes
from srarena.harness.runner import Runner
from srarena.methods.base import BaseMethod
from srarena.methods.bicubic import Bicubic

MB = 2**20


class Arrays:
    """A dataset of fixed random images of one LR size (no files, no resizing cost)."""

    def __init__(self, n: int, lr_size: int, scale: int = 4) -> None:
        self.ids, self.scale, self.name = [f"img{i}" for i in range(n)], scale, f"arrays{lr_size}"
        self.lr_size = lr_size

    def load(self, image_id: str) -> Pair:
        rng = np.random.default_rng(int(image_id[3:]))
        s, k = self.lr_size, self.scale
        return Pair(image_id, rng.integers(0, 256, (s * k, s * k, 3), dtype=np.uint8),
                    rng.integers(0, 256, (s, s, 3), dtype=np.uint8))


class Alloc256(BaseMethod):
    """Needs a 256 MB work buffer for every image."""

    def upscale(self, lr, scale, generator):
        buf = torch.ones(64 * MB, dtype=torch.float32, device=lr.device)  # 256 MB
        return torch.nn.functional.interpolate(lr, scale_factor=scale) * buf[0]


def run_job(tmp_path, method, n=2, lr_size=16, tag="job") -> float:
    result = Runner(method, tag, Arrays(n, lr_size), ["psnr_y"], tmp_path / tag, progress=False,
                    save_images=False).run()
    assert result.aggregates["n_failed"] == 0 and result.memory_kind == "cpu_profiler_live_bytes"
    return result.aggregates["peak_memory_mb"]


def test_cpu_memory_peak_counts_live_bytes():
    with cpu_memory_peak() as mem:
        a = torch.ones(16 * MB)  # 64 MB
        b = a * 2  # +64 MB while both live
        del a
        c = b + 1  # 128 MB again: a was freed
        del b, c
    assert mem.working_bytes == pytest.approx(128 * MB, rel=0.01) and mem.events >= 6


def test_a_method_that_allocates_256_mb_reports_at_least_256_mb(tmp_path):
    assert run_job(tmp_path, Alloc256()) >= 256


def test_bicubic_on_256x256_reports_under_64_mb(tmp_path):
    peak = run_job(tmp_path, Bicubic(), n=1, lr_size=256)
    assert 12 < peak < 64  # the 1024x1024x3 float32 output alone is 12 MB


def test_a_jobs_figure_does_not_depend_on_earlier_jobs(tmp_path):
    alone = run_job(tmp_path, Bicubic(), lr_size=64, tag="alone")
    run_job(tmp_path, Alloc256(), tag="heavy")
    after = run_job(tmp_path, Bicubic(), lr_size=64, tag="after")
    assert after == alone  # the old process-peak RSS made this >= 256 MB


def test_weights_count_once_and_add_to_the_working_peak(tmp_path):
    from srarena.methods.rrdbnet import RRDBNetMethod

    m = RRDBNetMethod(arch={"num_feat": 8, "num_block": 1, "num_grow_ch": 4})
    assert resident_bytes(m) == 4 * m.num_params()  # float32, no buffers
    shared = torch.nn.Linear(4, 4)
    tied = BaseMethod()
    tied.nets["a"], tied.nets["b"] = shared, shared
    assert resident_bytes(tied) == 4 * (16 + 4)
    peak = run_job(tmp_path, m)
    assert peak * MB > resident_bytes(m)


def test_memory_is_not_measured_when_profiling_is_off(tmp_path):
    result = Runner(Bicubic(), "bicubic", Arrays(1, 16), ["psnr_y"], tmp_path, progress=False, profile=False).run()
    assert math.isnan(result.aggregates["peak_memory_mb"]) and result.memory_kind == "not_measured"
    assert "flops_per_image_g" not in result.aggregates
