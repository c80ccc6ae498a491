"""Generated artefacts stay in step with the code, and every emitted field is declared."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from ngx_enrich.catalog import builtin
from ngx_enrich.export.templates import es_template, json_schema
from ngx_enrich.fields import FIELDS
from ngx_enrich.pipeline import Enricher, Options

ROOT = Path(__file__).resolve().parents[1]
OPTS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
_PY_TYPES = {"keyword": str, "text": str, "date": str, "long": int, "integer": int,
             "float": (int, float), "boolean": bool, "object": dict}


@pytest.mark.parametrize("schema", ["default", "flat", "ecs"])
def test_committed_es_templates_match(schema: str) -> None:
    path = ROOT / "examples" / "elasticsearch" / f"ngx-enrich-template-{schema}.json"
    assert path.read_bytes() == orjson.dumps(es_template("ngx", schema), option=OPTS), (
        f"regenerate: ngx-enrich export es-template --schema {schema} > {path}")


def test_committed_json_schema_matches() -> None:
    path = ROOT / "examples" / "schema" / "ngx-enrich-record.schema.json"
    assert path.read_bytes() == orjson.dumps(json_schema(), option=OPTS)


# Access shapes beyond the fixtures: ingress upstreaminfo with a canary, a vhost and an
# X-Forwarded-For list in front, a longer combined line, Fluent Bit's `nginx` parser fields,
# a TLS alert, and a custom format with the upstream timings.
SHAPES = [
    '10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 502 150 "http://r/" "curl/8.5" '
    "80 0.002 [default-svc-80] [canary-svc-80] 10.1.0.5:80, 10.1.0.6:80 0, 150 0.001, 0.000 "
    "502, 502 abc123",
    'shop.example.com 192.168.0.1 - - [09/Jun/2020:12:10:39 -0700] "GET / HTTP/1.1" 206 76 '
    '"http://r/" "UA"',
    '10.5.102.222, 199.96.1.1 - - [22/Jan/2016:13:18:29 +0000] "GET /a HTTP/1.1" 200 25 "-" "UA"',
    '127.0.0.1 - alice [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 15 "-" "curl" "x" tail',
    '[10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 444 0 "-" "curl"',
    orjson.dumps({"remote": "10.0.0.1", "host": "web1", "user": "bob", "method": "GET",
                  "path": "/", "code": "200", "size": "5", "agent": "curl"}).decode(),
    "web_1  | 2026-11-29T18:24:26.717765840Z 2026/11/29 18:24:26 [error] 31#31: *5 open() "
    '"/x" failed (2: No such file or directory), client: 10.0.0.1, server: x, request: "GET /x '
    'HTTP/1.1", host: "x"',
    "<27>Nov 29 18:24:26 web1 nginx[3026]: nginx: [emerg] unknown directive \"proxy_passs\" in "
    "/etc/nginx/nginx.conf:12",
    "2026-11-29T18:24:26.1Z stderr P 2026/11/29 18:24:26 [warn] 1#1: *2 an upstream response is "
    "buffered to a temporary file",
    "2026/04/08 21:07:16 [info] 2211#2211: *1850 SSL_do_handshake() failed (SSL: error:0A000412:"
    "SSL routines::sslv3 alert bad certificate:SSL alert number 42) while SSL handshaking, "
    "client: 198.51.100.7, server: 0.0.0.0:443",
]
TIMINGS = ('$remote_addr [$time_local] "$request" $status ct=$upstream_connect_time '
           'ht=$upstream_header_time')
TIMED = '10.0.0.1 [10/Oct/2023:13:55:36 +0000] "GET / HTTP/1.1" 200 ct=0.001, 0.002 ht=0.010'


def _all_outputs() -> list[dict]:
    enricher = Enricher()
    lines = [s for r in builtin().rules for s in r.samples] + SHAPES
    for log in (ROOT / "tests" / "fixtures").glob("*.log"):
        lines += log.read_text(errors="replace").splitlines()
    timed = Enricher(Options(access_format=(TIMINGS, "default"))).enrich_line(TIMED)["ngx"]
    return [enricher.enrich_line(line)["ngx"] for line in lines] + [timed]


def test_every_declared_field_is_emitted_by_some_record() -> None:
    """The other direction: nothing is declared (and so mapped) that no record carries."""
    emitted = {name for ngx in _all_outputs() for name in ngx}
    missing = {f.name for f in FIELDS} - emitted
    assert not missing, f"declared in fields.py but never emitted: {sorted(missing)}"


def test_every_emitted_field_is_declared_with_its_type() -> None:
    declared = {f.name: f for f in FIELDS}
    extract_names = {name for r in builtin().rules if r.extract is not None
                     for name in r.extract.groupindex}
    assert extract_names <= set(declared), extract_names - set(declared)
    for ngx in _all_outputs():
        for name, value in ngx.items():
            assert name in declared, f"field {name!r} is emitted but not in fields.py"
            expected = _PY_TYPES[declared[name].es_type]
            values = value if isinstance(value, list) else [value]
            assert all(v is None or isinstance(v, expected) for v in values), (name, value)


def test_template_types_every_declared_field() -> None:
    props = es_template()["template"]["mappings"]["properties"]["ngx"]["properties"]
    assert set(props) == {f.name for f in FIELDS}
    flat = es_template(schema="flat")["template"]["mappings"]["properties"]
    assert set(flat) == {f"ngx_{f.name}" for f in FIELDS}
