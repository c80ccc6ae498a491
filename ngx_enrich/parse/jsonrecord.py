"""JSON records that carry an access-log entry: one alias table for every dialect.

`escape=json` access formats name their keys after Nginx variables (`remote_addr`, `status`,
`request_time`...), other tools use their own (`client_ip`, `status_code`...); Fluent Bit's
stock `nginx` parser has a dialect of its own (`remote`, `host` for the ident column, `code`,
`size`, `agent`). Values are converted to the field types of the access parser.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from ngx_enrich.parse.logformat import (
    ADDRS,
    FLOAT,
    INT,
    INT_VALUE,
    LIST,
    LIST_VALUE,
    NUMBER,
    REQUEST,
    STATUS,
    STR,
    TIME_LOCAL,
    TIME_LOCAL_VALUE,
    time_local,
)
from ngx_enrich.parse.values import addrs_of, list_values, split_request

_JSON_KEYS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("remote_addr", STR, ("remote_addr", "remote_ip", "client_ip", "clientip", "remote")),
    ("remote_user", STR, ("remote_user",)),
    ("time", TIME_LOCAL, ("time_local", "time_iso8601", "time", "timestamp", "@timestamp",
                           "msec")),
    ("request", REQUEST, ("request", "request_line")),
    ("method", STR, ("request_method", "method")),
    ("path", STR, ("request_uri", "path")),
    ("protocol", STR, ("server_protocol", "protocol")),
    ("status", STATUS, ("status", "status_code", "response_status")),
    ("bytes", INT, ("body_bytes_sent", "bytes_sent", "bytes")),
    ("referer", STR, ("http_referer", "referer", "http_referrer", "referrer")),
    ("user_agent", STR, ("http_user_agent", "user_agent", "agent")),
    ("x_forwarded_for", STR, ("http_x_forwarded_for", "x_forwarded_for")),
    ("request_length", INT, ("request_length",)),
    ("request_time", FLOAT, ("request_time",)),
    ("request_id", STR, ("request_id", "req_id")),
    ("host", STR, ("host", "http_host")),
    ("upstream_addr", ADDRS, ("upstream_addr",)),
    ("upstream_status", LIST, ("upstream_status",)),
    ("upstream_response_time", LIST, ("upstream_response_time",)),
    ("upstream_connect_time", LIST, ("upstream_connect_time",)),
    ("upstream_header_time", LIST, ("upstream_header_time",)),
    ("upstream_response_length", LIST, ("upstream_response_length",)),
)
_STATUS_KEYS = next(keys for field, _, keys in _JSON_KEYS if field == "status")
_TIME_LOCAL_RE = re.compile(TIME_LOCAL_VALUE, re.ASCII)
_TIME_ISO_RE = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d", re.ASCII)
_STATUS_RE = re.compile(r"\d{3}", re.ASCII)
_INT_RE = re.compile(INT_VALUE, re.ASCII)
_NUMBER_RE = re.compile(NUMBER, re.ASCII)
_LIST_RE = re.compile(LIST_VALUE, re.ASCII)
_MAX_INT = 2**63 - 1


def _json_item(kind: int, value: Any) -> Any:
    """One element of an upstream list; raises ValueError when unusable."""
    if value is None or value == "-":
        return None
    if isinstance(value, str) and kind == ADDRS:
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
    if kind in (LIST, ADDRS):
        if isinstance(value, str):
            if kind == ADDRS:
                return addrs_of(value)
            return list_values(value) if _LIST_RE.fullmatch(value) else None
        try:
            return [_json_item(kind, v) for v in (value if isinstance(value, list) else [value])]
        except ValueError:
            return None
    if isinstance(value, str):
        return _json_text(kind, value)
    if not isinstance(value, int | float):
        return None
    if kind in (INT, STATUS):
        if isinstance(value, float) and not value.is_integer():
            return None
        return int(value) if 0 <= value <= (999 if kind == STATUS else _MAX_INT) else None
    if kind == FLOAT:
        return float(value) if math.isfinite(value) else None
    if kind == TIME_LOCAL and 0 <= value < 1e11:
        return datetime.fromtimestamp(value, UTC).isoformat()
    return None


def _json_text(kind: int, value: str) -> Any:
    """A string value of a JSON record as the field's type; None when unusable."""
    if kind == STATUS:
        return int(value) if _STATUS_RE.fullmatch(value) else None
    if kind == INT:
        return int(value) if _INT_RE.fullmatch(value) else None
    if kind == FLOAT:
        return float(value) if _NUMBER_RE.fullmatch(value) else None
    if kind == TIME_LOCAL:
        if _TIME_LOCAL_RE.fullmatch(value):
            return time_local(value)
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
            if kind == REQUEST:
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


# Fluent Bit's `nginx` parser: its key -> (our field, kind).
_FLUENT_BIT_NGINX: tuple[tuple[str, str, int], ...] = (
    ("remote", "remote_addr", STR), ("host", "ident", STR), ("user", "remote_user", STR),
    ("method", "method", STR), ("path", "path", STR), ("code", "status", INT),
    ("size", "bytes", INT), ("referer", "referer", STR), ("agent", "user_agent", STR),
)


def _fluent_bit_fields(obj: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for theirs, ours, kind in _FLUENT_BIT_NGINX:
        value = obj.get(theirs)
        if value is None or value == "-":
            continue
        if kind == INT:
            try:
                value = int(value)
            except (TypeError, ValueError):
                continue
        fields[ours] = value
    return fields


def parse_json_record(obj: dict[str, Any]) -> dict[str, Any] | None:
    """Access fields of a decoded record in any known dialect; None if it carries none."""
    fields = parse_json_access(obj)
    if fields is None and "code" in obj and ("remote" in obj or "path" in obj):
        fields = _fluent_bit_fields(obj)
    return fields


def parse_json_text(text: str) -> dict[str, Any] | None:
    """Access fields of a JSON access line (an `escape=json` format inside `log`)."""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return parse_json_access(obj) if isinstance(obj, dict) else None
