"""Parse access-log lines in the common shapes: common, combined, `main` with
`$http_x_forwarded_for`, vhost-prefixed, X-Forwarded-For lists in front, and the
ingress-nginx `upstreaminfo` tail. Values of `-` are absent; numbers are integers.
"""

from __future__ import annotations

import re
from typing import Any

MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}

_Q = r'"((?:[^"\\]|\\.)*)"'
# Located by its `[$time_local]`, then read outwards, so no pattern scans the line twice.
_TIME_RE = re.compile(
    r" \[(\d\d)/(\w{3})/(\d{4}):(\d\d:\d\d:\d\d) ([+-]\d{4})\] ", re.ASCII)
_AFTER_RE = re.compile(_Q + r" (\d{3}) (\d{1,18}|-)(.*)$", re.ASCII | re.DOTALL)
_TAIL_RE = re.compile(r" " + _Q + r" " + _Q + r"(.*)$")
# Items hold no space or comma, so each list matches in one linear pass.
_LIST = r"((?:[^\s,]+(?:, | : ))*+[^\s,]+)"
_UPSTREAMINFO_RE = re.compile(
    r" (\d{1,18}) (\d{1,12}(?:\.\d{1,9})?) \[([^\]]*)\] \[([^\]]*)\] " + _LIST + " " + _LIST
    + " " + _LIST + " " + _LIST + r" (\S+)$", re.ASCII
)
_LIST_SPLIT = re.compile(r", | : ")
# Formats nobody declared: the time in brackets (with or without an address before it), then
# up to three other fields, the request, up to three other fields, status and size.
_LOOSE_TIME_RE = re.compile(
    r"(?:^| )\[(?:(\d\d)/(\w{3})/(\d{4}):(\d\d:\d\d:\d\d) ([+-]\d{4})|"
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)))\] ", re.ASCII)
_LOOSE_AFTER_RE = re.compile(
    r'((?:"[^"]*" |[^ "]+ ){0,3}?)"([A-Z]{3,10} [^"]*|\\x[0-9A-Fa-f]{2}[^"]*|-|)" '
    r'((?:[^ "]+ ){0,3}?)(\d{3}) '
    r"(\d{1,18}|-)(.*)$", re.ASCII | re.DOTALL)
_CURLY = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"',
                        "\u00bb": '"'})


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


def _clients(pre: str, addr: str, ident: str, fields: dict[str, Any]) -> None:
    """Work out remote address, vhost and forwarded-for list from the front of the line."""
    fields["remote_addr"] = addr
    if ident != "-":
        fields["ident"] = ident
    pre = pre.strip()
    if not pre:
        return
    if pre.startswith('"') or "," in pre:
        fields["x_forwarded_for"] = pre.strip('"').rstrip(",")
    else:
        fields["vhost"] = pre


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


def parse_access_line(line: str) -> dict[str, Any] | None:
    """Parse one access-log line; None when it is not one."""
    t = _TIME_RE.search(line)
    if t is None:
        return _loose(line) if "[" in line[:80] else None
    after = _AFTER_RE.match(line, t.end())
    front = line[:t.start()].rsplit(" ", 3)
    if after is None or len(front) < 3 or not all(front[-3:]):
        return _loose(line)
    pre = front[0] if len(front) == 4 else ""
    addr, ident, user = front[-3:]
    request, status, size, rest = after.groups()
    fields: dict[str, Any] = {}
    _clients(pre, addr, ident, fields)
    if user != "-":
        fields["remote_user"] = user
    fields["time"] = access_time(*t.groups())
    fields["request"] = request
    split_request(request, fields)
    _status_and_after(status, size, rest, fields)
    return fields


def _status_and_after(status: str, size: str, rest: str, fields: dict[str, Any]) -> None:
    fields["status"] = int(status)
    if size != "-":
        fields["bytes"] = int(size)
    if rest:
        _tail(rest, fields)


def _tail(rest: str, fields: dict[str, Any]) -> None:
    """Referer, user agent and whatever the format adds after them."""
    m = _TAIL_RE.match(rest)
    if m is None:
        fields["extra"] = rest.strip()
        return
    referer, agent, more = m.groups()
    if referer != "-":
        fields["referer"] = referer
    if agent != "-":
        fields["user_agent"] = agent
    if not more:
        return
    u = _UPSTREAMINFO_RE.match(more)
    if u is not None:
        length, rtime, name, alt, addrs, lens, times, statuses, req_id = u.groups()
        fields["request_length"] = int(length)
        fields["request_time"] = float(rtime)
        if name:
            fields["proxy_upstream_name"] = name
        if alt:
            fields["proxy_alternative_upstream_name"] = alt
        if addrs != "-":
            fields["upstream_addr"] = addrs_of(addrs)
            fields["upstream_response_length"] = list_values(lens)
            fields["upstream_response_time"] = list_values(times)
            fields["upstream_status"] = list_values(statuses)
        fields["request_id"] = req_id
        return
    more = more.strip()
    if len(more) >= 2 and more[0] == '"' and more[-1] == '"' and more.count('"') == 2:
        if more != '"-"':
            fields["x_forwarded_for"] = more[1:-1]
    else:
        fields["extra"] = more


def _loose(line: str) -> dict[str, Any] | None:
    """An access line in a format nobody declared, read as far as it is recognisable.

    The time, the request (a TLS or SOCKS probe too, as Nginx logs it: `\\x16\\x03...`) and
    the status and size after it are found; a single address in front is the remote address;
    fields in between are kept in `extra`. Typographic quotes (from pasting through a word
    processor) count as quotes. `format: "guessed"` says so.
    """
    line = line.translate(_CURLY)
    t = _LOOSE_TIME_RE.search(line)
    if t is None:
        return None
    after = _LOOSE_AFTER_RE.match(line, t.end())
    if after is None:
        return None
    before, request, between, status, size, rest = after.groups()
    fields: dict[str, Any] = {"format": "guessed"}
    front = line[:t.start()].split()
    if front and front[0] != "-":
        fields["remote_addr"] = front[0]
    if len(front) >= 3 and front[2] != "-":
        fields["remote_user"] = front[2]
    day, mon, year, hms, zone, iso = t.groups()
    fields["time"] = iso.replace("Z", "+00:00") if iso else access_time(day, mon, year, hms, zone)
    if request and request != "-":
        fields["request"] = request
        split_request(request, fields)
    _status_and_after(status, size, rest, fields)
    skipped = " ".join(part for part in (before.strip(), between.strip()) if part)
    if skipped:
        fields["extra"] = f"{skipped} {fields['extra']}" if "extra" in fields else skipped
    return fields
