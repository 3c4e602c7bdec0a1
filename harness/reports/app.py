"""``srarena report``: leaderboards, paper tables, statistics and figures from MLflow runs.

The edge of ``srarena.harness.reports``: it reads runs (MLflow), per-image CSVs and images (files),
calls the pure builders, and writes everything under ``out_dir`` (``paths.reports``):

    leaderboard.{md,tex,csv,html}   tables/<layout>.{md,tex,csv}
    figures/*.png                   comparisons/<dataset>_x<scale>_<image>.png
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from srarena.harness import tracking
from srarena.harness.errors import ConfigError
from srarena.harness.reports import html as html_mod
from srarena.harness.reports import plots, runs as runs_mod, tables
from srarena.harness.reports.columns import direction_map
from srarena.harness.reports.layouts import Layout, StatsSettings, Style, attach_stats, build_layout, leaderboard_table

log = logging.getLogger(__name__)


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if node is not None else None


def style_from(cfg: DictConfig) -> Style:
    s = _container(cfg.get("style")) or {}
    return Style(
        metric_labels=s.get("metric_labels") or {}, method_labels=s.get("method_labels") or {},
        dataset_labels=s.get("dataset_labels") or {}, precision=s.get("precision") or {},
    )


def stats_from(cfg: DictConfig) -> StatsSettings:
    s = _container(cfg.get("stats")) or {}
    if s.get("test", "bootstrap") not in ("bootstrap", "wilcoxon"):
        raise ConfigError(f"stats.test must be 'bootstrap' or 'wilcoxon', not {s.get('test')!r}")
    kw = {k: v for k, v in s.items() if k in StatsSettings.__dataclass_fields__}
    if "exclude" in kw:
        kw["exclude"] = tuple(kw["exclude"] or ())
    return StatsSettings(**kw)


def layouts_from(cfg: DictConfig) -> list[Layout]:
    nodes = _container(OmegaConf.select(cfg, "report.layouts")) or {}
    wanted = _container(cfg.get("tables"))
    if wanted:
        unknown = [w for w in wanted if w not in nodes]
        if unknown:
            raise ConfigError(f"tables: unknown layout(s) {', '.join(unknown)}; available: {', '.join(sorted(nodes))}")
        nodes = {k: nodes[k] for k in wanted}
    return [Layout.from_config(name, node) for name, node in nodes.items()]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_table(table: tables.Table, base: Path, title: str = "") -> list[Path]:
    md = (f"# {title}\n\n" if title else "") + tables.to_markdown(table)
    return [write(base.with_suffix(".md"), md), write(base.with_suffix(".tex"), tables.to_latex(table)),
            write(base.with_suffix(".csv"), tables.to_csv(table))]


# ---------------------------------------------------------------- images


def _read_png(path: Path) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError):
        return None


def load_pair(run: Mapping[str, Any], image_id: str) -> tuple[np.ndarray, np.ndarray] | None:
    """HR and LR of ``image_id`` by re-instantiating the dataset from the run's config.yaml."""
    import hydra

    path = runs_mod.artifact_path(run, "config.yaml")
    if path is None:
        return None
    try:
        conf = OmegaConf.load(path)
        dataset = hydra.utils.instantiate(conf.dataset)
        pair = dataset.load(image_id)
        return pair.hr, pair.lr
    except Exception as e:  # noqa: BLE001 — a moved dataset only costs the figure
        log.warning("comparison: cannot load %s of %s: %s", image_id, run.get("dataset"), e)
        return None


def sr_image(run: Mapping[str, Any], image_id: str) -> np.ndarray | None:
    out = run.get("tags.output_dir")
    return _read_png(Path(out) / "images" / f"{image_id}.png") if isinstance(out, str) else None


