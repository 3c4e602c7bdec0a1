"""srarena: a benchmarking and evaluation harness for image super-resolution.

Installed, everything is this one import package: ``srarena.harness`` (runner, data, metrics,
reports, training), ``srarena.methods`` (every SR method behind one protocol), and as package
data ``srarena/conf`` (Hydra configs), ``srarena/datasets`` (manifests) and the demo checkpoints
under ``srarena/methods/checkpoints``. The repository keeps those as top-level folders
(``harness/``, ``methods/``, ``conf/``, ``datasets/``); ``pyproject.toml`` maps them under
``srarena`` when a wheel is built.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.2.0"

# In a source checkout this file sits in ``<repo>/srarena/`` and the subpackages are its
# siblings; installed from a wheel they are its children. Adding the parent folder to the search
# path lets ``srarena.harness`` resolve to the checkout this file came from in both cases (so a
# second worktree tests its own code, not the one an editable install points at).
_here = Path(__file__).resolve().parent
if not (_here / "harness").is_dir() and (_here.parent / "harness" / "__init__.py").is_file():
    __path__.append(str(_here.parent))  # type: ignore[name-defined]

#: Root of the installed data: ``conf/``, ``datasets/`` and ``methods/`` live under it.
PACKAGE_ROOT: Path = _here if (_here / "conf").is_dir() else _here.parent
