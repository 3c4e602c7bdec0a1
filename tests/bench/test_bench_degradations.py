"""Speed: srarena's degradation vs BasicSR's reference (Real-ESRGAN pipeline from BasicSR ops).

Run with ``python -m pytest tests/bench/test_bench_degradations.py -m bench -s``. Both sides degrade
the same eight 512x512 photos, including the random draws and kernel construction. BasicSR runs as
in Real-ESRGAN training: batches of 4 sharing the resize draws, DiffJPEG; srarena draws every
parameter per image and runs per sample (the price of batch independence), libjpeg for JPEG.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from srarena.harness.degradations.pipeline import degrade_one
from srarena.harness.degradations.presets import load_preset
from srarena.harness.degradations.sampling import sample_record

pytestmark = pytest.mark.bench
CONF = Path(__file__).resolve().parents[2] / "conf" / "degradation"
N_IMAGES, BATCH, ROUNDS = 8, 4, 3


@pytest.fixture(scope="module")
def images(photos) -> torch.Tensor:
    out = []
    for img in list(photos.values()) * 3:
        sq = cv2.resize(img, (512, 512), interpolation=cv2.INTER_CUBIC) if img.shape[:2] != (512, 512) else img
        out.append(torch.from_numpy(sq).permute(2, 0, 1).float() / 255)
    return torch.stack(out[:N_IMAGES]).contiguous()  # NCHW-contiguous: BasicSR views, not reshapes


class BasicSRReference:
    """RealESRGANDataset's kernel draws + RealESRGANModel.feed_data's ops, from BasicSR 1.4.2."""

    def __init__(self, opt: dict):
        from basicsr.utils import DiffJPEG
        from basicsr.utils.img_process_util import USMSharp

        self.opt = opt
        self.jpeger = DiffJPEG(differentiable=False)
        self.usm = USMSharp()
        self.kernel_range = [2 * v + 1 for v in range(3, 11)]
        self.pulse = torch.zeros(21, 21)
        self.pulse[10, 10] = 1

    def _kernel(self, sfx: str) -> torch.Tensor:
        from basicsr.data.degradations import circular_lowpass_kernel, random_mixed_kernels

        o = self.opt
        size = random.choice(self.kernel_range)
        if np.random.uniform() < o[f"sinc_prob{sfx}"]:
            omega = np.random.uniform(np.pi / 3, np.pi) if size < 13 else np.random.uniform(np.pi / 5, np.pi)
            k = circular_lowpass_kernel(omega, size, pad_to=False)
        else:
            k = random_mixed_kernels(o[f"kernel_list{sfx}"], o[f"kernel_prob{sfx}"], size, o[f"blur_sigma{sfx}"],
                                     o[f"blur_sigma{sfx}"], [-math.pi, math.pi], o[f"betag_range{sfx}"],
                                     o[f"betap_range{sfx}"], noise_range=None)
        p = (21 - size) // 2
        return torch.FloatTensor(np.pad(k, ((p, p), (p, p))))

    def _sinc(self) -> torch.Tensor:
        from basicsr.data.degradations import circular_lowpass_kernel

        if np.random.uniform() < self.opt["final_sinc_prob"]:
            size = random.choice(self.kernel_range)
            return torch.FloatTensor(circular_lowpass_kernel(np.random.uniform(np.pi / 3, np.pi), size, pad_to=21))
        return self.pulse

    def _resize(self, x, sfx, size=None):
        o = self.opt
        d = random.choices(["up", "down", "keep"], o[f"resize_prob{sfx}"])[0]
        s = np.random.uniform(1, o[f"resize_range{sfx}"][1]) if d == "up" else np.random.uniform(o[f"resize_range{sfx}"][0], 1) if d == "down" else 1
        mode = random.choice(["area", "bilinear", "bicubic"])
        if size is None:
            return F.interpolate(x, scale_factor=s, mode=mode)
        return F.interpolate(x, size=(int(size[0] * s), int(size[1] * s)), mode=mode)

    def _noise(self, x, sfx):
        from basicsr.data.degradations import random_add_gaussian_noise_pt, random_add_poisson_noise_pt

        o = self.opt
        if np.random.uniform() < o[f"gaussian_noise_prob{sfx}"]:
            return random_add_gaussian_noise_pt(x, sigma_range=o[f"noise_range{sfx}"], clip=True, rounds=False, gray_prob=o[f"gray_noise_prob{sfx}"])
        return random_add_poisson_noise_pt(x, scale_range=o[f"poisson_scale_range{sfx}"], gray_prob=o[f"gray_noise_prob{sfx}"], clip=True, rounds=False)

    def __call__(self, gt: torch.Tensor) -> torch.Tensor:
        from basicsr.utils.img_process_util import filter2D

        o, sf = self.opt, self.opt["scale"]
        b = gt.shape[0]
        k1 = torch.stack([self._kernel("") for _ in range(b)])
        k2 = torch.stack([self._kernel("2") for _ in range(b)])
        sinc = torch.stack([self._sinc() for _ in range(b)])
        h, w = gt.shape[-2:]
        x = self.usm(gt) if o["gt_usm"] else gt
        x = self._resize(filter2D(x, k1), "")
        x = self._noise(x, "")
        # DiffJPEG returns a non-contiguous tensor that filter2D's .view rejects on CPU.
        x = self.jpeger(torch.clamp(x, 0, 1), quality=x.new_zeros(b).uniform_(*o["jpeg_range"])).contiguous()
        if np.random.uniform() < o["second_blur_prob"]:
            x = filter2D(x, k2)
        x = self._noise(self._resize(x, "2", size=(h / sf, w / sf)), "2")
        mode = random.choice(["area", "bilinear", "bicubic"])
        q = x.new_zeros(b).uniform_(*o["jpeg_range2"])
        if np.random.uniform() < 0.5:
            x = filter2D(F.interpolate(x, size=(h // sf, w // sf), mode=mode), sinc)
            x = self.jpeger(torch.clamp(x, 0, 1), quality=q)
        else:
            x = self.jpeger(torch.clamp(x, 0, 1), quality=q).contiguous()
            x = filter2D(F.interpolate(x, size=(h // sf, w // sf), mode=mode), sinc)
        return torch.clamp((x * 255.0).round(), 0, 255) / 255.0


@pytest.mark.parametrize("preset_name", ["realesrgan", "stablesr"])
def test_bench_degradation_vs_basicsr(basicsr, benchmark, images, preset_name):
    raw = yaml.safe_load((CONF / f"{preset_name}.yaml").read_text())
    preset = load_preset(raw)
    ref = BasicSRReference(raw)
    random.seed(0), np.random.seed(0), torch.manual_seed(0)

    def ours():
        for i in range(N_IMAGES):
            degrade_one(images[i : i + 1], sample_record(preset, 0, f"bench{i}"))

    def theirs():
        for i in range(0, N_IMAGES, BATCH):
            ref(images[i : i + BATCH])

    with torch.no_grad():
        ours(), theirs()  # warm-up (allocator, lazy imports)
        t_theirs = []
        for _ in range(ROUNDS):
            t0 = time.perf_counter()
            theirs()
            t_theirs.append(time.perf_counter() - t0)
        benchmark.pedantic(ours, rounds=ROUNDS, iterations=1)
    ips_ours = N_IMAGES / benchmark.stats.stats.median
    ips_theirs = N_IMAGES / statistics.median(t_theirs)
    benchmark.extra_info.update(images_per_s_srarena=ips_ours, images_per_s_basicsr=ips_theirs, ratio=ips_ours / ips_theirs)
    print(
        f"\n[{preset_name}] 512x512 -> 128x128, {torch.get_num_threads()} threads: srarena {ips_ours:.2f} img/s, "
        f"BasicSR {ips_theirs:.2f} img/s, ratio {ips_ours / ips_theirs:.2f}x"
    )
    assert ips_ours / ips_theirs >= 1.0
