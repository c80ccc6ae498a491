"""The Elasticsearch index template and the JSON Schema of the output, from `fields.FIELDS`.

Both are committed under `examples/` and a test fails when they drift from this code.
"""

from __future__ import annotations

from typing import Any

from ngx_enrich import __version__
from ngx_enrich.catalog import AREAS, SEVERITIES
from ngx_enrich.fields import FIELDS, WRAPPER_FIELDS

_JSON_TYPES = {"keyword": "string", "text": "string", "date": "string", "long": "integer",
               "integer": "integer", "float": "number", "boolean": "boolean",
               "object": "object"}
_LISTS = {"upstream_addr", "upstream_status", "upstream_response_time",
          "upstream_response_length", "upstream_connect_time", "upstream_header_time"}
_ENUMS: dict[str, list[str]] = {
    "kind": ["error", "access", "other"],
    "area": sorted(AREAS),
    "severity": list(SEVERITIES),
}


def _es_property(es_type: str) -> dict[str, Any]:
    if es_type == "keyword":
        return {"type": "keyword", "ignore_above": 2048}
    if es_type == "text":
        return {"type": "text"}
    if es_type == "object":  # the one object field: `wrapper`
        return {"properties": {f.name: _es_property(f.es_type) for f in WRAPPER_FIELDS}}
    return {"type": es_type}


def _ecs_properties() -> dict[str, Any]:
    """Nested ECS properties for the fields that have an ECS home."""
    root: dict[str, Any] = {}
    for f in FIELDS:
        if f.ecs is None:
            continue
        node = root
        *parents, leaf = f.ecs.split(".")
        for part in parents:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[leaf] = _es_property("keyword" if f.name == "errno" else f.es_type)
    return root


def es_template(key: str = "ngx", schema: str = "default") -> dict[str, Any]:
    """A composable index template (Elasticsearch 8) typing every field ngx-enrich emits."""
    ngx = {f.name: _es_property(f.es_type) for f in FIELDS}
    if schema == "flat":
        properties = {f"{key}_{name}": prop for name, prop in ngx.items()}
    elif schema == "ecs":
        properties = _ecs_properties()
        properties[key] = {"properties": {f.name: _es_property(f.es_type)
                                          for f in FIELDS if f.ecs is None}}
        properties.setdefault("event", {"properties": {}})["properties"].update(
            original={"type": "keyword", "index": False, "doc_values": False},
            kind={"type": "keyword"}, module={"type": "keyword"},
            dataset={"type": "keyword"}, category={"type": "keyword"},
            type={"type": "keyword"}, created={"type": "date"})
        properties["message"] = {"type": "match_only_text"}
    else:
        properties = {key: {"properties": ngx}, "log": {"type": "text"}}
    return {
        "index_patterns": ["nginx-*"],
        "priority": 200,
        "_meta": {"description": f"ngx-enrich {__version__} output, schema {schema}"},
        "template": {"mappings": {"dynamic": True, "properties": properties}},
    }


def json_schema(key: str = "ngx") -> dict[str, Any]:
    """JSON Schema (2020-12) of a record in the default output schema."""
    props: dict[str, Any] = {}
    for f in FIELDS:
        prop: dict[str, Any] = {"type": _JSON_TYPES[f.es_type], "description": f.doc}
        if f.es_type == "date":
            prop["format"] = "date-time"
        if f.name in _ENUMS:
            prop["enum"] = _ENUMS[f.name]
        if f.name in _LISTS:
            prop = {"type": "array", "items": {"type": [prop["type"], "null"]},
                    "description": f.doc}
        if f.es_type == "object":
            prop["properties"] = {w.name: {"type": _JSON_TYPES[w.es_type], "description": w.doc}
                                  for w in WRAPPER_FIELDS}
            prop["properties"]["kind"] = {"type": "array", "items": {"type": "string"},
                                          "description": WRAPPER_FIELDS[0].doc}
        props[f.name] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ngx-enrich record",
        "type": "object",
        "required": [key],
        "properties": {key: {"type": "object", "required": ["kind"], "properties": props}},
    }
