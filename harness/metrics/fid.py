"""FID with clean-fid's preprocessing and networks, streamed, with cached reference statistics.

Why not ``cleanfid.fid.compute_fid(dir1, dir2)``: it reads folders and keeps every feature;
srarena streams each pair once. We reuse clean-fid's pieces — its resizers
(``cleanfid.resize.build_resizer``), its Inception wrappers and (as the reference form of
:mod:`srarena.harness.metrics.frechet`) its ``frechet_distance`` — and accumulate Gaussian statistics (sum and sum of outer products, float64) so memory is flat in the
number of images and the result does not depend on the batch size.

Modes (clean-fid's): ``clean`` (PIL bicubic resize in float to 299, TorchScript Inception from
NVIDIA's StyleGAN2-ADA release: the default), ``legacy_tensorflow`` (same network, resize inside
it like TF's FID), ``legacy_pytorch`` (pytorch-fid's ported weights, bilinear torch resize).

Reference statistics of the HR set are cached under ``<cache>/fid_stats/`` keyed by a content
hash of the HR pixels plus extractor and mode, written atomically. A runner that knows the HR
set before the pass (``hr_set_digest``) passes ``options['fid_reference_digest']``; a cache hit
then skips Inception on HR entirely, and the streamed HR digest is checked against it at the end.

Per-image features for a bootstrap over images (``options['fid_features_dir']``): each batch's
float32 Inception features, SR and HR, are appended to raw side files as they are computed (memory
stays flat), and ``compute`` finalises them into ``<dir>/<preset>_features.npz`` (``fid`` →
``fid_features.npz``): ``sr`` and ``hr`` (N x 2048 float32, row i = the i-th image streamed, SR and
its HR on the same row), ``hr_digest`` (content hash per row, the image order), ``hr_source``
(``computed`` or ``cache``) and the extractor/mode. ``srarena.harness.reports`` resamples *rows* (SR and its
HR together: a paired bootstrap over the images of the test set) to put a CI on FID.

Why HR features are cached too, instead of resampling SR against fixed HR statistics: FID's
sampling error comes from both sets (its HR mean/covariance are estimated from the same N images),
and on a paired SR test set the two are strongly correlated image by image; holding the HR
statistics fixed ignores half the variance and the pairing, so the interval would be too narrow.
So when features are requested and the HR statistics come from the cache, the HR features come
from the cache too (``<stats>.features.npy`` + ``.digests.json``, same key, written whenever HR
features were computed with features requested), reordered to this run's images by their
content hashes; if only the statistics are cached (an older run), HR goes through Inception again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

from srarena.harness.metrics.frechet import GaussianStats, frechet_distance
from srarena.harness.metrics.spec import MetricContext
from srarena.harness.weights import WeightSpec, atomic_write, cache_dir, register_weights, resolve_weights

log = logging.getLogger(__name__)
VERSION = "1"
FEATURE_DIM = 2048

TORCHSCRIPT_INCEPTION = register_weights(WeightSpec(
    key="metric/fid_inception_torchscript", filename="inception-2015-12-05.pt",
    source="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
    used_by="fid, fid_legacy_tensorflow (clean-fid)",
    library_paths=("/tmp/inception-2015-12-05.pt",),
    licence="Apache-2.0 (TensorFlow Inception graph, NVIDIA TorchScript export)",
))
PT_INCEPTION = register_weights(WeightSpec(
    key="metric/fid_inception_pytorch", filename="pt_inception-2015-12-05-6726825d.pth",
    source="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    used_by="fid_legacy_pytorch (clean-fid, pytorch-fid, pyiqa, torch-fidelity)",
    library_paths=("{hub}/checkpoints/pt_inception-2015-12-05-6726825d.pth",),
    licence="Apache-2.0",
))


# ---------------------------------------------------------------------------------------------
# arithmetic: pure functions


def image_digest(img_u8_hwc: np.ndarray) -> str:
    h = hashlib.sha256(str(img_u8_hwc.shape).encode())
    h.update(np.ascontiguousarray(img_u8_hwc, dtype=np.uint8).tobytes())
    return h.hexdigest()


def set_digest(digests: Iterable[str]) -> str:
    """Order-independent content hash of an image set (sorted per-image hashes)."""
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


def hr_set_digest(images: Iterable[np.ndarray]) -> str:
    """What a runner passes as ``options['fid_reference_digest']`` (uint8 HWC RGB images)."""
    return set_digest(image_digest(i) for i in images)


def _to_u8_hwc(x: torch.Tensor) -> list[np.ndarray]:
    """Metric input (float [0,1] NCHW holding uint8 values) back to uint8 HWC arrays."""
    u8 = (x.detach().to("cpu", torch.float64) * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    return [np.ascontiguousarray(a) for a in u8.permute(0, 2, 3, 1).numpy()]


# ---------------------------------------------------------------------------------------------
# feature extractors


@dataclass
class Extractor:
    """clean-fid mode: resize (numpy HWC uint8 -> HWC float/uint8) then network (NCHW 0..255)."""

    name: str
    mode: str
    resize: Callable[[np.ndarray], np.ndarray]
    net: Callable[[torch.Tensor], torch.Tensor]
    device: str
    dim: int = FEATURE_DIM

    def prepare(self, img_u8: np.ndarray) -> torch.Tensor:
        r = np.asarray(self.resize(img_u8), dtype=np.float32)
        return torch.from_numpy(np.ascontiguousarray(r.transpose(2, 0, 1)))

    def features(self, batch: list[torch.Tensor]) -> np.ndarray:
        with torch.inference_mode():
            x = torch.stack(batch).to(self.device)
            return self.net(x).reshape(len(batch), -1).double().cpu().numpy()


@contextmanager
def _hub_dir_with(path: Path, filename: str) -> Iterator[None]:
    """A throw-away torch hub dir whose ``checkpoints/<filename>`` is ``path``, so a library that
    calls ``load_state_dict_from_url`` finds our resolved file instead of downloading."""
    # Restore torch.hub's own setting (usually None = follow TORCH_HOME), not get_dir()'s value,
    # which would pin the hub dir for the rest of the process.
    old = getattr(torch.hub, "_hub_dir", None)
    with tempfile.TemporaryDirectory(prefix="srarena-hub-") as d:
        (Path(d) / "checkpoints").mkdir()
        os.symlink(path.resolve(), Path(d) / "checkpoints" / filename)
        torch.hub.set_dir(d)
        try:
            yield
        finally:
            torch.hub._hub_dir = old


def build_extractor(mode: str, device: str = "cpu") -> Extractor:
    from cleanfid.resize import build_resizer

    if mode in ("clean", "legacy_tensorflow"):
        from cleanfid.inception_torchscript import InceptionV3W

        path = resolve_weights(TORCHSCRIPT_INCEPTION)
        inside = mode == "legacy_tensorflow"
        if path.name == TORCHSCRIPT_INCEPTION.filename:
            model = InceptionV3W(str(path.parent), download=False, resize_inside=inside)
        else:  # pragma: no cover - a differently named copy
            raise ValueError(f"{path} must be named {TORCHSCRIPT_INCEPTION.filename}")
        model = model.eval().to(device)
        return Extractor("inception-2015-12-05.pt (torchscript)", mode, build_resizer(mode),
                         model, device)
    if mode == "legacy_pytorch":
        from cleanfid.inception_pytorch import InceptionV3

        path = resolve_weights(PT_INCEPTION)
        with _hub_dir_with(path, PT_INCEPTION.filename):
            model = InceptionV3(output_blocks=[3], resize_input=False).eval().to(device)
        return Extractor("pt_inception-2015-12-05 (pytorch-fid)", mode, build_resizer(mode),
                         lambda x: model(x / 255.0)[0], device)
    raise ValueError(f"unknown FID mode {mode!r}; use clean, legacy_tensorflow or legacy_pytorch")


# ---------------------------------------------------------------------------------------------
# reference-statistics cache


def stats_key(digest: str, extractor: str, mode: str) -> str:
    blob = json.dumps({"hr": digest, "extractor": extractor, "mode": mode, "v": VERSION},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def stats_path(digest: str, extractor: str, mode: str, root: Path | None = None) -> Path:
    return (root or cache_dir() / "fid_stats") / f"{mode}-{stats_key(digest, extractor, mode)}.npz"


def save_stats(path: Path, mu, sigma, n: int, meta: dict) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, mu=mu, sigma=sigma, n=n, meta=json.dumps(meta))

    atomic_write(path, write)


def features_cache_paths(stats_file: Path) -> tuple[Path, Path]:
    """HR features cached next to reference statistics: ``(features .npy, digests .json)``."""
    stem = stats_file.with_suffix("")
    return stem.with_name(stem.name + ".features.npy"), stem.with_name(stem.name + ".features.digests.json")


def save_features_cache(stats_file: Path, feats: np.ndarray, digests: list[str]) -> None:
    """Digests first, features last (atomically): a reader needs both with matching lengths."""
    fpath, dpath = features_cache_paths(stats_file)
    atomic_write(dpath, lambda tmp: tmp.write_text(json.dumps(list(digests))))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(feats, dtype=np.float32))  # a memmap is written in chunks

    atomic_write(fpath, write)


def load_features_cache(stats_file: Path) -> tuple[np.ndarray, dict[str, int]] | None:
    """Memory-mapped cached HR features and ``digest -> row``; None if absent or inconsistent."""
    fpath, dpath = features_cache_paths(stats_file)
    if not (fpath.is_file() and dpath.is_file()):
        return None
    try:
        feats = np.load(fpath, mmap_mode="r")
        digests = json.loads(dpath.read_text())
    except (OSError, ValueError):
        return None
    if feats.ndim != 2 or len(digests) != len(feats):
        return None
    return feats, {d: i for i, d in enumerate(digests)}


class FeatureWriter:
    """Streams per-image float32 features to raw side files; ``finalize`` writes one ``.npz``.

    Memory is flat: rows are appended as batches are computed and the final archive is written
    from memory maps of the side files (numpy writes them into the zip in chunks).
    """

    def __init__(self, path: Path, dim: int) -> None:
        self.path, self.dim = Path(path), dim
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.parts = {w: self.path.with_name(f".{self.path.name}.{w}.part") for w in ("sr", "hr")}
        self.rows = {"sr": 0, "hr": 0}
        for part in self.parts.values():
            part.write_bytes(b"")

    def append(self, which: str, feats: np.ndarray) -> None:
        f = np.ascontiguousarray(np.asarray(feats, dtype="<f4").reshape(len(feats), self.dim))
        with open(self.parts[which], "ab") as fh:
            fh.write(f.tobytes())
        self.rows[which] += len(f)

    def array(self, which: str) -> np.ndarray:
        if self.rows[which] == 0:
            return np.zeros((0, self.dim), np.float32)
        return np.memmap(self.parts[which], dtype="<f4", mode="r", shape=(self.rows[which], self.dim))

    def finalize(self, **meta) -> Path:
        arrays = {"sr": self.array("sr"), "hr": self.array("hr"), **{k: np.asarray(v) for k, v in meta.items()}}

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

        atomic_write(self.path, write)
        arrays.clear()  # release the memory maps before removing their files
        self.discard()
        return self.path

    def discard(self) -> None:
        for part in self.parts.values():
            part.unlink(missing_ok=True)


def load_stats(path: Path) -> tuple[np.ndarray, np.ndarray, int, dict] | None:
    if not path.is_file():
        return None
    with np.load(path) as z:
        return z["mu"], z["sigma"], int(z["n"]), json.loads(str(z["meta"]))


# ---------------------------------------------------------------------------------------------
# the streaming set metric


class FID:
    """Set metric: ``update`` per batch, ``compute`` once -> ``{name, name_n, name_n_ref}``."""

    def __init__(self, name: str, extractor: Extractor, batch_size: int = 16,
                 reference_digest: str | None = None, cache_root: Path | None = None,
                 use_cache: bool = True, method: str = "eig",
                 features_path: Path | None = None) -> None:
        self.name, self.ext, self.batch_size = name, extractor, batch_size
        self.method = method
        self.cache_root, self.use_cache = cache_root, use_cache
        self.sr = GaussianStats(extractor.dim)
        self.hr = GaussianStats(extractor.dim)
        self._pending: dict[str, list[torch.Tensor]] = {"sr": [], "hr": []}
        self._hr_digests: list[str] = []
        self.reference_digest = reference_digest
        self.reference = None
        self.warnings: list[str] = []
        self.writer = FeatureWriter(Path(features_path), extractor.dim) if features_path else None
        self.hr_features_cached: tuple[np.ndarray, dict[str, int]] | None = None
        if reference_digest and use_cache:
            self.reference = load_stats(self._path(reference_digest))
            if self.reference is not None and self.writer is not None:
                self.hr_features_cached = load_features_cache(self._path(reference_digest))
                if self.hr_features_cached is None:
                    # Only statistics cached: the bootstrap needs HR features, so recompute them.
                    log.info("%s: cached HR statistics have no cached features; recomputing HR", name)
                    self.reference = None

    def _path(self, digest: str) -> Path:
        return stats_path(digest, self.ext.name, self.ext.mode, self.cache_root)

    def _push(self, which: str, x: torch.Tensor) -> None:
        for img in _to_u8_hwc(x):
            if which == "hr":
                self._hr_digests.append(image_digest(img))
                if self.reference is not None:
                    continue  # cached: no Inception on HR
            self._pending[which].append(self.ext.prepare(img))
            if len(self._pending[which]) >= self.batch_size:
                self._flush(which)

    def _flush(self, which: str) -> None:
        if self._pending[which]:
            feats = self.ext.features(self._pending[which])
            (self.sr if which == "sr" else self.hr).update(feats)
            if self.writer is not None:
                self.writer.append(which, feats)
            self._pending[which] = []

    def update(self, sr: torch.Tensor, hr: torch.Tensor | None) -> None:
        self._push("sr", sr)
        if hr is not None:
            self._push("hr", hr)

    def compute(self) -> dict[str, float]:
        try:
            return self._compute()
        except BaseException:
            if self.writer is not None:
                self.writer.discard()
            raise

    def _compute(self) -> dict[str, float]:
        self._flush("sr")
        self._flush("hr")
        digest = set_digest(self._hr_digests) if self._hr_digests else self.reference_digest
        if self.reference is not None:
            if self._hr_digests and digest != self.reference_digest:
                raise ValueError(f"{self.name}: HR images differ from fid_reference_digest "
                                 "given before the pass; the cached statistics do not apply")
            mu_r, sig_r, n_ref, _ = self.reference
        elif self.hr.n:
            mu_r, sig_r = self.hr.mean_cov()
            n_ref = self.hr.n
            if self.use_cache and digest:
                save_stats(self._path(digest), mu_r, sig_r, n_ref,
                           {"digest": digest, "extractor": self.ext.name, "mode": self.ext.mode})
        else:
            raise ValueError(f"{self.name}: no HR images and no cached reference statistics")
        mu, sig = self.sr.mean_cov()
        n = self.sr.n
        if min(n, n_ref) < self.ext.dim:
            msg = (f"{self.name}: N={n} SR / {n_ref} reference images < feature dim "
                   f"{self.ext.dim}: covariance is rank-deficient, FID is biased upwards and "
                   "only comparable at equal N")
            self.warnings.append(msg)
            log.warning(msg)
            warnings.warn(msg, stacklevel=2)
        value = frechet_distance(mu, sig, mu_r, sig_r, self.method)
        if self.writer is not None:
            self._write_features(digest)
        return {self.name: value, f"{self.name}_n": float(n), f"{self.name}_n_ref": float(n_ref)}

    def _write_features(self, digest: str | None) -> None:
        """Finalise the streamed features into the ``.npz`` (and cache HR features with the stats)."""
        w = self.writer
        source = "computed"
        if self.reference is not None:  # HR statistics (and features) from the cache
            source = "cache"
            if self.hr_features_cached is not None and self._hr_digests:
                feats, rows = self.hr_features_cached
                for i in range(0, len(self._hr_digests), 256):  # flat memory: chunks of rows
                    w.append("hr", feats[[rows[d] for d in self._hr_digests[i:i + 256]]])
        elif self.use_cache and digest and w.rows["hr"] == len(self._hr_digests) > 0:
            save_features_cache(self._path(digest), w.array("hr"), self._hr_digests)
        if w.rows["hr"] not in (0, w.rows["sr"]):
            log.warning("%s: %d SR vs %d HR feature rows; not paired", self.name, w.rows["sr"], w.rows["hr"])
        w.finalize(hr_digest=np.asarray(self._hr_digests, dtype="<U64"), hr_source=source, preset=self.name,
                   mode=self.ext.mode, extractor=self.ext.name, index=np.arange(w.rows["sr"]))


def fid(ctx: MetricContext, mode: str = "clean", name: str = "fid") -> FID:
    """The streaming FID of clean-fid's ``mode``; its values are reported as ``name``, ``name_n``,
    ``name_n_ref``. Options (``MetricContext.options``): ``fid_batch_size``, ``fid_reference_digest``,
    ``fid_cache``, ``fid_method`` (``eig`` or ``sqrtm``), ``fid_features_dir``."""
    opts = dict(ctx.options)
    return FID(name, build_extractor(mode, ctx.device),
               batch_size=int(opts.get("fid_batch_size", 16)),
               reference_digest=opts.get("fid_reference_digest"),
               use_cache=bool(opts.get("fid_cache", True)),
               method=str(opts.get("fid_method", "eig")),
               features_path=(Path(opts["fid_features_dir"]) / f"{name}_features.npz"
                              if opts.get("fid_features_dir") else None))
