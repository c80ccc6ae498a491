"""Values shared by the access-log readers: month names, `$time_local`, the request line and
the `$upstream_*` lists."""

from __future__ import annotations

import re
from typing import Any, Final

MONTHS: Final = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

_LIST_SPLIT: Final = re.compile(r", | : ")


def access_time(day: str, mon: str, year: str, hms: str, zone: str) -> str:
    """ISO 8601 from the parts of `$time_local`."""
    return f"{year}-{MONTHS.get(mon, 0):02d}-{day}T{hms}{zone[:3]}:{zone[3:]}"


def split_request(request: str, fields: dict[str, Any]) -> None:
    """Split `METHOD PATH PROTOCOL` into its parts; odd requests keep what they have."""
    parts = request.split(" ")
    if len(parts) >= 3 and parts[-1].startswith("HTTP/"):
        fields["method"] = parts[0]
        fields["path"] = " ".join(parts[1:-1])
        fields["protocol"] = parts[-1]
    elif len(parts) == 2:
        fields["method"], fields["path"] = parts
    elif request:
        fields["method"] = request


def addrs_of(value: str) -> list[str]:
    """The addresses of `$upstream_addr` (`, ` between tries, ` : ` between groups)."""
    return _LIST_SPLIT.split(value)


def list_values(text: str) -> list[Any]:
    """`$upstream_*` lists (`a, b : c`) as a list; `-` becomes None, numbers are parsed."""
    out: list[Any] = []
    for item in _LIST_SPLIT.split(text):
        if item == "-":
            out.append(None)
        elif item.isascii() and item.isdigit() and len(item) < 19:
            out.append(int(item))
        else:
            try:
                out.append(float(item))
            except ValueError:
                out.append(item)
    return out
