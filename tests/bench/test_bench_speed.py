"""Speed regression benchmarks (``-m bench``; skipped by default): per-image latency of every
configured method on a small input, and throughput of every per-image metric preset.

Workflow (save a baseline, compare later, fail on a slowdown): see reports/BENCHMARKS.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.bench

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
METHODS = sorted(p.stem for p in (CONF / "method").glob("*.yaml"))
LR_SIZE = 32          # LR side in pixels: small enough for CPU, large enough to be dominated by compute
METRIC_SIZE = 192     # HR side for metric throughput (MS-SSIM needs > 160 for its 5 scales)
BENCH_STEPS = 2       # diffusion samplers run this many steps: latency per step × steps = per image


def _method(name: str, scale: int):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from omegaconf import OmegaConf

    overrides = [f"method={name}", f"scale={scale}", "device=cpu"]
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("run", overrides=overrides)
        steps = OmegaConf.select(cfg, "method.sampler.steps")
        if steps is not None:
            cfg = compose("run", overrides=overrides + [f"method.sampler.steps={BENCH_STEPS}"])
    return instantiate(cfg.method), steps


@pytest.mark.parametrize("name", METHODS)
def test_method_latency_per_image(benchmark, name):
    from srarena.harness.weights import MissingWeightsError
    from srarena.methods.base import MethodError

    try:
        method, steps = _method(name, 4)
    except Exception as e:  # noqa: BLE001 — weights absent, optional dependency missing
        if isinstance(e, (MissingWeightsError, MethodError, ImportError)) or isinstance(e.__cause__, (MissingWeightsError, MethodError, ImportError)):
            pytest.skip(f"{name}: {e}")
        raise
    scale = 4 if not getattr(method, "scales", None) or 4 in method.scales else method.scales[0]
    lr = torch.rand(1, 3, LR_SIZE, LR_SIZE, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)

    def once():
        with torch.inference_mode():
            return method.upscale(lr, scale, gen)

    out = benchmark.pedantic(once, rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape[-1] == LR_SIZE * scale
    benchmark.extra_info.update(method=name, lr_size=LR_SIZE, scale=scale,
                                steps=BENCH_STEPS if steps is not None else None, configured_steps=steps)


def _per_image_presets() -> list[str]:
    from srarena.harness.metrics.registry import available_metrics, get_spec

    return [m for m in available_metrics() if get_spec(m).kind in ("fr", "nr")]


@pytest.mark.parametrize("name", _per_image_presets())
def test_metric_throughput(benchmark, name):
    from srarena.harness.metrics.registry import MetricContext, create_metric, get_spec

    try:
        metric = create_metric(name, MetricContext(scale=4, device="cpu"))
    except Exception as e:  # noqa: BLE001 — weights or optional dependency absent
        pytest.skip(f"{name}: {type(e).__name__}: {e}")
    rng = np.random.default_rng(0)
    hr = torch.from_numpy(rng.integers(0, 256, (1, 3, METRIC_SIZE, METRIC_SIZE)).astype(np.float64) / 255)
    sr = (hr + torch.from_numpy(rng.normal(0, 0.02, hr.shape))).clamp(0, 1).mul(255).round().div(255)
    ref = hr if get_spec(name).kind == "fr" else None
    value = benchmark.pedantic(lambda: metric(sr, ref), rounds=3, iterations=1, warmup_rounds=1)
    assert torch.isfinite(torch.as_tensor(value)).all()
    benchmark.extra_info.update(metric=name, size=METRIC_SIZE, images_per_call=1)
