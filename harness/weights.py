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

A *bundle* (:class:`WeightBundle`) is several files under one key — four expert U-Nets and a
decoder, or a diffusers model folder plus adapter files — each with its own role, file name,
source and sha256. :func:`resolve_bundle` returns role -> path and, when anything required is
absent, one :class:`MissingWeightsError` that lists *every* missing file (not the first), so a
user copies the whole set in one go. A bundle entry may be a folder, recognised by a marker file
inside it (``model_index.json`` of a diffusers model).

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
from typing import Callable, TypeVar

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


@dataclass(frozen=True)
class BundleFile:
    """One member of a :class:`WeightBundle`.

    ``filename`` is relative to the weights directory. With ``marker`` set the entry is a folder
    (e.g. a diffusers model folder) and counts as present only when ``<folder>/<marker>`` exists,
    so a half-copied folder is reported missing rather than failing deep inside a loader.
    ``optional`` files (an EMA copy, a second adapter) are listed but never block resolution.
    """

    role: str  # what the method calls it: "unet", "expert0", "lora", "de_net"
    filename: str
    source: str
    sha256: str | None = None
    optional: bool = False
    marker: str = ""  # set for a folder entry: a file inside it that proves it is complete
    library_paths: tuple[str, ...] = field(default=())  # other places checked, as for WeightSpec

    @property
    def is_folder(self) -> bool:
        return bool(self.marker)


@dataclass(frozen=True)
class WeightBundle:
    """Several weight files resolved together under one key (``register_weights`` takes it too)."""

    key: str
    files: tuple[BundleFile, ...]
    used_by: str
    licence: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(self.files))
        roles = [f.role for f in self.files]
        if not roles:
            raise ValueError(f"weight bundle {self.key!r} has no files")
        dup = sorted({r for r in roles if roles.count(r) > 1})
        if dup:
            raise ValueError(f"weight bundle {self.key!r}: roles {dup} appear more than once")

    def file(self, role: str) -> BundleFile:
        for f in self.files:
            if f.role == role:
                return f
        raise KeyError(f"weight bundle {self.key!r} has no file with role {role!r}; roles: {[f.role for f in self.files]}")


class MissingBundleError(MissingWeightsError):
    """Required files of a bundle are absent: the message lists every one, with place and source."""

    def __init__(self, bundle: WeightBundle, missing: list[tuple[BundleFile, list[Path]]]):
        self.spec = bundle  # type: ignore[assignment]
        self.missing = [f for f, _ in missing]
        names = ", ".join(f"{f.filename}{'/' if f.is_folder else ''}" for f, _ in missing)
        lines = [
            f"missing {len(missing)} of {len(bundle.files)} weight files of bundle {bundle.key!r} "
            f"(needed by {bundle.used_by}): {names} ; put them under {weights_dir()}"
        ]
        for f, searched in missing:
            what = f"folder (with {f.marker})" if f.is_folder else "file"
            lines.append(f"  [{f.role}] {what} {f.filename}: put it at {weights_dir() / f.filename} ; get it from {f.source}")
            lines += [f"      searched {p}" for p in searched]
        lines.append("(set SRARENA_WEIGHTS or paths.weights to use another directory; `srarena weights status` "
                     "lists every file, `srarena weights fetch` downloads direct links on a machine with internet)")
        FileNotFoundError.__init__(self, "\n".join(lines))


_WEIGHTS: dict[str, "WeightSpec | WeightBundle"] = {}
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


AnyWeights = TypeVar("AnyWeights", "WeightSpec", "WeightBundle")


def register_weights(spec: AnyWeights) -> AnyWeights:
    """Add a single file (:class:`WeightSpec`) or a :class:`WeightBundle` to the one registry."""
    _WEIGHTS[spec.key] = spec
    return spec


def registered_weights() -> dict[str, "WeightSpec | WeightBundle"]:
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


def file_candidates(entry: BundleFile) -> list[Path]:
    return [weights_dir() / entry.filename] + [_expand(p) for p in entry.library_paths]


def _present(entry: BundleFile, path: Path) -> bool:
    return (path / entry.marker).is_file() if entry.is_folder else path.is_file()


def find_bundle_file(entry: BundleFile) -> Path | None:
    """The first candidate that holds the file (or the complete folder), else None."""
    for p in file_candidates(entry):
        if _present(entry, p):
            return p
    return None


