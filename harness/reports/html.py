"""A self-contained HTML leaderboard: one tab per (dataset, scale), sortable columns, thumbnails.

Why self-contained: the page is attached to CI runs and e-mailed around; it must open from a
file with no server and no network. CSS and JS are inline, thumbnails are ``data:`` URIs, and
each thumbnail links to the visual comparison PNG written next to the page. Pure: tables and
thumbnail bytes in, a string out.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field

from srarena.harness.reports.columns import arrow
from srarena.harness.reports.tables import BEST, SECOND, Table, fmt_value, half_width, insignificant, legend, marks, precision_of


@dataclass
class Section:
    """One tab: a table, and per row an optional thumbnail (PNG bytes) and link target."""

    name: str
    table: Table
    thumbs: dict[int, bytes] = field(default_factory=dict)
    links: dict[int, str] = field(default_factory=dict)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#222}
h1{font-size:1.4rem} .tabs{display:flex;gap:.25rem;border-bottom:2px solid #ccc;margin-bottom:1rem;flex-wrap:wrap}
.tab{padding:.4rem .9rem;border:1px solid #ccc;border-bottom:none;background:#f4f4f4;cursor:pointer;border-radius:4px 4px 0 0}
.tab.active{background:#fff;font-weight:600;position:relative;top:2px}
.panel{display:none}.panel.active{display:block}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
th,td{padding:.3rem .6rem;border-bottom:1px solid #e3e3e3;text-align:right;white-space:nowrap}
th{cursor:pointer;user-select:none;background:#fafafa;position:sticky;top:0}
th.label,td.label{text-align:left} th[aria-sort=ascending]::after{content:" \\25B2"} th[aria-sort=descending]::after{content:" \\25BC"}
td.best{font-weight:700} td.second{text-decoration:underline} .ci{color:#777;font-size:.85em}
img.thumb{width:48px;height:48px;object-fit:cover;vertical-align:middle;border:1px solid #ccc}
.legend{color:#555;font-size:.9em;margin-top:.8rem}
"""

_JS = """
(function(){
  function activate(i){
    document.querySelectorAll('.tab').forEach(function(t,j){t.classList.toggle('active',i===j);});
    document.querySelectorAll('.panel').forEach(function(p,j){p.classList.toggle('active',i===j);});
  }
  document.querySelectorAll('.tab').forEach(function(t,i){t.addEventListener('click',function(){activate(i);});});
  document.querySelectorAll('table.lb').forEach(function(table){
    table.querySelectorAll('th').forEach(function(th,col){
      th.addEventListener('click',function(){
        var asc = th.getAttribute('aria-sort') !== 'ascending';
        table.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort');});
        th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function(a,b){
          var x=a.cells[col].getAttribute('data-v'), y=b.cells[col].getAttribute('data-v');
          var nx=parseFloat(x), ny=parseFloat(y), r;
          if(isNaN(nx)&&isNaN(ny)) r=String(x).localeCompare(String(y));
          else if(isNaN(nx)) return 1; else if(isNaN(ny)) return -1; else r=nx-ny;
          return asc ? r : -r;
        });
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
  activate(0);
})();
"""


def _esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def _table_html(sec: Section, index: int) -> str:
    t = sec.table
    m, ins = marks(t), insignificant(t)
    label_cols = list(t.labels.columns)
    show_thumbs = bool(sec.thumbs)
    head = [f'<th class="label" scope="col">{_esc(c)}</th>' for c in label_cols]
    if show_thumbs:
        head.append('<th class="label" scope="col">sample</th>')
    for col in t.columns:
        title = f"{col.group} · {col.label}" if col.group else col.label
        head.append(f'<th scope="col" title="{_esc(col.key)}">{_esc(f"{title} {arrow(col.lower_better)}".rstrip())}</th>')
    rows = []
    for row in t.values.index:
        cells = [f'<td class="label" data-v="{_esc(t.labels.at[row, c])}">{_esc(t.labels.at[row, c])}</td>' for c in label_cols]
        if show_thumbs:
            img = ""
            if row in sec.thumbs:
                uri = "data:image/png;base64," + base64.b64encode(sec.thumbs[row]).decode()
                img = f'<img class="thumb" alt="sample" src="{uri}">'
                if row in sec.links:
                    img = f'<a href="{_esc(sec.links[row])}">{img}</a>'
            cells.append(f'<td class="label" data-v="">{img}</td>')
        for col in t.columns:
            v = t.values.at[row, col.id]
            digits = precision_of(col, t.values[col.id])
            text = _esc(fmt_value(v, digits))
            h = half_width(t, row, col.id)
            if not math.isnan(h):
                text += f' <span class="ci">± {h:.{digits}f}</span>'
            if ins.at[row, col.id]:
                text += ' <span title="not significantly different from the best">†</span>'
            cls = {BEST: "best", SECOND: "second"}.get(m.at[row, col.id], "")
            dv = "" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(float(v))
            cells.append(f'<td class="{cls}" data-v="{dv}">{text}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<section class="panel" id="panel-{index}"><table class="lb"><thead><tr>{"".join(head)}</tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table></section>'
    )


def render_html(sections: list[Section], title: str = "srarena leaderboard", subtitle: str = "") -> str:
    """The whole page; an empty ``sections`` gives a page saying there is nothing yet."""
    tabs = "".join(f'<button class="tab" type="button">{_esc(s.name)}</button>' for s in sections)
    panels = "".join(_table_html(s, i) for i, s in enumerate(sections)) or "<p>No runs.</p>"
    notes = legend(sections[0].table) if sections else []
    notes_html = "".join(f"<div>{_esc(n)}</div>" for n in notes)
    return (
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_esc(title)}</title><link rel=\"icon\" href=\"data:,\"><style>{_CSS}</style></head><body>"
        f"<h1>{_esc(title)}</h1><p>{_esc(subtitle)}</p><nav class=\"tabs\">{tabs}</nav>{panels}"
        f"<div class=\"legend\">{notes_html}</div><script>{_JS}</script></body></html>\n"
    )
