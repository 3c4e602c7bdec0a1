"""One table model, three renderers: Markdown, LaTeX (booktabs) and CSV.

Why one model: the leaderboard and every paper layout share the same rules — best in bold and
second underlined per column according to the metric's direction, ties (equal at the displayed
precision) share the mark, cells not significantly different from the best carry a dagger —
so those rules live in :func:`marks` and :func:`insignificant` once, and renderers only format.
Everything here is pure: DataFrames in, text out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from srarena.harness.reports.columns import arrow

BEST, SECOND = "best", "second"


@dataclass(frozen=True)
class Column:
    """One numeric column: ``key`` is the metric (run column), ``group`` its column group
    (a dataset, or a metric in a sweep table), ``id`` unique within the table."""

    id: str
    key: str
    label: str
    lower_better: bool | None = None
    group: str | None = None
    precision: int | None = None
    integer: bool = False


@dataclass
class Table:
    """Rows × columns of numbers with what is needed to mark and annotate them.

    ``labels``: the row-label columns (e.g. ``method``, or ``method, dataset, scale``);
    ``values``: one float column per :class:`Column` id, same index; ``groups``: the ranking
    group of each row (marks are computed within a group; None = one group);
    ``ci_lo``/``ci_hi``/``p_vs_best``: optional frames shaped like ``values``;
    ``run_ids``: which run each cell came from (for statistics and provenance);
    ``n``: images behind a set statistic's CI (FID), per cell, where a CI was computed from features.
    """

    labels: pd.DataFrame
    values: pd.DataFrame
    columns: list[Column]
    groups: pd.Series | None = None
    ci_lo: pd.DataFrame | None = None
    ci_hi: pd.DataFrame | None = None
    p_vs_best: pd.DataFrame | None = None
    run_ids: pd.DataFrame | None = None
    title: str = ""
    caption: str = ""
    label: str = ""
    notes: list[str] = field(default_factory=list)
    alpha: float = 0.05
    test: str = "paired bootstrap"
    show_ci: bool = False
    n: pd.DataFrame | None = None

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.columns]


def precision_of(col: Column, values: pd.Series) -> int:
    """Digits after the point: the column's, else 4 for small magnitudes and 2 for large."""
    if col.integer:
        return 0
    if col.precision is not None:
        return int(col.precision)
    finite = pd.to_numeric(values, errors="coerce").dropna()
    return 4 if finite.empty or finite.abs().max() < 10 else 2


def fmt_value(v: float, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}f}"


def _group_keys(table: Table) -> pd.Series:
    if table.groups is None:
        return pd.Series(0, index=table.values.index)
    return table.groups


def marks(table: Table) -> pd.DataFrame:
    """``"best"``/``"second"``/``""`` per cell, by direction, within each ranking group.

    Values are compared at the displayed precision, so two cells that print the same are tied
    and share the mark; the second mark goes to the next distinct value. A column without a
    direction, or a group with fewer than two values, gets no marks.
    """
    out = pd.DataFrame("", index=table.values.index, columns=table.ids)
    groups = _group_keys(table)
    for col in table.columns:
        if col.lower_better is None:
            continue
        digits = precision_of(col, table.values[col.id])
        for _, idx in groups.groupby(groups, sort=False).groups.items():
            vals = pd.to_numeric(table.values.loc[idx, col.id], errors="coerce").round(digits).dropna()
            if len(vals) < 2:
                continue
            distinct = sorted(vals.unique(), reverse=not col.lower_better)
            if len(distinct) == 1:
                continue  # everyone tied: a bold column says nothing
            out.loc[vals.index[vals == distinct[0]], col.id] = BEST
            if len(distinct) > 1:
                out.loc[vals.index[vals == distinct[1]], col.id] = SECOND
    return out


def insignificant(table: Table) -> pd.DataFrame:
    """True where a cell is not the best yet its paired test vs the best has p ≥ alpha."""
    out = pd.DataFrame(False, index=table.values.index, columns=table.ids)
    if table.p_vs_best is None:
        return out
    m = marks(table)
    for c in table.ids:
        if c not in table.p_vs_best.columns:
            continue
        p = pd.to_numeric(table.p_vs_best[c], errors="coerce")
        out[c] = (p >= table.alpha) & (m[c] != BEST) & p.notna()
    return out


def half_width(table: Table, row, col_id: str) -> float:
    if table.ci_lo is None or table.ci_hi is None or col_id not in table.ci_lo.columns:
        return math.nan
    lo, hi = table.ci_lo.at[row, col_id], table.ci_hi.at[row, col_id]
    try:
        return (float(hi) - float(lo)) / 2
    except (TypeError, ValueError):
        return math.nan


def n_suffix(table: Table, row, col: Column) -> str:
    """`` (N=…)`` after a set statistic whose CI came from features, unless the header has N."""
    if table.n is None or col.id not in table.n.columns or "N=" in col.label:
        return ""
    v = table.n.at[row, col.id]
    return "" if pd.isna(v) else f" (N={int(v)})"


def header_text(col: Column, arrows: bool = True) -> str:
    a = arrow(col.lower_better) if arrows else ""
    return f"{col.label} {a}".strip()


def _has_groups(table: Table) -> bool:
    return any(c.group for c in table.columns)


def legend(table: Table, *, markdown: bool = True) -> list[str]:
    lines = ["↑ higher is better, ↓ lower is better; best in bold, second underlined."]
    if table.p_vs_best is not None:
        lines.append(
            f"† not significantly different from the best of its column ({table.test} over images, p ≥ {table.alpha:g})."
        )
    if table.show_ci:
        lines.append("± half-width of the 95% bootstrap confidence interval over images.")
    return lines + list(table.notes)


