"""The report as one self-contained HTML page: inline CSS, SVG charts, sortable tables.

Nothing is loaded from anywhere: the charts are SVG drawn here, and a few lines of inline
script sort a table when its heading is clicked. The figures a reader (or a test) may want
to check carry `data-*` attributes: `#summary` (records per kind), `#span` (first, last),
`.area` cards (area, count), the bars of `#top-problems` and the rows of `#categories`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from typing import Any

from ngx_enrich.report import textfmt as fmt

DIMENSIONS = ("upstream", "client", "server", "host", "uri")
SEVERITY_COLOURS = {"critical": "#9f1239", "error": "#dc2626", "warning": "#d97706",
                    "info": "#0284c7"}
CLASS_COLOURS = {"1xx": "#94a3b8", "2xx": "#16a34a", "3xx": "#2563eb", "4xx": "#d97706",
                 "5xx": "#dc2626"}

CSS = """
:root { --ink: #1f2933; --muted: #64748b; --line: #e2e8f0; --card: #fff; --bg: #f4f6f9;
  --critical: #9f1239; --error: #dc2626; --warning: #d97706; --info: #0284c7; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "PingFang SC",
  "Microsoft YaHei", sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 28px 24px 48px; }
header h1 { margin: 0 0 4px; font-size: 26px; letter-spacing: -0.01em; }
header p { margin: 0; color: var(--muted); }
h2 { font-size: 18px; margin: 34px 0 12px; }
h3 { font-size: 15px; margin: 0 0 6px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr));
  gap: 12px; margin-top: 20px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 14px 16px; box-shadow: 0 1px 2px rgba(15, 23, 42, .04); }
.card .n { font-size: 24px; font-weight: 650; }
.card .k { color: var(--muted); font-size: 13px; }
.card.wide { grid-column: span 2; }
.areas { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr));
  gap: 12px; }