def comparisons(lat: pd.DataFrame, per_image: Mapping[str, pd.DataFrame], out_dir: Path, fig_cfg: Mapping[str, Any],
                style: Style, key_metric: str | None) -> dict[str, tuple[str, bytes]]:
    """Visual grids per (dataset, scale); returns ``run_id -> (relative link, thumbnail PNG)``."""
    result: dict[str, tuple[str, bytes]] = {}
    n_images, crop_size = int(fig_cfg.get("images", 1)), int(fig_cfg.get("crop_size", 64))
    for (dataset, scale), grp in lat.groupby(["dataset", "scale"]):
        ids: list[str] | None = None
        for rid in grp["run_id"]:
            if str(rid) in per_image:
                have = list(per_image[str(rid)].index)
                ids = have if ids is None else [i for i in ids if i in have]
        for image_id in (ids or [])[:n_images]:
            pair = load_pair(grp.iloc[0].to_dict(), image_id)
            if pair is None:
                continue
            hr, lr = pair
            outputs, caps, rows = {}, {}, {}
            for _, r in grp.sort_values("method").iterrows():
                img = sr_image(r.to_dict(), image_id)
                if img is None or img.shape != hr.shape:
                    continue
                name = style.method_labels.get(r["method"], r["method"])
                outputs[name], rows[name] = img, str(r["run_id"])
                frame = per_image.get(str(r["run_id"]))
                if key_metric and frame is not None and key_metric in frame.columns:
                    caps[name] = f"{style.metric_label(key_metric)} {float(frame.at[image_id, key_metric]):.2f}"
            if not outputs:
                continue
            crop = plots.pick_crop(hr, crop_size)
            rel = f"comparisons/{dataset}_x{scale}_{image_id}.png"
            plots.save(plots.comparison_grid(hr, lr, outputs, scale=int(scale), crop=crop, captions=caps,
                                             title=f"{dataset} x{scale} — {image_id}"), out_dir / rel)
            for name, rid in rows.items():
                result.setdefault(rid, (rel, plots.thumbnail(outputs[name], crop)))
    return result


# ---------------------------------------------------------------- figures


def figures(runs: pd.DataFrame, out_dir: Path, fig_cfg: Mapping[str, Any], style: Style) -> list[Path]:
    written: list[Path] = []
    lat = runs_mod.latest(runs, runs_mod.KEYS)
    pd_cfg = fig_cfg.get("perception_distortion") or {}
    for (dataset, scale), grp in lat.groupby(["dataset", "scale"]):
        x = pd_cfg.get("x", "psnr_y")
        for y in pd_cfg.get("y", []):
            if plots.available(grp, [x, y]):
                d = direction_map([x, y])
                fig = plots.perception_distortion(grp, x, y, x_lower=d[x], y_lower=d[y], xlabel=style.metric_label(x),
                                                  ylabel=style.metric_label(y),
                                                  title=f"{dataset} x{scale}: {style.metric_label(y)} vs {style.metric_label(x)}")
                written.append(plots.save(fig, out_dir / "figures" / f"pd_{dataset}_x{scale}_{y}.png"))
    steps_cfg = fig_cfg.get("quality_vs_steps") or {}
    key = runs_mod.resolve_column(runs, steps_cfg.get("keys", ["steps", "params.method.steps"]))
    if key is not None:
        df = runs.assign(_steps=pd.to_numeric(runs[key], errors="coerce")).dropna(subset=["_steps"])
        df = runs_mod.latest(df, [*runs_mod.KEYS, "_steps"])
        for (dataset, scale), grp in df.groupby(["dataset", "scale"]):
            if grp.groupby("method")["_steps"].nunique().max() < 2:
                continue  # no method was run at more than one step count
            for m in steps_cfg.get("metrics", []):
                if plots.available(grp, [m]):
                    fig = plots.quality_vs(grp, "_steps", m, xlabel="sampling steps", ylabel=style.metric_label(m), lower_better=direction_map([m])[m],
                                           title=f"{dataset} x{scale}: {style.metric_label(m)} vs steps")
                    written.append(plots.save(fig, out_dir / "figures" / f"steps_{dataset}_x{scale}_{m}.png"))
    fl_cfg = fig_cfg.get("quality_vs_flops") or {}
    fx = fl_cfg.get("x", "flops_per_image_g")
    if fx in runs.columns:
        df = runs.dropna(subset=[fx])
        if key is not None:
            df = runs_mod.latest(df.assign(_steps=df[key]), [*runs_mod.KEYS, "_steps"])
        else:
            df = runs_mod.latest(df, runs_mod.KEYS)
        for (dataset, scale), grp in df.groupby(["dataset", "scale"]):
            for m in fl_cfg.get("metrics", []):
                if plots.available(grp, [fx, m]):
                    fig = plots.quality_vs(grp, fx, m, logx=True, xlabel="GFLOPs per image", ylabel=style.metric_label(m),
                                           lower_better=direction_map([m])[m],
                                           title=f"{dataset} x{scale}: {style.metric_label(m)} vs FLOPs")
                    written.append(plots.save(fig, out_dir / "figures" / f"flops_{dataset}_x{scale}_{m}.png"))
    return written


