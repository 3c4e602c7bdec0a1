"""One table per fact: the metric table and the column table give every direction, label and digit;
a metric added as one table row reaches the runner, MLflow, the leaderboard, the report and the
gate with its direction; the metric and report modules import without a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from srarena.harness.metrics import catalog, registry
from srarena.harness.metrics.spec import MetricContext, MetricSpec, import_object
from srarena.harness.reports import columns, gate, runs as runs_mod, tables
from srarena.harness.reports.layouts import StatsSettings, Style, attach_stats, leaderboard_table

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"


# ------------------------------------------------------------------ the tables themselves


def test_metric_rows_are_complete_and_unique():
    names = [s.name for s in catalog.METRICS]
    assert len(names) == len(set(names))
    assert registry.available_metrics() == sorted(names)
    for spec in catalog.METRICS:
        assert spec.kind in ("fr", "nr", "set") and isinstance(spec.lower_better, bool)
        assert spec.value_range[0] < spec.value_range[1] and spec.library and spec.version
        assert spec.label and spec.precision is not None and "input" in spec.conventions
        assert isinstance(spec.factory, str) and callable(import_object(spec.factory)), spec.name


def test_every_weight_key_of_the_table_is_registered_by_its_module():
    from srarena.harness.weights import registered_weights

    assert registry.import_implementations() == {}
    known = registered_weights()
    for spec in catalog.METRICS:
        for key in spec.weights:
            assert key in known, f"{spec.name}: weight key {key} is registered by no module"
            assert known[key].filename in spec.record(MetricContext(scale=4))["weights"]


def test_implementation_modules_come_from_the_table():
    mods = registry.implementation_modules()
    assert "srarena.harness.metrics.psnr_ssim" in mods and "srarena.harness.metrics.fid" in mods
    assert set(mods) == {s.factory.partition(":")[0] for s in catalog.METRICS}


def test_reading_the_table_imports_no_metric_implementation():
    code = ("import sys; from srarena.harness.metrics import registry; from srarena.harness.reports import columns;"
            "registry.available_metrics(); columns.direction_map(['psnr_y', 'fid', 'time_per_image_s']);"
            "bad = [m for m in registry.implementation_modules() if m in sys.modules];"
            "print('loaded:', bad, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "loaded: [] False"


def test_column_table_is_disjoint_from_the_metric_table():
    assert not {c.name for c in columns.COLUMNS} & {s.name for s in catalog.METRICS}
    assert len({c.name for c in columns.COLUMNS}) == len(columns.COLUMNS)


def test_derived_columns_follow_their_base():
    assert columns.describe("psnr_y_std").lower_better is None and columns.describe("psnr_y_std").precision == 2
    n = columns.describe("fid_n")
    assert n.lower_better is None and n.integer and n.precision == 0
    assert columns.describe("psnr_y_n").known is False  # only set metrics report an N
    assert columns.describe("no_such_column") == columns.ColumnInfo("no_such_column", None, None, "no_such_column",
                                                                    known=False)


def _config_columns() -> dict[str, list[str]]:
    run = OmegaConf.load(CONF / "run.yaml")
    report = OmegaConf.load(CONF / "report.yaml")
    found = {"run.yaml leaderboard.extra_columns": list(run.leaderboard.extra_columns),
             "gate.yaml metrics": list(OmegaConf.load(CONF / "gate.yaml").metrics),
             "report.yaml leaderboard.columns": list(report.leaderboard.columns)}
    for p in sorted((CONF / "metrics").glob("*.yaml")):
        found[f"metrics/{p.name}"] = list(OmegaConf.load(p).presets)
    for p in sorted((CONF / "report").glob("*.yaml")):
        found[f"report/{p.name}"] = list(OmegaConf.load(p).metrics)
    return found


def test_every_column_a_config_names_is_in_a_table():
    for where, names in _config_columns().items():
        unknown = [n for n in names if not columns.describe(n).known]
        assert not unknown, f"{where} names columns no table describes: {unknown}"


def test_no_config_carries_directions():
    run = OmegaConf.load(CONF / "run.yaml")
    assert "lower_better" not in run.leaderboard and "directions" not in run.leaderboard
    for name in ("gate.yaml", "report.yaml"):
        assert "directions" not in OmegaConf.load(CONF / name), name


# ------------------------------------------------------------------ directions agree everywhere


def _directed() -> list[tuple[str, bool]]:
    rows = [(s.name, s.lower_better) for s in catalog.METRICS]
    return rows + [(c.name, c.lower_better) for c in columns.COLUMNS if c.lower_better is not None]


@pytest.mark.parametrize("name,lower", _directed())
def test_leaderboard_statistics_and_gate_take_the_direction_from_the_table(name, lower):
    # two methods, "good" better than "bad" by the table's direction on every image
    idx = [f"i{k}" for k in range(6)]
    base = np.linspace(10.0, 20.0, 6)  # apart at any table precision (peak memory prints 0 digits)
    good, bad = (base, base + 5.0) if lower else (base + 5.0, base)
    runs = pd.DataFrame([{"run_id": "G", "start_time": 1, "method": "good", "dataset": "d", "scale": 4, name: good.mean()},
                         {"run_id": "B", "start_time": 2, "method": "bad", "dataset": "d", "scale": 4, name: bad.mean()}])
    for style in (Style(), Style(display_labels=False)):
        t = leaderboard_table(runs, [name], style)
        col = t.columns[0]
        assert col.lower_better is lower
        assert tables.header_text(col).endswith("↓" if lower else "↑")
        by_method = dict(zip(t.labels["method"], tables.marks(t)[col.id]))
        assert by_method == {"good": tables.BEST, "bad": tables.SECOND}
        settings = StatsSettings(n_boot=200, seed=0)
        attach_stats(t, {"G": pd.DataFrame({name: good}, index=idx), "B": pd.DataFrame({name: bad}, index=idx)},
                     settings)
        if name not in settings.exclude:  # cost columns get no CI and no test
            p = dict(zip(t.labels["method"], t.p_vs_best[col.id]))
            assert p["good"] == 1.0 and p["bad"] < 0.05  # the paired test is against the table's best

    # the gate: a step of 2x the tolerance in the bad direction regresses, in the good one improves
    settings = gate.GateSettings(tolerances={name: 0.1})
    baseline = {"entries": [{"method": "m", "dataset": "d", "scale": 4, "metrics": {name: 1.0}}]}
    worse, better = (1.2, 0.8) if lower else (0.8, 1.2)
    for value, status in ((worse, "regressed"), (better, "improved")):
        cur = pd.DataFrame([{"run_id": "r", "start_time": 1, "method": "m", "dataset": "d", "scale": 4, name: value}])
        assert gate.compare(baseline, cur, settings)["status"].tolist() == [status]


def test_a_column_no_table_knows_has_no_direction_anywhere():
    runs = pd.DataFrame([{"run_id": "a", "start_time": 1, "method": "a", "dataset": "d", "scale": 4, "mystery": 1.0},
                         {"run_id": "b", "start_time": 2, "method": "b", "dataset": "d", "scale": 4, "mystery": 2.0}])
    t = leaderboard_table(runs, ["mystery"])
    assert t.columns[0].lower_better is None and set(tables.marks(t)["mystery"]) == {""}
    res = gate.compare({"entries": [{"method": "a", "dataset": "d", "scale": 4, "metrics": {"mystery": 1.0}}]},
                       runs, gate.GateSettings(tolerances={}, default_tolerance=0.1))
    assert res["status"].tolist() == ["not_gated"] and res["note"].tolist() == ["no direction"]


# ------------------------------------------------------------------ a metric added by one row


def toy_darkness(ctx: MetricContext, floor: float = 0.0):
    """A no-reference toy metric: how dark the output is (1 - mean intensity), lower is better."""

    def f(sr: torch.Tensor, hr: torch.Tensor | None = None) -> torch.Tensor:
        return (1.0 - sr.flatten(1).mean(dim=1)).clamp_min(floor).double()

    return f


TOY = MetricSpec(
    name="toy_darkness", kind="nr", lower_better=True, value_range=(0.0, 1.0), library="srarena", version="1",
    conventions={"input": "SR quantised to uint8", "formula": "1 - mean(RGB)"},
    factory="tests.test_metric_table:toy_darkness", params={"floor": 0.0}, label="Darkness", precision=3,
)


@pytest.fixture
def toy_row(monkeypatch):
    """The table with one more row, as if a contributor had added it to catalog.METRICS."""
    monkeypatch.syspath_prepend(str(REPO))  # the factory path names this module as tests.test_metric_table
    monkeypatch.setattr(catalog, "METRICS", (*catalog.METRICS, TOY))
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "_loaded", False)
    return TOY


def _compose(config: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(config, overrides=overrides)


@pytest.mark.slow
def test_a_metric_added_as_one_row_reaches_leaderboard_report_and_gate(toy_row, tmp_path, photos, capsys):
    from srarena.harness import app
    from srarena.harness.data.io import write_png
    from srarena.harness.reports.app import run_report

    hr = tmp_path / "HR"
    write_png(hr / "a.png", photos["astronaut"][:64, :64])
    write_png(hr / "b.png", photos["coffee"][100:164, 200:264])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = [f"tracking.uri={uri}", f"paths.outputs={tmp_path / 'out'}", f"paths.reports={tmp_path / 'reports'}"]
    for method, extra in (("bicubic", []), ("rrdbnet_demo", [])):
        cfg = _compose("run", common + [f"method={method}", "dataset=folder", f"dataset.hr_dir={hr}", "dataset.name=toy",
                                        "metrics.presets=[psnr_y,toy_darkness]", "runner.progress=false",
                                        "runner.warmup=0", f"+method_name={method}", *extra])
        assert app.run(cfg) == 0
    board = (tmp_path / "reports" / "leaderboard.md").read_text()
    assert "toy_darkness ↓" in board and "psnr_y ↑" in board
    runs = runs_mod.load_runs(uri, runs_mod.Selection(experiments=("srarena",)))
    assert runs["toy_darkness"].notna().all() and runs["tags.metric.toy_darkness"].str.contains("formula=").all()
    values = dict(zip(runs["method"], runs["toy_darkness"]))
    best = min(values, key=values.get)  # lower is better: the darker output must not win
    row = next(line for line in board.splitlines() if line.startswith(f"| {best} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    header = [c.strip() for c in board.splitlines()[2].strip("|").split("|")]
    assert cells[header.index("toy_darkness ↓")].startswith("**")

    # the report: the row's label and digits
    rep = _compose("report", common + [f"out_dir={tmp_path / 'rep'}", "tables=[]", "figures.enabled=false",
                                       "leaderboard.columns=[psnr_y,toy_darkness]", "stats.n_boot=100"])
    assert run_report(rep) == 0
    md = (tmp_path / "rep" / "leaderboard.md").read_text()
    assert "Darkness ↓" in md and f"{values[best]:.3f}" in md

    # the gate: a baseline the run is worse than (lower is better) fails, one it beats is improved
    for delta, status in ((-0.05, "regressed"), (0.05, "improved")):
        baseline = {"entries": [{"method": best, "dataset": "toy", "scale": 4,
                                 "metrics": {"toy_darkness": values[best] + delta}}]}
        res = gate.compare(baseline, runs, gate.GateSettings(tolerances={"toy": 0.01}))
        assert res["status"].tolist() == [status] and res["note"].tolist() == ["lower is better"]


# ------------------------------------------------------------------ no import circle


def _modules(package_dir: Path, prefix: str) -> list[str]:
    out = []
    for p in sorted(package_dir.rglob("*.py")):
        rel = p.relative_to(package_dir).with_suffix("")
        parts = [x for x in rel.parts if x != "__init__"]
        out.append(".".join([prefix, *parts]))
    return out


def _module_path(name: str) -> Path | None:
    parts = name.split(".")[1:]  # drop "srarena"
    if not parts:
        return None
    root = REPO / parts[0]
    for cand in (root.joinpath(*parts[1:]).with_suffix(".py"), root.joinpath(*parts[1:], "__init__.py")):
        if cand.is_file():
            return cand
    return None


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # imports inside `if TYPE_CHECKING:` never run
        nodes = [n for n in nodes if not (isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))]
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("srarena"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("srarena"))
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def _graph(modules: list[str], top_level_only: bool) -> dict[str, set[str]]:
    known = set(modules)
    graph = {}
    for mod in modules:
        path = _module_path(mod)
        graph[mod] = {m for m in _imports(path, top_level_only) if m in known and m != mod} if path else set()
    return graph


def test_metric_and_report_modules_have_no_import_circle_even_through_lazy_imports():
    mods = _modules(REPO / "harness" / "metrics", "srarena.harness.metrics") + \
        _modules(REPO / "harness" / "reports", "srarena.harness.reports") + ["srarena.harness.tracking"]
    assert _cycle(_graph(mods, top_level_only=False)) is None


def test_no_module_of_the_package_imports_itself_back_at_import_time():
    mods = _modules(REPO / "harness", "srarena.harness") + _modules(REPO / "methods", "srarena.methods")
    assert _cycle(_graph(mods, top_level_only=True)) is None


_FORK_IMPORTS = r"""
import os, sys, importlib
# Third-party libraries once (no srarena module), then one forked child per module: each child
# starts with no srarena module loaded, so the module under test is the first one imported.
import numpy, pandas, torch, omegaconf, hydra, mlflow, matplotlib, scipy  # noqa: F401
assert not [m for m in sys.modules if m.startswith("srarena")]
failed = 0
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException as e:
            print(f"{name}: {type(e).__name__}: {e}", flush=True)
            os._exit(1)
        os._exit(0)
    failed += os.waitpid(pid, 0)[1] != 0
sys.exit(1 if failed else 0)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_each_metric_and_report_module_imports_first_in_a_fresh_interpreter():
    """A circle shows up as an ImportError for the module that is imported first; so every module
    is imported first in an interpreter of its own (forked from one that holds only third-party
    libraries, to keep this to seconds)."""
    mods = _modules(REPO / "harness" / "metrics", "srarena.harness.metrics") + \
        _modules(REPO / "harness" / "reports", "srarena.harness.reports") + ["srarena.harness.tracking"]
    out = subprocess.run([sys.executable, "-c", _FORK_IMPORTS, *mods], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr[-2000:]
