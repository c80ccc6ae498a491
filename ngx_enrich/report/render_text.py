"""The report for an 80-column terminal; colour only when asked (a TTY without NO_COLOR)."""

from __future__ import annotations

from typing import Any

from ngx_enrich.report import textfmt as fmt

WIDTH = 80
_SEVERITY = {"critical": "1;31", "error": "31", "warning": "33", "info": "36"}
DIMENSIONS = ("upstream", "client", "server", "host", "uri")


class _Out:
    """Lines of the report, styled when colour is on."""

    def __init__(self, color: bool) -> None:
        self.color = color
        self.lines: list[str] = []

    def style(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and text.strip() else text

    def severity(self, text: str, severity: str, columns: int) -> str:
        return self.style(fmt.pad(text, columns), _SEVERITY.get(severity, "0"))

    def heading(self, text: str) -> None:
        if self.lines:
            self.lines.append("")
        self.lines.append(self.style(fmt.fit(text, WIDTH), "1"))

    def line(self, text: str = "") -> None:
        self.lines.append(text.rstrip())

    def wrapped(self, text: str, indent: int) -> None:
        for part in fmt.wrap(text, WIDTH - indent):
            self.lines.append(" " * indent + part)


def render(report: dict[str, Any], words: dict[str, str], color: bool = False) -> str:
    """The whole report as text lines of at most 80 columns."""
    out = _Out(color)
    _header(out, report, words)
    if not report["records"]:
        out.line(words["nothing"])
        return "\n".join(out.lines) + "\n"
    same_day = fmt.same_day(report)
    _areas(out, report, words)
    _categories(out, report, words, same_day)
    _problems(out, report, words, same_day)
    if report["access"]:
        _access(out, report["access"], words)
    if report["other"]["count"]:
        _other(out, report["other"], words)
    if report["estimated"]:
        out.line()
        out.wrapped(words["estimated"], 0)
    return "\n".join(out.lines) + "\n"


def _field(out: _Out, words: dict[str, str], name: str, value: str) -> None:
    out.wrapped(f"{words[name]}{words['colon']}{value}", 0)


def _header(out: _Out, report: dict[str, Any], words: dict[str, str]) -> None:
    out.heading(words["title"])
    _field(out, words, "input", fmt.inputs(report, words))
    kinds = fmt.kinds(report, words)
    _field(out, words, "records",
           fmt.number(report["records"]) + (f" ({kinds})" if kinds else ""))
    span = report["span"]
    if span:
        zone = fmt.zone(span["first"])
        _field(out, words, "span", f"{fmt.moment(span['first'])} – {fmt.moment(span['last'])}"
               f"{' ' + zone if zone else ''} ({fmt.duration(span['seconds'], words)})")
    elif report["records"]:
        _field(out, words, "span", words["no_time"])
    window = report["window"]
    if window["since"] or window["until"]:
        parts = [f"{words[k]} {fmt.moment(window[k])}" for k in ("since", "until") if window[k]]
        parts += [f"{fmt.number(window[k])} {words[key]}" for k, key in (
            ("outside", "outside_window"), ("without_time", "without_time")) if window[k]]
        _field(out, words, "window", "; ".join(parts))


def _areas(out: _Out, report: dict[str, Any], words: dict[str, str]) -> None:
    bucket = fmt.bucket(report, words)
    out.heading(words["areas"] + (f" ({bucket})" if bucket else ""))
    out.line(f"  {fmt.pad(words['area'], 12)} {fmt.pad(words['count'], 9, True)} "
             f"{fmt.pad(words['share'], 6, True)}  {fmt.pad(words['timeline'], 40)}")
    total = sum(a["count"] for a in report["areas"])
    for area in report["areas"]:
        out.line(f"  {out.severity(area['area'], area['severity'], 12)} "
                 f"{fmt.pad(fmt.number(area['count']), 9, True)} "
                 f"{fmt.pad(fmt.share(area['count'], total), 6, True)}  "
                 f"{fmt.spark(area['timeline'])}".rstrip())


def _categories(out: _Out, report: dict[str, Any], words: dict[str, str],
                same_day: bool) -> None:
    out.heading(words["categories"])
    stamp = max(8 if same_day else 11, *(fmt.width(words[k]) for k in ("first_seen",
                                                                          "last_seen")))
    name = WIDTH - 2 - 9 - 12 - 8 - 2 * (stamp + 1)
    out.line(f"  {fmt.pad(words['severity'], 9)}{fmt.pad(words['category'], name)} "
             f"{fmt.pad(words['area'], 11)}{fmt.pad(words['count'], 8, True)} "
             f"{fmt.pad(words['first_seen'], stamp)} {fmt.pad(words['last_seen'], stamp)}")
    for row in report["categories"]:
        out.line(f"  {out.severity(row['severity'], row['severity'], 9)}"
                 f"{fmt.pad(row['category'], name)} {fmt.pad(row['area'], 11)}"
                 f"{fmt.pad(fmt.number(row['count']), 8, True)} "
                 f"{fmt.pad(fmt.when(row['first_seen'], same_day), stamp)} "
                 f"{fmt.pad(fmt.when(row['last_seen'], same_day), stamp)}")


def _problems(out: _Out, report: dict[str, Any], words: dict[str, str],
              same_day: bool) -> None:
    rows = fmt.rows_by_id(report)
    problems = [rows[i] for i in report["top_problems"]]
    out.heading(words["details"])
    if not any(r["severity"] != "info" for r in problems):
        out.wrapped(words["no_problems"], 2)
    for row in problems:
        out.line()
        title = f"{row['category']}  ({row['area']}, {fmt.number(row['count'])})"
        out.line(f"  {out.severity(row['severity'], row['severity'], 9)}{fmt.fit(title, 69)}")
        if any(row["timeline"]):
            seen = f"{fmt.when(row['first_seen'], same_day)} – " \
                   f"{fmt.when(row['last_seen'], same_day)}"
            out.line(f"    {fmt.pad(fmt.spark(row['timeline']), 40)}  {seen}".rstrip())
        if row["explanation"]:
            out.wrapped(row["explanation"], 4)
        if row["hint"]:
            out.wrapped(row["hint"], 4)
        for dimension in DIMENSIONS:
            entries = row["top"].get(dimension)
            if entries:
                listed = ", ".join(f"{fmt.fit(v, 48)} ({n})" for v, n in fmt.items(entries))
                out.wrapped(f"{words['top_' + dimension]}{words['colon']}{listed}", 4)


def _access(out: _Out, access: dict[str, Any], words: dict[str, str]) -> None:
    out.heading(f"{words['access']} ({fmt.number(access['records'])})")
    out.line(f"  {fmt.pad(words['status_class'], 12)} {fmt.pad(words['count'], 9, True)} "
             f"{fmt.pad(words['share'], 6, True)}  {fmt.pad(words['timeline'], 40)}")
    total = sum(c["count"] for c in access["status_classes"])
    for cls in access["status_classes"]:
        severity = {"4xx": "warning", "5xx": "error"}.get(cls["class"], "")
        out.line(f"  {out.severity(cls['class'], severity, 12)} "
                 f"{fmt.pad(fmt.number(cls['count']), 9, True)} "
                 f"{fmt.pad(fmt.share(cls['count'], total), 6, True)}  "
                 f"{fmt.spark(cls['timeline'])}".rstrip())
    for key, title in (("top_4xx_paths", "top_4xx"), ("top_5xx_paths", "top_5xx"),
                       ("upstream_statuses", "upstream_statuses")):
        if access[key]:
            _counted(out, words[title], words["value"], words["count"], fmt.items(access[key]))
    timed = [(words[k], access[k]) for k in ("upstream_response_time", "request_time")
             if access[k]]
    if timed:
        out.line()
        names = ("count", "mean", "p50", "p95", "max")
        out.line("  " + " " * 24 + "".join(fmt.pad(words[n], 10, True) for n in names))
        for name, stats in timed:
            cells = [fmt.number(stats["count"])]
            cells += [f"{stats[n]:.3f} s" for n in names[1:]]
            out.line(f"  {fmt.pad(name, 24)}" + "".join(fmt.pad(c, 10, True) for c in cells))


def _counted(out: _Out, title: str, value: str, count: str,
             entries: list[tuple[str, str]]) -> None:
    out.line()
    out.line(f"  {out.style(fmt.fit(title, 76), '1')}")
    out.line(f"    {fmt.pad(value, 64)} {fmt.pad(count, 10, True)}")
    for name, n in entries:
        out.line(f"    {fmt.pad(name, 64)} {fmt.pad(n, 10, True)}")


def _other(out: _Out, other: dict[str, Any], words: dict[str, str]) -> None:
    out.heading(f"{words['other']} ({fmt.number(other['count'])})")
    out.line(f"  {fmt.pad(words['reason'], 66)} {fmt.pad(words['count'], 10, True)}")
    for name, n in fmt.items(other["reasons"]):
        out.line(f"  {fmt.pad(name, 66)} {fmt.pad(n, 10, True)}")