# ---------------------------------------------------------------- entry point


def run_report(cfg: DictConfig) -> int:
    """Entry point of ``srarena report``; returns the process exit code."""
    sel = runs_mod.Selection.from_config(_container(cfg.select), str(cfg.tracking.experiment))
    uri = tracking.configure(cfg)
    runs = runs_mod.require_runs(runs_mod.load_runs(uri, sel), sel, uri)
    out_dir = Path(str(cfg.out_dir)).expanduser()
    style, stats_settings, layouts = style_from(cfg), stats_from(cfg), layouts_from(cfg)
    fig_cfg = _container(cfg.get("figures")) or {}
    lat = runs_mod.latest(runs, runs_mod.KEYS)
    per_image = runs_mod.per_image_table(runs) if stats_settings.enabled or fig_cfg.get("enabled") else {}
    set_features = runs_mod.set_features_table(runs) if stats_settings.enabled else {}
    written: list[Path] = []

    lb = _container(cfg.leaderboard)
    if lb.get("enabled", True):
        table = leaderboard_table(runs, lb["columns"], style)
        table.show_ci = bool(lb.get("show_ci", True))
        attach_stats(table, per_image, stats_settings, set_features)
        title = f"srarena leaderboard — experiment `{cfg.tracking.experiment}`"
        written += write_table(table, out_dir / str(lb.get("basename", "leaderboard")), title)
        if lb.get("html", True):
            thumbs: dict[str, tuple[str, bytes]] = {}
            comp_cfg = fig_cfg.get("comparisons") or {}
            if fig_cfg.get("enabled", True) and comp_cfg.get("enabled", True):
                thumbs = comparisons(lat, per_image, out_dir, comp_cfg, style, comp_cfg.get("caption_metric"))
                written += sorted({out_dir / rel for rel, _ in thumbs.values()})
            sections = []
            groups = table.groups if table.groups is not None else pd.Series("all", index=table.values.index)
            for name, idx in groups.groupby(groups, sort=False).groups.items():
                sub = subset(table, list(idx))
                sec = html_mod.Section(str(name), sub)
                for new_row, old_row in enumerate(idx):
                    rid = str(table.run_ids.iat[old_row, 0]) if table.run_ids is not None and len(table.ids) else None
                    if rid in thumbs:
                        sec.links[new_row], sec.thumbs[new_row] = thumbs[rid]
                sections.append(sec)
            page = html_mod.render_html(sections, title="srarena leaderboard",
                                        subtitle=f"experiment {cfg.tracking.experiment} · {len(lat)} result(s) · store {uri}")
            written.append(write(out_dir / f"{lb.get('basename', 'leaderboard')}.html", page))
        print(tables.to_markdown(table))

    for layout in layouts:
        t = build_layout(runs, layout, style)
        if t is None:
            print(f"table {layout.name}: no matching runs (scale={layout.scale}, metrics={list(layout.metrics)}); skipped")
            continue
        if layout.stats:
            attach_stats(t, per_image, stats_settings, set_features)
        written += write_table(t, out_dir / "tables" / layout.name)
        print(f"table {layout.name}: {len(t.values)} row(s) × {len(t.columns)} column(s)")

    if fig_cfg.get("enabled", True):
        written += figures(runs, out_dir, fig_cfg, style)
    print(f"report: {len(written)} file(s) under {out_dir}")
    for p in written:
        log.info("wrote %s", p)
    return 0


def subset(table: tables.Table, rows: list) -> tables.Table:
    """The rows ``rows`` of ``table`` re-indexed from 0 (one HTML tab)."""

    def pick(frame: pd.DataFrame | None) -> pd.DataFrame | None:
        return None if frame is None else frame.loc[rows].reset_index(drop=True)

    return tables.Table(
        labels=pick(table.labels), values=pick(table.values), columns=table.columns, groups=None,
        ci_lo=pick(table.ci_lo), ci_hi=pick(table.ci_hi), p_vs_best=pick(table.p_vs_best), run_ids=pick(table.run_ids),
        title=table.title, notes=table.notes, alpha=table.alpha, test=table.test, show_ci=table.show_ci,
        n=pick(table.n),
    )
