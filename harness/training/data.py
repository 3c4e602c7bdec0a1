"""Training pairs: random HR crops of the embedded ``train`` split, LR made by a degradation preset.

Every batch is a pure function of (seed, step): crop positions, flips and the degradation's
random parameters are drawn from generators seeded by the step, so a resumed run sees exactly
the batches an uninterrupted run would have, with no data-loader state in the checkpoint.
LR synthesis goes through :mod:`srarena.harness.degradations` (``degradation=bicubic_x4`` — MATLAB
bicubic — by default, ``degradation=stablesr`` / ``realesrgan`` for blind SR), the same code
that builds degraded test sets, so training and evaluation degradations cannot drift apart. The
sampled degradation records travel with the batch (:class:`TrainBatch`): a degradation
estimator trains on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from srarena.harness.data.io import is_image, read_image, to_tensor
from srarena.harness.errors import ConfigError, DataError
from srarena.harness.training.protocol import TrainBatch

#: (HR batch, per-sample ids) -> (LR batch, per-sample degradation records)
LRSynth = Callable[[torch.Tensor, list[str]], tuple[torch.Tensor, list[dict[str, Any]]]]


def degradation_synth(degradation_cfg: Any, seed: int) -> tuple[LRSynth, int]:
    """(hr batch, per-sample ids) -> (LR batch, records), from a ``conf/degradation`` preset; and
    its scale. Each sample's record is drawn from a generator seeded by (seed, id), as for a
    prepared test set, so a record alone regenerates its LR."""
    from srarena.harness.degradations.pipeline import degrade
    from srarena.harness.degradations.presets import load_preset
    from srarena.harness.degradations.sampling import sample_record

    preset = load_preset(degradation_cfg)

    def synth(hr: torch.Tensor, ids: list[str]) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        records = [sample_record(preset, seed, i) for i in ids]
        return degrade(hr, records), records

    return synth, int(preset.scale)


def load_hr_images(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(p for p in Path(folder).iterdir() if is_image(p))
    if not files:
        raise DataError(f"{folder}: no training images")
    return {p.stem: to_tensor(read_image(p)[0])[0] for p in files}


class CropSampler:
    """Batches of random ``crop``x``crop`` HR patches (with flips / 90-degree turns), their LR and
    degradation records; ``batch(step)`` is a pure function of (seed, step)."""

    def __init__(
        self,
        images: dict[str, torch.Tensor],
        synth: LRSynth,
        scale: int,
        crop: int,
        batch_size: int,
        seed: int,
        augment: bool = True,
    ) -> None:
        if crop % scale:
            raise ConfigError(f"train.data.crop={crop} must be a multiple of the scale x{scale}")
        small = [k for k, v in images.items() if min(v.shape[-2:]) < crop]
        if small:
            raise ConfigError(f"train.data.crop={crop} is larger than images {small}")
        self.ids = sorted(images)
        self.images = images
        self.synth, self.scale, self.crop = synth, scale, crop
        self.batch_size, self.seed, self.augment = batch_size, seed, augment

    def batch(self, step: int) -> TrainBatch:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        crops, ids = [], []
        for i in range(self.batch_size):
            key = self.ids[int(torch.randint(len(self.ids), (1,), generator=g))]
            img = self.images[key]
            h, w = img.shape[-2:]
            top = int(torch.randint(h - self.crop + 1, (1,), generator=g))
            left = int(torch.randint(w - self.crop + 1, (1,), generator=g))
            patch = img[:, top : top + self.crop, left : left + self.crop]
            if self.augment:
                flip, turns = torch.randint(2, (1,), generator=g), torch.randint(4, (1,), generator=g)
                patch = torch.rot90(patch.flip(-1) if flip else patch, int(turns), dims=(-2, -1))
            crops.append(patch)
            ids.append(f"train/{step}/{i}/{key}")
        hr = torch.stack(crops).contiguous()
        lr, records = self.synth(hr, ids)
        return TrainBatch(lr=lr, hr=hr, ids=ids, records=records)
