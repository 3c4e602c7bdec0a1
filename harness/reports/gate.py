"""``srarena gate``: fail CI when quality regresses against a committed baseline JSON.

A baseline (``reports/baselines/<name>.json``) records, per benchmark (method, dataset,
scale), the metric values of a trusted run and the dataset hash they were measured on. The
gate takes the latest matching runs from MLflow (or given run ids / one sweep), compares each
metric with its tolerance in the metric's direction (the metric table's ``lower_better``, through
:mod:`srarena.harness.reports.columns`), prints
what moved, and returns 1 on a regression. ``action=update`` (``srarena gate update``) writes
the baseline from the current runs — review the diff of the JSON before committing it.

The comparison (:func:`compare`) is pure; reading MLflow and files happens in :func:`run_gate`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from srarena.harness import tracking
from srarena.harness.errors import ConfigError, DataError
from srarena.harness.reports import runs as runs_mod
from srarena.harness.reports.columns import direction_map

SCHEMA = 1
FAILING = ("regressed", "missing", "dataset_changed")


@dataclass(frozen=True)
class GateSettings:
    tolerances: Mapping[str, float]
    default_tolerance: float | None = None
    require_same_dataset: bool = True
    fail_on_missing: bool = True

    def tolerance(self, metric: str) -> float | None:
        """Exact name first, then the longest family prefix (``psnr`` covers ``psnr_y``)."""
        if metric in self.tolerances:
            return float(self.tolerances[metric])
        fam = [k for k in self.tolerances if metric.startswith(f"{k}_")]
        if fam:
            return float(self.tolerances[max(fam, key=len)])
        return self.default_tolerance


def _key(d: Mapping[str, Any]) -> tuple[str, str, int]:
    return str(d["method"]), str(d["dataset"]), int(d["scale"])


def compare(baseline: Mapping[str, Any], current: pd.DataFrame, settings: GateSettings) -> pd.DataFrame:
    """One row per (benchmark, metric): baseline, current, delta, tolerance and a status.

    Status: ``ok`` (within tolerance), ``improved`` (better by more than the tolerance: time to
    update the baseline), ``regressed`` (worse by more than the tolerance), ``not_gated`` (no
    tolerance or no direction), ``missing`` (no run or no value), ``dataset_changed`` (the run
    was measured on different images than the baseline).
    """
    cur = runs_mod.latest(current, runs_mod.KEYS) if not current.empty else current
    by_key = {_key(r): r for _, r in cur.iterrows()} if not cur.empty else {}
    rows: list[dict[str, Any]] = []
    for entry in baseline.get("entries", []):
        key = _key(entry)
        run = by_key.get(key)
        metrics = dict(entry.get("metrics", {}))
        dirs = direction_map(metrics)
        base_row = {"method": key[0], "dataset": key[1], "scale": key[2]}
        if run is None:
            rows.append({**base_row, "metric": "*", "baseline": math.nan, "current": math.nan, "delta": math.nan,
                         "tolerance": math.nan, "status": "missing", "note": "no finished run for this benchmark"})
            continue
        run_hash = run.get("tags.dataset_hash")
        changed = (settings.require_same_dataset and entry.get("dataset_hash") and isinstance(run_hash, str)
                   and run_hash != entry["dataset_hash"])
        for metric, base in metrics.items():
            cur_v = runs_mod.numeric(run.get(metric))
            tol = settings.tolerance(metric)
            lower = dirs[metric]
            delta = cur_v - float(base)
            row = {**base_row, "metric": metric, "baseline": float(base), "current": cur_v, "delta": delta,
                   "tolerance": tol if tol is not None else math.nan, "status": "ok", "note": "", "run_id": run.get("run_id")}
            if changed:
                row.update(status="dataset_changed", note=f"dataset hash {str(run_hash)[:12]} != baseline {str(entry['dataset_hash'])[:12]}")
            elif math.isnan(cur_v):
                row.update(status="missing", note="metric absent from the run")
            elif tol is None or lower is None:
                row.update(status="not_gated", note="no tolerance" if tol is None else "no direction")
            else:
                worse = delta > tol if lower else delta < -tol
                better = delta < -tol if lower else delta > tol
                row["status"] = "regressed" if worse else "improved" if better else "ok"
                row["note"] = f"{'lower' if lower else 'higher'} is better"
            rows.append(row)
    cols = ["method", "dataset", "scale", "metric", "baseline", "current", "delta", "tolerance", "status", "note", "run_id"]
    return pd.DataFrame(rows, columns=cols)


def exit_code(result: pd.DataFrame, settings: GateSettings) -> int:
    failing = set(FAILING) if settings.fail_on_missing else set(FAILING) - {"missing"}
    return 1 if result["status"].isin(failing).any() else 0


def format_result(result: pd.DataFrame) -> str:
    """A fixed-width table, failures first; values to 4 decimals, deltas signed."""
    if result.empty:
        return "gate: the baseline has no entries\n"
    order = {"regressed": 0, "dataset_changed": 1, "missing": 2, "improved": 3, "not_gated": 4, "ok": 5}
    res = result.assign(_o=result["status"].map(order)).sort_values(["_o", "method", "dataset", "scale", "metric"])

    def f(v: float, signed: bool = False) -> str:
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else (f"{v:+.4f}" if signed else f"{v:.4f}")

    table = [["benchmark", "metric", "baseline", "current", "delta", "tol", "status", "note"]]
    for _, r in res.iterrows():
        table.append([f"{r['method']}/{r['dataset']}/x{r['scale']}", r["metric"], f(r["baseline"]), f(r["current"]),
                      f(r["delta"], True), f(r["tolerance"]), str(r["status"]).upper() if r["status"] in FAILING else r["status"],
                      r["note"]])
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def _int(v: Any) -> int | None:
    x = runs_mod.numeric(v)
    return None if math.isnan(x) else int(x)


def make_baseline(current: pd.DataFrame, benchmarks: Sequence[Mapping[str, Any]], metrics: Sequence[str],
                  *, git_commit: str = "") -> dict[str, Any]:
    """Baseline JSON from the latest run of each benchmark (all selected runs if none given)."""
    cur = runs_mod.latest(current, runs_mod.KEYS)
    wanted = {_key(b) for b in benchmarks}
    entries = []
    for _, r in cur.iterrows():
        if wanted and _key(r) not in wanted:
            continue
        values = {m: float(r[m]) for m in metrics if m in r and not math.isnan(runs_mod.numeric(r[m]))}
        entries.append({
            "method": str(r["method"]), "dataset": str(r["dataset"]), "scale": int(r["scale"]),
            "dataset_hash": r.get("tags.dataset_hash"), "n_images": _int(r.get("n_images")),
            "run_id": r.get("run_id"), "git_commit": r.get("tags.git_commit"), "metrics": values,
        })
    missing = wanted - {_key(e) for e in entries}
    if missing:
        raise DataError(
            "cannot update the baseline: no finished run for "
            + ", ".join(f"{m}/{d}/x{s}" for m, d, s in sorted(missing))
            + ". Run them first, e.g. `srarena method=<m> dataset=<d> scale=<s>`."
        )
    return {"schema": SCHEMA, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit, "entries": entries}


def baseline_path(cfg: DictConfig) -> Path:
    name = str(cfg.baseline)
    p = Path(name).expanduser()
    if p.suffix == ".json" or p.is_absolute() or "/" in name:
        return p
    return Path(str(cfg.baselines_dir)).expanduser() / f"{name}.json"


def read_baseline(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"baseline {path} does not exist. Create it with `srarena gate update` (action=update) "
                          "after a trusted run, or point baseline=/baselines_dir= at it.")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"baseline {path} is not valid JSON: {e}") from None
    if data.get("schema") != SCHEMA or not isinstance(data.get("entries"), list):
        raise ConfigError(f"baseline {path} has schema {data.get('schema')!r}; expected {SCHEMA} with a list of entries")
    return data


def settings_from(cfg: DictConfig) -> GateSettings:
    tol = OmegaConf.to_container(cfg.tolerances, resolve=True) or {}
    dt = cfg.get("default_tolerance")
    return GateSettings(
        tolerances={str(k): float(v) for k, v in tol.items()},
        default_tolerance=float(dt) if dt is not None else None,
        require_same_dataset=bool(cfg.require_same_dataset),
        fail_on_missing=bool(cfg.fail_on_missing),
    )


def run_gate(cfg: DictConfig) -> int:
    """Entry point of ``srarena gate [check|update]``; returns the process exit code."""
    action = str(cfg.action)
    if action not in ("check", "update"):
        raise ConfigError(f"gate action must be 'check' or 'update', not {action!r} (e.g. `srarena gate update`)")
    sel = runs_mod.Selection.from_config(OmegaConf.to_container(cfg.select, resolve=True), str(cfg.tracking.experiment))
    uri = tracking.configure(cfg)
    current = runs_mod.load_runs(uri, sel)
    path = baseline_path(cfg)
    if action == "update":
        runs_mod.require_runs(current, sel, uri)
        benchmarks = OmegaConf.to_container(cfg.benchmarks, resolve=True) or []
        data = make_baseline(current, benchmarks, list(cfg.metrics), git_commit=tracking.git_commit())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        print(f"gate: wrote baseline {path} ({len(data['entries'])} benchmark(s))")
        for e in data["entries"]:
            print(f"  {e['method']}/{e['dataset']}/x{e['scale']}: " + ", ".join(f"{k}={v:.4f}" for k, v in e["metrics"].items()))
        return 0
    baseline = read_baseline(path)
    settings = settings_from(cfg)
    result = compare(baseline, current, settings)
    print(f"gate: {path} vs runs in {uri}")
    print(format_result(result))
    code = exit_code(result, settings)
    counts = result["status"].value_counts().to_dict()
    print("gate: " + ("FAILED" if code else "passed") + " — " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    if (result["status"] == "improved").any() and not code:
        print("gate: some metrics improved beyond tolerance; `srarena gate update` records the new baseline")
    return code
