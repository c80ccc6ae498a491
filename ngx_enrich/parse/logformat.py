"""Custom access-log formats: compile an Nginx `log_format` into one regex, read the
formats an nginx.conf defines, and normalise JSON access records.

Variables with a known meaning get the field names of the built-in access parser
(`$time_local` -> `time`, `$body_bytes_sent` -> `bytes`, ...); every other variable keeps
its own name. `-` (and the empty value of `escape=json`) means absent.
"""

from __future__ import annotations

import glob
import math
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from ngx_enrich.parse.accesslog import access_time, list_values, split_request

__all__ = [
    "COMBINED",
    "ESCAPES",
    "LogFormatParser",
    "compile_log_format",
    "parse_json_access",
    "read_nginx_conf_formats",
]

#: The format Nginx predefines as `combined`.
COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)
ESCAPES = ("default", "json", "none")

# Value types. STR and REQUEST use the generic pattern bounded by the next literal.
(_STR, _REQUEST, _INT, _STATUS, _FLOAT, _LIST, _ADDRS, _TIME_LOCAL, _TIME_ISO, _ADDR, _PATH,
 _IS_ARGS) = range(12)

# Known variables: name -> (field, type). Where two variables give the same field, the
# earlier one here wins and the other keeps its own name. `$request` also claims
# method, path and protocol.
_KNOWN: dict[str, tuple[str, int]] = {
    "remote_addr": ("remote_addr", _ADDR),
    "remote_user": ("remote_user", _STR),
    "time_local": ("time", _TIME_LOCAL),
    "time_iso8601": ("time", _TIME_ISO),
    "request": ("request", _REQUEST),
    "request_method": ("method", _STR),
    "request_uri": ("path", _PATH),
    "server_protocol": ("protocol", _STR),
    "status": ("status", _STATUS),
    "body_bytes_sent": ("bytes", _INT),
    "bytes_sent": ("bytes", _INT),
    "http_referer": ("referer", _STR),
    "http_user_agent": ("user_agent", _STR),
    "http_x_forwarded_for": ("x_forwarded_for", _STR),
    "request_length": ("request_length", _INT),
    "request_time": ("request_time", _FLOAT),
    "request_id": ("request_id", _STR),
    "req_id": ("request_id", _STR),
    "host": ("host", _STR),
    "http_host": ("host", _STR),
    "upstream_addr": ("upstream_addr", _ADDRS),
    "upstream_status": ("upstream_status", _LIST),
    "upstream_response_time": ("upstream_response_time", _LIST),
    "upstream_connect_time": ("upstream_connect_time", _LIST),
    "upstream_header_time": ("upstream_header_time", _LIST),
    "upstream_response_length": ("upstream_response_length", _LIST),
    "upstream_bytes_received": ("upstream_bytes_received", _LIST),
    "upstream_bytes_sent": ("upstream_bytes_sent", _LIST),
    "upstream_queue_time": ("upstream_queue_time", _LIST),
    "connection": ("connection", _INT),
    "connection_requests": ("connection_requests", _INT),
    "pid": ("pid", _INT),
    "remote_port": ("remote_port", _INT),
    "server_port": ("server_port", _INT),
    "msec": ("msec", _FLOAT),
    "server_addr": ("server_addr", _ADDR),
    "realip_remote_addr": ("realip_remote_addr", _ADDR),
    "uri": ("uri", _PATH),
    "document_uri": ("document_uri", _PATH),
    "is_args": ("is_args", _IS_ARGS),
}
_REQUEST_PARTS = ("method", "path", "protocol")

# Bounded digit runs: integers stay within 64 bits (JSON encoders refuse more).
_INT_VALUE = r"\d{1,18}"
_NUMBER = r"\d{1,18}(?:\.\d{1,18})?"
_LIST_VALUE = rf"(?:{_NUMBER}|-)(?:(?:, | : )(?:{_NUMBER}|-))*"
_ADDR_ITEM = r'[^\s,"]+'
_TIME_LOCAL_VALUE = r"\d\d/[A-Za-z]{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}"
_PATTERNS = {
    _INT: rf"({_INT_VALUE}|-)?",
    _STATUS: r"(\d{3}|-)?",
    _FLOAT: rf"({_NUMBER}|-)?",
    _LIST: rf"({_LIST_VALUE})?",
    _ADDRS: rf"({_ADDR_ITEM}(?:(?:, | : ){_ADDR_ITEM})*)?",
    _TIME_LOCAL: rf"({_TIME_LOCAL_VALUE}|-)?",
    _TIME_ISO: r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)|-)?",
    _ADDR: r"(unix:|[0-9A-Fa-f:.]+|-)?",
    _IS_ARGS: r"(\?)?",
}
# Characters a typed value can start with (bounds a variable written right before it).
_STARTS = {_INT: "0-9", _STATUS: "0-9", _FLOAT: "0-9", _LIST: "0-9", _TIME_LOCAL: "0-9",
           _TIME_ISO: "0-9", _PATH: "/*", _IS_ARGS: "?"}
