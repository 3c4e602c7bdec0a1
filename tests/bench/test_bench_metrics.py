"""Speed: srarena's one-pass evaluator vs pyiqa metric by metric, same folder, same networks.

Stand-in weights (random values, real architectures and sizes) sit in a temporary torch hub and
weights dir, so the timing is real and the scores are meaningless. The paper set is used: PSNR-Y,
SSIM-Y, LPIPS (AlexNet), FID (pytorch-fid Inception in both), MUSIQ, NIQE.
Run: ``pytest -m bench tests/bench/test_bench_metrics.py -s``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.bench

N_IMAGES, SIZE = 8, 256


@pytest.fixture(scope="module")
def bench_env(tmp_path_factory):
    from srarena.harness.metrics import standins

    root = tmp_path_factory.mktemp("bench")
    hub, wd = root / "torch" / "hub", root / "weights"
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(root / "torch"))
    mp.setenv("SRARENA_WEIGHTS", str(wd))
    mp.setenv("SRARENA_CACHE", str(root / "cache"))
    standins.write_torchvision("alexnet", hub / "checkpoints" / "alexnet-owt-7be5be79.pth")
    standins.write_pt_inception(wd / "pt_inception-2015-12-05-6726825d.pth")
    standins.write_musiq(wd / "musiq_koniq_ckpt-e95806b9.pth")
    from srarena.harness.metrics.niqe import NIQE_WEIGHTS
    from srarena.harness.weights import resolve_weights

    niqe = resolve_weights(NIQE_WEIGHTS)
    (hub / "pyiqa").mkdir(parents=True)
    for f in (wd / "pt_inception-2015-12-05-6726825d.pth", wd / "musiq_koniq_ckpt-e95806b9.pth", niqe):
        shutil.copy(f, hub / "pyiqa" / f.name)
    import lpips

    shutil.copy(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth",
                hub / "pyiqa" / "LPIPS_v0.1_alex-df73285e.pth")
    import pyiqa.utils.download_util as du

    mp.setattr(du, "DEFAULT_CACHE_DIR", str(hub / "pyiqa"))  # pyiqa fixes it at import time
    from srarena.harness.data.io import write_png

    rng = np.random.default_rng(0)
    import skimage.data as d

    base = [d.astronaut(), d.coffee(), d.chelsea()]
    for i in range(N_IMAGES):
        src = base[i % 3]
        y, x = rng.integers(0, src.shape[0] - SIZE), rng.integers(0, src.shape[1] - SIZE)
        hr = src[y:y + SIZE, x:x + SIZE]
        sr = np.clip(hr.astype(int) + rng.integers(-12, 12, hr.shape), 0, 255).astype(np.uint8)
        write_png(root / "hr" / f"{i:03d}.png", hr)
        write_png(root / "sr" / f"{i:03d}.png", sr)
    yield root
    mp.undo()


def run_srarena(root: Path, reference_digest: str | None = None) -> float:
    from srarena.harness.data.io import read_image
    from srarena.harness.metrics.evaluator import Evaluator
    from srarena.harness.metrics.registry import MetricContext

    t0 = time.perf_counter()
    opts = {"fid_reference_digest": reference_digest} if reference_digest else {}
    ev = Evaluator(["psnr_y", "ssim_y", "lpips", "fid_legacy_pytorch", "musiq", "niqe"],
                   MetricContext(scale=4, options=opts))
    assert ev.skipped == {}, ev.skipped
    batch = []
    for p in sorted((root / "sr").iterdir()):
        batch.append((read_image(p)[0], read_image(root / "hr" / p.name)[0]))
        if len(batch) == 4:
            ev.update_batch(batch)
            batch = []
    if batch:
        ev.update_batch(batch)
    ev.finalize()
    return time.perf_counter() - t0


def run_pyiqa(root: Path) -> float:
    import pyiqa
    import torch

    t0 = time.perf_counter()
    srs = sorted((root / "sr").iterdir())
    for name, kw in [("psnr", dict(test_y_channel=True, color_space="ycbcr", crop_border=4)),
                     ("ssim", dict(test_y_channel=True, color_space="ycbcr", crop_border=4)),
                     ("lpips", {}), ("musiq", {}), ("niqe", {})]:
        m = pyiqa.create_metric(name, device=torch.device("cpu"), **kw)
        for p in srs:
            m(str(p), str(root / "hr" / p.name)) if m.metric_mode == "FR" else m(str(p))
    fid = pyiqa.create_metric("fid", device=torch.device("cpu"))
    fid(str(root / "sr"), str(root / "hr"), num_workers=0, verbose=False)
    return time.perf_counter() - t0


def test_bench_one_pass_vs_pyiqa_metric_by_metric(bench_env):
    import torch

    from srarena.harness.data.io import read_image
    from srarena.harness.metrics.fid import hr_set_digest

    torch.set_num_threads(max(1, torch.get_num_threads()))
    t_pyiqa = run_pyiqa(bench_env)
    t_cold = run_srarena(bench_env)
    digest = hr_set_digest(read_image(p)[0] for p in sorted((bench_env / "hr").iterdir()))
    t_warm = run_srarena(bench_env, reference_digest=digest)
    n = N_IMAGES
    print(f"\n{n} pairs {SIZE}x{SIZE}, paper set (psnr_y, ssim_y, lpips, fid, musiq, niqe), CPU,"
          f" {torch.get_num_threads()} threads")
    print(f"pyiqa metric by metric : {t_pyiqa:7.1f} s  {n / t_pyiqa:6.3f} img/s")
    print(f"srarena one pass (cold): {t_cold:7.1f} s  {n / t_cold:6.3f} img/s  ratio {t_pyiqa / t_cold:.2f}x")
    print(f"srarena one pass (HR FID stats cached): {t_warm:7.1f} s  {n / t_warm:6.3f} img/s  "
          f"ratio {t_pyiqa / t_warm:.2f}x")
    assert t_cold > 0
