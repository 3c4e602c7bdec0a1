"""One resolver for every weight file a metric or method needs.

Order: the project's weights directory (``SRARENA_WEIGHTS`` or Hydra ``paths.weights``) first,
then the owning library's own cache path, then — only when the caller allows it — the library's
download. A file that cannot be found raises :class:`MissingWeightsError` naming the file, the
directory it goes in and where to get it, because on an offline machine "download failed" is not
an actionable message.

Some files can be *derived* offline from something a package already ships (NIQE's pristine
parameters live in the basicsr wheel as ``.npz``; pyiqa wants a ``.mat``). A spec with
``derive`` is written into the weights directory on first use, atomically, so a crash never
leaves a half-written file for the next run to trust.

Library cache paths may contain ``{hub}`` (``torch.hub.get_dir()``, read at look-up time so that
``TORCH_HOME`` set by a test or a user is honoured) and environment variables.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

DEFAULT_WEIGHTS_DIR = Path("~/.cache/srarena/weights")
DEFAULT_CACHE_DIR = Path("~/.cache/srarena")


@dataclass(frozen=True)
class WeightSpec:
    """A weight file someone needs: where srarena looks, where it comes from."""

    key: str  # unique id, e.g. "metric/lpips_alex_backbone"
    filename: str  # file name inside the weights directory
    source: str  # where a user gets it (URL or package)
    used_by: str  # the metric or method needing it
    library_paths: tuple[str, ...] = field(default=())  # other caches checked, in order
    sha256: str | None = None
    licence: str = ""
    # Writes the file at the given path from something available offline (e.g. a wheel).
    derive: Callable[[Path], None] | None = None
    derived_from: str = ""  # human-readable origin of ``derive``, for status listings


class MissingWeightsError(FileNotFoundError):
    def __init__(self, spec: WeightSpec, searched: list[Path]):
        self.spec = spec
        where = weights_dir() / spec.filename
        looked = "\n".join(f"  - {p}" for p in searched)
        super().__init__(
            f"missing weight file {spec.filename!r} (needed by {spec.used_by}). "
            f"Put it at: {where} ; get it from: {spec.source}\n"
            f"Searched:\n{looked}\n"
            f"(set SRARENA_WEIGHTS or paths.weights to use another directory; "
            f"`srarena weights status` lists every file, `srarena weights fetch` downloads them "
            f"on a machine with internet)"
        )


_WEIGHTS: dict[str, WeightSpec] = {}
_configured_dir: Path | None = None


def set_weights_dir(path: str | os.PathLike | None) -> None:
    """Called by the CLI with ``paths.weights``; the environment variable still wins."""
    global _configured_dir
    _configured_dir = Path(path).expanduser() if path else None


def weights_dir() -> Path:
    env = os.environ.get("SRARENA_WEIGHTS")
    if env:
        return Path(env).expanduser()
    return _configured_dir or DEFAULT_WEIGHTS_DIR.expanduser()


def cache_dir() -> Path:
    """Where srarena keeps derived data that is not a weight (e.g. FID reference statistics)."""
    env = os.environ.get("SRARENA_CACHE")
    return Path(env).expanduser() if env else DEFAULT_CACHE_DIR.expanduser()


def register_weights(spec: WeightSpec) -> WeightSpec:
    _WEIGHTS[spec.key] = spec
    return spec


def registered_weights() -> dict[str, WeightSpec]:
    return dict(_WEIGHTS)


def _hub_dir() -> str:
    import torch

    return torch.hub.get_dir()


def _expand(p: str) -> Path:
    if "{hub}" in p:
        p = p.replace("{hub}", _hub_dir())
    return Path(os.path.expandvars(p)).expanduser()


def candidates(spec: WeightSpec) -> list[Path]:
    paths = [weights_dir() / spec.filename]
    paths += [_expand(p) for p in spec.library_paths]
    return paths


def find_weights(spec: WeightSpec) -> Path | None:
    for p in candidates(spec):
        if p.is_file():
            return p
    return None


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Run ``write(tmp)`` on a temporary file beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def derive_weights(spec: WeightSpec) -> Path:
    """Write a derivable file into the weights directory (or the cache dir if read-only)."""
    assert spec.derive is not None
    for base in (weights_dir(), cache_dir() / "derived"):
        target = base / spec.filename
        try:
            return atomic_write(target, spec.derive)
        except PermissionError:
            continue
    raise PermissionError(f"cannot write {spec.filename} to {weights_dir()} or {cache_dir()}")


def resolve_weights(spec: WeightSpec) -> Path:
    """The first existing file among the candidates (deriving it offline when the spec can),
    or a :class:`MissingWeightsError`."""
    found = find_weights(spec)
    if found is not None:
        return found
    derived = cache_dir() / "derived" / spec.filename
    if derived.is_file():
        return derived
    if spec.derive is not None:
        try:
            return derive_weights(spec)
        except (OSError, ImportError, KeyError, ValueError) as e:  # origin absent or unreadable
            raise MissingWeightsError(spec, candidates(spec) + [Path(f"<derive: {e}>")]) from e
    raise MissingWeightsError(spec, candidates(spec))


# ---------------------------------------------------------------------------------------------
# status and fetch: the edges used by `srarena weights`


@dataclass(frozen=True)
class WeightStatus:
    spec: WeightSpec
    state: str  # "present", "derivable", "missing"
    path: Path | None

    def row(self) -> dict[str, str]:
        return {
            "key": self.spec.key,
            "file": self.spec.filename,
            "state": self.state,
            "path": str(self.path) if self.path else str(weights_dir() / self.spec.filename),
            "used_by": self.spec.used_by,
            "source": self.spec.derived_from or self.spec.source,
        }


def weight_status(spec: WeightSpec) -> WeightStatus:
    found = find_weights(spec)
    if found is None and (cache_dir() / "derived" / spec.filename).is_file():
        found = cache_dir() / "derived" / spec.filename
    if found is not None:
        return WeightStatus(spec, "present", found)
    return WeightStatus(spec, "derivable" if spec.derive else "missing", None)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_weights(spec: WeightSpec, target_dir: Path | None = None, timeout: float = 60.0) -> Path:
    """Download (or derive) ``spec`` into ``target_dir`` (default: the weights directory).

    The directory can be copied to an offline machine as its ``SRARENA_WEIGHTS``. The download
    goes to a temporary file and is checked against ``sha256`` before it is renamed into place.
    """
    target = (target_dir or weights_dir()) / spec.filename
    if target.is_file():
        return target
    if spec.derive is not None:
        try:
            return atomic_write(target, spec.derive)
        except (OSError, ImportError, KeyError, ValueError):
            pass  # fall through to the download, if there is one
    if not re.fullmatch(r"(https?|file)://\S+", spec.source.strip()):
        raise MissingWeightsError(spec, [target])  # not a direct link: the message says how

    def download(tmp: Path) -> None:
        with urllib.request.urlopen(spec.source, timeout=timeout) as r, open(tmp, "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
        if spec.sha256 and sha256_file(tmp) != spec.sha256:
            raise ValueError(f"{spec.filename}: sha256 mismatch after download from {spec.source}")

    return atomic_write(target, download)