# ---------------------------------------------------------------- Markdown


def to_markdown(table: Table, *, with_legend: bool = True) -> str:
    """GitHub Markdown: ``**best**``, ``<u>second</u>``, † for statistical ties."""
    m, ins = marks(table), insignificant(table)
    label_cols = list(table.labels.columns)
    heads = [f"{c.group} · {header_text(c)}" if c.group else header_text(c) for c in table.columns]
    lines = [
        "| " + " | ".join(label_cols + heads) + " |",
        "|" + "|".join([":---"] * len(label_cols) + ["---:"] * len(table.columns)) + "|",
    ]
    for row in table.values.index:
        cells = [str(table.labels.at[row, c]) for c in label_cols]
        for col in table.columns:
            digits = precision_of(col, table.values[col.id])
            text = fmt_value(table.values.at[row, col.id], digits)
            if table.show_ci:
                h = half_width(table, row, col.id)
                if not math.isnan(h):
                    text += f" ± {h:.{digits}f}"
            text += n_suffix(table, row, col)
            if m.at[row, col.id] == BEST:
                text = f"**{text}**"
            elif m.at[row, col.id] == SECOND:
                text = f"<u>{text}</u>"
            if ins.at[row, col.id]:
                text += " †"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if table.title:
        text = f"### {table.title}\n\n" + text
    if with_legend:
        text += "\n" + "\n".join(f"_{line}_  " for line in legend(table)) + "\n"
    return text


# ---------------------------------------------------------------- LaTeX

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
    "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def latex_escape(text: object) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _latex_header(col: Column) -> str:
    a = {True: r"$\downarrow$", False: r"$\uparrow$", None: ""}[col.lower_better]
    return f"{latex_escape(col.label)}{a}"


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment: ``\\textbf`` best, ``\\underline`` second,
    ``$^\\dagger$`` statistical ties, column groups as ``\\multicolumn`` + ``\\cmidrule``."""
    m, ins = marks(table), insignificant(table)
    label_cols = list(table.labels.columns)
    nl, nc = len(label_cols), len(table.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\small"]
    if table.caption or table.title:
        lines.append(rf"\caption{{{latex_escape(table.caption or table.title)}}}")
    if table.label:
        lines.append(rf"\label{{{table.label}}}")
    lines += [rf"\begin{{tabular}}{{{'l' * nl}{'c' * nc}}}", r"\toprule"]
    if _has_groups(table):
        spans: list[tuple[str, int]] = []
        for c in table.columns:
            g = c.group or ""
            if spans and spans[-1][0] == g:
                spans[-1] = (g, spans[-1][1] + 1)
            else:
                spans.append((g, 1))
        cells, rules, start = [""] * nl, [], nl + 1
        for g, n in spans:
            cells.append(rf"\multicolumn{{{n}}}{{c}}{{{latex_escape(g)}}}" if n > 1 else latex_escape(g))
            if g:
                rules.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
            start += n
        lines.append(" & ".join(cells) + r" \\")
        lines.append(" ".join(rules))
    lines.append(" & ".join([latex_escape(c.capitalize()) for c in label_cols] + [_latex_header(c) for c in table.columns]) + r" \\")
    lines.append(r"\midrule")
    groups = _group_keys(table)
    prev = None
    for row in table.values.index:
        if prev is not None and groups.at[row] != prev:
            lines.append(r"\midrule")
        prev = groups.at[row]
        cells = [latex_escape(table.labels.at[row, c]) for c in label_cols]
        for col in table.columns:
            digits = precision_of(col, table.values[col.id])
            text = fmt_value(table.values.at[row, col.id], digits)
            if m.at[row, col.id] == BEST:
                text = rf"\textbf{{{text}}}"
            elif m.at[row, col.id] == SECOND:
                text = rf"\underline{{{text}}}"
            if ins.at[row, col.id]:
                text += r"$^\dagger$"
            if table.show_ci:
                h = half_width(table, row, col.id)
                if not math.isnan(h):
                    text += rf"\,{{\scriptsize$\pm${h:.{digits}f}}}"
            cells.append(text)
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = legend(table)[1:]
    if notes:
        text = latex_escape(" ".join(notes))
        for uni, tex in (("†", r"$^\dagger$"), ("±", r"$\pm$"), ("≥", r"$\geq$"), ("×", r"$\times$")):
            text = text.replace(uni, tex)
        lines.append(r"\\[2pt]{\footnotesize " + text + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- CSV


def to_frame(table: Table) -> pd.DataFrame:
    """Flat machine-readable frame: labels, each value, its mark, CI and p-value."""
    m = marks(table)
    out = table.labels.copy()
    for col in table.columns:
        out[col.id] = table.values[col.id]
        out[f"{col.id}:mark"] = m[col.id]
        for name, frame in (("ci_lo", table.ci_lo), ("ci_hi", table.ci_hi), ("p_vs_best", table.p_vs_best),
                            ("n", table.n)):
            if frame is not None and col.id in frame.columns:
                out[f"{col.id}:{name}"] = frame[col.id]
    return out


def to_csv(table: Table) -> str:
    return to_frame(table).to_csv(index=False, float_format="%.6g")


def empty_like(values: pd.DataFrame, fill=np.nan) -> pd.DataFrame:
    return pd.DataFrame(fill, index=values.index, columns=values.columns)


def label_for(key: str, labels: Mapping[str, str] | None) -> str:
    return str((labels or {}).get(key, key))


def unique(seq: Iterable) -> list:
    return list(dict.fromkeys(seq))