def as_bundle(key_or_bundle: "str | WeightBundle") -> WeightBundle:
    if isinstance(key_or_bundle, WeightBundle):
        return key_or_bundle
    found = _WEIGHTS.get(str(key_or_bundle))
    if not isinstance(found, WeightBundle):
        bundles = sorted(k for k, v in _WEIGHTS.items() if isinstance(v, WeightBundle))
        what = "a single file (resolve_weights)" if found is not None else "not registered"
        raise KeyError(f"weights {key_or_bundle!r} is {what}, not a bundle; registered bundles: {bundles}")
    return found


def resolve_bundle(key_or_bundle: "str | WeightBundle") -> dict[str, Path]:
    """role -> path of every present file of a bundle (folders: the folder itself).

    Optional files that are absent are left out of the result; if any required file is absent,
    one :class:`MissingBundleError` names all of them, each with where it goes and its source.
    """
    bundle = as_bundle(key_or_bundle)
    found: dict[str, Path] = {}
    missing: list[tuple[BundleFile, list[Path]]] = []
    for entry in bundle.files:
        path = find_bundle_file(entry)
        if path is not None:
            found[entry.role] = path
        elif not entry.optional:
            missing.append((entry, file_candidates(entry)))
    if missing:
        raise MissingBundleError(bundle, missing)
    return found


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
            "kind": "file",
        }


@dataclass(frozen=True)
class BundleStatus:
    """A bundle and each of its files: ``state`` is present, missing (a required file is absent)."""

    bundle: WeightBundle
    files: tuple[tuple[BundleFile, Path | None], ...]

    @property
    def state(self) -> str:
        absent = [f for f, p in self.files if p is None and not f.optional]
        return "missing" if absent else "present"

    def rows(self) -> list[dict[str, str]]:
        """One row for the bundle, then one per file (key ``<bundle>[<role>]``)."""
        b = self.bundle
        n_ok = sum(p is not None for _, p in self.files)
        rows = [{
            "key": b.key, "file": f"bundle: {n_ok} of {len(self.files)} present", "state": self.state,
            "path": str(weights_dir()), "used_by": b.used_by, "source": "see its files", "kind": "bundle",
        }]
        for f, p in self.files:
            state = "present" if p is not None else "optional" if f.optional else "missing"
            rows.append({
                "key": f"{b.key}[{f.role}]", "file": f.filename + ("/" if f.is_folder else ""), "state": state,
                "path": str(p if p is not None else weights_dir() / f.filename), "used_by": b.used_by,
                "source": f.source, "kind": "bundle_file",
            })
        return rows


def bundle_status(bundle: WeightBundle) -> BundleStatus:
    return BundleStatus(bundle, tuple((f, find_bundle_file(f)) for f in bundle.files))


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
    if not is_direct_link(spec.source):
        raise MissingWeightsError(spec, [target])  # not a direct link: the message says how
    return download(spec.source, target, spec.sha256, timeout)


def is_direct_link(source: str) -> bool:
    return re.fullmatch(r"(https?|file)://\S+", source.strip()) is not None


def download(url: str, target: Path, sha256: str | None, timeout: float) -> Path:
    """``url`` -> ``target`` through a temporary file, checked against ``sha256`` before the rename."""

    def write(tmp: Path) -> None:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
        if sha256 and sha256_file(tmp) != sha256:
            raise ValueError(f"{target.name}: sha256 mismatch after download from {url}")

    return atomic_write(target, write)


def fetch_bundle(
    key_or_bundle: "str | WeightBundle", target_dir: Path | None = None, timeout: float = 60.0
) -> dict[str, Path]:
    """Download every file of a bundle that has a direct link into ``target_dir``.

    Files already there are kept; folders and files without a direct link (a Hugging Face repo,
    a Google Drive page) cannot be fetched by URL, so the error lists exactly those, with their
    sources — after every downloadable file has been fetched.
    """
    bundle = as_bundle(key_or_bundle)
    base = target_dir or weights_dir()
    got: dict[str, Path] = {}
    manual: list[tuple[BundleFile, list[Path]]] = []
    for entry in bundle.files:
        target = base / entry.filename
        if _present(entry, target):
            got[entry.role] = target
        elif not entry.is_folder and is_direct_link(entry.source):
            got[entry.role] = download(entry.source, target, entry.sha256, timeout)
        elif not entry.optional:
            manual.append((entry, [target]))
    if manual:
        raise MissingBundleError(bundle, manual)
    return got
