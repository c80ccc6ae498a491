#!/usr/bin/env python3
"""A loopback stand-in for Elasticsearch 8: the bulk API, checked against an index template.

Elasticsearch cannot be installed here, so end-to-end tests point Fluent Bit's ``es`` output
at this server instead.  It answers ``GET /`` like an 8.15 node, accepts ``_bulk`` requests
(NDJSON, optionally gzip or chunked, over keep-alive HTTP/1.1) and runs every document through
a model of Elasticsearch's document parser: strict JSON (duplicate keys are an error), dotted
keys expanded into objects, each value checked against the mapped type with Elasticsearch's
default coercion, and unmapped fields mapped dynamically by the first value seen, so that a
later document whose value cannot be coerced is rejected exactly as a real index rejects it.

Use it from tests::

    with ElasticStandIn(template) as es:
        ...  # point the client at es.host / es.port
        assert es.wait_for(10, timeout=5)
        assert not es.rejects

or by hand::

    python tests/es_standin.py --port 9200 \\
        --template examples/elasticsearch/ngx-enrich-template-default.json

Only the standard library is used.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gzip
import ipaddress
import json
import math
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["ES_VERSION", "ElasticStandIn", "TemplateError", "main"]

ES_VERSION = "8.15.0"
#: Elasticsearch's default ``http.max_content_length``.
MAX_CONTENT_LENGTH = 100 * 1024 * 1024
RejectHook = Callable[[str, str, str], None]


class TemplateError(ValueError):
    """An index template or mapping that Elasticsearch would refuse."""


# --------------------------------------------------------------------------------------------
# Strict JSON, as Elasticsearch's Jackson parser reads it
# --------------------------------------------------------------------------------------------


class _Obj(list):
    """A JSON object as its (key, value) pairs in document order (keys known to be unique)."""


class _Num(float):
    """A JSON number written with a fraction or exponent; keeps its text as written."""

    text: str

    def __new__(cls, text: str) -> _Num:
        self = super().__new__(cls, float(text))
        self.text = text
        return self


class _JsonError(ValueError):
    """Input that Jackson (with Elasticsearch's settings) refuses to parse."""


def _pairs_hook(pairs: list[tuple[str, Any]]) -> _Obj:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _JsonError(f"Duplicate field '{key}'")
        seen.add(key)
    return _Obj(pairs)


def _no_constant(name: str) -> Any:
    raise _JsonError(
        f"Non-standard token '{name}': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow"
    )


_DECODER = json.JSONDecoder(
    object_pairs_hook=_pairs_hook, parse_float=_Num, parse_constant=_no_constant
)


def _loads(raw: bytes | str) -> Any:
    """Parse one JSON value the way Elasticsearch does, or raise _JsonError."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise _JsonError(f"Invalid UTF-8 start byte 0x{raw[exc.start]:02x}") from None
    text = text.removeprefix("\ufeff")
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            raise _JsonError("Malformed content, found extra data after parsing") from None
        raise _JsonError(f"{exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise _JsonError("Document nesting depth exceeds the maximum allowed (1000)") from None
    except ValueError as exc:  # over-long integers, and _JsonError itself
        raise _JsonError(str(exc)) from None


def _plain(value: Any) -> Any:
    """The value as ordinary JSON-compatible Python objects."""
    if isinstance(value, _Obj):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, _Num):
        return float(value)
    return value


def _token(value: Any) -> str:
    """Jackson's token name for a value."""
    if isinstance(value, _Obj):
        return "START_OBJECT"
    if isinstance(value, list):
        return "START_ARRAY"
    if value is True:
        return "VALUE_TRUE"
    if value is False:
        return "VALUE_FALSE"
    if value is None:
        return "VALUE_NULL"
    if isinstance(value, _Num):
        return "VALUE_NUMBER_FLOAT"
    if isinstance(value, int):
        return "VALUE_NUMBER_INT"
    return "VALUE_STRING"


def _text(value: Any) -> str | None:
    """What ``parser.text()`` gives for a scalar; None for objects and arrays."""
    if isinstance(value, _Obj | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _Num):
        return value.text
    return str(value)


def _preview(value: Any) -> str:
    """A value as Java's toString prints it (maps as {k=v}), shortened."""

    def show(v: Any) -> str:
        if isinstance(v, _Obj):
            return "{" + ", ".join(f"{k}={show(x)}" for k, x in v) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(show(x) for x in v) + "]"
        return "null" if v is None else str(_text(v))

    text = show(value)
    return text if len(text) <= 200 else text[:200] + "..."


# --------------------------------------------------------------------------------------------
# Dates: strict_date_optional_time and friends, epoch_millis, simple Java patterns
# --------------------------------------------------------------------------------------------

_ISO_STRICT = re.compile(
    r"(?P<year>\d{4}|[+-]\d{4,9})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2}))?)?"
    r"(?P<t>T(?:(?P<hour>\d{2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2})"
    r"(?:[.,](?P<frac>\d{1,9}))?)?)?)?(?P<zone>\D.*)?)?\Z"
)
_ISO_LENIENT = re.compile(
    r"(?P<year>[+-]?\d{1,9})(?:-(?P<month>\d{1,2})(?:-(?P<day>\d{1,2}))?)?"
    r"(?P<t>T(?:(?P<hour>\d{1,2})(?::(?P<minute>\d{1,2})(?::(?P<second>\d{1,2})"
    r"(?:[.,](?P<frac>\d{1,9}))?)?)?)?(?P<zone>\D.*)?)?\Z"
)
_ALL_PARTS = frozenset({"year", "month", "day", "t", "hour", "minute", "second", "frac", "zone"})
_YMD = frozenset({"year", "month", "day"})
_YMDHMS = _YMD | {"t", "hour", "minute", "second"}
# name -> (strict, parts that must be present, parts that may be present)
_ISO_NAMED: dict[str, tuple[bool, frozenset[str], frozenset[str]]] = {
    "strict_date_optional_time": (True, frozenset({"year"}), _ALL_PARTS),
    "strict_date_optional_time_nanos": (True, frozenset({"year"}), _ALL_PARTS),
    "date_optional_time": (False, frozenset({"year"}), _ALL_PARTS),
    "iso8601": (False, frozenset({"year"}), _ALL_PARTS),
    "strict_date_time": (True, _YMDHMS | {"frac", "zone"}, _ALL_PARTS),
    "date_time": (False, _YMDHMS | {"frac", "zone"}, _ALL_PARTS),
    "strict_date_time_no_millis": (True, _YMDHMS | {"zone"}, _YMDHMS | {"zone"}),
    "date_time_no_millis": (False, _YMDHMS | {"zone"}, _YMDHMS | {"zone"}),
    "strict_date": (True, _YMD, _YMD),
    "date": (False, _YMD, _YMD),
    "strict_year_month_day": (True, _YMD, _YMD),
    "year_month_day": (False, _YMD, _YMD),
    "strict_date_hour_minute_second": (True, _YMDHMS, _YMDHMS),
    "date_hour_minute_second": (False, _YMDHMS, _YMDHMS),
    "strict_date_hour_minute_second_millis": (True, _YMDHMS | {"frac"}, _YMDHMS | {"frac"}),
    "date_hour_minute_second_millis": (False, _YMDHMS | {"frac"}, _YMDHMS | {"frac"}),
    "strict_date_hour_minute_second_fraction": (True, _YMDHMS | {"frac"}, _YMDHMS | {"frac"}),
    "date_hour_minute_second_fraction": (False, _YMDHMS | {"frac"}, _YMDHMS | {"frac"}),
    "strict_year_month": (True, frozenset({"year", "month"}), frozenset({"year", "month"})),
    "year_month": (False, frozenset({"year", "month"}), frozenset({"year", "month"})),
    "strict_year": (True, frozenset({"year"}), frozenset({"year"})),
    "year": (False, frozenset({"year"}), frozenset({"year"})),
}
_JAVA_NAMED = {
    "basic_date": "yyyyMMdd",
    "strict_basic_date": "yyyyMMdd",
    "basic_date_time": "yyyyMMdd'T'HHmmss.SSSX",
    "strict_basic_date_time": "yyyyMMdd'T'HHmmss.SSSX",
    "basic_date_time_no_millis": "yyyyMMdd'T'HHmmssX",
    "strict_basic_date_time_no_millis": "yyyyMMdd'T'HHmmssX",
}
_EPOCH_MILLIS = re.compile(r"-?\d{1,19}(?:\.\d{1,6})?\Z")
_EPOCH_SECOND = re.compile(r"-?\d{1,16}(?:\.\d{1,9})?\Z")
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_MONTHS_FULL = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
]  # fmt: skip
_DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
_DAYS_FULL = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
#: Dates before/after these epoch milliseconds do not fit date_nanos.
_NANOS_MAX_MILLIS = 9223372036854


@cache
def _zone_names() -> frozenset[str]:
    try:
        import zoneinfo

        return frozenset(zoneinfo.available_timezones())
    except Exception:  # pragma: no cover - no tzdata
        return frozenset()