.area .top { display: flex; justify-content: space-between; align-items: baseline; }
.area .count { font-weight: 650; font-size: 18px; }
.chip { display: inline-block; padding: 0 8px; border-radius: 999px; font-size: 12px;
  color: #fff; background: var(--muted); vertical-align: 1px; }
.sev-critical { background: var(--critical); } .sev-error { background: var(--error); }
.sev-warning { background: var(--warning); } .sev-info { background: var(--info); }
svg { display: block; width: 100%; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: var(--ink); }
svg .axis { fill: var(--muted); font-size: 11px; }
table { width: 100%; border-collapse: collapse; background: var(--card);
  border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
th, td { padding: 7px 10px; text-align: left; border-bottom: 1px solid var(--line);
  vertical-align: middle; }
th { background: #f8fafc; font-size: 13px; color: var(--muted); font-weight: 600;
  white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #cbd5e1; }
table.sortable th[aria-sort=ascending]::after { content: " \\2191"; color: var(--ink); }
table.sortable th[aria-sort=descending]::after { content: " \\2193"; color: var(--ink); }
tbody tr:nth-child(even) { background: #fbfcfd; }
tbody tr:hover { background: #f1f5f9; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.spark { width: 170px; }
.problem { margin-bottom: 14px; }
.problem p { margin: 6px 0; }
.problem .hint { color: #334155; }
.tops { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr));
  gap: 10px; margin-top: 10px; }
.tops table { font-size: 13px; }
.tops td { overflow-wrap: anywhere; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr));
  gap: 12px; margin-top: 12px; }
.legend span { margin-right: 14px; font-size: 13px; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px;
  margin-right: 5px; }
footer { margin-top: 40px; color: var(--muted); font-size: 13px; }
.note { color: var(--muted); font-size: 13px; }
"""

SCRIPT = """
(function () {
  function key(cell) {
    var v = cell.getAttribute("data-sort");
    if (v === null) { v = cell.textContent.trim(); }
    var n = Number(v);
    return v !== "" && !isNaN(n) ? n : v.toLowerCase();
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
    heads.forEach(function (th, col) {
      th.addEventListener("click", function () {
        var asc = th.getAttribute("aria-sort") !== "ascending";
        heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", asc ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = key(a.cells[col]), y = key(b.cells[col]);
          var c = typeof x === "number" && typeof y === "number" ? x - y
            : String(x).localeCompare(String(y));
          return asc ? c : -c;
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  document.documentElement.setAttribute("data-ready", "1");
})();
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def render(report: dict[str, Any], words: dict[str, str]) -> str:
    """The whole report as an HTML document."""
    lang = "zh-CN" if report["lang"] == "zh" else report["lang"]
    parts = [f'<!doctype html>\n<html lang="{_e(lang)}">\n<head>\n<meta charset="utf-8">\n'
             '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
             f"<title>{_e(words['title'])}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
             "<main>\n"]
    parts.append(_header(report, words))
    if report["records"]:
        ticks = _ticks(report)
        parts.append(_problems_chart(report, words))
        parts.append(_areas(report, words, ticks))
        parts.append(_categories(report, words, ticks))
        parts.append(_details(report, words))
        if report["access"]:
            parts.append(_access(report["access"], words, ticks))
        if report["other"]["count"]:
            parts.append(_other(report["other"], words))
    else:
        parts.append(f"<p>{_e(words['nothing'])}</p>\n")
    notes = [_e(words["sort_hint"])]
    if report["estimated"]:
        notes.append(_e(words["estimated"]))
    notes.append(_e(fmt.label(words, "generated", version=report["version"])))
    parts.append("<footer>" + "<br>".join(notes) + "</footer>\n")
    parts.append(f"</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n")
    return "".join(parts)


def _header(report: dict[str, Any], words: dict[str, str]) -> str:
    kinds = report["kinds"]
    span = report["span"]
    out = [f"<header><h1>{_e(words['title'])}</h1>"
           f"<p>{_e(words['input'])}{_e(words['colon'])}"
           f"<span class=\"mono\">{_e(fmt.inputs(report, words))}</span></p></header>\n",
           f'<section id="summary" class="cards" data-records="{report["records"]}"'
           + "".join(f' data-{k}="{n}"' for k, n in kinds.items()) + ">\n",
           _card(words["records"], fmt.number(report["records"]))]
    out += [_card(words[f"kind_{k}"], fmt.number(n)) for k, n in kinds.items() if n]
    if span:
        text = (f"{fmt.moment(span['first'])} – {fmt.moment(span['last'])} "
                f"{fmt.zone(span['first'])}")
        out.append(f'<div id="span" class="card wide" data-first="{_e(span["first"])}" '
                   f'data-last="{_e(span["last"])}" data-seconds="{span["seconds"]}">'
                   f'<div class="n">{_e(fmt.duration(span["seconds"], words))}</div>'
                   f'<div class="k">{_e(words["span"])}{_e(words["colon"])}{_e(text)}</div>'
                   "</div>\n")
    window = report["window"]
    if window["since"] or window["until"]:
        bits = [f"{words[k]} {fmt.moment(window[k])}" for k in ("since", "until") if window[k]]
        skipped = window["outside"] + window["without_time"]
        out.append(f'<div class="card wide"><div class="n">{fmt.number(skipped)}</div>'
                   f'<div class="k">{_e(words["window"])}{_e(words["colon"])}'
                   f'{_e("; ".join(bits))} · {_e(words["outside_window"])} '
                   f'{fmt.number(window["outside"])}, {_e(words["without_time"])} '
                   f'{fmt.number(window["without_time"])}</div></div>\n')
    out.append("</section>\n")
    return "".join(out)


def _card(name: str, value: str) -> str:
    return f'<div class="card"><div class="n">{_e(value)}</div><div class="k">{_e(name)}</div>' \
           "</div>\n"


def _ticks(report: dict[str, Any]) -> list[str]:
    """The start time of every timeline bucket (the charts' tooltips), then the first and
    last record's time (their axis labels)."""
    frame = report["timeline"]
    if not frame:
        return []
    start = datetime.fromisoformat(frame["start"])
    step = timedelta(seconds=frame["bucket_seconds"])
    starts = [fmt.moment((start + step * i).isoformat()) for i in range(frame["buckets"])]
    return [*starts, fmt.moment(report["span"]["first"]), fmt.moment(report["span"]["last"])]


def _columns(series: list[list[int]], colours: list[str], ticks: list[str], height: int,
             labels: bool = True, names: list[str] | None = None) -> str:
    """Stacked columns over the timeline buckets (one series: a plain column chart)."""
    width = 400
    buckets = max(len(s) for s in series) if series else 0
    if not buckets:
        return ""
    totals = [sum(s[i] for s in series) for i in range(buckets)]
    peak = max(totals) or 1
    axis = 16 if labels else 0
    plot = height - axis
    step = width / buckets
    gap = min(step * 0.2, 2)
    out = [f'<svg viewBox="0 0 {width} {height}" role="img">']
    for i in range(buckets):
        y = float(plot)
        tip = [ticks[i] if i < len(ticks) else ""]
        for s, colour, name in zip(series, colours, names or [""] * len(series), strict=True):
            n = s[i]
            if not n:
                continue
            h = max(n / peak * (plot - 4), 1.5)
            y -= h
            tip.append(f"{name} {n}".strip())
            out.append(f'<rect x="{i * step + gap / 2:.2f}" y="{y:.2f}" '
                       f'width="{max(step - gap, 0.5):.2f}" height="{h:.2f}" rx="1" '
                       f'fill="{colour}"><title>{_e(" · ".join(tip))}</title></rect>')
    out.append(f'<line x1="0" y1="{plot}" x2="{width}" y2="{plot}" stroke="#cbd5e1"/>')
    if labels and ticks:
        out.append(f'<text class="axis" x="0" y="{height - 3}">{_e(ticks[-2])}</text>')
        if ticks[-1] != ticks[-2]:
            out.append(f'<text class="axis" x="{width}" y="{height - 3}" text-anchor="end">'
                       f"{_e(ticks[-1])}</text>")
        out.append(f'<text class="axis" x="{width}" y="10" text-anchor="end">'
                   f"{fmt.number(max(totals))}</text>")
    out.append("</svg>")
    return "".join(out)


def _problems_chart(report: dict[str, Any], words: dict[str, str]) -> str:
    rows = fmt.rows_by_id(report)
    problems = [rows[i] for i in report["top_problems"]]
    out = [f"<section><h2>{_e(words['top_problems'])}</h2>\n"]
    if not any(r["severity"] != "info" for r in problems):
        out.append(f'<p class="note">{_e(words["no_problems"])}</p>\n')
    if not problems:
        return "".join([*out, "</section>\n"])
    bar, label, width = 24, 270, 900
    peak = max(r["count"] for r in problems)
    shown = [s for s in SEVERITY_COLOURS if any(r["severity"] == s for r in problems)]
    out.append('<div class="card"><p class="legend">' + "".join(
        f'<span><i style="background:{SEVERITY_COLOURS[s]}"></i>{_e(s)}</span>' for s in shown)
        + "</p>")
    out.append(f'<svg id="top-problems" viewBox="0 0 {width} '
               f'{bar * len(problems) + 4}" role="img">')
    room = width - label - 80
    for i, row in enumerate(problems):
        y = i * bar + 2
        length = max(row["count"] / peak * room, 2)
        colour = SEVERITY_COLOURS.get(row["severity"], "#64748b")
        out.append(
            f'<g class="bar" data-category="{_e(row["category"])}" data-area="{_e(row["area"])}"'
            f' data-count="{row["count"]}" data-severity="{_e(row["severity"])}">'
            f'<title>{_e(row["category"])} ({_e(row["area"])}, {_e(row["severity"])}): '
            f'{row["count"]}</title>'
            f'<text x="{label - 10}" y="{y + bar / 2 + 4:.1f}" text-anchor="end">'
            f'{_e(fmt.fit(row["category"], 36))}</text>'
            f'<rect x="{label}" y="{y + 3}" width="{length:.1f}" height="{bar - 6}" rx="3" '
            f'fill="{colour}"/>'
            f'<text x="{label + length + 6:.1f}" y="{y + bar / 2 + 4:.1f}">'
            f'{fmt.number(row["count"])}</text></g>')
    out.append("</svg></div>\n</section>\n")
    return "".join(out)


def _areas(report: dict[str, Any], words: dict[str, str], ticks: list[str]) -> str:
    bucket = fmt.bucket(report, words)
    out = [f"<section><h2>{_e(words['areas'])}</h2>\n"]
    if bucket:
        out.append(f'<p class="note">{_e(bucket)}</p>\n')
    out.append('<div class="areas">\n')
    for area in report["areas"]:
        colour = SEVERITY_COLOURS.get(area["severity"], "#64748b")
        out.append(
            f'<article class="card area" data-area="{_e(area["area"])}" '
            f'data-count="{area["count"]}"><div class="top"><h3>{_e(area["area"])} '
            f'<span class="chip sev-{_e(area["severity"])}">{_e(area["severity"])}</span></h3>'
            f'<span class="count">{fmt.number(area["count"])}</span></div>'
            f'{_columns([area["timeline"]], [colour], ticks, 90)}</article>\n')
    out.append("</div>\n</section>\n")
    return "".join(out)


def _sort_time(text: str | None) -> str:
    return _e(text or "")


def _categories(report: dict[str, Any], words: dict[str, str], ticks: list[str]) -> str:
    same_day = fmt.same_day(report)
    rank = {"critical": 0, "error": 1, "warning": 2, "info": 3}
    head = [("severity", ""), ("category", ""), ("area", ""), ("kind", ""), ("count", "num"),
            ("first_seen", ""), ("last_seen", ""), ("timeline", "")]
    out = [f"<section><h2>{_e(words['categories'])}</h2>\n"
           '<table id="categories" class="sortable"><thead><tr>'
           + "".join(f'<th data-key="{k}" class="{c}">{_e(words[k])}</th>' for k, c in head)
           + "</tr></thead><tbody>\n"]
    for row in report["categories"]:
        colour = SEVERITY_COLOURS.get(row["severity"], "#64748b")
        out.append(
            f'<tr data-category="{_e(row["category"])}" data-area="{_e(row["area"])}" '
            f'data-count="{row["count"]}">'
            f'<td data-sort="{rank.get(row["severity"], 9)}"><span class="chip '
            f'sev-{_e(row["severity"])}">{_e(row["severity"])}</span></td>'
            f'<td class="mono">{_e(row["category"])}</td><td>{_e(row["area"])}</td>'
            f'<td>{_e(", ".join(row["kinds"]))}</td>'
            f'<td class="num" data-sort="{row["count"]}">{fmt.number(row["count"])}</td>'
            f'<td data-sort="{_sort_time(row["first_seen"])}">'
            f'{_e(fmt.when(row["first_seen"], same_day))}</td>'
            f'<td data-sort="{_sort_time(row["last_seen"])}">'
            f'{_e(fmt.when(row["last_seen"], same_day))}</td>'
            f'<td class="spark" data-sort="{row["count"]}">'
            f'{_columns([row["timeline"]], [colour], ticks, 24, labels=False)}</td></tr>\n')
    out.append("</tbody></table>\n</section>\n")
    return "".join(out)


def _list_table(title: str, words: dict[str, str], entries: list[dict[str, Any]]) -> str:
    rows = "".join(f'<tr><td class="mono">{_e(v)}</td><td class="num">{_e(n)}</td></tr>'
                   for v, n in fmt.items(entries))
    return (f'<table class="sortable"><thead><tr><th>{_e(title)}</th>'
            f'<th class="num">{_e(words["count"])}</th></tr></thead><tbody>{rows}</tbody>'
            "</table>")


def _details(report: dict[str, Any], words: dict[str, str]) -> str:
    rows = fmt.rows_by_id(report)
    out = [f"<section><h2>{_e(words['details'])}</h2>\n"]
    for row_id in report["top_problems"]:
        row = rows[row_id]
        out.append(
            f'<article class="card problem" data-category="{_e(row["category"])}">'
            f'<h3><span class="chip sev-{_e(row["severity"])}">{_e(row["severity"])}</span> '
            f'<span class="mono">{_e(row["category"])}</span> · {_e(row["area"])} · '
            f'{fmt.number(row["count"])}</h3>'
            f'<p><strong>{_e(words["meaning"])}</strong>{_e(words["colon"])}'
            f'{_e(row["explanation"])}</p>')
        if row["hint"]:
            out.append(f'<p class="hint">{_e(row["hint"])}</p>')
        tops = [_list_table(words[f"top_{d}"], words, row["top"][d])
                for d in DIMENSIONS if row["top"].get(d)]
        if tops:
            out.append('<div class="tops">' + "".join(tops) + "</div>")
        out.append("</article>\n")
    out.append("</section>\n")
    return "".join(out)


def _access(access: dict[str, Any], words: dict[str, str], ticks: list[str]) -> str:
    classes = access["status_classes"]
    out = [f'<section id="access" data-records="{access["records"]}">'
           f"<h2>{_e(words['access'])} · {fmt.number(access['records'])}</h2>\n"
           f'<div class="card"><h3>{_e(words["status_classes"])}</h3><p class="legend">']
    out += [f'<span data-class="{_e(c["class"])}" data-count="{c["count"]}">'
            f'<i style="background:{CLASS_COLOURS[c["class"]]}"></i>{_e(c["class"])} '
            f'{fmt.number(c["count"])}</span>' for c in classes]
    out.append("</p>")
    out.append(_columns([c["timeline"] for c in classes],
                        [CLASS_COLOURS[c["class"]] for c in classes], ticks, 140,
                        names=[c["class"] for c in classes]))
    out.append("</div>\n")
    tables = [_list_table(words[title], words, access[key]) for key, title in (
        ("top_4xx_paths", "top_4xx"), ("top_5xx_paths", "top_5xx"),
        ("upstream_statuses", "upstream_statuses")) if access[key]]
    timed = [(words[k], access[k]) for k in ("upstream_response_time", "request_time")
             if access[k]]
    if timed:
        names = ("count", "mean", "p50", "p95", "max")
        head = "".join(f'<th class="num">{_e(words[n])}</th>' for n in names)
        body = "".join(
            f"<tr><td>{_e(name)}</td><td class=\"num\">{fmt.number(s['count'])}</td>"
            + "".join(f'<td class="num">{s[n]:.3f} s</td>' for n in names[1:]) + "</tr>"
            for name, s in timed)
        tables.append(f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody>"
                      "</table>")
    if tables:
        out.append('<div class="grid2">' + "".join(tables) + "</div>\n")
    out.append("</section>\n")
    return "".join(out)


def _other(other: dict[str, Any], words: dict[str, str]) -> str:
    return (f'<section id="other" data-count="{other["count"]}"><h2>{_e(words["other"])} · '
            f'{fmt.number(other["count"])}</h2>\n'
            f'{_list_table(words["reason"], words, other["reasons"])}\n</section>\n')
