"""The report as Markdown: headings, tables and sparklines in code spans."""

from __future__ import annotations

from typing import Any

from ngx_enrich.report import textfmt as fmt

DIMENSIONS = ("upstream", "client", "server", "host", "uri")


def _cell(value: Any) -> str:
    text = str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _table(head: list[str], rows: list[list[Any]], right: set[int]) -> list[str]:
    rule = ["---:" if i in right else "---" for i in range(len(head))]
    lines = ["| " + " | ".join(_cell(h) for h in head) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _spark(counts: list[int]) -> str:
    return f"`{fmt.spark(counts)}`" if any(counts) else ""


def render(report: dict[str, Any], words: dict[str, str]) -> str:
    """The whole report as a Markdown document."""
    out = [f"# {words['title']}", ""]
    out.append(f"- **{words['input']}**{words['colon']}{_cell(fmt.inputs(report, words))}")
    kinds = fmt.kinds(report, words)
    out.append(f"- **{words['records']}**{words['colon']}{fmt.number(report['records'])}"
               + (f" ({kinds})" if kinds else ""))
    span = report["span"]
    if span:
        out.append(f"- **{words['span']}**{words['colon']}{fmt.moment(span['first'])} – "
                   f"{fmt.moment(span['last'])} {fmt.zone(span['first'])} "
                   f"({fmt.duration(span['seconds'], words)})")
    window = report["window"]
    if window["since"] or window["until"]:
        parts = [f"{words[k]} {fmt.moment(window[k])}" for k in ("since", "until") if window[k]]
        parts.append(f"{fmt.number(window['outside'])} {words['outside_window']}, "
                     f"{fmt.number(window['without_time'])} {words['without_time']}")
        out.append(f"- **{words['window']}**{words['colon']}" + "; ".join(parts))
    if not report["records"]:
        return "\n".join([*out, "", words["nothing"]]) + "\n"
    same_day = fmt.same_day(report)
    bucket = fmt.bucket(report, words)
    total = sum(a["count"] for a in report["areas"])
    out += ["", f"## {words['areas']}", ""]
    if bucket:
        out += [f"*{bucket}*", ""]
    out += _table([words["area"], words["severity"], words["count"], words["share"],
                   words["timeline"]],
                  [[a["area"], a["severity"], fmt.number(a["count"]),
                    fmt.share(a["count"], total), _spark(a["timeline"])]
                   for a in report["areas"]], {2, 3})
    out += ["", f"## {words['categories']}", ""]
    out += _table([words["severity"], words["category"], words["area"], words["kind"],
                   words["count"], words["first_seen"], words["last_seen"]],
                  [[r["severity"], r["category"], r["area"], ", ".join(r["kinds"]),
                    fmt.number(r["count"]),
                    fmt.when(r["first_seen"], same_day), fmt.when(r["last_seen"], same_day)]
                   for r in report["categories"]], {4})
    out += _problems(report, words)
    if report["access"]:
        out += _access(report["access"], words)
    if report["other"]["count"]:
        out += ["", f"## {words['other']}", ""]
        out += _table([words["reason"], words["count"]],
                      [list(item) for item in fmt.items(report["other"]["reasons"])], {1})
    if report["estimated"]:
        out += ["", f"*{_cell(words['estimated'])}*"]
    return "\n".join(out) + "\n"


def _problems(report: dict[str, Any], words: dict[str, str]) -> list[str]:
    rows = fmt.rows_by_id(report)
    out = ["", f"## {words['details']}"]
    problems = [rows[i] for i in report["top_problems"]]
    if not any(r["severity"] != "info" for r in problems):
        out += ["", words["no_problems"]]
    for row in problems:
        out += ["", f"### {_cell(row['category'])} ({row['area']}, {row['severity']}, "
                f"{fmt.number(row['count'])})", ""]
        if any(row["timeline"]):
            out += [f"{_spark(row['timeline'])} {fmt.moment(row['first_seen'])} – "
                    f"{fmt.moment(row['last_seen'])}", ""]
        out.append(f"**{words['meaning']}**{words['colon']}{_cell(row['explanation'])}")
        if row["hint"]:
            out += ["", _cell(row["hint"])]
        for dimension in DIMENSIONS:
            entries = row["top"].get(dimension)
            if entries:
                listed = ", ".join(f"`{_cell(v)}` ({n})" for v, n in fmt.items(entries))
                out += ["", f"- {words['top_' + dimension]}{words['colon']}{listed}"]
    return out


def _access(access: dict[str, Any], words: dict[str, str]) -> list[str]:
    out = ["", f"## {words['access']} ({fmt.number(access['records'])})", "",
           f"### {words['status_classes']}", ""]
    out += _table([words["status_class"], words["count"], words["timeline"]],
                  [[c["class"], fmt.number(c["count"]), _spark(c["timeline"])]
                   for c in access["status_classes"]], {1})
    for key, title in (("top_4xx_paths", "top_4xx"), ("top_5xx_paths", "top_5xx"),
                       ("upstream_statuses", "upstream_statuses")):
        if access[key]:
            out += ["", f"### {words[title]}", ""]
            out += _table([words["value"], words["count"]],
                          [list(item) for item in fmt.items(access[key])], {1})
    timed = [(words[k], access[k]) for k in ("upstream_response_time", "request_time")
             if access[k]]
    if timed:
        out += ["", f"### {timed[0][0]}" if len(timed) == 1 else
                f"### {timed[0][0]} / {timed[1][0]}", ""]
        out += _table(["", words["count"], words["mean"], words["p50"], words["p95"],
                       words["max"]],
                      [[name, fmt.number(s["count"]), f"{s['mean']:.3f} s", f"{s['p50']:.3f} s",
                        f"{s['p95']:.3f} s", f"{s['max']:.3f} s"] for name, s in timed],
                      {1, 2, 3, 4, 5})
    return out
