"""``srarena weights status|fetch``: list every registered weight file, or download the missing.

A bundle (several files under one key) is listed as one row plus one row per member file
(``<key>[<role>]``), so a user sees which of its files are missing.

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
    WeightBundle, bundle_status, fetch_bundle, fetch_weights, registered_weights, set_weights_dir,
    sha256_file, weight_status, weights_dir,
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


def status_rows(keys: list[str] | None = None, verify: bool = False) -> list[dict[str, str]]:
    """One row per single file; a bundle gives a row for itself and one per member file.

    With ``verify`` every present file with a known sha256 is hashed (slow for large files) and a
    mismatch shows as state ``corrupt``.
    """
    specs = registered_weights()
    rows: list[dict[str, str]] = []
    for key in sorted(specs):
        if keys and key not in keys:
            continue
        spec = specs[key]
        if isinstance(spec, WeightBundle):
            st = bundle_status(spec)
            new = st.rows()
            if verify:
                for row, (entry, path) in zip(new[1:], st.files):
                    if path is not None and entry.sha256 and not entry.is_folder and sha256_file(path) != entry.sha256:
                        row["state"] = new[0]["state"] = "corrupt"
        else:
            ws = weight_status(spec)
            new = [ws.row()]
            if verify and ws.path is not None and spec.sha256 and sha256_file(ws.path) != spec.sha256:
                new[0]["state"] = "corrupt"
        rows += new
    return rows


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
        rows = status_rows(only, verify=bool(cfg.get("verify", False)))
        print(f"weights directory: {weights_dir()}")
        print(format_table(rows, ("state", "key", "file", "used_by", "path")))
        top = [r for r in rows if r["kind"] != "bundle_file"]  # a bundle counts once
        missing = [r for r in rows if r["kind"] != "bundle" and r["state"] in ("missing", "corrupt")]
        for r in missing:
            print(f"  get {r['file']} ({r['key']}) from {r['source']}")
        n_ok = sum(r["state"] in ("present", "derivable") for r in top)
        print(f"{n_ok} of {len(top)} available "
              f"(derivable files are written on first use; a bundle is available when all its "
              "required files are); `srarena weights fetch` downloads the rest on a machine with internet")
        return 0
    if action == "fetch":
        target = Path(cfg.target).expanduser() if cfg.get("target") else weights_dir()
        specs = registered_weights()
        failed = 0
        for key in sorted(specs):
            if only and key not in only:
                continue
            try:
                spec, timeout = specs[key], float(cfg.get("timeout_s", 120))
                if isinstance(spec, WeightBundle):
                    for role, path in fetch_bundle(spec, target, timeout=timeout).items():
                        print(f"ok       {key}[{role}]: {path}")
                    continue
                path = fetch_weights(spec, target, timeout=timeout)
                print(f"ok       {key}: {path}")
            except Exception as e:
                failed += 1
                print(f"FAILED   {key}: {type(e).__name__}: {str(e).splitlines()[0]}")
        print(f"copy {target} to the offline machine and set SRARENA_WEIGHTS (or paths.weights) to it")
        return 1 if failed else 0
    print(f"unknown action {action!r}; use status or fetch", file=sys.stderr)
    return 2
