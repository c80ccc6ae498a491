"""Custom `log_format` parsing: unit, property and real-nginx round-trip tests."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngx_enrich.parse.accesslog import BUILTIN_FORMATS, parse_access_line, parse_variant
from ngx_enrich.parse.jsonrecord import parse_json_access
from ngx_enrich.parse.logformat import (
    COMBINED,
    compile_log_format,
)
from ngx_enrich.parse.nginxconf import read_nginx_conf_formats
from ngx_enrich.parse.values import list_values, split_request

try:
    from nginx_harness import LogFormat, nginx_available, running_nginx
except ImportError:  # tests/ imported as a package
    from tests.nginx_harness import LogFormat, nginx_available, running_nginx

UPSTREAMINFO = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] '
    "[$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length "
    "$upstream_response_time $upstream_status $req_id"
)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# --- how nginx writes values ------------------------------------------------------------


def nginx_default_escape(value: str) -> str:
    """`escape=default`: `"`, `\\`, control and non-ASCII bytes become `\\xHH`."""
    return "".join(
        f"\\x{b:02X}" if b in (0x22, 0x5C) or b < 0x20 or b >= 0x7F else chr(b)
        for b in value.encode()
    )


_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
               "\f": "\\f"}


def nginx_json_escape(value: str) -> str:
    """`escape=json`: short escapes, other control characters as `\\u00XX`."""
    return "".join(
        _JSON_SHORT.get(ch) or (f"\\u{ord(ch):04x}" if ord(ch) < 0x20 else ch) for ch in value
    )


def conf_quote(value: str, quote: str) -> str:
    """Quote a string for nginx.conf."""
    return quote + value.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


# --- compiled formats: examples ---------------------------------------------------------

COMBINED_LINES = (
    '127.0.0.1 - frank [10/Oct/2023:13:55:36 +0200] "GET /a?x=1 HTTP/1.1" 200 2326 '
    '"http://example.com/" "Mozilla/5.0 (X11; Linux x86_64) \\x22q\\x22"',
    '::1 - - [01/Jan/2024:00:00:00 -0530] "POST /upload HTTP/2.0" 413 0 "-" "-"',
    '10.0.0.7 - - [29/Feb/2024:23:59:59 +0000] "\\x16\\x03\\x01" 400 157 "-" "-"',
)
EMPTY_REQUEST = '10.0.0.7 - - [29/Feb/2024:23:59:59 +0000] "" 400 0 "-" "-"'


@pytest.mark.parametrize("line", COMBINED_LINES)
def test_combined_matches_the_variant_reader(line: str) -> None:
    # Lines in the built-in formats are read by their compiled format; the variant reader,
    # which takes the lines none of them fits, must read them the same way.
    fields = compile_log_format(COMBINED).parse(line)
    assert fields is not None
    assert fields == parse_variant(line) == parse_access_line(line)


def test_builtin_formats_are_log_format_strings() -> None:
    assert BUILTIN_FORMATS["combined"] == COMBINED
    assert BUILTIN_FORMATS["upstreaminfo"] == UPSTREAMINFO
    main = COMBINED_LINES[0] + ' "198.51.100.7, 10.0.0.2"'
    fields = compile_log_format(BUILTIN_FORMATS["main"]).parse(main)
    assert fields is not None and fields["x_forwarded_for"] == "198.51.100.7, 10.0.0.2"
    assert fields == parse_variant(main) == parse_access_line(main)


def test_empty_request_is_absent() -> None:
    fields = compile_log_format(COMBINED).parse(EMPTY_REQUEST)
    assert fields is not None
    assert "request" not in fields and parse_access_line(EMPTY_REQUEST) == fields
    assert fields == {k: v for k, v in (parse_variant(EMPTY_REQUEST) or {}).items()
                      if k != "request"}


def test_combined_fields() -> None:
    fields = compile_log_format(COMBINED).parse(COMBINED_LINES[0])
    assert fields == {
        "remote_addr": "127.0.0.1", "remote_user": "frank", "time": "2023-10-10T13:55:36+02:00",
        "request": "GET /a?x=1 HTTP/1.1", "method": "GET", "path": "/a?x=1",
        "protocol": "HTTP/1.1", "status": 200, "bytes": 2326, "referer": "http://example.com/",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) \\x22q\\x22",
    }


def test_upstreaminfo_matches_the_variant_reader() -> None:
    line = (
        '10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 502 150 "-" "curl/8.5" 80 '
        "0.002 [default-svc-80] [] 10.1.0.5:80, 10.1.0.6:80 : 10.1.0.7:80 0, 150 : 0 "
        "0.001, 0.000 : - 502, 502 : 200 abc123"
    )
    fields = compile_log_format(UPSTREAMINFO).parse(line)
    assert fields == parse_variant(line) == parse_access_line(line)
    assert fields is not None
    assert fields["upstream_addr"] == ["10.1.0.5:80", "10.1.0.6:80", "10.1.0.7:80"]
    assert fields["upstream_status"] == [502, 502, 200]
    assert fields["upstream_response_time"] == [0.001, 0.0, None]
    assert fields["request_id"] == "abc123"


def test_unknown_variables_keep_their_names_and_braces_work() -> None:
    parser = compile_log_format(
        '$host ${scheme}://$server_name$uri?$args "$http_x_custom" $Status ${request_time}s'
    )
    assert parser.parse('shop.test https://shop/cart?id=1 "a b" 201 0.250s') == {
        "host": "shop.test", "scheme": "https", "server_name": "shop", "uri": "/cart",
        "args": "id=1", "http_x_custom": "a b", "status": 201, "request_time": 0.25,
    }
    assert parser.keys == ("host", "scheme", "server_name", "uri", "args", "http_x_custom",
                           "status", "request_time")


@pytest.mark.parametrize(("fmt", "line", "expected"), [
    ("$scheme://$host$request_uri", "https://my-shop.test/a/b?x=1",
     {"scheme": "https", "host": "my-shop.test", "path": "/a/b?x=1"}),
    ("$uri$is_args$args $status", "/p/q?a=1&b=2 200",
     {"uri": "/p/q", "is_args": "?", "args": "a=1&b=2", "status": 200}),
    ("$uri$is_args$args $status", "/p 200", {"uri": "/p", "status": 200}),
    ("$remote_addr:$remote_port", "::1:5000", {"remote_addr": "::1", "remote_port": 5000}),
    ("$remote_addr:$remote_port", "10.0.0.1:443",
     {"remote_addr": "10.0.0.1", "remote_port": 443}),
    ("$cache$status", "HIT304", {"cache": "HIT", "status": 304}),
])
def test_adjacent_variables(fmt: str, line: str, expected: dict[str, Any]) -> None:
    assert compile_log_format(fmt).parse(line) == expected


HOSTILE = {"spaces": " " * 60000, "quotes": '" ' * 30000, "list": "1, " * 20000,
           "colons": ":" * 60000, "slashes": "/?" * 30000}


@pytest.mark.parametrize("fmt", ['$a$b "$c" $d', "$a $b $c $d $e", COMBINED, UPSTREAMINFO])
@pytest.mark.parametrize("escape", ["default", "none"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_long_hostile_lines(fmt: str, escape: str, name: str) -> None:
    """Values never backtrack, so these return at once (a quadratic matcher would hang)."""
    fields = compile_log_format(fmt, escape).parse(HOSTILE[name])
    assert fields is None or isinstance(fields, dict)


def test_dash_and_empty_mean_absent() -> None:
    parser = compile_log_format('$remote_addr "$http_referer" $status $upstream_status [$x]')
    assert parser.parse('1.2.3.4 "-" 200 - []') == {"remote_addr": "1.2.3.4", "status": 200}


def test_competing_variables() -> None:
    parser = compile_log_format(
        "$time_iso8601 $time_local] $bytes_sent $body_bytes_sent $request_method $request_uri "
        "$server_protocol $time"
    )
    fields = parser.parse(
        "2024-05-01T10:00:00+02:00 01/May/2024:10:00:00 +0200] 512 300 GET /x HTTP/1.1 now"
    )
    assert fields == {
        "time": "2024-05-01T10:00:00+02:00", "time_iso8601": "2024-05-01T10:00:00+02:00",
        "bytes_sent": 512, "bytes": 300, "method": "GET", "path": "/x", "protocol": "HTTP/1.1",
        "var_time": "now",
    }
    with_request = compile_log_format('"$request" $request_method')
    assert with_request.parse('"GET /y HTTP/2.0" GET') == {
        "request": "GET /y HTTP/2.0", "method": "GET", "path": "/y", "protocol": "HTTP/2.0",
        "request_method": "GET",
    }


def test_repeated_variable_uses_first_occurrence() -> None:
    parser = compile_log_format("$status/$status $remote_addr")
    assert parser.parse("200/200 ::1") == {"status": 200, "remote_addr": "::1"}


def test_escape_json_values_are_unescaped() -> None:
    parser = compile_log_format('{"ua":"$http_user_agent","st":$status,"x":"$x"}', "json")
    line = r'{"ua":"a \"b\" \\ \t \u0001 \u00e9 \ud83d\ude00 \ud800","st":404,"x":""}'
    assert parser.parse(line) == {
        "user_agent": 'a "b" \\ \t \x01 é 😀 \ufffd', "status": 404,
    }


def test_escape_none_allows_quotes() -> None:
    parser = compile_log_format('"$http_user_agent" "$http_referer"', "none")
    assert parser.parse('"say "hi"" "-"') == {"user_agent": 'say "hi"'}
    default = compile_log_format('"$http_user_agent" "$http_referer"')
    assert default.parse('"say "hi"" "-"') is None


def test_line_endings_and_mismatches() -> None:
    parser = compile_log_format(COMBINED)
    assert parser.parse(COMBINED_LINES[1] + "\r\n") == parser.parse(COMBINED_LINES[1])
    assert parser.parse("") is None
    assert parser.parse("2024/01/01 00:00:00 [error] 1#1: *1 oops") is None
    assert parser.parse(COMBINED_LINES[1] + " trailing") is None


def test_compiled_once() -> None:
    assert compile_log_format(UPSTREAMINFO) is compile_log_format(UPSTREAMINFO)
    assert compile_log_format(COMBINED, "json") is not compile_log_format(COMBINED)
    none = compile_log_format(COMBINED, "none")
    assert (none.fmt, none.escape) == (COMBINED, "none")
    assert none.parse(COMBINED_LINES[1]) == compile_log_format(COMBINED).parse(COMBINED_LINES[1])


@pytest.mark.parametrize("fmt", ["$", "a $ b", "${status", "${}", "${a b}", "$-x"])
def test_malformed_variables_are_rejected(fmt: str) -> None:
    with pytest.raises(ValueError):
        compile_log_format(fmt)


def test_unknown_escape_is_rejected() -> None:
    with pytest.raises(ValueError, match="escape"):
        compile_log_format(COMBINED, "xml")


# --- property tests: rendered values parse back -----------------------------------------

TEXT_FORMAT: tuple[str | tuple[str], ...] = (
    ("remote_addr",), " - ", ("remote_user",), " [", ("time_local",), '] "', ("request",),
    '" ', ("status",), " ", ("body_bytes_sent",), ' "', ("http_referer",), '" "',
    ("http_user_agent",), '" ', ("request_length",), " ", ("request_time",), " us=",
    ("upstream_status",), ' ua="', ("upstream_addr",), '" urt=', ("upstream_response_time",),
    ' "', ("http_x_forwarded_for",), '" ', ("request_id",), " ", ("host",), " ", ("{scheme}",),
    "://", ("server_name",), " ", ("sent_http_x_cache",),
)
JSON_FORMAT: tuple[str | tuple[str], ...] = (
    '{"time_local":"', ("time_local",), '","remote_addr":"', ("remote_addr",),
    '","remote_user":"', ("remote_user",), '","request":"', ("request",), '","status":',
    ("status",), ',"body_bytes_sent":', ("body_bytes_sent",), ',"request_time":',
    ("request_time",), ',"http_referer":"', ("http_referer",), '","http_user_agent":"',
    ("http_user_agent",), '","upstream_status":"', ("upstream_status",),
    '","upstream_addr":"', ("upstream_addr",), '","upstream_response_time":"',
    ("upstream_response_time",), '","request_id":"', ("request_id",), '","cache":"',
    ("sent_http_x_cache",), '"}',
)


def _fmt(pieces: tuple[str | tuple[str], ...]) -> str:
    return "".join(p if isinstance(p, str) else "$" + p[0] for p in pieces)


def _names(pieces: tuple[str | tuple[str], ...]) -> set[str]:
    return {p[0].strip("{}") for p in pieces if isinstance(p, tuple)}


def _render(pieces: tuple[str | tuple[str], ...], values: dict[str, str | None],
            escape: str) -> str:
    out = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
            continue
        value = values.get(piece[0].strip("{}"))
        if value is None:
            out.append("" if escape == "json" else "-")
        else:
            out.append(nginx_json_escape(value) if escape == "json" else
                       nginx_default_escape(value))
    return "".join(out)


NAMES = {"remote_user": "remote_user", "http_referer": "referer",
         "http_user_agent": "user_agent", "http_x_forwarded_for": "x_forwarded_for",
         "request_id": "request_id", "host": "host", "scheme": "scheme",
         "server_name": "server_name", "sent_http_x_cache": "sent_http_x_cache",
         "remote_addr": "remote_addr"}


def _expected(values: dict[str, str | None], escape: str) -> dict[str, Any]:
    """What the parser must return, worked out independently of it."""
    out: dict[str, Any] = {}
    for name, raw in values.items():
        if raw is None or raw in ("", "-"):
            continue
        value = nginx_default_escape(raw) if escape == "default" else raw
        if name == "time_local":
            day, mon, rest = value.split("/", 2)
            year, hms = rest[:4], rest[5:13]
            zone = rest[14:]
            out["time"] = f"{year}-{MONTHS.index(mon) + 1:02d}-{day}T{hms}{zone[:3]}:{zone[3:]}"
        elif name == "request":
            out["request"] = value
            split_request(value, out)
        elif name == "status":
            out["status"] = int(value)
        elif name == "body_bytes_sent":
            out["bytes"] = int(value)
        elif name == "request_length":
            out["request_length"] = int(value)
        elif name == "request_time":
            out["request_time"] = float(value)
        elif name == "upstream_addr":
            out["upstream_addr"] = re.split(r", | : ", value)
        elif name.startswith("upstream_"):
            out[name] = list_values(value)
        else:
            out[NAMES[name]] = value
    return out


text_values = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)
zones = st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))


def _time_local(dt: datetime) -> str:
    minutes = int(dt.utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    sign = "-" if minutes < 0 else "+"
    zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return f"{dt:%d}/{MONTHS[dt.month - 1]}/{dt.year:04d}:{dt:%H:%M:%S} {zone}"


def _list(item: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(st.tuples(item, st.sampled_from([", ", " : "])), min_size=1, max_size=4).map(
        lambda pairs: "".join(v + sep for v, sep in pairs)[: -len(pairs[-1][1])]
    )


maybe_dash = st.just("-")
seconds = st.integers(0, 10**7).map(lambda ms: f"{ms // 1000}.{ms % 1000:03d}")
requests = st.one_of(
    text_values,
    st.builds(lambda m, p, v: f"{m} {p} HTTP/{v}",
              st.sampled_from(["GET", "POST", "PROPFIND"]), text_values,
              st.sampled_from(["1.0", "1.1", "2.0"])),
)


def _optional(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), strategy)


def _values(escape: str) -> st.SearchStrategy[dict[str, str | None]]:
    token = st.from_regex(r"[A-Za-z0-9._-]{1,20}", fullmatch=True)
    user = text_values.filter(lambda s: " [" not in s)
    if escape == "json":
        user = text_values
    return st.fixed_dictionaries({
        "remote_addr": st.ip_addresses().map(str),
        "remote_user": _optional(user),
        "time_local": st.datetimes(min_value=datetime(1000, 1, 1),
                                   timezones=zones).map(_time_local),
        "request": requests,
        "status": st.integers(100, 599).map(str),
        "body_bytes_sent": st.integers(0, 10**15).map(str),
        "request_length": st.integers(0, 10**9).map(str),
        "request_time": seconds,
        "http_referer": _optional(text_values),
        "http_user_agent": _optional(text_values),
        "upstream_status": _optional(_list(st.one_of(maybe_dash,
                                                     st.integers(100, 599).map(str)))),
        "upstream_addr": _optional(_list(st.one_of(
            st.builds(lambda a, p: f"{a}:{p}", st.ip_addresses(v=4).map(str),
                      st.integers(1, 65535)),
            st.just("unix:/run/app.sock"), st.just("backend_group")))),
        "upstream_response_time": _optional(_list(st.one_of(maybe_dash, seconds))),
        "http_x_forwarded_for": _optional(text_values),
        "request_id": st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
        "host": token,
        "scheme": st.sampled_from(["http", "https"]),
        "server_name": token,
        "sent_http_x_cache": _optional(text_values),
    })


@PROPERTY
@given(_values("default"))
def test_default_escaped_values_round_trip(values: dict[str, str | None]) -> None:
    values = {k: v for k, v in values.items() if k in _names(TEXT_FORMAT)}
    line = _render(TEXT_FORMAT, values, "default")
    assert compile_log_format(_fmt(TEXT_FORMAT)).parse(line) == _expected(values, "default")


@PROPERTY
@given(_values("json"))
def test_json_escaped_values_round_trip(values: dict[str, str | None]) -> None:
    values = {k: v for k, v in values.items() if k in _names(JSON_FORMAT)}
    line = _render(JSON_FORMAT, values, "json")
    fields = compile_log_format(_fmt(JSON_FORMAT), "json").parse(line)
    expected = _expected(values, "json")
    assert fields == expected
    # The same line decoded as JSON gives the same facts.
    from_json = parse_json_access(json.loads(line))
    assert from_json == {k: v for k, v in expected.items() if k != "sent_http_x_cache"}


FUZZ_FORMATS = (
    (COMBINED, "default"), (UPSTREAMINFO, "default"), (_fmt(TEXT_FORMAT), "default"),
    (_fmt(JSON_FORMAT), "json"), ('$a$b "$c" $d $e', "none"), ("$a $b $c $d $e $f", "default"),
)
fuzz_text = st.one_of(
    st.text(),
    st.text(alphabet=' "[]-:/,.\\0123456789GETHTP{}ux²٣', max_size=200),
    st.sampled_from(COMBINED_LINES).flatmap(
        lambda line: st.tuples(st.integers(0, len(line)), st.text(max_size=5)).map(
            lambda cut: line[: cut[0]] + cut[1] + line[cut[0] + 1:])),
)


@PROPERTY
@given(fuzz_text)
def test_arbitrary_text_never_raises(text: str) -> None:
    for fmt, escape in FUZZ_FORMATS:
        fields = compile_log_format(fmt, escape).parse(text)
        assert fields is None or isinstance(fields, dict)


@PROPERTY
@given(st.text(max_size=60), fuzz_text)
def test_arbitrary_formats_compile_or_refuse(fmt: str, text: str) -> None:
    try:
        parser = compile_log_format(fmt)
    except ValueError:
        return
    fields = parser.parse(text)
    assert fields is None or isinstance(fields, dict)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(),
                         st.sampled_from(["200", "-", "", "502, 200", "0.001", "1e400", "²"]))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)
json_keys = st.sampled_from(["status", "request", "remote_addr", "time_local", "time",
                             "time_iso8601", "msec", "request_time", "upstream_status",
                             "upstream_addr", "body_bytes_sent", "status_code", "x"])


@PROPERTY
@given(st.dictionaries(json_keys, json_values))
def test_parse_json_access_never_raises(obj: dict[str, Any]) -> None:
    fields = parse_json_access(obj)
    if fields is not None:
        assert isinstance(fields["status"], int)
        orjson.dumps(fields)  # what the pipeline writes


@PROPERTY
@given(fmt=st.text(st.characters(exclude_categories=["Cs"]), max_size=40),
       quote=st.sampled_from(["'", '"']))
def test_conf_strings_round_trip(fmt: str, quote: str,
                                 tmp_path_factory: pytest.TempPathFactory) -> None:
    conf = tmp_path_factory.mktemp("conf") / "nginx.conf"
    conf.write_text(f"http {{ log_format x escape=none {conf_quote(fmt, quote)}; }}\n")
    assert read_nginx_conf_formats(conf)["x"] == (fmt, "none")


# --- JSON access records ----------------------------------------------------------------


def test_parse_json_access_normalises() -> None:
    record = {
        "time_local": "10/Oct/2023:13:55:36 +0200", "remote_addr": "10.0.0.1",
        "request": "GET /a HTTP/1.1", "status": "502", "body_bytes_sent": "157",
        "request_time": "0.004", "upstream_status": "502, 200", "upstream_addr": "a:1, b:2",
        "upstream_connect_time": "-, 0.000", "upstream_response_time": "",
        "http_user_agent": "curl/8", "http_referer": "-", "other": "kept by the record",
    }
    assert parse_json_access(record) == {
        "time": "2023-10-10T13:55:36+02:00", "remote_addr": "10.0.0.1",
        "request": "GET /a HTTP/1.1", "method": "GET", "path": "/a", "protocol": "HTTP/1.1",
        "status": 502, "bytes": 157, "request_time": 0.004, "upstream_status": [502, 200],
        "upstream_addr": ["a:1", "b:2"], "upstream_connect_time": [None, 0.0],
        "user_agent": "curl/8",
    }


def test_parse_json_access_other_spellings() -> None:
    assert parse_json_access({
        "@timestamp": "2024-01-01T00:00:00Z", "client_ip": "::1", "status_code": 404,
        "request_method": "GET", "request_uri": "/x?y", "upstream_status": 404,
        "request_time": 1,
    }) == {"time": "2024-01-01T00:00:00Z", "remote_addr": "::1", "status": 404,
           "method": "GET", "path": "/x?y", "upstream_status": [404], "request_time": 1.0}
    assert parse_json_access({"msec": "1700000000.500", "status": 200, "remote_addr": "x"}) == {
        "time": "2023-11-14T22:13:20.500000+00:00", "status": 200, "remote_addr": "x"}


@pytest.mark.parametrize("obj", [
    {"level": "info", "msg": "started"},
    {"status": "ok", "remote_addr": "10.0.0.1"},
    {"status": 200},
    {"status": True, "request": "GET / HTTP/1.1"},
    {"request": "GET / HTTP/1.1", "remote_addr": "10.0.0.1"},
    {"status": "-", "request": "GET / HTTP/1.1"},
    {"status": 20.5, "request": "GET / HTTP/1.1"},
])
def test_parse_json_access_rejects_non_access(obj: dict[str, Any]) -> None:
    assert parse_json_access(obj) is None


# --- nginx.conf -------------------------------------------------------------------------


def test_read_conf_with_includes(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "snippets").mkdir()
    (tmp_path / "nginx.conf").write_text(r"""
