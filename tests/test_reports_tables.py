"""Tables from runs with known values: marks by direction, ties, LaTeX/Markdown/CSV, layouts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from srarena.harness.reports import tables
from srarena.harness.reports.layouts import Layout, StatsSettings, Style, attach_stats, build_layout, leaderboard_table
from srarena.harness.reports.tables import BEST, SECOND, Column, Table


def _table(values: dict[str, list[float]], lower: dict[str, bool | None], precision: int = 2) -> Table:
    rows = [f"m{i}" for i in range(len(next(iter(values.values()))))]
    cols = [Column(k, k, k, lower[k], None, precision) for k in values]
    return Table(labels=pd.DataFrame({"method": rows}), values=pd.DataFrame(values, dtype=float), columns=cols)


def test_marks_follow_each_metric_direction():
    t = _table({"psnr_y": [30.0, 32.0, 31.0], "lpips": [0.30, 0.10, 0.20], "steps": [1, 2, 3]},
               {"psnr_y": False, "lpips": True, "steps": None})
    m = tables.marks(t)
    assert m["psnr_y"].tolist() == ["", BEST, SECOND]
    assert m["lpips"].tolist() == ["", BEST, SECOND]
    assert m["steps"].tolist() == ["", "", ""]  # no direction, no marks
    t2 = _table({"lpips": [0.10, 0.30, 0.20]}, {"lpips": True})
    assert tables.marks(t2)["lpips"].tolist() == [BEST, "", SECOND]


def test_ties_at_displayed_precision_share_the_mark():
    # 31.004 and 31.001 both print as 31.00: tied best; the next distinct value is second.
    t = _table({"psnr_y": [31.004, 31.001, 30.5, 30.5, 29.0]}, {"psnr_y": False})
    assert tables.marks(t)["psnr_y"].tolist() == [BEST, BEST, SECOND, SECOND, ""]
    t = _table({"lpips": [0.2, 0.2, 0.3]}, {"lpips": True})
    assert tables.marks(t)["lpips"].tolist() == [BEST, BEST, SECOND]
    # everyone tied: marking every cell bold would say nothing
    t = _table({"n_failed": [0.0, 0.0, 0.0]}, {"n_failed": True})
    assert tables.marks(t)["n_failed"].tolist() == ["", "", ""]


def test_nan_and_single_value_groups_get_no_marks():
    t = _table({"fid": [np.nan, 12.0, np.nan]}, {"fid": True})
    assert tables.marks(t)["fid"].tolist() == ["", "", ""]
    md = tables.to_markdown(t)
    assert "| m0 | – |" in md


def test_marks_are_per_ranking_group():
    t = _table({"psnr_y": [30.0, 31.0, 20.0, 21.0]}, {"psnr_y": False})
    t.groups = pd.Series(["a", "a", "b", "b"])
    assert tables.marks(t)["psnr_y"].tolist() == [SECOND, BEST, SECOND, BEST]


def test_markdown_and_latex_put_bold_and_underline_on_the_right_cells():
    t = _table({"psnr_y": [30.0, 32.0, 31.0], "lpips": [0.30, 0.10, 0.20]}, {"psnr_y": False, "lpips": True})
    md = tables.to_markdown(t)
    assert "| psnr_y ↑ | lpips ↓ |" in md
    assert "| m1 | **32.00** | **0.10** |" in md
    assert "| m2 | <u>31.00</u> | <u>0.20</u> |" in md
    assert "| m0 | 30.00 | 0.30 |" in md
    tex = tables.to_latex(t)
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"psnr\_y$\uparrow$ & lpips$\downarrow$" in tex
    assert r"m1 & \textbf{32.00} & \textbf{0.10} \\" in tex
    assert r"m2 & \underline{31.00} & \underline{0.20} \\" in tex
    csv = tables.to_csv(t)
    assert "psnr_y:mark" in csv.splitlines()[0]


def test_latex_column_groups_and_daggers():
    cols = [Column("A/psnr_y", "psnr_y", "PSNR", False, "Set5", 2), Column("A/ssim_y", "ssim_y", "SSIM", False, "Set5", 4),
            Column("B/psnr_y", "psnr_y", "PSNR", False, "Urban_100", 2)]
    vals = pd.DataFrame({"A/psnr_y": [30.0, 29.9], "A/ssim_y": [0.9, 0.8], "B/psnr_y": [25.0, 26.0]})
    t = Table(labels=pd.DataFrame({"method": ["a_1", "b"]}), values=vals, columns=cols,
              p_vs_best=pd.DataFrame({"A/psnr_y": [1.0, 0.4], "A/ssim_y": [1.0, 0.001], "B/psnr_y": [0.2, 1.0]}))
    tex = tables.to_latex(t)
    assert r"& \multicolumn{2}{c}{Set5} & Urban\_100 \\" in tex
    assert r"\cmidrule(lr){2-3} \cmidrule(lr){4-4}" in tex
    assert r"a\_1 & \textbf{30.00} & \textbf{0.9000} & \underline{25.00}$^\dagger$ \\" in tex
    assert r"b & \underline{29.90}$^\dagger$ & \underline{0.8000} & \textbf{26.00} \\" in tex
    md = tables.to_markdown(t)
    assert "<u>29.90</u> †" in md and "<u>0.8000</u> |" in md


def _runs() -> pd.DataFrame:
    rows = []
    t = 0
    for ds, base in [("Set5", 30.0), ("Urban100", 25.0)]:
        for m, off, lp in [("bicubic", 0.0, 0.40), ("sr3", 1.0, 0.15), ("ssmoe", 1.5, 0.12)]:
            t += 1
            rows.append({"run_id": f"{m}-{ds}", "start_time": t, "method": m, "dataset": ds, "scale": 4,
                         "psnr_y": base + off, "ssim_y": 0.8 + off / 10, "lpips": lp, "steps": 50 if m != "bicubic" else 1})
    # a stale older run that must be superseded, and a steps sweep of sr3
    rows.append({"run_id": "old", "start_time": 0, "method": "ssmoe", "dataset": "Set5", "scale": 4, "psnr_y": 99.0,
                 "ssim_y": 0.99, "lpips": 0.0, "steps": 50})
    for s, p in [(10, 29.5), (20, 30.2), (50, 31.0)]:
        t += 1
        rows.append({"run_id": f"sweep{s}", "start_time": t, "method": "sr3", "dataset": "Set5", "scale": 4, "psnr_y": p,
                     "ssim_y": 0.85, "lpips": 0.2, "steps": s})
    return pd.DataFrame(rows)


def test_grouped_layout_has_datasets_as_column_groups():
    lay = Layout.from_config("t1", {"kind": "grouped", "scale": 4, "metrics": ["psnr_y", "lpips", "fid"],
                                   "methods": ["bicubic", "sr3", "ssmoe"]})
    t = build_layout(_runs().query("run_id.str.startswith('sweep') == False"), lay,
                     Style(metric_labels={"psnr_y": "PSNR"}))
    assert [c.group for c in t.columns] == ["Set5", "Set5", "Urban100", "Urban100"]
    assert t.labels["method"].tolist() == ["bicubic", "sr3", "ssmoe"]
    assert t.values["Set5/psnr_y"].tolist() == [30.0, 31.0, 31.5]  # the stale 99.0 run is superseded
    m = tables.marks(t)
    assert m["Set5/lpips"].tolist() == ["", SECOND, BEST]
    assert any("fid" in n for n in t.notes)  # asked for but absent: said so, not a column


def test_sweep_layout_has_steps_under_each_metric():
    lay = Layout.from_config("s", {"kind": "sweep", "scale": 4, "metrics": ["psnr_y"], "methods": ["sr3"]})
    t = build_layout(_runs()[lambda d: d["dataset"] == "Set5"], lay)
    assert [c.label for c in t.columns] == ["10", "20", "50"]
    assert t.values.iloc[0].tolist() == [29.5, 30.2, 31.0]


def test_flat_layout_and_missing_scale():
    runs = _runs()
    assert build_layout(runs, Layout.from_config("x8", {"kind": "flat", "scale": 8, "metrics": ["psnr_y"]})) is None
    t = build_layout(runs, Layout.from_config("f", {"kind": "flat", "scale": 4, "dataset": "Urban100", "metrics": ["psnr_y", "steps"]}))
    assert t.values["psnr_y"].tolist() == [25.0, 26.0, 26.5]
    assert t.columns[1].integer


def test_paired_test_separates_a_small_but_consistent_gap():
    runs = _runs().query("not run_id.str.startswith('sweep') and run_id != 'old'")
    t = leaderboard_table(runs, ["psnr_y", "lpips"])
    rng = np.random.default_rng(0)
    base = rng.normal(30, 2, 20)
    per_image = {}
    for _, r in runs.iterrows():
        shift = {"bicubic": 0.0, "sr3": 1.0, "ssmoe": 1.05}[r["method"]]
        noise = rng.normal(0, 0.01, 20) if r["method"] == "ssmoe" else 0
        per_image[r["run_id"]] = pd.DataFrame({"psnr_y": base + shift + noise, "lpips": 0.3 - shift / 10 + 0 * base},
                                              index=[f"i{k}" for k in range(20)])
    attach_stats(t, per_image, StatsSettings(n_boot=500, seed=1))
    ins = tables.insignificant(t)
    set5 = t.labels["dataset"] == "Set5"
    by_method = dict(zip(t.labels.loc[set5, "method"], ins.loc[set5, "psnr_y"]))
    assert by_method == {"bicubic": False, "sr3": False, "ssmoe": False}
    assert (t.ci_lo["psnr_y"] < t.ci_hi["psnr_y"]).all()
    assert t.ci_lo["lpips"].notna().all()


def test_statistical_tie_gets_a_dagger():
    idx = [f"i{k}" for k in range(8)]
    a = np.array([30.0, 31, 29, 30.5, 30.2, 29.8, 30.1, 30.4])
    b = a + np.array([0.3, -0.2, 0.1, -0.1, 0.2, -0.3, 0.15, 0.05])  # same on average: not significant
    runs = pd.DataFrame([{"run_id": "A", "start_time": 1, "method": "a", "dataset": "d", "scale": 4, "psnr_y": a.mean()},
                         {"run_id": "B", "start_time": 2, "method": "b", "dataset": "d", "scale": 4, "psnr_y": b.mean()}])
    t = leaderboard_table(runs, ["psnr_y"])
    attach_stats(t, {"A": pd.DataFrame({"psnr_y": a}, index=idx), "B": pd.DataFrame({"psnr_y": b}, index=idx)},
                 StatsSettings(n_boot=1000, seed=0))
    md = tables.to_markdown(t)
    assert "†" in md.splitlines()[2] + md.splitlines()[3]
    assert t.p_vs_best["psnr_y"].min() >= 0.05


@pytest.mark.parametrize("kind", ["grouped", "flat", "sweep"])
def test_layout_configs_in_conf_parse(kind):
    from pathlib import Path

    import yaml

    conf = Path(__file__).resolve().parents[1] / "conf" / "report"
    kinds = {yaml.safe_load(p.read_text())["kind"] for p in conf.glob("*.yaml")}
    assert kind in kinds
    for p in conf.glob("*.yaml"):
        Layout.from_config(p.stem, yaml.safe_load(p.read_text()))
