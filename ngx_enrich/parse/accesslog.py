"""Parse access-log lines in the built-in shapes.

The formats most lines are in (`combined`, `main` with `$http_x_forwarded_for`, the
ingress-nginx `upstreaminfo`) are `log_format` strings compiled by the one format compiler,
tried the last one that matched first. Their variants (common, a vhost or an
X-Forwarded-For list in front, more fields at the end) are read by the shape reader below;
formats nobody declared are guessed as far as they are recognisable. Values of `-` are
absent; numbers are integers.
"""

from __future__ import annotations

import re
from typing import Any, Final

from ngx_enrich.parse.logformat import COMBINED, LogFormatParser, compile_log_format
from ngx_enrich.parse.values import access_time, addrs_of, list_values, split_request

#: The built-in formats, by the name Nginx users know them under.
BUILTIN_FORMATS = {
    "combined": COMBINED,
    "main": COMBINED + ' "$http_x_forwarded_for"',
    "upstreaminfo": COMBINED + " $request_length $request_time [$proxy_upstream_name] "
    "[$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length "
    "$upstream_response_time $upstream_status $req_id",
}

_Q = r'"((?:[^"\\]|\\.)*)"'
# Located by its `[$time_local]`, then read outwards, so no pattern scans the line twice.
_TIME_RE: Final = re.compile(
    r" \[(\d\d)/(\w{3})/(\d{4}):(\d\d:\d\d:\d\d) ([+-]\d{4})\] ", re.ASCII)
_AFTER_RE: Final = re.compile(_Q + r" (\d{3}) (\d{1,18}|-)(.*)$", re.ASCII | re.DOTALL)
_TAIL_RE: Final = re.compile(r" " + _Q + r" " + _Q + r"(.*)$")
# Items hold no space or comma, so each list matches in one linear pass.
_LIST = r"((?:[^\s,]+(?:, | : ))*+[^\s,]+)"
_UPSTREAMINFO_RE: Final = re.compile(
    r" (\d{1,18}) (\d{1,12}(?:\.\d{1,9})?) \[([^\]]*)\] \[([^\]]*)\] " + _LIST + " " + _LIST
    + " " + _LIST + " " + _LIST + r" (\S+)$", re.ASCII
)
# Formats nobody declared: the time in brackets (with or without an address before it), then
# up to three other fields, the request, up to three other fields, status and size.
_LOOSE_TIME_RE: Final = re.compile(
    r"(?:^| )\[(?:(\d\d)/(\w{3})/(\d{4}):(\d\d:\d\d:\d\d) ([+-]\d{4})|"
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)))\] ", re.ASCII)
_LOOSE_AFTER_RE: Final = re.compile(
    r'((?:"[^"]*" |[^ "]+ ){0,3}?)"([A-Z]{3,10} [^"]*|\\x[0-9A-Fa-f]{2}[^"]*|-|)" '
    r'((?:[^ "]+ ){0,3}?)(\d{3}) '
    r"(\d{1,18}|-)(.*)$", re.ASCII | re.DOTALL)
_CURLY: Final = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"',
                        "\u00bb": '"'})


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


class _Formats:
    """The compiled built-in formats, the one that matched last tried first."""

    def __init__(self) -> None:
        self.order: list[LogFormatParser] = [
            compile_log_format(fmt) for fmt in BUILTIN_FORMATS.values()]

    def parse(self, line: str) -> dict[str, Any] | None:
        order = self.order
        for i, fmt in enumerate(order):
            fields = fmt.parse(line)
            if fields is not None:
                if i:
                    order.insert(0, order.pop(i))
                return fields
        return None


_FORMATS: Final = _Formats()


def parse_access_line(line: str) -> dict[str, Any] | None:
    """Parse one access-log line; None when it is not one."""
    fields = _FORMATS.parse(line)
    return fields if fields is not None else parse_variant(line)


def parse_variant(line: str) -> dict[str, Any] | None:
    """A variant of the built-in formats, or a line in a format nobody declared."""
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
