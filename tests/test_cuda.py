"""The GPU half of issue 11's randomness, timing and memory checks (skipped without CUDA):
runner timing with CUDA events, each diffusion method on CUDA with every draw on the CPU
generator, CPU-vs-CUDA outputs within float tolerance, CUDA memory of the method itself.

Run on a GPU machine: ``python -m pytest -q tests/test_cuda.py -rs``. The comparisons switch off
TF32 (cuDNN and matmul) so that CUDA computes in full float32 like the CPU.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

from srarena.harness.profiling import measure  # noqa: E402
from srarena.harness.randomness import audit_draws, image_generator  # noqa: E402
from tests.test_memory import Alloc256, Arrays  # noqa: E402
from tests.test_randomness import METHODS, RANDOM  # noqa: E402


@pytest.fixture(autouse=True)
def full_fp32():
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def test_measure_uses_cuda_events_for_device_time():
    with measure("cuda") as m:
        torch.cuda._sleep(50_000_000)  # keeps the GPU busy; the host returns at once
    assert m.memory_kind == "cuda_max_allocated" and m.seconds > 1e-3


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_diffusion_methods_on_cuda_draw_on_the_cpu_and_match_the_cpu(name):
    lr = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    cpu = METHODS[name]().upscale(lr, 4, image_generator(3, "x"))
    method = METHODS[name]().to("cuda")
    with torch.inference_mode(), audit_draws() as log:
        gpu = method.upscale(lr.cuda(), 4, image_generator(3, "x"))
    assert gpu.device.type == "cuda" and log.draws and log.violations == []
    diff = (gpu.cpu() - cpu).abs()
    print(f"{name}: CPU vs CUDA max |diff| {diff.max().item():.2e}, mean {diff.mean().item():.2e}")
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=0)


def test_runner_on_cuda_times_with_events_and_measures_the_methods_memory(tmp_path):
    from srarena.harness.runner import Runner

    result = Runner(Alloc256(), "alloc256", Arrays(2, 16), ["psnr_y"], tmp_path / "a", device="cuda",
                    progress=False, save_images=False).run()
    agg = result.aggregates
    assert result.memory_kind == "cuda_max_allocated" and agg["n_failed"] == 0
    assert agg["peak_memory_mb"] >= 256 and agg["time_per_image_s"] > 0
    sr3 = METHODS["sr3"]().to("cuda")
    result = Runner(sr3, "sr3", Arrays(2, 8), ["psnr_y"], tmp_path / "b", device="cuda", progress=False).run()
    assert result.aggregates["n_failed"] == 0 and result.aggregates["steps"] == 4
    print(f"sr3 tiny on CUDA: {result.aggregates['time_per_image_s']:.4f} s/image, "
          f"{result.aggregates['peak_memory_mb']:.1f} MB")
