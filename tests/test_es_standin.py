"""The Elasticsearch 8 stand-in, exercised over real HTTP the way Fluent Bit's es output uses it."""

from __future__ import annotations

import gzip
import http.client
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    from es_standin import ES_VERSION, ElasticStandIn, TemplateError
except ImportError:  # tests/ imported as a package
    from tests.es_standin import ES_VERSION, ElasticStandIn, TemplateError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "elasticsearch"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCHEMAS = ("default", "flat", "ecs")
STAMP = "2026-11-29T18:24:26.000Z"

Pair = tuple[dict[str, Any], Any]


def load_template(schema: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"ngx-enrich-template-{schema}.json").read_text())


def call(
    es: ElasticStandIn,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, http.client.HTTPMessage]:
    """One request with urllib; (status, decoded JSON or None for an empty body, headers)."""
    sent = {"Content-Type": "application/x-ndjson"} if body is not None else {}
    req = urllib.request.Request(
        es.url + path, data=body, method=method, headers={**sent, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            raw, status, head = resp.read(), resp.status, resp.headers
    except urllib.error.HTTPError as err:
        raw, status, head = err.read(), err.code, err.headers
    return status, json.loads(raw) if raw else None, head


def ndjson(pairs: list[Pair]) -> bytes:
    """A bulk body; a source given as str is sent verbatim, None means no source line."""
    lines: list[str] = []
    for action, source in pairs:
        lines.append(json.dumps(action))
        if source is not None:
            lines.append(source if isinstance(source, str) else json.dumps(source))
    return ("\n".join(lines) + "\n").encode()


def bulk(es: ElasticStandIn, pairs: list[Pair], path: str = "/_bulk", **kw: Any) -> Any:
    status, payload, _ = call(es, "POST", path, ndjson(pairs), **kw)
    assert status == 200, payload
    return payload


def items(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [next(iter(item.values())) for item in payload["items"]]


def statuses(payload: dict[str, Any]) -> list[int]:
    return [item["status"] for item in items(payload)]


def create(index: str, doc_id: str | None = None) -> dict[str, Any]:
    meta = {"_index": index} if doc_id is None else {"_index": index, "_id": doc_id}
    return {"create": meta}


def docs_in(es: ElasticStandIn, index: str) -> list[dict[str, Any]]:
    return [source for name, _, source in es.documents if name == index]


# --------------------------------------------------------------------------------------------
# Node info, routing, HTTP
# --------------------------------------------------------------------------------------------


@pytest.fixture
def es() -> Iterator[ElasticStandIn]:
    with ElasticStandIn(load_template("default")) as server:
        yield server


def test_root_answers_like_elasticsearch_8(es: ElasticStandIn) -> None:
    status, info, headers = call(es, "GET", "/")
    assert status == 200
    assert info["version"]["number"] == ES_VERSION == "8.15.0"
    assert info["version"]["build_flavor"] == "default"
    assert info["tagline"] == "You Know, for Search"
    assert info["cluster_name"]
    assert headers["X-elastic-product"] == "Elasticsearch"
    assert int(headers["Content-Length"]) > 0
    status, body, headers = call(es, "HEAD", "/")
    assert (status, body) == (200, None)
    assert headers["X-elastic-product"] == "Elasticsearch"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("GET", "/_bulk"), ("POST", "/a/b/_bulk"), ("DELETE", "/nginx-x")],
)
def test_other_endpoints_are_404_json(es: ElasticStandIn, method: str, path: str) -> None:
    status, body, headers = call(es, method, path)
    assert status == 404
    assert body["status"] == 404 and body["error"]["type"]
    assert headers["Content-Type"].startswith("application/json")


def test_keep_alive_and_chunked_bodies_on_one_connection(es: ElasticStandIn) -> None:
    conn = http.client.HTTPConnection(es.host, es.port, timeout=5)
    headers = {"Content-Type": "application/x-ndjson"}
    body = ndjson([(create("nginx-k"), {"ngx": {"pid": 1}})])
    try:
        conn.connect()
        sock = conn.sock
        assert sock is not None
        conn.request("POST", "/_bulk", body=body, headers=headers)
        first = conn.getresponse()
        assert first.version == 11 and not first.will_close
        assert first.getheader("Content-Length") and json.loads(first.read())["errors"] is False
        chunks = iter([body[:10], body[10:]])
        conn.request("POST", "/_bulk", body=chunks, headers=headers, encode_chunked=True)
        second = conn.getresponse()
        assert json.loads(second.read())["errors"] is False
        conn.request("HEAD", "/")
        assert conn.getresponse().read() == b""
        conn.request("GET", "/")
        assert json.loads(conn.getresponse().read())["tagline"] == "You Know, for Search"
        assert conn.sock is sock  # still the first connection
    finally:
        conn.close()
    assert len(docs_in(es, "nginx-k")) == 2


def test_gzip_body(es: ElasticStandIn) -> None:
    body = ndjson([(create("nginx-z"), {"ngx": {"pid": 1}}), (create("nginx-z"), {"ngx": 1})])
    status, payload, _ = call(
        es, "POST", "/_bulk", gzip.compress(body), {"Content-Encoding": "gzip"}
    )
    assert status == 200 and statuses(payload) == [201, 400]
    status, payload, _ = call(es, "POST", "/_bulk", b"not gzip", {"Content-Encoding": "gzip"})
    assert status == 400
    assert len(docs_in(es, "nginx-z")) == 1


def test_request_level_errors(es: ElasticStandIn) -> None:
    status, payload, _ = call(
        es, "POST", "/_bulk", b'{"create":{"_index":"nginx-r"}}\n{}', {}
    )  # no final newline
    assert status == 400 and "terminated by a newline" in payload["error"]["reason"]
    status, payload, _ = call(es, "POST", "/_bulk", b"")
    assert status == 400
    status, payload, _ = call(es, "POST", "/_bulk", b"{}\n{}\n", {"Content-Type": "text/plain"})
    assert status == 406
    status, payload, _ = call(es, "POST", "/_bulk", ndjson([({"index": {}}, {"a": 1})]))
    assert status == 400 and "index is missing" in payload["error"]["reason"]
    status, payload, _ = call(es, "POST", "/_bulk", ndjson([({"upsert": {}}, {"a": 1})]))
    assert status == 400 and "expected field [create]" in payload["error"]["reason"]
    assert es.documents == []


# --------------------------------------------------------------------------------------------
# The project's templates
# --------------------------------------------------------------------------------------------

VALID_BY_TYPE = {
    "keyword": "GET",
    "text": "upstream timed out",
    "match_only_text": "a message",
    "long": 1234,
    "integer": 404,
    "float": 0.125,
    "date": "2026-11-29T18:24:26+00:00",
    "boolean": True,
    "ip": "10.0.0.1",
}


def full_document(properties: dict[str, Any]) -> dict[str, Any]:
    """A document with a valid value for every field a template maps."""
    out: dict[str, Any] = {}
    for name, spec in properties.items():
        if "properties" in spec:
            out[name] = full_document(spec["properties"])
        else:
            out[name] = VALID_BY_TYPE[spec["type"]]
    return out


def first_leaf(properties: dict[str, Any], ftype: str, prefix: str = "") -> str:
    for name, spec in properties.items():
        if "properties" in spec:
            found = first_leaf(spec["properties"], ftype, f"{prefix}{name}.")
            if found:
                return found
        elif spec.get("type") == ftype:
            return prefix + name
    return ""


@pytest.mark.parametrize("schema", SCHEMAS)
def test_every_mapped_field_accepted_per_schema(schema: str) -> None:
    template = load_template(schema)
    props = template["template"]["mappings"]["properties"]
    doc = {"@timestamp": STAMP, **full_document(props)}
    long_field = first_leaf(props, "long")
    bad = {long_field: "not-a-number"}  # dotted key: expanded into the mapped object
    with ElasticStandIn(template) as es:
        payload = bulk(es, [(create("nginx-2026.11.29"), doc), (create("nginx-2026.11.29"), bad)])
        assert statuses(payload) == [201, 400] and payload["errors"] is True
        assert docs_in(es, "nginx-2026.11.29") == [doc]
        types = es.field_types("nginx-2026.11.29")
        assert types[long_field] == "long"  # from the template, not dynamic
        assert types["@timestamp"] == "date"  # dynamic, by date detection
        assert long_field in items(payload)[1]["error"]["reason"]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_templates_also_valid_through_put(schema: str) -> None:
    with ElasticStandIn(None) as es:
        status, body, _ = call(
            es, "PUT", f"/_index_template/ngx-{schema}",
            json.dumps(load_template(schema)).encode(), {"Content-Type": "application/json"},
        )  # fmt: skip
        assert (status, body) == (200, {"acknowledged": True})
        payload = bulk(es, [(create("nginx-p"), {"ngx": "scalar", "ngx_pid": "x"})])
        assert statuses(payload) == [400]  # every schema maps ngx or ngx_pid


def test_fixture_records_accepted_by_default_template(es: ElasticStandIn) -> None:
    records = [
        line
        for path in sorted(FIXTURES.glob("*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    assert records
    # Fluent Bit puts its own @timestamp first in the map it serialises.
    pairs = [(create("nginx-2026.11.29"), f'{{"@timestamp":"{STAMP}",{r[1:]}') for r in records]
    payload = bulk(es, pairs)
    assert es.rejects == []
    assert payload["errors"] is False and set(statuses(payload)) == {201}


# --------------------------------------------------------------------------------------------
# Type checks, one field at a time
# --------------------------------------------------------------------------------------------

TYPES_TEMPLATE = {
    "index_patterns": ["t-*"],
    "template": {
        "mappings": {
            "dynamic": True,
            "properties": {
                "l": {"type": "long"},
                "i": {"type": "integer"},
                "s": {"type": "short"},
                "b": {"type": "byte"},
                "f": {"type": "float"},
                "d": {"type": "double"},
                "h": {"type": "half_float"},
                "sf": {"type": "scaled_float", "scaling_factor": 100},
                "k": {"type": "keyword", "ignore_above": 5},
                "t": {"type": "text"},
                "m": {"type": "match_only_text"},
                "w": {"type": "wildcard"},
                "flag": {"type": "boolean"},
                "when": {"type": "date"},
                "addr": {"type": "ip"},
                "obj": {"properties": {"x": {"type": "keyword"}}},
                "hidden": {"type": "keyword", "index": False, "doc_values": False},
                "hidden_n": {"type": "long", "index": False},
                "multi": {"type": "keyword", "fields": {"n": {"type": "long"}}},
            },
        }
    },
}
OBJ = {"a": 1}

REJECTED = [
    ("l", "abc"), ("l", "-"), ("l", True), ("l", OBJ), ("l", 2**63), ("l", "9223372036854775808"),
    ("l", [1, "x"]), ("i", 2**31), ("i", 1e10), ("s", 40000), ("b", 128), ("b", "-129"),
    ("f", "fast"), ("f", False), ("f", OBJ), ("f", 1e39), ("h", 70000), ("d", "NaN"),
    ("sf", "x"), ("k", OBJ), ("t", OBJ), ("m", OBJ), ("w", OBJ), ("k", [OBJ]),
    ("flag", "yes"), ("flag", 1), ("flag", "True"), ("flag", OBJ),
    ("when", "yesterday"), ("when", "2026-11-29 18:24:26"), ("when", "2026-02-30"),
    ("when", "2026-11-29T25:00:00Z"), ("when", "29/Nov/2026:18:24:26 +0000"), ("when", ""),
    ("when", True), ("when", "1.7e12"), ("when", "2026-11-29T18:24:26+19:00"),
    ("addr", "not-an-ip"), ("addr", "256.1.1.1"), ("addr", "010.0.0.1"), ("addr", ""),
    ("addr", "-"), ("addr", 167772161), ("addr", OBJ),
    ("obj", "scalar"), ("obj", ["a"]), ("obj", 5), ("obj.x", OBJ), ("obj.x.y", 1),
    ("hidden_n", "abc"), ("multi", "not-a-long"),
]  # fmt: skip

ACCEPTED = [
    ("l", 42), ("l", "42"), ("l", 1.9), ("l", "12.7"), ("l", ""), ("l", -(2**63)), ("l", "1e3"),
    ("l", "+7"), ("i", 2.5), ("b", 127), ("s", "-32768"),
    ("f", "3.5"), ("f", 10), ("f", " 2.5 "), ("d", "1e300"), ("h", 65504), ("sf", 1.234),
    ("k", 12), ("k", True), ("k", "longer than ignore_above"), ("t", 1.5), ("w", "x"),
    ("flag", True), ("flag", "true"), ("flag", "false"), ("flag", ""),
    ("when", "2026-11-29"), ("when", "2026-11"), ("when", "2026"), ("when", 2026),
    ("when", "2026-11-29T18:24:26Z"), ("when", "2026-11-29T18:24:26.123456789+05:30"),
    ("when", "2026-11-29T18:24:26,5-0800"), ("when", "2026-11-29T18"),
    ("when", "2024-02-29T00:00:00Z"), ("when", 1764441866000), ("when", "1764441866000"),
    ("when", -1000),
    ("addr", "::1"), ("addr", "2001:db8::8a2e:370:7334"), ("addr", "192.168.0.1"),
    ("addr", "::ffff:10.0.0.1"),
    ("obj", {"x": "a"}), ("obj", [{"x": "a"}, {"x": "b"}]), ("obj.x", "dotted"), ("obj", {}),
    ("hidden", "anything"), ("multi", "17"),
    ("l", None), ("obj", None), ("l", []), ("l", [1, "2", 3.5, None]), ("l", [[1, 2], [3]]),
]  # fmt: skip


@pytest.fixture(scope="module")
def types_es() -> Iterator[ElasticStandIn]:
    with ElasticStandIn(TYPES_TEMPLATE) as server:
        yield server


_CASES = itertools.count()


def _case_index() -> str:
    """A fresh index per case, so that dynamic mappings of one case cannot leak into another."""
    return f"t-{next(_CASES)}"


@pytest.mark.parametrize(("name", "value"), REJECTED)
def test_rejected_value(types_es: ElasticStandIn, name: str, value: Any) -> None:
    index = _case_index()
    good = {"l": 1, "when": STAMP}
    payload = bulk(types_es, [(create(index), good), (create(index), {name: value}),
                              (create(index), good)])  # fmt: skip
    assert payload["errors"] is True
    assert statuses(payload) == [201, 400, 201]
    error = items(payload)[1]["error"]
    assert error["type"] in ("document_parsing_exception", "mapper_parsing_exception")
    assert name.split(".")[0] in error["reason"]
    assert docs_in(types_es, index) == [good, good]
    assert any(r[0] == index for r in types_es.rejects)


@pytest.mark.parametrize(("name", "value"), ACCEPTED)
def test_accepted_value(types_es: ElasticStandIn, name: str, value: Any) -> None:
    index = _case_index()
    payload = bulk(types_es, [(create(index), {name: value})])
    assert payload["errors"] is False, items(payload)
    assert statuses(payload) == [201]
    assert docs_in(types_es, index) == [{name: value}]
    assert "." in name or types_es.field_types(index)[name] == TYPES_TEMPLATE_TYPES[name]


TYPES_TEMPLATE_TYPES = {
    name: spec.get("type", "object")
    for name, spec in TYPES_TEMPLATE["template"]["mappings"]["properties"].items()
}


# --------------------------------------------------------------------------------------------
# JSON strictness and dotted keys
# --------------------------------------------------------------------------------------------


def test_duplicate_timestamp_rejected(es: ElasticStandIn) -> None:
    record = f'{{"@timestamp":"{STAMP}","@timestamp":"2026-11-29T18:24:26+00:00","log":"x"}}'
    nested = '{"ngx":{"pid":1,"pid":2}}'
    not_duplicate = '{"ngx":{"pid":1},"ngx.pid":2}'  # one field with two values, as in ES
    payload = bulk(es, [(create("nginx-d"), record), (create("nginx-d"), nested),
                        (create("nginx-d"), not_duplicate)])  # fmt: skip
    assert statuses(payload) == [400, 400, 201]
    first, second, _ = items(payload)
    assert "Duplicate field '@timestamp'" in first["error"]["reason"]
    assert "Duplicate field 'pid'" in second["error"]["reason"]
    assert [r[2] for r in es.rejects if "@timestamp" in r[1]]


@pytest.mark.parametrize(
    "source",
    ['{"a": NaN}', '{"a": 1} {"b": 2}', "[1, 2]", '{"a": 1', '"text"', '{"a": "\t"}'],
)
def test_invalid_json_rejected_per_item(es: ElasticStandIn, source: str) -> None:
    payload = bulk(es, [(create("nginx-j"), source), (create("nginx-j"), {"a": 1})])
    assert statuses(payload) == [400, 201]


def test_dotted_keys_expand_and_conflict(es: ElasticStandIn) -> None:
    payload = bulk(
        es,
        [
            (create("nginx-dots"), {"req.bytes": 10, "ngx.pid": "12"}),
            (create("nginx-dots"), {"peer": "a", "peer.port": 1}),  # value, then object
            (create("nginx-dots"), {"up.port": 1, "up": "a"}),  # object, then value
            (create("nginx-dots"), {"req": "flat"}),  # req is an object now
            (create("nginx-dots"), {"ngx.pid": "twelve"}),
            (create("nginx-dots"), {"a..b": 1}),
        ],
    )
    assert statuses(payload) == [201, 400, 400, 400, 400, 400]
    types = es.field_types("nginx-dots")
    assert types["req"] == "object" and types["req.bytes"] == "long"
    assert "peer" not in types and "up" not in types  # rejected documents map nothing


# --------------------------------------------------------------------------------------------
# Dynamic mapping across requests
# --------------------------------------------------------------------------------------------


def test_dynamic_mapping_conflict_between_requests(es: ElasticStandIn) -> None:
    index = "nginx-dyn"
    first = bulk(es, [(create(index), {"latency": 12, "seen": STAMP, "who": "bob", "ok": True,
                                       "ratio": 0.5, "tags": {"a": "b"}})])  # fmt: skip
    assert statuses(first) == [201]
    types = es.field_types(index)
    assert [types[k] for k in ("latency", "seen", "who", "who.keyword", "ok", "ratio", "tags")] == [
        "long", "date", "text", "keyword", "boolean", "float", "object",
    ]  # fmt: skip
    later = [
        {"latency": "slow"}, {"seen": "later"}, {"who": {"n": 1}}, {"ok": "yes"},
        {"ratio": "half"}, {"tags": "flat"},
        {"latency": "15"}, {"seen": 1764441866000}, {"who": 7}, {"ok": "false"}, {"ratio": "2"},
    ]  # fmt: skip
    second = bulk(es, [(create(index), doc) for doc in later])
    assert statuses(second) == [400] * 6 + [201] * 5
    assert second["errors"] is True
    assert len(es.rejects) == 6


def test_first_value_in_a_request_fixes_the_type_for_the_rest(es: ElasticStandIn) -> None:
    docs = [{"n": "2026-11-29"}, {"n": "x"}, {"m": ["a", 1]}, {"q": [1, "a"]}]
    payload = bulk(es, [(create("other-1"), doc) for doc in docs])
    assert statuses(payload) == [201, 400, 201, 400]


def test_template_applies_only_to_matching_indices(es: ElasticStandIn) -> None:
    doc = {"ngx": {"pid": "abc"}}
    payload = bulk(es, [(create("nginx-1"), doc), (create("other-1"), doc)])
    assert statuses(payload) == [400, 201]
    assert es.field_types("other-1")["ngx.pid"] == "text"
    assert es.field_types("nginx-1")["ngx.pid"] == "long"


@pytest.mark.parametrize(("dynamic", "expected"), [("strict", 400), (False, 201), ("false", 201)])
def test_dynamic_false_and_strict(dynamic: Any, expected: int) -> None:
    template = {
        "index_patterns": ["s-*"],
        "template": {"mappings": {"dynamic": dynamic, "properties": {"k": {"type": "keyword"}}}},
    }
    with ElasticStandIn(template) as es:
        payload = bulk(
            es, [(create("s-1"), {"k": "a", "extra": {"x": 1}}), (create("s-1"), {"k": "b"})]
        )
        assert statuses(payload) == [expected, 201]
        if expected == 400:
            assert items(payload)[0]["error"]["type"] == "strict_dynamic_mapping_exception"
        assert "extra" not in es.field_types("s-1")


def test_total_fields_limit() -> None:
    template = {
        "index_patterns": ["lim-*"],
        "template": {"settings": {"index.mapping.total_fields.limit": 3}, "mappings": {}},
    }
    with ElasticStandIn(template) as es:
        payload = bulk(
            es, [(create("lim-1"), {"a": 1, "b": 2}), (create("lim-1"), {"c": "x", "d": 1})]
        )
        assert statuses(payload) == [201, 400]
        assert "Limit of total fields [3]" in items(payload)[1]["error"]["reason"]


# --------------------------------------------------------------------------------------------
# Bulk actions and metadata
# --------------------------------------------------------------------------------------------


def test_type_in_action_line_fails_whole_request(es: ElasticStandIn) -> None:
    pairs = [
        (create("nginx-t"), {"ngx": {"pid": 1}}),
        ({"index": {"_index": "nginx-t", "_type": "_doc"}}, {"ngx": {"pid": 2}}),
    ]
    status, payload, _ = call(es, "POST", "/_bulk", ndjson(pairs))
    assert status == 400
    assert payload["error"]["type"] == "illegal_argument_exception"
    assert payload["error"]["reason"] == (
        "Action/metadata line [3] contains an unknown parameter [_type]"
    )
    assert payload["error"]["root_cause"][0]["type"] == "illegal_argument_exception"
    assert es.documents == []  # nothing of the request was indexed
    compat = {"Content-Type": "application/vnd.elasticsearch+x-ndjson;compatible-with=7"}
    status, payload, _ = call(es, "POST", "/_bulk", ndjson(pairs), compat)
    assert status == 200 and statuses(payload) == [201, 201]


def test_create_conflict_and_index_replace(es: ElasticStandIn) -> None:
    first = bulk(es, [(create("nginx-c", "doc1"), {"ngx": {"pid": 1}})])
    assert items(first)[0]["result"] == "created" and items(first)[0]["_version"] == 1
    replace = {"index": {"_index": "nginx-c", "_id": "doc1"}}
    again = bulk(
        es, [(create("nginx-c", "doc1"), {"ngx": {"pid": 2}}), (replace, {"ngx": {"pid": 3}})]
    )
    conflict, replaced = items(again)
    assert conflict["status"] == 409
    assert conflict["error"]["type"] == "version_conflict_engine_exception"
    assert "document already exists" in conflict["error"]["reason"]
    assert (replaced["status"], replaced["result"], replaced["_version"]) == (200, "updated", 2)
    assert again["errors"] is True
    assert es.source("nginx-c", "doc1") == {"ngx": {"pid": 3}}
    assert es.conflicts == [("nginx-c", "doc1")] and es.rejects == []


def test_ids_url_index_and_response_shape(es: ElasticStandIn) -> None:
    pairs = [({"index": {}}, {"ngx": {"pid": 1}}), ({"create": {"_id": "x1"}}, {"ngx": {"pid": 2}})]
    payload = bulk(es, pairs, path="/nginx-u/_bulk")
    assert list(payload) == ["took", "errors", "items"]
    assert payload["errors"] is False
    auto, given = items(payload)
    assert list(payload["items"][0]) == ["index"] and list(payload["items"][1]) == ["create"]
    assert auto["_index"] == given["_index"] == "nginx-u"
    assert len(auto["_id"]) == 20 and given["_id"] == "x1"
    assert es.indices == ["nginx-u"]


def test_update_and_delete(es: ElasticStandIn) -> None:
    index = "nginx-upd"
    payload = bulk(
        es,
        [
            (create(index, "a"), {"ngx": {"pid": 1, "kind": "access"}}),
            ({"update": {"_index": index, "_id": "a"}}, {"doc": {"ngx": {"pid": 2}}}),
            ({"update": {"_index": index, "_id": "a"}}, {"doc": {"ngx": {"pid": "bad"}}}),
            ({"update": {"_index": index, "_id": "nope"}}, {"doc": {"ngx": {"pid": 1}}}),
            ({"update": {"_index": index, "_id": "b"}}, {"doc": {"x": 1}, "doc_as_upsert": True}),
            ({"delete": {"_index": index, "_id": "b"}}, None),
            ({"delete": {"_index": index, "_id": "b"}}, None),
            ({"delete": {"_index": "nginx-never", "_id": "b"}}, None),
        ],
    )
    assert statuses(payload) == [201, 200, 400, 404, 201, 200, 404, 404]
    assert items(payload)[-1]["error"]["type"] == "index_not_found_exception"
    assert "nginx-never" not in es.indices
    assert es.source(index, "a") == {"ngx": {"pid": 2, "kind": "access"}}
    assert es.source(index, "b") is None


def test_invalid_index_name_and_data_streams(es: ElasticStandIn) -> None:
    payload = bulk(
        es,
        [
            (create("Nginx-Upper"), {"a": 1}),
            ({"index": {"_index": "logs-nginx-default"}}, {"@timestamp": STAMP}),
            (create("logs-nginx-default"), {"@timestamp": STAMP, "message": "hi"}),
            (create("logs-nginx-default"), {"message": "no timestamp"}),
        ],
    )
    assert statuses(payload) == [400, 400, 201, 400]
    upper, index_op, created, _ = items(payload)
    assert upper["error"]["type"] == "invalid_index_name_exception"
    assert "op_type of create" in index_op["error"]["reason"]
    assert created["_index"].startswith(".ds-logs-nginx-default-")


# --------------------------------------------------------------------------------------------
# Templates, faults, waiting
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mappings",
    [
        {"properties": {"a": {"type": "strng"}}},
        {"properties": {"a": {"type": "text", "ignore_above": 10}}},
        {"_doc": {"properties": {}}, "extra": 1},
        {"dynamic": "sometimes"},
    ],
)
def test_invalid_templates_refused(mappings: dict[str, Any]) -> None:
    template = {"index_patterns": ["x-*"], "template": {"mappings": mappings}}
    with pytest.raises(TemplateError):
        ElasticStandIn(template)
    with ElasticStandIn(None) as es:
        status, body, _ = call(
            es, "PUT", "/_index_template/x", json.dumps(template).encode(),
            {"Content-Type": "application/json"},
        )  # fmt: skip
        assert status == 400 and body["error"]["type"] == "mapper_parsing_exception"


def test_fail_next_then_recover(es: ElasticStandIn) -> None:
    es.fail_next(2, status=429)
    es.fail_next(1)
    body = ndjson([(create("nginx-f"), {"ngx": {"pid": 1}})])
    seen = [call(es, "POST", "/_bulk", body)[0] for _ in range(4)]
    assert seen == [429, 429, 503, 200]
    assert es.requests == 4
    assert len(docs_in(es, "nginx-f")) == 1


def test_wait_for(es: ElasticStandIn) -> None:
    assert es.wait_for(1, timeout=0.05) is False
    body = ndjson([(create("nginx-w"), {"ngx": {"pid": 1}})] * 3)
    sender = threading.Timer(0.05, lambda: call(es, "POST", "/_bulk", body))
    started = time.monotonic()
    sender.start()
    try:
        assert es.wait_for(3, timeout=5) is True
    finally:
        sender.join()
    assert time.monotonic() - started < 2
    assert es.wait_for(4, timeout=0.05) is False


def test_reject_hook_sees_every_rejection() -> None:
    seen: list[tuple[str, str, str]] = []
    with ElasticStandIn(load_template("flat"), on_reject=lambda *a: seen.append(a)) as es:
        bulk(es, [(create("nginx-h"), {"ngx_pid": "x"}), (create("nginx-h"), {"ngx_pid": 1})])
    assert len(seen) == 1 and seen == es.rejects
    index, source, reason = seen[0]
    assert index == "nginx-h" and json.loads(source) == {"ngx_pid": "x"}
    assert "ngx_pid" in reason and "long" in reason