_LIST_SPLIT = re.compile(r", | : ")
_VAR_CHAR = re.compile(r"[A-Za-z0-9_]")
_JSON_ESCAPE = re.compile(
    r"\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"
    r"|u([0-9a-fA-F]{4})|([\"\\/bfnrt]))"
)
_JSON_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
                "t": "\t"}

Setter = Callable[[dict[str, Any], str], None]


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
        stops = _STARTS.get(_KNOWN.get(following[0][0], ("", _STR))[1], "")
    literal = next((t for t in following if isinstance(t, str)), None)
    if literal is None or literal[0] in excl:
        return f"(?>(?:[^{excl}{stops}]{extra})*)" if excl or stops else "(?>.*)"
    first, rest = re.escape(literal[0]), re.escape(literal[1:])
    unit = f"[^{excl}{stops}{first}]{extra}"
    if rest:
        unit += f"|{first}(?!{rest})"
    return f"(?>(?:{unit})*)"


def _put(key: str, conv: Callable[[str], Any]) -> Setter:
    def put(fields: dict[str, Any], value: str) -> None:
        fields[key] = conv(value)

    return put


def _put_request(key: str, text: Callable[[str], str]) -> Setter:
    def put(fields: dict[str, Any], value: str) -> None:
        value = text(value)
        fields[key] = value
        split_request(value, fields)

    return put


def _time_local(value: str) -> str:
    return access_time(value[0:2], value[3:6], value[7:11], value[12:20], value[21:26])


def _addrs(value: str) -> list[str]:
    return _LIST_SPLIT.split(value)


def _same(value: str) -> str:
    return value


_CONVERTERS: dict[int, Callable[[str], Any]] = {
    _INT: int, _STATUS: int, _FLOAT: float, _LIST: list_values, _ADDRS: _addrs,
    _TIME_LOCAL: _time_local, _TIME_ISO: _same,
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
        plan: list[tuple[int, Setter]] = []
        keys: list[str] = []
        seen: set[str] = set()
        group = -1
        for pos, token in enumerate(tokens):
            if isinstance(token, str):
                parts.append(re.escape(token))
                continue
            name = token[0]
            field, kind = _KNOWN.get(name, (name, _STR))
            if owner.get(field) != name:
                field = name if name not in owner else f"var_{name}"
            following = tokens[pos + 1:]
            if kind in _PATTERNS:
                parts.append(_PATTERNS[kind])
            elif kind == _PATH:  # starts with `/` (or is `*`): splits `$host$request_uri`
                parts.append(f"(-|[/*]{_generic(escape, following)})?")
            else:
                parts.append(f"({_generic(escape, following)})")
            group += 1
            if name in seen:
                continue
            seen.add(name)
            keys.append(field)
            plan.append((group, self._setter(field, kind, text)))
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
            if kind == _REQUEST:
                for part in _REQUEST_PARTS:
                    owner.setdefault(part, name)
        return owner

    @staticmethod
    def _setter(field: str, kind: int, text: Callable[[str], str]) -> Setter:
        if kind == _REQUEST:
            return _put_request(field, text)
        return _put(field, _CONVERTERS.get(kind, text))

    def parse(self, line: str) -> dict[str, Any] | None:
        """Fields of one line (without or with its line ending); None if it does not match."""
        if line[-1:] == "\n":
            line = line.rstrip("\r\n")
        m = self.regex.fullmatch(line)
        if m is None:
            return None
        groups = m.groups()
        fields: dict[str, Any] = {}
        for index, put in self._plan:
            value = groups[index]
            if value and value != "-":
                put(fields, value)
        return fields

    def __repr__(self) -> str:
        return f"LogFormatParser({self.fmt!r}, escape={self.escape!r})"


@lru_cache(maxsize=64)
def compile_log_format(fmt: str, escape: str = "default") -> LogFormatParser:
    """Compile a `log_format` string; raises ValueError on a malformed variable."""
    return LogFormatParser(fmt, escape)


# --- nginx.conf -------------------------------------------------------------------------

_CONF_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}
_MAX_INCLUDE_DEPTH = 16