def _zone_offset(zone: str) -> int | None:
    """Minutes east of UTC for a Java zone or offset id, or None when Java rejects it."""
    if zone == "Z":
        return 0
    for prefix in ("UTC", "GMT", "UT"):
        if zone.startswith(prefix):
            rest = zone[len(prefix) :]
            return 0 if not rest else _zone_offset(rest) if rest[0] in "+-" else None
    m = re.fullmatch(r"([+-])(\d{1,2})(?::?(\d{2})(?::?(\d{2}))?)?", zone)
    if m:
        hours, minutes, seconds = int(m[2]), int(m[3] or 0), int(m[4] or 0)
        if hours > 18 or minutes > 59 or seconds > 59 or (hours == 18 and minutes + seconds):
            return None
        return (1 if m[1] == "+" else -1) * (hours * 60 + minutes)
    if zone in _zone_names():
        return 0  # a region id: accepted; its offset is not modelled
    return None


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (Java's)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _resolve(parts: dict[str, str | None]) -> int | None:
    """Epoch milliseconds for parsed fields, or None when a field is out of range."""
    year_text = parts.get("year")
    year = int(year_text) if year_text else 1970
    if parts.get("year2"):
        year = 2000 + int(parts["year2"] or 0)
    month = int(parts.get("month") or 1)
    if parts.get("month_name"):
        name = (parts["month_name"] or "").lower()
        month = 1 + (_MONTHS_FULL.index(name) if name in _MONTHS_FULL else _MONTHS.index(name))
    day = int(parts.get("day") or 1)
    hour = int(parts.get("hour") or 0)
    if parts.get("hour12"):
        hour = int(parts["hour12"] or 0)
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if (parts.get("ampm") or "").upper() == "PM" else 0)
    minute = int(parts.get("minute") or 0)
    second = int(parts.get("second") or 0)
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)):
        return None
    if hour > 23 or minute > 59 or second > 59:
        return None
    offset = 0
    if parts.get("zone"):
        found = _zone_offset(parts["zone"] or "")
        if found is None:
            return None
        offset = found
    frac = (parts.get("frac") or "0").ljust(3, "0")[:3]
    days = _days_from_civil(year, month, day)
    return ((days * 24 + hour) * 60 + minute - offset) * 60_000 + second * 1000 + int(frac)


def _letter_regex(letter: str, count: int) -> tuple[str | None, str] | None:
    """(group name, regex) for a run of one Java DateTimeFormatter pattern letter."""
    one_or_two = r"\d{1,2}" if count == 1 else r"\d{2}"
    simple = {"d": "day", "H": "hour", "k": "hour", "m": "minute", "s": "second"}
    if letter in "yuY":
        return ("year2", r"\d{2}") if count == 2 else ("year", rf"[+-]?\d{{{count},9}}")
    if letter in "ML":
        if count <= 2:
            return "month", one_or_two
        names = _MONTHS if count == 3 else _MONTHS_FULL
        return "month_name", "(?i:" + "|".join(names) + ")"
    if letter in simple:
        return simple[letter], one_or_two
    if letter in "hK":
        return "hour12", one_or_two
    if letter == "S":
        return "frac", rf"\d{{{count}}}"
    if letter == "n":
        return None, r"\d{1,9}"
    if letter == "D":
        return None, r"\d{1,3}"
    if letter == "a":
        return "ampm", "(?i:AM|PM)"
    if letter == "E":
        return None, _DAYS if count <= 3 else _DAYS_FULL
    if letter == "Z":
        if count <= 3:
            return "zone", r"[+-]\d{4}"
        return "zone", r"GMT(?:[+-]\d{2}:\d{2})?" if count == 4 else r"Z|[+-]\d{2}:\d{2}"
    if letter in "Xx":
        forms = {1: r"[+-]\d{2}(?:\d{2})?", 2: r"[+-]\d{4}", 3: r"[+-]\d{2}:\d{2}"}
        body = forms.get(count, r"[+-]\d{2}:?\d{2}(?::?\d{2})?")
        return "zone", ("Z|" + body) if letter == "X" else body
    if letter == "V":
        return "zone", r"[A-Za-z_]+(?:/[A-Za-z_+\-]+)*"
    if letter == "z":
        return None, r"[A-Za-z]{2,5}"
    return None


@cache
def _java_pattern(pattern: str) -> re.Pattern[str] | None:
    """A regex for a Java date pattern, or None when it uses letters not modelled here."""
    out: list[str] = []
    used: set[str] = set()
    depth = i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "'":
            end = pattern.find("'", i + 1)
            if end < 0:
                return None
            out.append(re.escape(pattern[i + 1 : end]) if end > i + 1 else "'")
            i = end + 1
        elif c in "[]":
            depth += 1 if c == "[" else -1
            out.append("(?:" if c == "[" else ")?")
            i += 1
        elif c.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == c:
                j += 1
            found = _letter_regex(c, j - i)
            if found is None:
                return None
            group, body = found
            if group and group not in used:
                used.add(group)
                out.append(f"(?P<{group}>{body})")
            else:
                out.append(f"(?:{body})")
            i = j
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z") if depth == 0 else None


def _parse_one(name: str, text: str) -> int | bool | None:
    """Epoch millis if ``text`` parses with the named format; None if not; True if unmodelled."""
    if name == "epoch_millis":
        return int(float(text)) if _EPOCH_MILLIS.match(text) else None
    if name == "epoch_second":
        return int(float(text) * 1000) if _EPOCH_SECOND.match(text) else None
    if name in _ISO_NAMED:
        strict, required, allowed = _ISO_NAMED[name]
        m = (_ISO_STRICT if strict else _ISO_LENIENT).match(text)
        if not m:
            return None
        present = {k for k, v in m.groupdict().items() if v is not None}
        if not required <= present or not present <= allowed:
            return None
        return _resolve(m.groupdict())
    regex = _java_pattern(_JAVA_NAMED.get(name, name))
    if regex is None:
        return True
    m = regex.match(text)
    return _resolve(m.groupdict()) if m else None


class _DateFormat:
    """A date field's ``format``: alternatives separated by ``||``."""

    DEFAULT = "strict_date_optional_time||epoch_millis"

    def __init__(self, spec: str = DEFAULT) -> None:
        self.spec = spec
        self.names = [part.strip() for part in spec.split("||") if part.strip()]

    def parse(self, text: str) -> int | bool | None:
        """Epoch millis, None when no alternative parses, True when only unmodelled ones remain."""
        unmodelled = False
        for name in self.names:
            got = _parse_one(name, text)
            if got is True:
                unmodelled = True
            elif got is not None:
                return got
        return True if unmodelled else None


# --------------------------------------------------------------------------------------------
# Mappings
# --------------------------------------------------------------------------------------------

_INT_RANGES = {
    "long": (-(2**63), 2**63 - 1, "a long"),
    "integer": (-(2**31), 2**31 - 1, "an integer"),
    "short": (-(2**15), 2**15 - 1, "a short"),
    "byte": (-128, 127, "a byte"),
    "unsigned_long": (0, 2**64 - 1, "an unsigned_long"),
}
#: Largest magnitude that still rounds to a finite value, per floating type.
_FLOAT_LIMITS = {"float": 3.4028235677973366e38, "half_float": 65520.0}
_FLOAT_TYPES = frozenset({"float", "double", "half_float", "scaled_float"})
_STRING_TYPES = frozenset(
    {"keyword", "text", "match_only_text", "wildcard", "constant_keyword", "search_as_you_type"}
)
_OBJECT_TYPES = frozenset({"object", "nested"})
#: Known to Elasticsearch but not value-checked here: anything is accepted.
_UNCHECKED_TYPES = frozenset(
    {
        "flattened", "geo_point", "geo_shape", "point", "shape", "binary", "alias", "version",
        "dense_vector", "sparse_vector", "rank_feature", "rank_features", "histogram",
        "integer_range", "float_range", "long_range", "double_range", "date_range", "ip_range",
        "completion", "token_count", "percolator", "join", "annotated_text", "semantic_text",
        "aggregate_metric_double", "counted_keyword", "murmur3", "passthrough",
    }
)  # fmt: skip
_KNOWN_TYPES = (
    _FLOAT_TYPES
    | _STRING_TYPES
    | _OBJECT_TYPES
    | _UNCHECKED_TYPES
    | set(_INT_RANGES)
    | {"boolean", "date", "date_nanos", "ip"}
)
_MALFORMABLE = frozenset(set(_INT_RANGES) | _FLOAT_TYPES | {"date", "date_nanos", "ip", "boolean"})

