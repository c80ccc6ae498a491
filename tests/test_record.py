"""The record between the stages: what the error parser may emit is declared, both ways."""

from __future__ import annotations

import typing
from pathlib import Path

from ngx_enrich.catalog import builtin
from ngx_enrich.fields import FIELDS, TEMPLATE_ONLY
from ngx_enrich.parse.dispatch import parse_text
from ngx_enrich.pipeline import Enricher
from ngx_enrich.record import ErrorFields, ParsedError

ROOT = Path(__file__).resolve().parents[1]
DECLARED = typing.get_type_hints(ErrorFields)
_PY = {"keyword": str, "text": str, "date": str, "integer": int, "long": int, "float": float,
       "object": dict}


ALERT = ("2026/04/08 21:07:15 [info] 12#12: *3 SSL_do_handshake() failed (SSL: error:0A000412:"
         "SSL routines::sslv3 alert bad certificate:SSL alert number 42) while SSL handshaking, "
         "client: 198.51.100.7, server: 0.0.0.0:443")


def _error_lines() -> list[str]:
    lines = [s for r in builtin().rules for s in r.samples] + [ALERT]
    for log in [*(ROOT / "tests" / "fixtures").glob("*.log"), ROOT / "examples/logs/error.log"]:
        lines += log.read_text(errors="replace").splitlines()
    return lines


def test_every_declared_error_field_is_emitted_or_only_for_templates() -> None:
    emitted = {f.name: f for f in FIELDS}
    for name, hint in DECLARED.items():
        assert name in emitted or name in TEMPLATE_ONLY, name
        if name in emitted:
            expected = _PY[emitted[name].es_type]
            assert typing.get_origin(hint) is expected or hint is expected, (name, hint)


def test_the_error_parser_sets_only_declared_keys_with_their_types() -> None:
    seen: set[str] = set()
    for line in _error_lines():
        parsed = parse_text(line)
        if not isinstance(parsed, ParsedError):
            continue
        for name, value in parsed.fields.items():
            assert name in DECLARED, f"{name!r} (from {line[:60]!r}) is not in ErrorFields"
            expected = typing.get_origin(DECLARED[name]) or DECLARED[name]
            assert isinstance(value, expected), (name, value)
        seen.update(parsed.fields)
    # and the declaration holds nothing the parser never sets (extract and pipeline keys aside)
    extracted = {n for r in builtin().rules if r.extract is not None for n in r.extract.groupindex}
    assert set(DECLARED) - seen - extracted - {"parse_error", "wrapper"} == set()


def test_builtin_extract_patterns_name_declared_fields_only() -> None:
    for rule in builtin().rules:
        if rule.extract is not None:
            assert set(rule.extract.groupindex) <= set(DECLARED), rule.id


def test_extracted_values_reach_the_record_through_the_classifier() -> None:
    rule = next(r for r in builtin().rules if r.extract is not None and r.samples)
    record = Enricher().enrich_line(rule.samples[0])["ngx"]
    assert record["rule"] == rule.id
    match = rule.extract.search(record["message"])  # type: ignore[union-attr]
    assert match is not None
    for name, value in match.groupdict().items():
        if value:
            assert str(record[name]) == value