def _conf_unescape(word: str) -> str:
    """Nginx's unescaping of a token: \\" \\' \\\\ \\t \\r \\n; other backslashes stay."""
    if "\\" not in word:
        return word
    out: list[str] = []
    i, n = 0, len(word)
    while i < n:
        ch = word[i]
        if ch == "\\" and i + 1 < n and word[i + 1] in _CONF_ESCAPES:
            out.append(_CONF_ESCAPES[word[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _conf_tokens(text: str) -> Iterator[tuple[str, bool]]:
    """(text, is_separator) of a configuration text: words (unescaped) and `;`, `{`, `}`."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch in ";{}":
            yield ch, True
            i += 1
        elif ch in "\"'":
            start = i = i + 1
            while i < n and text[i] != ch:
                i += 2 if text[i] == "\\" else 1
            yield _conf_unescape(text[start:i]), False
            i += 1
        else:
            start = i
            while i < n:
                c = text[i]
                if c == "\\":
                    i += 2
                elif c == "{" and text[i - 1] == "$":
                    i += 1
                elif c in " \t\r\n;{":
                    break
                else:
                    i += 1
            yield _conf_unescape(text[start:i]), False


def _conf_directives(path: Path, conf_dir: Path, stack: tuple[Path, ...] = ()
                     ) -> Iterator[tuple[list[str], str]]:
    """(words, terminator) of each directive, with `include`d files spliced in.

    A file already being read (an include loop) is skipped, as is a nesting deeper than 16.
    """
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError:
        if not stack:
            raise
        return
    stack = (*stack, path.resolve())
    words: list[str] = []
    for token, separator in _conf_tokens(text):
        if not separator:
            words.append(token)
            continue
        end = token
        if end == ";" and len(words) == 2 and words[0] == "include":
            if len(stack) <= _MAX_INCLUDE_DEPTH:
                pattern = words[1] if Path(words[1]).is_absolute() else str(conf_dir / words[1])
                found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
                for name in found:
                    if Path(name).resolve() not in stack:
                        yield from _conf_directives(Path(name), conf_dir, stack)
        else:
            yield words, end
        words = []


def read_nginx_conf_formats(path: Path) -> dict[str, tuple[str, str]]:
    """`log_format` definitions of an nginx.conf and its includes: name -> (format, escape).

    Relative `include` paths resolve against the directory of `path`, as Nginx does for
    its main file. Includes that cannot be read are skipped. `combined` is always known;
    formats of the `stream` block only fill names `http` does not define.
    """
    path = Path(path)
    http: dict[str, tuple[str, str]] = {}
    stream: dict[str, tuple[str, str]] = {}
    blocks: list[str] = []
    for words, end in _conf_directives(path, path.resolve().parent):
        if end == "{":
            blocks.append(words[0] if words else "")
        elif end == "}":
            if blocks:
                blocks.pop()
        elif len(words) >= 3 and words[0] == "log_format":
            args = words[2:]
            escape = "default"
            if args[0].startswith("escape=") and len(args) > 1:
                escape, args = args[0][7:], args[1:]
            target = stream if "stream" in blocks else http
            target.setdefault(words[1], ("".join(args), escape))
    return {**stream, "combined": (COMBINED, "default"), **http}


# --- JSON access records ----------------------------------------------------------------

_JSON_KEYS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("remote_addr", _STR, ("remote_addr", "remote_ip", "client_ip", "clientip", "remote")),
    ("remote_user", _STR, ("remote_user",)),
    ("time", _TIME_LOCAL, ("time_local", "time_iso8601", "time", "timestamp", "@timestamp",
                           "msec")),
    ("request", _REQUEST, ("request", "request_line")),
    ("method", _STR, ("request_method", "method")),
    ("path", _STR, ("request_uri", "path")),
    ("protocol", _STR, ("server_protocol", "protocol")),
    ("status", _STATUS, ("status", "status_code", "response_status")),
    ("bytes", _INT, ("body_bytes_sent", "bytes_sent", "bytes")),
    ("referer", _STR, ("http_referer", "referer", "http_referrer", "referrer")),
    ("user_agent", _STR, ("http_user_agent", "user_agent", "agent")),
    ("x_forwarded_for", _STR, ("http_x_forwarded_for", "x_forwarded_for")),
    ("request_length", _INT, ("request_length",)),
    ("request_time", _FLOAT, ("request_time",)),
    ("request_id", _STR, ("request_id", "req_id")),
    ("host", _STR, ("host", "http_host")),
    ("upstream_addr", _ADDRS, ("upstream_addr",)),
    ("upstream_status", _LIST, ("upstream_status",)),
    ("upstream_response_time", _LIST, ("upstream_response_time",)),
    ("upstream_connect_time", _LIST, ("upstream_connect_time",)),
    ("upstream_header_time", _LIST, ("upstream_header_time",)),
    ("upstream_response_length", _LIST, ("upstream_response_length",)),
)
_STATUS_KEYS = next(keys for field, _, keys in _JSON_KEYS if field == "status")
_TIME_LOCAL_RE = re.compile(_TIME_LOCAL_VALUE, re.ASCII)
_TIME_ISO_RE = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d", re.ASCII)
_STATUS_RE = re.compile(r"\d{3}", re.ASCII)
_INT_RE = re.compile(_INT_VALUE, re.ASCII)
_NUMBER_RE = re.compile(_NUMBER, re.ASCII)
_LIST_RE = re.compile(_LIST_VALUE, re.ASCII)
_MAX_INT = 2**63 - 1


def _json_item(kind: int, value: Any) -> Any:
    """One element of an upstream list; raises ValueError when unusable."""
    if value is None or value == "-":
        return None
    if isinstance(value, str) and kind == _ADDRS:
        return value
    if isinstance(value, str) and _NUMBER_RE.fullmatch(value):
        return list_values(value)[0]
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) <= _MAX_INT:
        return value
    raise ValueError(value)


def _json_value(kind: int, value: Any) -> Any:
    """Normalise one JSON value to the field's type; None when absent or unusable."""
    if value is None or value == "-" or value == "" or isinstance(value, bool):
        return None
    if kind in (_LIST, _ADDRS):
        if isinstance(value, str):
            if kind == _ADDRS:
                return _addrs(value)
            return list_values(value) if _LIST_RE.fullmatch(value) else None
        try:
            return [_json_item(kind, v) for v in (value if isinstance(value, list) else [value])]
        except ValueError:
            return None
    if isinstance(value, str):
        return _json_text(kind, value)
    if not isinstance(value, int | float):
        return None
    if kind in (_INT, _STATUS):
        if isinstance(value, float) and not value.is_integer():
            return None
        return int(value) if 0 <= value <= (999 if kind == _STATUS else _MAX_INT) else None
    if kind == _FLOAT:
        return float(value) if math.isfinite(value) else None
    if kind == _TIME_LOCAL and 0 <= value < 1e11:
        return datetime.fromtimestamp(value, UTC).isoformat()
    return None


def _json_text(kind: int, value: str) -> Any:
    """A string value of a JSON record as the field's type; None when unusable."""
    if kind == _STATUS:
        return int(value) if _STATUS_RE.fullmatch(value) else None
    if kind == _INT:
        return int(value) if _INT_RE.fullmatch(value) else None
    if kind == _FLOAT:
        return float(value) if _NUMBER_RE.fullmatch(value) else None
    if kind == _TIME_LOCAL:
        if _TIME_LOCAL_RE.fullmatch(value):
            return _time_local(value)
        if _TIME_ISO_RE.match(value):
            return value
        return _json_value(kind, float(value)) if _NUMBER_RE.fullmatch(value) else None
    return value


def parse_json_access(obj: dict[str, Any]) -> dict[str, Any] | None:
    """Fields of a JSON access-log object (an `escape=json` format); None if it is not one.

    Common key names (`remote_addr`, `status`, `request`, `time_local`/`time_iso8601`,
    `request_time`, `upstream_status` ...) are read; string values are converted. Needs a
    status plus a request (or method/path) or a remote address. Other keys are left to the
    record itself.
    """
    if not any(key in obj for key in _STATUS_KEYS):  # the cheap way out for other records
        return None
    fields: dict[str, Any] = {}
    for field, kind, keys in _JSON_KEYS:
        for key in keys:
            if key not in obj:
                continue
            value = _json_value(kind, obj[key])
            if value is None:
                continue
            if kind == _REQUEST:
                fields[field] = value
                split_request(value, fields)
            else:
                fields.setdefault(field, value)
            break
    if "status" not in fields:
        return None
    if "request" in fields or "method" in fields or "path" in fields or "remote_addr" in fields:
        return fields
    return None
