"""One resolver for every weight file a metric or method needs.

Order: the project's weights directory (``SRARENA_WEIGHTS`` or Hydra ``paths.weights``) first,
then the owning library's own cache path, then — only when the caller allows it — the library's
download. A file that cannot be found raises :class:`MissingWeightsError` naming the file, the
directory it goes in and where to get it, because on an offline machine "download failed" is not
an actionable message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_WEIGHTS_DIR = Path("~/.cache/srarena/weights")


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


class MissingWeightsError(FileNotFoundError):
    def __init__(self, spec: WeightSpec, searched: list[Path]):
        self.spec = spec
        where = weights_dir() / spec.filename
        looked = "\n".join(f"  - {p}" for p in searched)
        super().__init__(
            f"missing weight file {spec.filename!r} (needed by {spec.used_by}).\n"
            f"Put it at: {where}\n"
            f"Get it from: {spec.source}\n"
            f"Searched:\n{looked}\n"
            f"(set SRARENA_WEIGHTS or paths.weights to use another directory; "
            f"`srarena weights status` lists every file)"
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


def register_weights(spec: WeightSpec) -> WeightSpec:
    _WEIGHTS[spec.key] = spec
    return spec


def registered_weights() -> dict[str, WeightSpec]:
    return dict(_WEIGHTS)


def candidates(spec: WeightSpec) -> list[Path]:
    paths = [weights_dir() / spec.filename]
    paths += [Path(os.path.expandvars(p)).expanduser() for p in spec.library_paths]
    return paths


def find_weights(spec: WeightSpec) -> Path | None:
    for p in candidates(spec):
        if p.is_file():
            return p
    return None


def resolve_weights(spec: WeightSpec) -> Path:
    """The first existing file among the candidates, or a :class:`MissingWeightsError`."""
    found = find_weights(spec)
    if found is None:
        raise MissingWeightsError(spec, candidates(spec))
    return found
