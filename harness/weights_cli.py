"""``srarena weights status|fetch``: list every registered weight file, or download the missing.

Metrics register their files when ``srarena.harness.metrics`` loads its presets; methods register theirs
at import, so every module under the ``methods`` package is imported first (a module that fails to
import is reported, not fatal: status must work on a machine missing a method's dependency).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Any

from srarena.harness.weights import (
    fetch_weights, registered_weights, set_weights_dir, weight_status, weights_dir,
)


def load_all_specs() -> list[str]:
    """Import the metric table's implementation modules and every ``methods`` module; returns
    import problems."""
    from srarena.harness.metrics.registry import import_implementations

    problems = [f"{m}: {e}" for m, e in import_implementations().items()]
    try:
        from srarena import methods
    except ImportError as e:  # pragma: no cover - methods package is part of the repo
        return [f"methods: {e}"]
    for info in pkgutil.walk_packages(methods.__path__, prefix="srarena.methods."):
        try:
            importlib.import_module(info.name)
        except Exception as e:  # any failure: report and carry on
            problems.append(f"{info.name}: {type(e).__name__}: {e}")
    return problems


def status_rows(keys: list[str] | None = None) -> list[dict[str, str]]:
    specs = registered_weights()
    return [weight_status(specs[k]).row() for k in sorted(specs) if not keys or k in keys]


def format_table(rows: list[dict[str, str]], cols: tuple[str, ...]) -> str:
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) if rows else len(c) for c in cols}
    line = lambda r: "  ".join(r[c].ljust(widths[c]) for c in cols).rstrip()  # noqa: E731
    return "\n".join([line({c: c for c in cols}), *map(line, rows)])


def run_weights(cfg: Any) -> int:
    set_weights_dir(cfg.paths.weights)
    for p in load_all_specs():
        print(f"note: could not import {p} (its weights are not listed)", file=sys.stderr)
    only = list(cfg.get("only") or [])
    action = str(cfg.get("action", "status"))
    if action == "status":
        rows = status_rows(only)
        print(f"weights directory: {weights_dir()}")
        print(format_table(rows, ("state", "key", "file", "used_by", "path")))
        missing = [r for r in rows if r["state"] == "missing"]
        for r in missing:
            print(f"  get {r['file']} from {r['source']}")
        print(f"{len(rows) - len(missing)} of {len(rows)} available "
              f"(derivable files are written on first use); "
              "`srarena weights fetch` downloads the rest on a machine with internet")
        return 0
    if action == "fetch":
        target = Path(cfg.target).expanduser() if cfg.get("target") else weights_dir()
        specs = registered_weights()
        failed = 0
        for key in sorted(specs):
            if only and key not in only:
                continue
            try:
                path = fetch_weights(specs[key], target, timeout=float(cfg.get("timeout_s", 120)))
                print(f"ok       {key}: {path}")
            except Exception as e:
                failed += 1
                print(f"FAILED   {key}: {type(e).__name__}: {str(e).splitlines()[0]}")
        print(f"copy {target} to the offline machine and set SRARENA_WEIGHTS (or paths.weights) to it")
        return 1 if failed else 0
    print(f"unknown action {action!r}; use status or fetch", file=sys.stderr)
    return 2
