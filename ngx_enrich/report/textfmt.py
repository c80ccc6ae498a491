"""Formatting shared by the text and Markdown renderers: widths, numbers, times, sparklines.

Widths are terminal columns: East Asian wide characters (Chinese) take two.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

BARS = "▁▂▃▄▅▆▇█"
_TOKENS = re.compile(r"\s+|[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]"
                     r"|[^\s\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]+")


def width(text: str) -> int:
    """Columns `text` takes on a terminal."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF"
               else 1 for c in text)


def fit(text: str, columns: int) -> str:
    """`text` cut to `columns` (ending in `…` when cut)."""
    if width(text) <= columns:
        return text
    out, used = [], 0
    for char in text:
        w = width(char)
        if used + w > columns - 1:
            break
        out.append(char)
        used += w
    return "".join(out) + "…"


def pad(text: str, columns: int, right: bool = False) -> str:
    """`text` fitted and padded to exactly `columns` (aligned right when asked)."""
    text = fit(text, columns)
    space = " " * (columns - width(text))
    return space + text if right else text + space


def wrap(text: str, columns: int) -> list[str]:
    """Lines of at most `columns`, broken at spaces or between wide characters."""
    lines: list[str] = []
    line, used = "", 0
    for token in _TOKENS.findall(" ".join(text.split())):
        w = width(token)
        if token.isspace():
            if line:
                line, used = line + " ", used + 1
            continue
        if used + w > columns and line.strip():
            lines.append(line.rstrip())
            line, used = "", 0
        while w > columns:  # a word longer than a line
            head = fit(token, columns)[:-1]
            lines.append(head)
            token = token[len(head):]
            w = width(token)
        line, used = line + token, used + w
    if line.strip():
        lines.append(line.rstrip())
    return lines or [""]


def number(n: int) -> str:
    """`1234567` -> `1,234,567`."""
    return f"{n:,}"


def share(part: int, whole: int) -> str:
    """A percentage for a table: `73%`, `<1%`."""
    if not whole or not part:
        return "0%"
    pct = 100 * part / whole
    return "<1%" if pct < 1 else f"{round(pct)}%"


def spark(counts: list[int]) -> str:
    """A sparkline: a space for an empty bucket, else one of eight heights."""
    top = max(counts, default=0)
    if not top:
        return " " * len(counts)
    return "".join(" " if not n else BARS[max(math.ceil(n / top * 8), 1) - 1] for n in counts)


def duration(seconds: float, words: dict[str, str]) -> str:
    """A rounded duration with its unit: `4 s`, `34 min`, `5 h`, `3 d`."""
    for limit, size, unit in ((120, 1, "unit_s"), (7200, 60, "unit_min"),
                              (172800, 3600, "unit_h")):
        if seconds < limit:
            return f"{round(seconds / size)} {words[unit]}"
    return f"{round(seconds / 86400)} {words['unit_d']}"


def when(text: str | None, same_day: bool) -> str:
    """An ISO time for a table: `18:24:26` within one day, else `11-29 18:24`."""
    if not text or len(text) < 19 or text[10] not in "T ":
        return text or "-"
    return text[11:19] if same_day else f"{text[5:10]} {text[11:16]}"


def moment(text: str | None) -> str:
    """An ISO time in full, readable: `2026-11-29 18:24:26`."""
    if not text or len(text) < 19 or text[10] not in "T ":
        return text or "-"
    return f"{text[:10]} {text[11:19]}"


def zone(text: str | None) -> str:
    """The UTC offset an ISO time carries (`+00:00`), or empty."""
    if not text or len(text) < 19:
        return ""
    tail = text[19:].lstrip(".0123456789")
    return "+00:00" if tail == "Z" else tail


def same_day(report: dict[str, Any]) -> bool:
    """Whether the report's whole span lies within one calendar day."""
    span = report.get("span")
    if not span:
        return False
    return str(span["first"])[:10] == str(span["last"])[:10]


def label(words: dict[str, str], key: str, **values: Any) -> str:
    """A label of report.toml with its `{name}` placeholders filled."""
    return words[key].format(**values)


def inputs(report: dict[str, Any], words: dict[str, str]) -> str:
    """The input names, standard input by its name."""
    names = [words["stdin"] if n == "-" else n for n in report["inputs"]]
    return ", ".join(names) or words["stdin"]


def bucket(report: dict[str, Any], words: dict[str, str]) -> str:
    """`one column = 34 min`, or empty when nothing carries a time."""
    frame = report.get("timeline")
    if not frame:
        return ""
    return label(words, "bucket", width=duration(frame["bucket_seconds"], words))


def kinds(report: dict[str, Any], words: dict[str, str]) -> str:
    """`error log 20, access log 11, other 2` (kinds with records only)."""
    parts = [f"{words['kind_' + k]} {number(n)}" for k, n in report["kinds"].items() if n]
    return ", ".join(parts)


def rows_by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's category rows by their id."""
    return {row["id"]: row for row in report["categories"]}


def items(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(value, count) of a top list; an estimated count is marked `~`."""
    return [(e["value"], ("~" if e["error"] else "") + number(e["count"])) for e in entries]