_COMMON = frozenset({"type", "meta", "fields", "copy_to"})
_SCRIPT = frozenset({"script", "on_script_error"})
_TEXT_PARAMS = _COMMON | {
    "index", "store", "analyzer", "search_analyzer", "search_quote_analyzer", "index_options",
    "index_phrases", "index_prefixes", "norms", "position_increment_gap", "similarity",
    "term_vector", "fielddata", "fielddata_frequency_filter", "eager_global_ordinals",
}  # fmt: skip
_NUMBER_PARAMS = (
    _COMMON
    | _SCRIPT
    | {
        "coerce", "doc_values", "ignore_malformed", "index", "null_value", "store",
        "time_series_dimension", "time_series_metric",
    }
)  # fmt: skip
_PARAMS: dict[str, frozenset[str]] = {
    "keyword": _COMMON
    | _SCRIPT
    | {
        "index",
        "doc_values",
        "store",
        "ignore_above",
        "index_options",
        "norms",
        "null_value",
        "normalizer",
        "split_queries_on_whitespace",
        "eager_global_ordinals",
        "similarity",
        "time_series_dimension",
    },
    "text": _TEXT_PARAMS,
    "search_as_you_type": _TEXT_PARAMS | {"max_shingle_size"},
    "match_only_text": _COMMON,
    "wildcard": _COMMON | {"null_value", "ignore_above"},
    "constant_keyword": frozenset({"type", "value", "meta"}),
    **{t: _NUMBER_PARAMS for t in (*_INT_RANGES, "float", "double", "half_float")},
    "scaled_float": _NUMBER_PARAMS | {"scaling_factor"},
    "date": _COMMON
    | _SCRIPT
    | {"doc_values", "format", "locale", "ignore_malformed", "index", "null_value", "store"},
    "boolean": _COMMON
    | _SCRIPT
    | {"doc_values", "index", "null_value", "store", "ignore_malformed"},
    "ip": _COMMON
    | _SCRIPT
    | {"doc_values", "ignore_malformed", "index", "null_value", "store", "time_series_dimension"},
    "object": frozenset({"type", "properties", "dynamic", "enabled", "subobjects"}),
    "nested": frozenset(
        {"type", "properties", "dynamic", "enabled", "include_in_parent", "include_in_root"}
    ),
}
_PARAMS["date_nanos"] = _PARAMS["date"]
_ROOT_PARAMS = frozenset(
    {
        "dynamic", "properties", "date_detection", "numeric_detection", "dynamic_date_formats",
        "dynamic_templates", "_source", "_meta", "_routing", "runtime", "enabled", "subobjects",
        "_field_names", "_data_stream_timestamp", "_doc_count", "_size",
    }
)  # fmt: skip
_METADATA_FIELDS = frozenset(
    {
        "_id", "_index", "_routing", "_source", "_ignored", "_seq_no", "_version", "_primary_term",
        "_field_names", "_nested_path", "_tier", "_data_stream_timestamp", "_feature",
    }
)  # fmt: skip
_DEFAULT_DYNAMIC_DATE_FORMATS = [
    "strict_date_optional_time",
    "yyyy/MM/dd HH:mm:ss||yyyy/MM/dd||epoch_millis",
]
_TEMPLATE_KEYS = frozenset(
    {
        "index_patterns", "template", "composed_of", "priority", "version", "_meta",
        "data_stream", "allow_auto_create", "ignore_missing_component_templates", "deprecated",
    }
)  # fmt: skip


def _dynamic(value: Any, where: str) -> str | None:
    """Normalise a ``dynamic`` setting to "true", "false", "strict" or "runtime"."""
    if value is None:
        return None
    text = _text(value) if not isinstance(value, str) else value
    if text not in ("true", "false", "strict", "runtime"):
        raise TemplateError(f"Could not convert [{where}.dynamic] to boolean")
    return text


def _truthy(value: Any) -> bool:
    return value is True or value == "true"


@dataclass
class _Field:
    """One mapped field: a leaf with its parameters, or an object."""

    path: str
    type: str
    params: dict[str, Any]
    subfields: list[_Field] = field(default_factory=list)
    dynamic: str | None = None
    date_format: _DateFormat | None = None

    @property
    def is_object(self) -> bool:
        return self.type in _OBJECT_TYPES

    @property
    def size(self) -> int:
        """How many fields this adds to ``index.mapping.total_fields.limit``."""
        return 1 + sum(sub.size for sub in self.subfields)


def _compile_field(path: str, spec: Any, multi: bool = False) -> _Field:
    """One field definition (without its properties), validated as Elasticsearch would."""
    name = path.rpartition(".")[2]
    if not isinstance(spec, dict):
        raise TemplateError(f"Expected map for property [fields] on field [{name}]")
    ftype = spec.get("type", "object")
    if not isinstance(ftype, str) or ftype not in _KNOWN_TYPES:
        raise TemplateError(f"No handler for type [{ftype}] declared on field [{name}]")
    if multi and ftype in _OBJECT_TYPES:
        raise TemplateError(f"Type [{ftype}] cannot be used in multi field")
    allowed = _PARAMS.get(ftype)
    extra = [k for k in spec if allowed is not None and k not in allowed]
    if extra:
        if ftype in _OBJECT_TYPES:
            shown = ", ".join(f"{k} : {spec[k]}" for k in extra)
            raise TemplateError(
                f"Mapping definition for [{name}] has unsupported parameters:  [{shown}]"
            )
        raise TemplateError(f"unknown parameter [{extra[0]}] on mapper [{path}] of type [{ftype}]")
    params = {k: v for k, v in spec.items() if k not in ("type", "properties", "fields")}
    out = _Field(path, ftype, params)
    if ftype in _OBJECT_TYPES:
        out.dynamic = _dynamic(spec.get("dynamic"), path)
        return out
    fields = spec.get("fields") or {}
    if not isinstance(fields, dict):
        raise TemplateError(f"Expected map for property [fields] on field [{name}]")
    out.subfields = [_compile_field(f"{path}.{sub}", d, multi=True) for sub, d in fields.items()]
    if ftype in ("date", "date_nanos"):
        fmt = spec.get("format", _DateFormat.DEFAULT)
        if not isinstance(fmt, str):
            raise TemplateError(f"Invalid format [{fmt}] on field [{name}]")
        out.date_format = _DateFormat(fmt)
    if ftype == "scaled_float" and "scaling_factor" not in spec:
        raise TemplateError(f"Field [scaling_factor] is required for field [{name}]")
    return out


def _add_properties(fields: dict[str, _Field], prefix: str, props: Any) -> None:
    """Compile a ``properties`` block into ``fields`` (flat, keyed by full path)."""
    if not isinstance(props, dict):
        raise TemplateError(f"Expected map for property [properties] on [{prefix or '_doc'}]")
    for name, spec in props.items():
        parts = name.split(".")
        if not name or any(not part for part in parts):
            raise TemplateError(f"field name cannot be an empty string: [{name}]")
        parent = prefix
        for part in parts[:-1]:  # dotted property names define objects
            path = parent + part
            found = fields.get(path)
            if found is None:
                fields[path] = _Field(path, "object", {})
            elif not found.is_object:
                raise TemplateError(f"can't merge a non object mapping [{path}] with an object")
            parent = path + "."
        path = parent + parts[-1]
        compiled = _compile_field(path, spec)
        existing = fields.get(path)
        if existing is not None and not (existing.is_object and compiled.is_object):
            raise TemplateError(f"Field [{path}] is defined more than once")
        if existing is None or compiled.params:
            fields[path] = compiled
        if compiled.is_object and isinstance(spec, dict) and "properties" in spec:
            _add_properties(fields, path + ".", spec["properties"])


@dataclass
class _Mapping:
    """A compiled root mapping."""

    fields: dict[str, _Field]
    dynamic: str = "true"
    date_detection: bool = True
    numeric_detection: bool = False
    dynamic_date_formats: list[str] = field(
        default_factory=lambda: list(_DEFAULT_DYNAMIC_DATE_FORMATS)
    )
    dynamic_templates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    subobjects: bool = True


def _compile_mapping(mappings: Any) -> _Mapping:
    """Compile ``template.mappings``; raise TemplateError where Elasticsearch would."""
    if mappings is None:
        return _Mapping({})
    if not isinstance(mappings, dict):
        raise TemplateError("Failed to parse mapping: mappings must be an object")
    if len(mappings) == 1 and isinstance(mappings.get("_doc"), dict):
        mappings = mappings["_doc"]
    extra = [k for k in mappings if k not in _ROOT_PARAMS]
    if extra:
        shown = ", ".join(f"{k} : {mappings[k]}" for k in extra)
        raise TemplateError(f"Root mapping definition has unsupported parameters:  [{shown}]")
    out = _Mapping({})
    out.dynamic = _dynamic(mappings.get("dynamic"), "_doc") or "true"
    out.date_detection = _truthy(mappings.get("date_detection", True))
    out.numeric_detection = _truthy(mappings.get("numeric_detection", False))
    out.subobjects = _truthy(mappings.get("subobjects", True))
    formats = mappings.get("dynamic_date_formats", _DEFAULT_DYNAMIC_DATE_FORMATS)
    out.dynamic_date_formats = [formats] if isinstance(formats, str) else list(formats)
    for entry in mappings.get("dynamic_templates") or []:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise TemplateError("each dynamic template must be an object with a single name")
        ((name, spec),) = entry.items()
        if not isinstance(spec, dict):
            raise TemplateError(f"dynamic template [{name}] must be an object")
        out.dynamic_templates.append((name, spec))
    _add_properties(out.fields, "", mappings.get("properties") or {})
    return out


