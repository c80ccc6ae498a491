"""Custom access-log formats: compile an Nginx `log_format` into one regex.

Variables with a known meaning get the field names of the built-in access parser
(`$time_local` -> `time`, `$body_bytes_sent` -> `bytes`, ...); every other variable keeps
its own name. `-` (and the empty value of `escape=json`) means absent. Reading the formats of
an nginx.conf is `parse.nginxconf`; JSON access records are `parse.jsonrecord`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

from ngx_enrich.parse.values import access_time, addrs_of, list_values, split_request

__all__ = [
    "COMBINED",
    "ESCAPES",
    "LogFormatParser",
    "compile_log_format",
]

#: The format Nginx predefines as `combined`.
COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)
ESCAPES = ("default", "json", "none")

# Value types. STR and REQUEST use the generic pattern bounded by the next literal.
(STR, REQUEST, INT, STATUS, FLOAT, LIST, ADDRS, TIME_LOCAL, TIME_ISO, ADDR, PATH,
 IS_ARGS) = range(12)

# Known variables: name -> (field, type). Where two variables give the same field, the
# earlier one here wins and the other keeps its own name. `$request` also claims
# method, path and protocol.
_KNOWN: dict[str, tuple[str, int]] = {
    "remote_addr": ("remote_addr", ADDR),
    "remote_user": ("remote_user", STR),
    "time_local": ("time", TIME_LOCAL),
    "time_iso8601": ("time", TIME_ISO),
    "request": ("request", REQUEST),
    "request_method": ("method", STR),
    "request_uri": ("path", PATH),
    "server_protocol": ("protocol", STR),
    "status": ("status", STATUS),
    "body_bytes_sent": ("bytes", INT),
    "bytes_sent": ("bytes", INT),
    "http_referer": ("referer", STR),
    "http_user_agent": ("user_agent", STR),
    "http_x_forwarded_for": ("x_forwarded_for", STR),
    "request_length": ("request_length", INT),
    "request_time": ("request_time", FLOAT),
    "request_id": ("request_id", STR),
    "req_id": ("request_id", STR),
    "host": ("host", STR),
    "http_host": ("host", STR),
    "upstream_addr": ("upstream_addr", ADDRS),
    "upstream_status": ("upstream_status", LIST),
    "upstream_response_time": ("upstream_response_time", LIST),
    "upstream_connect_time": ("upstream_connect_time", LIST),
    "upstream_header_time": ("upstream_header_time", LIST),
    "upstream_response_length": ("upstream_response_length", LIST),
    "upstream_bytes_received": ("upstream_bytes_received", LIST),
    "upstream_bytes_sent": ("upstream_bytes_sent", LIST),
    "upstream_queue_time": ("upstream_queue_time", LIST),
    "connection": ("connection", INT),
    "connection_requests": ("connection_requests", INT),
    "pid": ("pid", INT),
    "remote_port": ("remote_port", INT),
    "server_port": ("server_port", INT),
    "msec": ("msec", FLOAT),
    "server_addr": ("server_addr", ADDR),
    "realip_remote_addr": ("realip_remote_addr", ADDR),
    "uri": ("uri", PATH),
    "document_uri": ("document_uri", PATH),
    "is_args": ("is_args", IS_ARGS),
}
_REQUEST_PARTS = ("method", "path", "protocol")

# Bounded digit runs: integers stay within 64 bits (JSON encoders refuse more).
INT_VALUE = r"\d{1,18}"
NUMBER = r"\d{1,18}(?:\.\d{1,18})?"
LIST_VALUE = rf"(?:{NUMBER}|-)(?:(?:, | : )(?:{NUMBER}|-))*"
_ADDR_ITEM = r'[^\s,"]+'
TIME_LOCAL_VALUE = r"\d\d/[A-Za-z]{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}"
_PATTERNS = {
    INT: rf"({INT_VALUE}|-)?",
    STATUS: r"(\d{3}|-)?",
    FLOAT: rf"({NUMBER}|-)?",
    LIST: rf"({LIST_VALUE})?",
    ADDRS: rf"({_ADDR_ITEM}(?:(?:, | : ){_ADDR_ITEM})*)?",
    TIME_LOCAL: rf"({TIME_LOCAL_VALUE}|-)?",
    TIME_ISO: r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)|-)?",
    ADDR: r"(unix:|[0-9A-Fa-f:.]+|-)?",
    IS_ARGS: r"(\?)?",
}
# Characters a typed value can start with (bounds a variable written right before it).
_STARTS = {INT: "0-9", STATUS: "0-9", FLOAT: "0-9", LIST: "0-9", TIME_LOCAL: "0-9",
           TIME_ISO: "0-9", PATH: "/*", IS_ARGS: "?"}
_VAR_CHAR = re.compile(r"[A-Za-z0-9_]")
_JSON_ESCAPE: Final = re.compile(
    r"\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"
    r"|u([0-9a-fA-F]{4})|([\"\\/bfnrt]))"
)
_JSON_SIMPLE: Final = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
                "t": "\t"}

def json_unescape(text: str) -> str:
    """Undo `escape=json`: `\\"`, `\\\\`, `\\n` ..., `\\uXXXX` (lone surrogates -> U+FFFD)."""
    if "\\" not in text:
        return text
    return _JSON_ESCAPE.sub(_json_escape_sub, text)


def _json_escape_sub(m: re.Match[str]) -> str:
    high, low, code, simple = m.groups()
    if high is not None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + int(low, 16) - 0xDC00)
    if code is not None:
        point = int(code, 16)
        return "\ufffd" if 0xD800 <= point <= 0xDFFF else chr(point)
    return _JSON_SIMPLE[simple]


def _tokens(fmt: str) -> list[str | tuple[str]]:
    """Split a format into literals (str) and variable names (1-tuples), like Nginx does."""
    out: list[str | tuple[str]] = []
    literal: list[str] = []
    i, n = 0, len(fmt)
    while i < n:
        ch = fmt[i]
        if ch != "$":
            literal.append(ch)
            i += 1
            continue
        i += 1
        bracket = i < n and fmt[i] == "{"
        i += bracket
        start = i
        while i < n and _VAR_CHAR.match(fmt[i]):
            i += 1
        name = fmt[start:i]
        if bracket:
            if i >= n or fmt[i] != "}":
                raise ValueError(f"the closing bracket in ${{{name} variable is missing")
            i += 1
        if not name:
            raise ValueError(f"invalid variable at offset {start - 1 - bracket}: {fmt!r}")
        if literal:
            out.append("".join(literal))
            literal = []
        out.append((name.lower(),))
    if literal:
        out.append("".join(literal))
    return out


def _generic(escape: str, following: list[str | tuple[str]]) -> str:
    """Pattern of a value with no known shape: everything up to what follows it.

    With `default` and `json` escaping a value never holds a raw `"`. The value stops at
    the first occurrence of the next literal and, when another variable follows directly,
    before the first character that variable can start with (a digit for numbers, `/` for
    a URI, `?` for `$is_args`). Values are atomic: matching stays linear.
    """
    if escape == "json":
        excl, extra = '"\\\\', r"|\\."
    elif escape == "default":
        excl, extra = '"', ""
    else:
        excl, extra = "", ""
    stops = ""
    if following and isinstance(following[0], tuple):
        stops = _STARTS.get(_KNOWN.get(following[0][0], ("", STR))[1], "")
    literal = next((t for t in following if isinstance(t, str)), None)
    if literal is None or literal[0] in excl:
        return f"(?>(?:[^{excl}{stops}]{extra})*)" if excl or stops else "(?>.*)"
    first, rest = re.escape(literal[0]), re.escape(literal[1:])
    unit = f"[^{excl}{stops}{first}]{extra}"
    if rest:
        unit += f"|{first}(?!{rest})"
    return f"(?>(?:{unit})*)"


@lru_cache(maxsize=4096)
def time_local(value: str) -> str:
    """`$time_local` as ISO 8601; cached, since the lines of one second share it."""
    return access_time(value[0:2], value[3:6], value[7:11], value[12:20], value[21:26])


def _same(value: str) -> str:
    return value


_CONVERTERS: Final[dict[int, Callable[[str], Any]]] = {
    INT: int, STATUS: int, FLOAT: float, LIST: list_values, ADDRS: addrs_of,
    TIME_LOCAL: time_local, TIME_ISO: _same,
}


class LogFormatParser:
    """One compiled `log_format`; `parse(line)` gives the fields or None."""

    __slots__ = ("_plan", "escape", "fmt", "keys", "regex", "variables")

    def __init__(self, fmt: str, escape: str = "default") -> None:
        if escape not in ESCAPES:
            raise ValueError(f"escape must be one of {', '.join(ESCAPES)}: {escape!r}")
        self.fmt = fmt
        self.escape = escape
        tokens = _tokens(fmt)
        names = [t[0] for t in tokens if isinstance(t, tuple)]
        self.variables: tuple[str, ...] = tuple(dict.fromkeys(names))
        owner = self._claims(set(names))
        text = json_unescape if escape == "json" else _same
        parts: list[str] = []
        # (group, field, converter or None for the text as it is, whether it is $request)
        plan: list[tuple[int, str, Callable[[str], Any] | None, bool]] = []
        keys: list[str] = []
        seen: set[str] = set()
        group = -1
        for pos, token in enumerate(tokens):
            if isinstance(token, str):
                parts.append(re.escape(token))
                continue
            name = token[0]
            field, kind = _KNOWN.get(name, (name, STR))
            if owner.get(field) != name:
                field = name if name not in owner else f"var_{name}"
            following = tokens[pos + 1:]
            if kind in _PATTERNS:
                parts.append(_PATTERNS[kind])
            elif kind == PATH:  # starts with `/` (or is `*`): splits `$host$request_uri`
                parts.append(f"(-|[/*]{_generic(escape, following)})?")
            else:
                parts.append(f"({_generic(escape, following)})")
            group += 1
            if name in seen:
                continue
            seen.add(name)
            keys.append(field)
            conv = _CONVERTERS.get(kind, text) if kind != REQUEST else text
            plan.append((group, field, None if conv is _same else conv, kind == REQUEST))
        self.regex: re.Pattern[str] = re.compile("".join(parts), re.DOTALL | re.ASCII)
        self.keys: tuple[str, ...] = tuple(keys)
        self._plan = tuple(plan)

    @staticmethod
    def _claims(present: set[str]) -> dict[str, str]:
        """Field -> the variable that provides it in this format."""
        owner: dict[str, str] = {}
        for name, (field, kind) in _KNOWN.items():
            if name not in present or field in owner:
                continue
            owner[field] = name
            if kind == REQUEST:
                for part in _REQUEST_PARTS:
                    owner.setdefault(part, name)
        return owner

    def parse(self, line: str) -> dict[str, Any] | None:
        """Fields of one line (without or with its line ending); None if it does not match."""
        if line[-1:] == "\n":
            line = line.rstrip("\r\n")
        m = self.regex.fullmatch(line)
        if m is None:
            return None
        groups = m.groups()
        fields: dict[str, Any] = {}
        for index, key, conv, request in self._plan:
            value = groups[index]
            if value and value != "-":
                fields[key] = value if conv is None else conv(value)
                if request:
                    split_request(fields[key], fields)
        return fields

    def __repr__(self) -> str:
        return f"LogFormatParser({self.fmt!r}, escape={self.escape!r})"


@lru_cache(maxsize=64)
def compile_log_format(fmt: str, escape: str = "default") -> LogFormatParser:
    """Compile a `log_format` string; raises ValueError on a malformed variable."""
    return LogFormatParser(fmt, escape)
