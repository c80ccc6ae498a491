"""Generated artefacts stay in step with the code, and every emitted field is declared."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from ngx_enrich.catalog import builtin
from ngx_enrich.export.templates import es_template, json_schema
from ngx_enrich.fields import FIELDS
from ngx_enrich.pipeline import Enricher

ROOT = Path(__file__).resolve().parents[1]
OPTS = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
_PY_TYPES = {"keyword": str, "text": str, "date": str, "long": int, "integer": int,
             "float": (int, float)}


@pytest.mark.parametrize("schema", ["default", "flat", "ecs"])
def test_committed_es_templates_match(schema: str) -> None:
    path = ROOT / "examples" / "elasticsearch" / f"ngx-enrich-template-{schema}.json"
    assert path.read_bytes() == orjson.dumps(es_template("ngx", schema), option=OPTS), (
        f"regenerate: ngx-enrich export es-template --schema {schema} > {path}")


def test_committed_json_schema_matches() -> None:
    path = ROOT / "examples" / "schema" / "ngx-enrich-record.schema.json"
    assert path.read_bytes() == orjson.dumps(json_schema(), option=OPTS)


def _all_outputs() -> list[dict]:
    enricher = Enricher()
    lines = [s for r in builtin().rules for s in r.samples]
    for log in (ROOT / "tests" / "fixtures").glob("*.log"):
        lines += log.read_text(errors="replace").splitlines()
    return [enricher.enrich_line(line)["ngx"] for line in lines]


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