def _flat_settings(settings: Any, prefix: str = "") -> dict[str, str]:
    """Index settings as flat "index.*" keys with string values."""
    out: dict[str, str] = {}
    for key, value in (settings or {}).items():
        if isinstance(value, dict):
            out.update(_flat_settings(value, f"{prefix}{key}."))
            continue
        name = prefix + key
        out[name if name.startswith("index.") else "index." + name] = (
            _text(value) if not isinstance(value, str) else value
        ) or ""
    return out


def _simple_match(pattern: str, name: str) -> bool:
    """Elasticsearch's Regex.simpleMatch: only ``*`` is a wildcard."""
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), name) is not None


def _listify(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


@dataclass
class _Template:
    name: str
    body: dict[str, Any]
    patterns: list[str]
    priority: int
    mapping: _Mapping  # compiled once to validate; each index compiles its own copy


def _compile_template(name: str, body: Any) -> _Template:
    """Validate a composable index template as ``PUT _index_template`` would."""
    if not isinstance(body, dict):
        raise TemplateError("index template must be an object")
    extra = [k for k in body if k not in _TEMPLATE_KEYS]
    if extra:
        raise TemplateError(f"[index_template] unknown field [{extra[0]}]")
    patterns = _listify(body.get("index_patterns"))
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise TemplateError("Validation Failed: 1: index patterns are missing;")
    priority = body.get("priority", 0)
    if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
        raise TemplateError("priority must be a non-negative integer")
    inner = body.get("template") or {}
    if not isinstance(inner, dict):
        raise TemplateError("[template] must be an object")
    bad = [k for k in inner if k not in ("settings", "mappings", "aliases", "lifecycle")]
    if bad:
        raise TemplateError(f"[template] unknown field [{bad[0]}]")
    return _Template(name, body, patterns, priority, _compile_mapping(inner.get("mappings")))


#: Elasticsearch 8's built-in templates that turn ``logs-*-*``/``metrics-*-*`` into data streams.
_BUILTIN_TEMPLATES = {
    name: {
        "index_patterns": [f"{name}-*-*"],
        "priority": 100,
        "data_stream": {},
        "template": {
            "settings": {"index": {"mapping": {"ignore_malformed": True}}},
            "mappings": {
                "date_detection": False,
                "properties": {
                    "@timestamp": {"type": "date"},
                    "data_stream": {
                        "properties": {
                            "type": {"type": "constant_keyword"},
                            "dataset": {"type": "constant_keyword"},
                            "namespace": {"type": "constant_keyword"},
                        }
                    },
                },
            },
        },
    }
    for name in ("logs", "metrics")
}


# --------------------------------------------------------------------------------------------
# Indices and the document parser
# --------------------------------------------------------------------------------------------


class _DocError(Exception):
    """A document rejected by the mapper: becomes one bulk item's ``error``."""

    def __init__(
        self,
        etype: str,
        reason: str,
        caused_by: dict[str, Any] | None = None,
        status: int = 400,
    ) -> None:
        super().__init__(reason)
        self.etype, self.reason, self.caused_by, self.status = etype, reason, caused_by, status

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.etype, "reason": self.reason}
        if self.caused_by:
            out["caused_by"] = self.caused_by
        return out

    def summary(self) -> str:
        text = f"{self.etype}: {self.reason}"
        cause = self.caused_by
        while cause:
            text += f" (caused by {cause['type']}: {cause['reason']})"
            cause = cause.get("caused_by")
        return text