# log_format commented 'nope';
events {}
http {
    include conf.d/*.conf;   # glob, relative to this directory
    include missing.conf;
    log_format main '$remote_addr - $remote_user [$time_local] "$request" '
                    '$status $body_bytes_sent "$http_referer" '
                    "\"$http_user_agent\" \"$http_x_forwarded_for\"";
    log_format bare $remote_addr:${server_port} $status;  # unquoted words
    log_format tabs escape=none 'a\tb\'c\\d\qe';
    server { listen 80; access_log /var/log/nginx/access.log main; }
}
stream {
    log_format main '$remote_addr $protocol $status';
    log_format proxy '$remote_addr [$time_local] $protocol $status $bytes_sent';
}
""")
    (tmp_path / "conf.d" / "10-json.conf").write_text(
        "log_format json_combined escape=json\n  '{'\n  '\"status\":$status,'\n"
        "  '\"request\":\"$request\"}';\ninclude snippets/more.conf;\n"
    )
    (tmp_path / "conf.d" / "20-loop.conf").write_text("include conf.d/*.conf;\n")
    (tmp_path / "conf.d" / "30-loop.conf").write_text("include conf.d/2*.conf;\n")
    (tmp_path / "snippets" / "more.conf").write_text("log_format upstreams " + conf_quote(
        UPSTREAMINFO, "'") + ";\n")
    formats = read_nginx_conf_formats(tmp_path / "nginx.conf")
    assert formats == {
        "main": (
            '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
            '"$http_referer" "$http_user_agent" "$http_x_forwarded_for"', "default"),
        "proxy": ("$remote_addr [$time_local] $protocol $status $bytes_sent", "default"),
        "combined": (COMBINED, "default"),
        "json_combined": ('{"status":$status,"request":"$request"}', "json"),
        "upstreams": (UPSTREAMINFO, "default"),
        "bare": ("$remote_addr:${server_port}$status", "default"),
        "tabs": ("a\tb'c\\d\\qe", "none"),
    }
    parser = compile_log_format(*formats["json_combined"])
    assert parser.parse('{"status":200,"request":"GET / HTTP/1.1"}') == {
        "status": 200, "request": "GET / HTTP/1.1", "method": "GET", "path": "/",
        "protocol": "HTTP/1.1"}


def test_read_conf_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_nginx_conf_formats(tmp_path / "absent.conf")


# --- real nginx -------------------------------------------------------------------------

UPSTREAM_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_user_agent" rt=$request_time ua="$upstream_addr" us="$upstream_status" '
    'urt="$upstream_response_time" uct="$upstream_connect_time" uht=$upstream_header_time '
    "$request_id"
)
NGINX_JSON_FORMAT = (
    '{"time_local":"$time_local","remote_addr":"$remote_addr","request":"$request",'
    '"status":$status,"body_bytes_sent":$body_bytes_sent,"request_time":$request_time,'
    '"upstream_addr":"$upstream_addr","upstream_status":"$upstream_status",'
    '"upstream_response_time":"$upstream_response_time",'
    '"upstream_connect_time":"$upstream_connect_time","http_user_agent":"$http_user_agent",'
    '"request_id":"$request_id"}'
)
ODD_AGENT = 'odd "agent" \\x\tback\\\\slash'
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d")


@dataclass
class Ports:
    fast: str
    closed: str
    retry_closed: str
    retry_backend: str


@dataclass
class Logged:
    conf: Path
    ports: Ports
    text_lines: list[str]
    json_lines: list[str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    if not nginx_available():
        pytest.skip("nginx is not installed")
    retry_closed, backend = _free_port(), _free_port()
    http_extra = f"""
    upstream retry_backend {{
        server 127.0.0.1:{retry_closed};
        server 127.0.0.1:{backend} backup;
    }}
    server {{
        listen 127.0.0.1:{backend};
        access_log off;
        location / {{ return 200 "backend\\n"; }}
    }}
"""
    with running_nginx(
        tmp_path_factory.mktemp("nginx-logformat"),
        log_formats={"upstreams": UPSTREAM_FORMAT,
                     "jsonlog": LogFormat(NGINX_JSON_FORMAT, escape="json")},
        access_format="upstreams",
        extra_access_logs={"access.json": "jsonlog"},
        http_extra=http_extra,
        server_extra="        location /retry { proxy_pass http://retry_backend; }\n",
    ) as run:
        assert run.get("/api/items") == 200
        assert run.get("/refused") == 502
        assert run.get("/index.html") == 200
        assert run.get("/missing.html") == 404
        assert run.get("/retry") == 200
        assert run.get("/timeout") == 504
        assert run.request("GET", "/api/odd", headers={"User-Agent": ODD_AGENT})[0] == 200
        ports = Ports(f"127.0.0.1:{run.fast_upstream_port}", f"127.0.0.1:{run.closed_port}",
                      f"127.0.0.1:{retry_closed}", f"127.0.0.1:{backend}")
    yield Logged(run.conf, ports, run.access_log.read_text().splitlines(),
                 run.extra_logs["access.json"].read_text().splitlines())


REQUESTS = ("/api/items", "/refused", "/index.html", "/missing.html", "/retry", "/timeout",
            "/api/odd")


def _by_path(records: list[dict[str, Any] | None]) -> dict[str, dict[str, Any]]:
    assert all(records)
    out = {r["path"]: r for r in records if r}
    assert sorted(out) == sorted(REQUESTS)
    return out


@pytest.mark.nginx
def test_nginx_custom_format_round_trip(logged: Logged) -> None:
    parser = compile_log_format(UPSTREAM_FORMAT)
    rows = _by_path([parser.parse(line) for line in logged.text_lines])
    ports = logged.ports
    for row in rows.values():
        assert row["remote_addr"] == "127.0.0.1"
        assert "remote_user" not in row
        assert ISO.fullmatch(row["time"])
        assert row["method"] == "GET"
        assert row["protocol"] == "HTTP/1.1"
        assert isinstance(row["request_time"], float)
        assert isinstance(row["bytes"], int)
        assert re.fullmatch(r"[0-9a-f]{32}", row["request_id"])

    api = rows["/api/items"]
    assert (api["status"], api["upstream_status"], api["upstream_addr"]) == (
        200, [200], [ports.fast])
    assert all(isinstance(t, float) for t in api["upstream_response_time"])
    assert len(api["upstream_connect_time"]) == 1
    assert len(api["upstream_header_time"]) == 1

    refused = rows["/refused"]
    assert (refused["status"], refused["upstream_status"], refused["upstream_addr"]) == (
        502, [502], [ports.closed])
    assert "upstream_connect_time" not in refused  # never connected: `-`
    assert "upstream_header_time" not in refused

    retry = rows["/retry"]
    assert retry["status"] == 200
    assert retry["upstream_status"] == [502, 200]
    assert retry["upstream_addr"] == [ports.retry_closed, ports.retry_backend]
    assert retry["upstream_connect_time"][0] is None
    assert isinstance(retry["upstream_connect_time"][1], float)
    assert len(retry["upstream_response_time"]) == 2

    timeout = rows["/timeout"]
    assert (timeout["status"], timeout["upstream_status"]) == (504, [504])
    assert "upstream_header_time" not in timeout  # no header arrived

    for path, status in (("/index.html", 200), ("/missing.html", 404)):
        assert rows[path]["status"] == status
        assert not [k for k in rows[path] if k.startswith("upstream_")]

    # Default escaping: `"`, `\` and the tab stay as nginx wrote them.
    assert rows["/api/odd"]["user_agent"] == nginx_default_escape(ODD_AGENT)
    assert rows["/index.html"]["user_agent"] == "ngx-enrich-harness/1.0"


@pytest.mark.nginx
def test_nginx_conf_formats_parse_the_lines(logged: Logged) -> None:
    formats = read_nginx_conf_formats(logged.conf)
    assert formats["upstreams"] == (UPSTREAM_FORMAT, "default")
    assert formats["jsonlog"] == (NGINX_JSON_FORMAT, "json")
    text = compile_log_format(*formats["upstreams"])
    assert [text.parse(ln) for ln in logged.text_lines] == [
        compile_log_format(UPSTREAM_FORMAT).parse(ln) for ln in logged.text_lines]


@pytest.mark.nginx
def test_nginx_json_format_round_trip(logged: Logged) -> None:
    records = [json.loads(line) for line in logged.json_lines]
    rows = _by_path([parse_json_access(r) for r in records])
    assert rows["/api/odd"]["user_agent"] == ODD_AGENT  # `"` and `\` come back exactly
    assert (rows["/refused"]["status"], rows["/refused"]["upstream_status"]) == (502, [502])
    assert rows["/refused"]["upstream_addr"] == [logged.ports.closed]
    assert (rows["/api/items"]["status"], rows["/api/items"]["upstream_status"]) == (200, [200])
    assert rows["/api/items"]["upstream_addr"] == [logged.ports.fast]
    assert rows["/retry"]["upstream_status"] == [502, 200]
    assert rows["/retry"]["upstream_connect_time"][0] is None
    assert not [k for k in rows["/index.html"] if k.startswith("upstream_")]
    for row in rows.values():
        assert isinstance(row["status"], int)
        assert isinstance(row["request_time"], float)
        assert ISO.fullmatch(row["time"])

    # The compiled JSON format reads the raw lines to the same facts.
    parser = compile_log_format(NGINX_JSON_FORMAT, "json")
    for line, record in zip(logged.json_lines, records, strict=True):
        assert parser.parse(line) == parse_json_access(record)