class _Bad(Exception):
    """A value a field mapper cannot parse (the ``caused_by`` of a document error)."""

    def __init__(self, etype: str, reason: str, cause: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.body: dict[str, Any] = {"type": etype, "reason": reason}
        if cause:
            self.body["caused_by"] = cause


_JAVA_LONG = re.compile(r"[+-]?\d+\Z")
_JAVA_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
_JAVA_DOUBLE = re.compile(
    r"[+-]?(?:NaN|Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[fFdD]?"
    r"|0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?\d+[fFdD]?)\Z"
)


def _not_numeric(value: Any) -> _Bad:
    return _Bad(
        "x_content_parse_exception",
        f"Current token ({_token(value)}) not numeric, can not use numeric value accessors",
    )


def _check_integer(ftype: str, value: Any, coerce: bool) -> None:
    lo, hi, label = _INT_RANGES[ftype]
    out_of_range = _Bad(
        "illegal_argument_exception", f"Value [{_text(value)}] is out of range for {label}"
    )
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _not_numeric(value)
    if isinstance(value, str):
        if not coerce:
            raise _Bad("illegal_argument_exception", f"Unable to parse [{value}]: coerce disabled")
        if value == "":
            return  # coerce reads an empty string as null
        if _JAVA_LONG.match(value):
            number = int(value)
        elif _JAVA_DECIMAL.match(value):
            try:
                exact = Decimal(value)
            except InvalidOperation:  # pragma: no cover - the regex admits only decimals
                raise _Bad("illegal_argument_exception", f'For input string: "{value}"') from None
            if exact.adjusted() > 25:
                raise out_of_range
            number = int(exact)  # truncates towards zero, as coerce does
        else:
            raise _Bad("illegal_argument_exception", f'For input string: "{value}"')
    elif isinstance(value, float):
        if not math.isfinite(value) or not lo - 1 < value < hi + 1:
            raise out_of_range
        if not coerce and value != int(value):
            raise _Bad("illegal_argument_exception", f"Value [{_text(value)}] has a decimal part")
        number = int(value)
    else:
        number = value
    if not lo <= number <= hi:
        raise out_of_range


def _check_float(ftype: str, value: Any, coerce: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _not_numeric(value)
    if isinstance(value, str):
        if not coerce:
            raise _Bad("illegal_argument_exception", f"Unable to parse [{value}]: coerce disabled")
        if value == "":
            return  # coerce reads an empty string as null
        text = value.strip("".join(map(chr, range(33))))  # Java's trim()
        if not _JAVA_DOUBLE.match(text):
            raise _Bad("number_format_exception", f'For input string: "{value}"')
        body = text.rstrip("fFdD") if not text.lower().startswith(("0x", "+0x", "-0x")) else text
        if "x" in body.lower():
            number = float.fromhex(body.rstrip("fFdD"))
        else:
            number = float(body.replace("Infinity", "inf").replace("NaN", "nan"))
    else:
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    limit = _FLOAT_LIMITS.get(ftype)
    if limit is not None and abs(number) >= limit:
        number = math.copysign(math.inf, number)
    if not math.isfinite(number):
        shown = "NaN" if math.isnan(number) else ("-" if number < 0 else "") + "Infinity"
        raise _Bad(
            "illegal_argument_exception",
            f"[{ftype}] supports only finite values, but got [{shown}]",
        )


def _check_boolean(value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, str):
        if value in ("", "true", "false"):
            return
        raise _Bad(
            "illegal_argument_exception",
            f"Failed to parse value [{value}] as only [true] or [false] are allowed.",
        )
    raise _Bad("x_content_parse_exception", f"Current token ({_token(value)}) not of boolean type")


def _check_date(fieldspec: _Field, value: Any) -> None:
    text = _text(value)
    if text is None:
        raise _Bad("illegal_state_exception", f"Can't get text on a {_token(value)}")
    fmt = fieldspec.date_format or _DateFormat()
    millis = fmt.parse(text)
    if millis is None:
        raise _Bad(
            "illegal_argument_exception",
            f"failed to parse date field [{text}] with format [{fmt.spec}]",
            {
                "type": "date_time_parse_exception",
                "reason": "Failed to parse with all enclosed parsers",
            },
        )
    if fieldspec.type == "date_nanos" and millis is not True:
        if millis < 0:
            raise _Bad(
                "illegal_argument_exception",
                f"date[{text}] is before the epoch in 1970 and cannot be stored in nanosecond "
                "resolution",
            )
        if millis > _NANOS_MAX_MILLIS:
            raise _Bad(
                "illegal_argument_exception",
                f"date[{text}] is after 2262-04-11T23:47:16.854775807 and cannot be stored in "
                "nanosecond resolution",
            )


def _check_ip(value: Any) -> None:
    text = _text(value)
    if text is None:
        raise _Bad("illegal_state_exception", f"Can't get text on a {_token(value)}")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise _Bad("illegal_argument_exception", f"'{text}' is not an IP string literal.") from None


def _check_string(fieldspec: _Field, value: Any) -> None:
    text = _text(value)
    if text is None:
        raise _Bad("illegal_state_exception", f"Can't get text on a {_token(value)}")
    if fieldspec.type == "constant_keyword":
        expected = fieldspec.params.get("value")
        if expected is not None and text != expected:
            raise _Bad(
                "illegal_argument_exception",
                f"[constant_keyword] field [{fieldspec.path}] only accepts values that are equal "
                f"to the value defined in the mappings [{expected}], but got [{text}]",
            )


class _Index:
    """One index: its mapping (template plus dynamic additions) and its documents."""

    def __init__(self, name: str, template: _Template | None) -> None:
        self.name = name
        self.template_name = template.name if template else None
        body = template.body if template else {}
        inner = body.get("template") or {}
        self.mapping = _compile_mapping(inner.get("mappings"))
        settings = _flat_settings(inner.get("settings"))
        self.coerce = settings.get("index.mapping.coerce", "true") == "true"
        self.ignore_malformed = settings.get("index.mapping.ignore_malformed", "false") == "true"
        self.total_fields_limit = int(settings.get("index.mapping.total_fields.limit", "1000"))
        self.depth_limit = int(settings.get("index.mapping.depth.limit", "20"))
        self.pipelines = [
            p
            for p in (
                settings.get("index.default_pipeline"),
                settings.get("index.final_pipeline"),
            )
            if p and p != "_none"
        ]
        self.data_stream = "data_stream" in body
        if self.data_stream and "@timestamp" not in self.mapping.fields:
            self.mapping.fields["@timestamp"] = _compile_field("@timestamp", {"type": "date"})
        self.write_name = name
        if self.data_stream:
            self.write_name = f".ds-{name}-{time.strftime('%Y.%m.%d', time.gmtime())}-000001"
        self.uuid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22]
        self.docs: dict[str, tuple[int, dict[str, Any]]] = {}
        self.seq_no = -1
        self.field_count = sum(f.size for f in self.mapping.fields.values())

    def field_types(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for path, f in self.mapping.fields.items():
            out[path] = f.type
            for sub in f.subfields:
                out[sub.path] = sub.type
        return out


class _DocParser:
    """Walks one document against an index mapping, collecting dynamic mapping additions."""

    def __init__(self, index: _Index, doc_id: str) -> None:
        self.index = index
        self.doc_id = doc_id
        self.new: dict[str, _Field] = {}

    def lookup(self, path: str) -> _Field | None:
        found = self.new.get(path)
        return found if found is not None else self.index.mapping.fields.get(path)

    def parse(self, source: bytes | str) -> Any:
        """Check a document; return its parsed form or raise _DocError."""
        if not source.strip():
            raise _DocError("document_parsing_exception", "failed to parse, document is empty")
        try:
            doc = _loads(source)
        except _JsonError as exc:
            raise _DocError(
                "document_parsing_exception",
                f"failed to parse: {exc}",
                {"type": "x_content_parse_exception", "reason": str(exc)},
            ) from None
        if not isinstance(doc, _Obj):
            raise _DocError(
                "document_parsing_exception",
                "failed to parse, document is empty"
                if doc is None
                else "Malformed content, must start with an object",
            )
        mapping = self.index.mapping
        self.parse_object(doc, "", mapping.dynamic, mapping.subobjects)
        if self.index.data_stream and not self._has_timestamp(doc):
            raise _DocError(
                "document_parsing_exception",
                "data stream timestamp field [@timestamp] is missing",
            )
        added = sum(f.size for f in self.new.values())
        if added and self.index.field_count + added > self.index.total_fields_limit:
            reason = (
                f"Limit of total fields [{self.index.total_fields_limit}] has been exceeded "
                f"while adding new fields [{added}]"
            )
            raise _DocError(
                "document_parsing_exception",
                f"failed to parse: {reason}",
                {"type": "illegal_argument_exception", "reason": reason},
            )
        return doc

    @staticmethod
    def _has_timestamp(doc: _Obj) -> bool:
        return any(k == "@timestamp" and v is not None and v != [] for k, v in doc)

    def parse_object(self, obj: _Obj, prefix: str, dynamic: str, subobjects: bool) -> None:
        for key, value in obj:
            self._check_name(key, prefix)
            if not prefix and key in _METADATA_FIELDS:
                raise _DocError(
                    "document_parsing_exception",
                    f"Field [{key}] is a metadata field and cannot be added inside a document. "
                    "Use the index API request parameters.",
                )
            if "." in key and subobjects:
                head, *rest = key.split(".")
                for part in reversed(rest):
                    value = _Obj([(part, value)])
                key = head
            self.parse_field(prefix + key, value, dynamic, subobjects)

    @staticmethod
    def _check_name(key: str, prefix: str) -> None:
        reason = None
        if not key:
            reason = "field name cannot be an empty string"
        elif not key.strip():
            reason = f"field name cannot contain only whitespace: ['{prefix}{key}']"
        elif set(key) == {"."}:
            reason = f"field name cannot contain only dots: [{prefix}{key}]"
        elif key.startswith(".") or key.endswith("."):
            reason = (
                "field name starting or ending with a [.] makes object resolution ambiguous: "
                f"[{key}]"
            )
        elif ".." in key:
            reason = f"field name cannot contain only whitespace or dots: [{prefix}{key}]"
        if reason:
            raise _DocError(
                "document_parsing_exception",
                f"failed to parse: {reason}",
                {"type": "illegal_argument_exception", "reason": reason},
            )

    def parse_field(self, path: str, value: Any, dynamic: str, subobjects: bool) -> None:
        if value is None:
            return
        if type(value) is list:
            for item in value:
                self.parse_field(path, item, dynamic, subobjects)
            return
        found = self.lookup(path)
        if found is None:
            if not subobjects and isinstance(value, _Obj):
                self.parse_object(value, path + ".", dynamic, subobjects=False)
                return
            found = self.add_dynamic(path, value, dynamic)
            if found is None:
                return
        if found.is_object:
            if found.params.get("enabled", True) in (False, "false"):
                return
            if not isinstance(value, _Obj):
                name = path.rpartition(".")[2]
                raise _DocError(
                    "document_parsing_exception",
                    f"object mapping for [{path}] tried to parse field [{name}] as object, "
                    "but found a concrete value",
                )
            self.parse_object(
                value,
                path + ".",
                found.dynamic or dynamic,
                _truthy(found.params.get("subobjects", True)),
            )
            return
        self.check_leaf(found, value)

    def check_leaf(self, leaf: _Field, value: Any, follow_copy_to: bool = True) -> None:
        index = self.index
        try:
            if leaf.type in _INT_RANGES:
                _check_integer(leaf.type, value, self._param(leaf, "coerce", index.coerce))
            elif leaf.type in _FLOAT_TYPES:
                _check_float(leaf.type, value, self._param(leaf, "coerce", index.coerce))
            elif leaf.type in _STRING_TYPES:
                _check_string(leaf, value)
            elif leaf.type == "boolean":
                _check_boolean(value)
            elif leaf.type in ("date", "date_nanos"):
                _check_date(leaf, value)
            elif leaf.type == "ip":
                _check_ip(value)
        except _Bad as bad:
            malformed_ok = leaf.type in _MALFORMABLE and self._param(
                leaf, "ignore_malformed", index.ignore_malformed
            )
            if malformed_ok:
                return
            raise _DocError(
                "document_parsing_exception",
                f"failed to parse field [{leaf.path}] of type [{leaf.type}] in document with id "
                f"'{self.doc_id}'. Preview of field's value: '{_preview(value)}'",
                bad.body,
            ) from None
        if (
            isinstance(value, str)
            and value == ""
            and (leaf.type in _INT_RANGES or leaf.type in _FLOAT_TYPES)
        ):
            return  # coerce treats "" as null: nothing for multi-fields either
        for sub in leaf.subfields:
            self.check_leaf(sub, value, follow_copy_to=False)
        if follow_copy_to:
            for target in _listify(leaf.params.get("copy_to")):
                dest = self.lookup(str(target))
                if dest is not None and not dest.is_object:
                    self.check_leaf(dest, value, follow_copy_to=False)

    @staticmethod
    def _param(leaf: _Field, name: str, default: bool) -> bool:
        value = leaf.params.get(name)
        return default if value is None else _truthy(value)

    # dynamic mapping --------------------------------------------------------------------

    def _detect(self, value: Any) -> tuple[str, dict[str, Any]]:
        """(match_mapping_type, default mapping) for a new field's first value."""
        mapping = self.index.mapping
        if isinstance(value, _Obj):
            return "object", {"type": "object"}
        if isinstance(value, bool):
            return "boolean", {"type": "boolean"}
        if isinstance(value, float):
            return "double", {"type": "float"}
        if isinstance(value, int):
            return "long", {"type": "long"}
        text = str(value)
        if mapping.date_detection and (
            text.count(":") > 1 or text.count("-") > 1 or text.count("/") > 1
        ):
            for fmt in mapping.dynamic_date_formats:
                got = _DateFormat(fmt).parse(text)
                if got is not None and got is not True:
                    spec = {"type": "date"}
                    if fmt != "strict_date_optional_time":
                        spec["format"] = fmt
                    return "date", spec
        if mapping.numeric_detection:
            if _JAVA_LONG.match(text):
                return "long", {"type": "long"}
            if _JAVA_DOUBLE.match(text.strip()):
                return "double", {"type": "float"}
        return "string", {
            "type": "text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
        }

    def _from_dynamic_template(self, path: str, kind: str) -> dict[str, Any] | bool | None:
        """The mapping of the first matching dynamic template; True for a runtime one."""
        name = path.rpartition(".")[2]
        defaults = {"string": "text", "double": "float", "long": "long", "boolean": "boolean"}
        for tname, spec in self.index.mapping.dynamic_templates:
            kinds = _listify(spec.get("match_mapping_type"))
            if kinds and "*" not in kinds and kind not in kinds:
                continue
            if kind in _listify(spec.get("unmatch_mapping_type")):
                continue
            regex = spec.get("match_pattern") == "regex"

            def hit(patterns: Any, text: str, regex: bool = regex) -> bool:
                return any(
                    re.fullmatch(p, text) if regex else _simple_match(p, text)
                    for p in _listify(patterns)
                )

            if "match" in spec and not hit(spec["match"], name):
                continue
            if "unmatch" in spec and hit(spec["unmatch"], name):
                continue
            if "path_match" in spec and not hit(spec["path_match"], path, False):
                continue
            if "path_unmatch" in spec and hit(spec["path_unmatch"], path, False):
                continue
            if "runtime" in spec:
                return True
            dynamic_type = defaults.get(kind, kind)
            raw = json.dumps(spec.get("mapping", {}))
            raw = raw.replace("{name}", name).replace("{dynamic_type}", dynamic_type)
            mapping = json.loads(raw)
            if not isinstance(mapping, dict):
                raise _DocError(
                    "mapper_parsing_exception", f"dynamic template [{tname}] is invalid"
                )
            mapping.setdefault("type", "object" if kind == "object" else dynamic_type)
            return mapping
        return None

    def add_dynamic(self, path: str, value: Any, dynamic: str) -> _Field | None:
        """Map a new field from its first value, or None when it is not mapped."""
        name = path.rpartition(".")[2]
        if dynamic == "strict":
            parent = path.rpartition(".")[0] or "_doc"
            raise _DocError(
                "strict_dynamic_mapping_exception",
                f"mapping set to strict, dynamic introduction of [{name}] within [{parent}] "
                "is not allowed",
            )
        if dynamic == "false":
            return None
        is_object = isinstance(value, _Obj)
        if dynamic == "runtime" and not is_object:
            return None  # a runtime field: never rejects a value
        kind, spec = self._detect(value)
        templated = self._from_dynamic_template(path, kind)
        if templated is True:
            return None
        if isinstance(templated, dict):
            spec = templated
        try:
            made = _compile_field(path, spec)
        except TemplateError as exc:
            raise _DocError("mapper_parsing_exception", str(exc)) from None
        depth = path.count(".") + 1
        if made.is_object and depth > self.index.depth_limit:
            raise _DocError(
                "document_parsing_exception",
                f"Limit of mapping depth [{self.index.depth_limit}] has been exceeded due to "
                f"object field [{path}]",
            )
        self.new[path] = made
        return made


# --------------------------------------------------------------------------------------------
# The bulk API
# --------------------------------------------------------------------------------------------


class _RequestError(Exception):
    """A whole request refused (HTTP status other than 200)."""

    def __init__(self, status: int, etype: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.etype, self.reason = status, etype, reason

    def body(self) -> dict[str, Any]:
        return _error_body(self.status, self.etype, self.reason)


def _error_body(status: int, etype: str, reason: str, **extra: Any) -> dict[str, Any]:
    cause = {"type": etype, "reason": reason, **extra}
    return {"error": {"root_cause": [dict(cause)], **cause}, "status": status}


_ACTIONS = ("create", "delete", "index", "update")
_ACTION_PARAMS = frozenset(
    {
        "_index", "_id", "routing", "op_type", "version", "version_type", "if_seq_no",
        "if_primary_term", "retry_on_conflict", "pipeline", "_source", "require_alias",
        "require_data_stream", "dynamic_templates", "list_executed_pipelines",
    }
)  # fmt: skip
_UPDATE_KEYS = frozenset(
    {"doc", "upsert", "doc_as_upsert", "script", "scripted_upsert", "detect_noop", "_source"}
)
_BAD_INDEX_CHARS = '\\/*?"<>| ,#:'


@dataclass
class _Op:
    line: int
    action: str  # "index", "create", "update" or "delete"
    index: str | None
    doc_id: str | None
    pipeline: str | None = None
    require_alias: bool = False
    source: bytes = b""
    update: _Obj | None = None


def _index_name_error(name: str) -> str | None:
    if name != name.lower():
        return "must be lowercase"
    if name in (".", ".."):
        return "must not be '.' or '..'"
    if name.startswith(("_", "-", "+")):
        return "must not start with '_', '-', or '+'"
    bad = [c for c in _BAD_INDEX_CHARS if c in name]
    if bad:
        return f"must not contain the following characters [{', '.join(repr(c) for c in bad)}]"
    if len(name.encode()) > 255:
        return f"index name is too long, ({len(name.encode())} > 255)"
    return None


def _parse_bulk(body: bytes, url_index: str | None, compat7: bool) -> list[_Op]:
    """Split a bulk body into operations, refusing it whole where Elasticsearch does."""
    if not body:
        raise _RequestError(400, "parse_exception", "request body is required")
    if not body.endswith(b"\n"):
        raise _RequestError(
            400,
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        )
    lines = body.split(b"\n")[:-1]
    ops: list[_Op] = []
    i = 0
    while i < len(lines):
        number, raw = i + 1, lines[i]
        i += 1
        if not raw.strip(b" \t\r\n"):
            continue

        def bad(reason: str, number: int = number) -> _RequestError:
            text = f"Malformed action/metadata line [{number}], {reason}"
            return _RequestError(400, "illegal_argument_exception", text)

        try:
            action_line = _loads(raw)
        except _JsonError as exc:
            raise _RequestError(400, "x_content_parse_exception", f"[{number}:1] {exc}") from None
        if not isinstance(action_line, _Obj):
            raise bad(f"expected START_OBJECT but found [{_token(action_line)}]")
        if not action_line:
            raise bad("expected FIELD_NAME but found [END_OBJECT]")
        action, meta = action_line[0]
        if action not in _ACTIONS:
            raise bad(
                f"expected field [create], [delete], [index] or [update] but found [{action}]"
            )
        if not isinstance(meta, _Obj):
            raise bad(f"expected START_OBJECT but found [{_token(meta)}]")
        values: dict[str, Any] = {}
        for key, value in meta:
            if key == "_type" and compat7:
                continue
            if key not in _ACTION_PARAMS:
                raise _RequestError(
                    400,
                    "illegal_argument_exception",
                    f"Action/metadata line [{number}] contains an unknown parameter [{key}]",
                )
            if key not in ("dynamic_templates", "_source") and isinstance(value, _Obj | list):
                raise bad(f"expected a simple value for field [{key}] but found [{_token(value)}]")
            values[key] = value
        if len(action_line) > 1:
            raise bad("expected END_OBJECT but found [FIELD_NAME]")
        op_type = _text(values.get("op_type")) if values.get("op_type") is not None else None
        if action == "index" and op_type not in (None, "index", "create"):
            raise _RequestError(
                400,
                "illegal_argument_exception",
                f"opType must be 'create' or 'index', found: [{op_type}]",
            )
        op = _Op(
            line=number,
            action="create" if action == "index" and op_type == "create" else action,
            index=_text(values["_index"]) if values.get("_index") is not None else url_index,
            doc_id=_text(values["_id"]) if values.get("_id") is not None else None,
            pipeline=_text(values["pipeline"]) if values.get("pipeline") is not None else None,
            require_alias=_truthy(values.get("require_alias")),
        )
        if action != "delete":
            if i >= len(lines):
                break  # an action without its source line is dropped, as Elasticsearch does
            op.source = lines[i].removesuffix(b"\r")
            i += 1
            if action == "update":
                op.update = _parse_update(op.source, i)
        ops.append(op)
    problems: list[str] = []
    if not ops:
        problems.append("no requests added")
    for op in ops:
        if not op.index:
            problems.append("index is missing")
        if op.doc_id == "":
            problems.append("if _id is specified it must not be empty")
        elif op.doc_id and len(op.doc_id.encode()) > 512:
            size = len(op.doc_id.encode())
            problems.append(
                f"id [{op.doc_id}] is too long, must be no longer than 512 bytes but was: {size}"
            )
        if op.action in ("update", "delete") and not op.doc_id:
            problems.append("id is missing")
    if problems:
        text = "".join(f"{n}: {p};" for n, p in enumerate(problems, 1))
        raise _RequestError(
            400, "action_request_validation_exception", f"Validation Failed: {text}"
        )
    return ops


def _parse_update(source: bytes, line: int) -> _Obj:
    try:
        body = _loads(source)
    except _JsonError as exc:
        raise _RequestError(400, "x_content_parse_exception", f"[{line}:1] {exc}") from None
    if not isinstance(body, _Obj):
        raise _RequestError(400, "x_content_parse_exception", f"[{line}:1] expected an object")
    for key, value in body:
        problem = None
        if key not in _UPDATE_KEYS:
            problem = f"[UpdateRequest] unknown field [{key}]"
        elif key in ("doc", "upsert") and not isinstance(value, _Obj):
            problem = f"[UpdateRequest] {key} must be an object"
        if problem:
            raise _RequestError(400, "x_content_parse_exception", f"[{line}:2] {problem}")
    return body


def _merge(base: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """A partial update: objects merge recursively, anything else is replaced."""
    out = dict(base)
    for key, value in doc.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _new_id() -> str:
    """A 20-character id like Elasticsearch's auto-generated ones."""
    return base64.urlsafe_b64encode(os.urandom(15)).decode()


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------

_FAULTS = {
    429: ("es_rejected_execution_exception", "rejected execution of coordinating operation"),
    500: ("null_pointer_exception", "injected by the stand-in"),
    502: ("stand_in_fault", "Bad Gateway (injected by the stand-in)"),
    503: ("unavailable_shards_exception", "[0] primary shard is not active (injected)"),
    504: ("stand_in_fault", "Gateway Timeout (injected by the stand-in)"),
}
_BODY_TYPES = frozenset(
    {
        "application/json", "application/x-ndjson", "application/vnd.elasticsearch+json",
        "application/vnd.elasticsearch+x-ndjson",
    }
)  # fmt: skip


class _HttpError(Exception):
    def __init__(self, status: int, payload: dict[str, Any]) -> None:
        super().__init__(status)
        self.status, self.payload = status, payload


def _http_error(status: int, reason: str) -> _HttpError:
    etype = "content_too_long_exception" if status == 413 else "illegal_argument_exception"
    return _HttpError(status, _error_body(status, etype, reason))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # buffered: each response leaves in one write (flushed per request)
    disable_nagle_algorithm = True
    server: _Server

    def handle_expect_100(self) -> bool:
        """Send ``100 Continue`` at once, despite the buffered writer."""
        ok = super().handle_expect_100()
        self.wfile.flush()
        return ok

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: rejections are reported through ElasticStandIn instead."""

    def send_response(self, code: int, message: str | None = None) -> None:
        """Elasticsearch sends neither Server nor Date."""
        self.log_request(code)
        self.send_response_only(code, message)

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except _HttpError as exc:
            self.close_connection = True
            self._send(exc.status, exc.payload, {})
            return
        try:
            status, payload = self.server.standin._dispatch(
                self.command, self.path, dict(self.headers.items()), body
            )
        except Exception as exc:  # a stand-in bug: say so loudly, keep the connection sane
            traceback.print_exc()
            status, payload = 500, _error_body(500, "stand_in_bug", repr(exc))
        compat = re.search(r"compatible-with=(\d+)", self.headers.get("Accept") or "")
        ctype = "application/json"
        if compat:
            ctype = f"application/vnd.elasticsearch+json;compatible-with={compat[1]}"
        self._send(status, payload, {"Content-Type": ctype})

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("X-elastic-product", "Elasticsearch")
        self.send_header("Content-Type", headers.get("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raw = self._read_chunked()
        else:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise _http_error(400, "bad Content-Length") from None
            if length > MAX_CONTENT_LENGTH:
                raise _http_error(413, "request entity too large")
            raw = self.rfile.read(length) if length > 0 else b""
            if len(raw) < length:
                raise _http_error(400, "connection closed mid-body")
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        try:
            if encoding in ("gzip", "x-gzip"):
                return gzip.decompress(raw)
            if encoding == "deflate":
                try:
                    return zlib.decompress(raw)
                except zlib.error:
                    return zlib.decompress(raw, -15)
        except (OSError, EOFError, zlib.error) as exc:
            raise _http_error(400, f"cannot decode {encoding} body: {exc}") from None
        if encoding not in ("identity", ""):
            raise _http_error(415, f"unsupported Content-Encoding [{encoding}]")
        return raw

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _http_error(400, "bad chunk header") from None
            if size == 0:
                break
            total += size
            if total > MAX_CONTENT_LENGTH:
                raise _http_error(413, "request entity too large")
            parts.append(self.rfile.read(size))
            self.rfile.readline(65537)  # the CRLF after each chunk
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(parts)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], standin: ElasticStandIn,
                 tls: ssl.SSLContext | None = None) -> None:
        self.standin = standin
        self.tls = tls
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:  # the handshake runs in the handler's thread, on first read
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self.connections_lock:
            for conn in list(self.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)


class ElasticStandIn:
    """An Elasticsearch 8 look-alike on loopback that checks documents against a template.

    Attributes (read them freely; they are only appended to, under a lock):
    ``documents``: (index, _id, source) for every accepted write, in order;
    ``rejects``: (index, source text, reason) for every document refused (lost);
    ``conflicts``: (index, _id) for each ``create`` refused with 409 because the id exists
    (the document is already stored, so it is not a reject; Fluent Bit treats 409 so too);
    ``requests``: how many bulk requests arrived (including injected failures);
    ``request_headers``: the headers of each bulk request.
    """

    def __init__(
        self,
        template: dict[str, Any] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        template_name: str = "standin-template",
        builtin_templates: bool = True,
        on_reject: RejectHook | None = None,
        tls: tuple[str, str] | None = None,
    ) -> None:
        """`tls` is (certificate file, key file): serve HTTPS, as a secured cluster does."""
        self._tls: ssl.SSLContext | None = None
        if tls is not None:
            self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls.load_cert_chain(*tls)
        self.documents: list[tuple[str, str, dict[str, Any]]] = []
        self.rejects: list[tuple[str, str, str]] = []
        self.conflicts: list[tuple[str, str]] = []
        self.requests = 0
        self.request_headers: list[dict[str, str]] = []
        self.on_reject = on_reject
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._templates: dict[str, _Template] = {}
        self._indices: dict[str, _Index] = {}
        self._fail: list[int] = []
        self._host, self._port = host, port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.cluster_uuid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22]
        if builtin_templates:
            for name, body in _BUILTIN_TEMPLATES.items():
                self._templates[name] = _compile_template(name, body)
        if template is not None:
            self.install_template(template_name, template)

    # lifecycle ----------------------------------------------------------------------------

    def start(self) -> ElasticStandIn:
        """Listen and serve in a daemon thread."""
        if self._server is None:
            self._server = _Server((self._host, self._port), self, self._tls)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.01},
                name="es-standin",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open keep-alive connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.drop_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ElasticStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return str(self._server.server_address[0]) if self._server else self._host

    @property
    def port(self) -> int:
        return int(self._server.server_address[1]) if self._server else self._port

    @property
    def url(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.host}:{self.port}"

    # control and inspection ---------------------------------------------------------------

    def install_template(self, name: str, template: dict[str, Any]) -> None:
        """Install a composable index template, as ``PUT _index_template/<name>`` does.

        Raises TemplateError for a template Elasticsearch would refuse. Like Elasticsearch,
        it only affects indices created afterwards.
        """
        compiled = _compile_template(name, template)
        with self._lock:
            for other in self._templates.values():
                if other.name == name or other.priority != compiled.priority:
                    continue
                overlap = any(
                    _simple_match(a, b.replace("*", "x")) or _simple_match(b, a.replace("*", "x"))
                    for a in compiled.patterns
                    for b in other.patterns
                )
                if overlap:
                    raise TemplateError(
                        f"index template [{name}] has index patterns {compiled.patterns} "
                        f"matching patterns from existing templates [{other.name}] with patterns "
                        f"({other.name} => {other.patterns}) that have the same priority "
                        f"[{compiled.priority}], multiple index templates may not match during "
                        "index creation, please use a different priority"
                    )
            self._templates[name] = compiled

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` bulk requests with HTTP ``status`` instead of indexing."""
        with self._lock:
            self._fail.extend([status] * n)

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` documents were accepted; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.documents) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
            return True

    def field_types(self, index: str) -> dict[str, str]:
        """The index's current mapping as {dotted path: type}, dynamic fields included."""
        with self._lock:
            found = self._indices.get(index)
            return found.field_types() if found else {}

    def source(self, index: str, doc_id: str) -> dict[str, Any] | None:
        """The stored source of one document, or None."""
        with self._lock:
            found = self._indices.get(index)
            stored = found.docs.get(doc_id) if found else None
            return stored[1] if stored else None

    @property
    def indices(self) -> list[str]:
        with self._lock:
            return sorted(self._indices)

    # request handling ---------------------------------------------------------------------

    def _dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(target)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        query = parse_qs(parts.query, keep_blank_values=True)
        lower = {k.lower(): v for k, v in headers.items()}
        if not segments and method in ("GET", "HEAD"):
            return 200, self._info()
        is_bulk = method in ("POST", "PUT") and (
            segments == ["_bulk"] or (len(segments) == 2 and segments[1] == "_bulk")
        )
        is_template = (
            method in ("POST", "PUT") and len(segments) == 2 and segments[0] == "_index_template"
        )
        if not (is_bulk or is_template):
            reason = f"no handler found for uri [{parts.path}] and method [{method}]"
            return 404, _error_body(404, "resource_not_found_exception", reason)
        ctype = lower.get("content-type") or ""
        if body and ctype.split(";")[0].strip().lower() not in _BODY_TYPES:
            return 406, {"error": f"Content-Type header [{ctype}] is not supported", "status": 406}
        if is_template:
            return self._put_template(segments[1], body)
        compat7 = "compatible-with=7" in (lower.get("accept", "") + lower.get("content-type", ""))
        url_index = segments[0] if len(segments) == 2 else None
        pipeline = (query.get("pipeline") or [None])[0]
        return self._bulk(body, url_index, pipeline, compat7, headers)

    def _info(self) -> dict[str, Any]:
        return {
            "name": "es-standin",
            "cluster_name": "elasticsearch",
            "cluster_uuid": self.cluster_uuid,
            "version": {
                "number": ES_VERSION,
                "build_flavor": "default",
                "build_type": "docker",
                "build_hash": "1a77947f34deddb41af25e6f0ddb8e830159c179",
                "build_date": "2024-08-05T10:05:34.233336849Z",
                "build_snapshot": False,
                "lucene_version": "9.11.1",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }

    def _put_template(self, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            parsed = _plain(_loads(body)) if body else None
        except _JsonError as exc:
            return 400, _error_body(400, "x_content_parse_exception", str(exc))
        if parsed is None:
            return 400, _error_body(400, "parse_exception", "request body is required")
        try:
            self.install_template(name, parsed)
        except TemplateError as exc:
            return 400, _error_body(400, "mapper_parsing_exception", str(exc))
        return 200, {"acknowledged": True}

    def _bulk(
        self,
        body: bytes,
        url_index: str | None,
        pipeline: str | None,
        compat7: bool,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, Any]]:
        started = time.monotonic()
        with self._lock:
            self.requests += 1
            self.request_headers.append(dict(headers))
            if self._fail:
                status = self._fail.pop(0)
                etype, reason = _FAULTS.get(status, ("stand_in_fault", "injected by the stand-in"))
                self._changed.notify_all()
                return status, _error_body(status, etype, reason)
            try:
                ops = _parse_bulk(body, url_index, compat7)
            except _RequestError as exc:
                return exc.status, exc.body()
            items = [{op.action: self._execute(op, pipeline)} for op in ops]
            self._changed.notify_all()
        took = int((time.monotonic() - started) * 1000)
        errors = any("error" in next(iter(item.values())) for item in items)
        return 200, {"took": took, "errors": errors, "items": items}

    def _index_for(self, name: str) -> _Index:
        found = self._indices.get(name)
        if found is None:
            matching = [
                t
                for t in self._templates.values()
                if any(_simple_match(p, name) for p in t.patterns)
            ]
            best = max(matching, key=lambda t: t.priority, default=None)
            found = self._indices[name] = _Index(name, best)
        return found

    def _execute(self, op: _Op, url_pipeline: str | None) -> dict[str, Any]:
        name = op.index or ""
        problem = _index_name_error(name)
        if problem:
            return self._failed(
                op,
                name,
                op.doc_id,
                _DocError(
                    "invalid_index_name_exception",
                    f"Invalid index name [{name}], {problem}",
                ),
                extra={"index_uuid": "_na_", "index": name},
            )
        if op.require_alias:
            return self._failed(
                op,
                name,
                op.doc_id,
                _DocError(
                    "index_not_found_exception",
                    f"no such index [{name}] and [require_alias] request flag is [true] and "
                    f"[{name}] is not an alias",
                    status=404,
                ),
            )
        if op.action == "delete" and name not in self._indices:
            error = _DocError("index_not_found_exception", f"no such index [{name}]", status=404)
            extra = {"resource.type": "index_expression", "resource.id": name, "index": name}
            return self._failed(op, name, op.doc_id, error, extra=extra)
        index = self._index_for(name)  # created on first write, from the best template
        doc_id = op.doc_id or _new_id()
        if index.data_stream and op.action != "create":
            error = _DocError(
                "illegal_argument_exception",
                "only write ops with an op_type of create are allowed in data streams",
            )
            return self._failed(op, index.write_name, doc_id, error)
        requested = op.pipeline or url_pipeline
        pipelines = [requested] if requested and requested != "_none" else []
        if pipelines + index.pipelines:
            missing = (pipelines + index.pipelines)[0]
            error = _DocError(
                "illegal_argument_exception", f"pipeline with id [{missing}] does not exist"
            )
            return self._failed(op, index.write_name, doc_id, error)
        stored = index.docs.get(doc_id)
        if op.action == "delete":
            return self._delete(index, doc_id)
        if op.action == "create" and stored is not None:
            error = _DocError(
                "version_conflict_engine_exception",
                f"[{doc_id}]: version conflict, document already exists (current version "
                f"[{stored[0]}])",
                status=409,
            )
            return self._failed(
                op, index.write_name, doc_id, error,
                extra={"index_uuid": index.uuid, "shard": "0", "index": index.write_name},
            )  # fmt: skip
        source = op.source
        if op.action == "update":
            resolved = self._resolve_update(op, index, doc_id, stored)
            if isinstance(resolved, dict):
                return resolved  # an item: missing document, noop, or unsupported script
            source = resolved
        parser = _DocParser(index, doc_id)
        try:
            doc = parser.parse(source)
        except _DocError as exc:
            return self._failed(op, index.write_name, doc_id, exc, source=source)
        index.mapping.fields.update(parser.new)
        index.field_count += sum(f.size for f in parser.new.values())
        plain = _plain(doc)
        version = stored[0] + 1 if stored else 1
        index.docs[doc_id] = (version, plain)
        index.seq_no += 1
        self.documents.append((name, doc_id, plain))
        return {
            "_index": index.write_name,
            "_id": doc_id,
            "_version": version,
            "result": "updated" if stored else "created",
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": index.seq_no,
            "_primary_term": 1,
            "status": 200 if stored else 201,
        }

    def _resolve_update(
        self, op: _Op, index: _Index, doc_id: str, stored: tuple[int, dict[str, Any]] | None
    ) -> bytes | dict[str, Any]:
        """The full new source for an update, or the finished item when there is none."""
        update = dict(op.update or [])
        if "script" in update:
            error = _DocError(
                "illegal_argument_exception", "scripted updates are not modelled by the stand-in"
            )
            return self._failed(op, index.write_name, doc_id, error)
        doc = _plain(update.get("doc")) or {}
        if stored is None:
            if _truthy(update.get("doc_as_upsert")):
                return json.dumps(doc).encode()
            if update.get("upsert") is not None:
                return json.dumps(_plain(update["upsert"])).encode()
            error = _DocError(
                "document_missing_exception", f"[{doc_id}]: document missing", status=404
            )
            return self._failed(
                op, index.write_name, doc_id, error,
                extra={"index_uuid": index.uuid, "shard": "0", "index": index.write_name},
            )  # fmt: skip
        merged = _merge(stored[1], doc)
        if merged == stored[1] and update.get("detect_noop", True) is not False:
            return {
                "_index": index.write_name,
                "_id": doc_id,
                "_version": stored[0],
                "result": "noop",
                "_shards": {"total": 0, "successful": 0, "failed": 0},
                "_seq_no": index.seq_no,
                "_primary_term": 1,
                "status": 200,
            }
        return json.dumps(merged).encode()

    def _delete(self, index: _Index, doc_id: str) -> dict[str, Any]:
        stored = index.docs.pop(doc_id, None)
        index.seq_no += 1
        return {
            "_index": index.write_name,
            "_id": doc_id,
            "_version": stored[0] + 1 if stored else 1,
            "result": "deleted" if stored else "not_found",
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": index.seq_no,
            "_primary_term": 1,
            "status": 200 if stored else 404,
        }

    def _failed(
        self,
        op: _Op,
        index_name: str,
        doc_id: str | None,
        error: _DocError,
        *,
        source: bytes | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        text = (op.source if source is None else source).decode("utf-8", "replace")
        reason = error.summary()
        if error.status == 409:
            self.conflicts.append((op.index or "", doc_id or ""))
        else:
            self.rejects.append((op.index or "", text, reason))
            if self.on_reject is not None:
                self.on_reject(op.index or "", text, reason)
        return {
            "_index": index_name,
            "_id": doc_id,
            "status": error.status,
            "error": {**error.body(), **(extra or {})},
        }


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: Iterable[str] | None = None) -> int:
    """Serve on a fixed port until Ctrl-C; print each rejected document on stderr."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9200)
    ap.add_argument(
        "--template",
        type=Path,
        action="append",
        default=[],
        help="composable index template JSON file (repeat for more than one)",
    )
    args = ap.parse_args(list(argv) if argv is not None else None)

    def report(index: str, source: str, reason: str) -> None:
        shown = source if len(source) <= 300 else source[:300] + "..."
        print(f"rejected [{index}] {reason} :: {shown}", file=sys.stderr, flush=True)

    es = ElasticStandIn(host=args.host, port=args.port, on_reject=report)
    for path in args.template:
        try:
            es.install_template(path.stem, json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            print(f"es_standin: {path}: {exc}", file=sys.stderr)
            return 2

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)  # also when started in the background
    signal.signal(signal.SIGTERM, interrupt)
    with es:
        print(f"es_standin: Elasticsearch {ES_VERSION} stand-in on {es.url}", file=sys.stderr)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    print(
        f"es_standin: {len(es.documents)} accepted, {len(es.rejects)} rejected, "
        f"{es.requests} bulk requests",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
