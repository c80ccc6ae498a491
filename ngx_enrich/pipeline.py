"""One record in, one enriched record out: parse -> classify -> shape.

`Enricher.enrich_line` takes a text line (raw Nginx line or a JSON object);
`Enricher.enrich_record` takes an already decoded record (JSON, msgpack, forward).
Nothing is dropped: whatever cannot be parsed comes back with `kind: "other"` and a
`parse_error` reason.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgpack
import orjson
from orjson import Fragment

from ngx_enrich import catalog, eventtime
from ngx_enrich.classify import Classifier
from ngx_enrich.io import BAD_UTF8, Joiner
from ngx_enrich.parse.dispatch import continues, opens_record, parse_text, starts_record
from ngx_enrich.parse.errorlog import read_line
from ngx_enrich.parse.jsonrecord import parse_json_record, parse_json_text
from ngx_enrich.parse.logformat import compile_log_format
from ngx_enrich.parse.wrappers import combine, record_wrapper, unwrap
from ngx_enrich.record import AccessFields, ErrorFields, ParsedAccess
from ngx_enrich.recurring import Recurring
from ngx_enrich.shape import Shaper
from ngx_enrich.text import as_text

MAX_PARSED: Final = 64 * 1024  # a longer line is passed through unparsed
TEXT_KEYS: Final = ("log", "message", "msg")
@dataclass(frozen=True, slots=True)
class Options:
    """How records are enriched."""

    lang: str = "en"
    schema: str = "default"
    key: str = "ngx"
    field: str | None = None
    rules: tuple[Path, ...] = ()
    # A custom `log_format` as (format, escape), tried before the built-in access shapes.
    access_format: tuple[str, str] | None = None
    # Record key holding the event time (Fluentd's <inject>/<extract>); when set, its value is
    # replaced by the record's own time wherever the line has one.
    time_key: str | None = None
    # The records go to orjson alone (the filter's JSON output): in the default schema the
    # `ngx` object may be encoded JSON (an `orjson.Fragment`) rather than a dict.
    encoded: bool = False


class Enricher:
    """Turns one input record into one output record."""

    def __init__(self, options: Options | None = None,
                 cat: catalog.Catalog | None = None) -> None:
        self.options = options or Options()
        if cat is None:
            cat = catalog.load(self.options.rules) if self.options.rules else catalog.builtin()
        self.classifier = Classifier(cat)
        self.shaper = Shaper(self.options.lang, self.options.key, self.options.schema,
                             cat.check_zh, cat.phrases[self.options.lang], self.options.encoded)
        self.recurring = Recurring(self.classifier, self.shaper)
        fields: Iterable[str | None] = (self.options.field, *TEXT_KEYS)
        self._text_keys = tuple(dict.fromkeys(k for k in fields if k))
        fmt = self.options.access_format
        self._access_format = compile_log_format(*fmt) if fmt else None
        self._encoded_time: Any = None  # the `time` of the last object encoded (`own_value`)

    def enrich_line(self, line: str, parse_error: str | None = None) -> dict[str, Any]:
        """Enrich one text line (a raw Nginx line or a JSON object)."""
        try:
            return self._line(line, parse_error)
        except Exception as exc:  # a bug must not cost the record or the stream
            return self._other({"log": line}, f"internal error ({type(exc).__name__})")

    def enrich_record(self, record: dict[str, Any]) -> dict[str, Any]:
        """Enrich a decoded record (msgpack `bin` read as text); its own keys are kept."""
        try:
            text, bad = as_text(record)  # a new record when it held byte strings
            return self._record(text, BAD_UTF8 if bad else None, mine=text is not record)
        except Exception as exc:  # a bug must not cost the record or the stream
            return self._other(dict(record), f"internal error ({type(exc).__name__})")

    def _line(self, line: str, parse_error: str | None) -> dict[str, Any]:
        if line[:1] == "{":
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                return self._other({"log": line}, "invalid JSON")
            if isinstance(obj, dict):
                return self._record(obj, parse_error, mine=True)
            return self._other({"log": line}, "JSON value is not an object")
        return self._text(line, {"log": line}, parse_error)

    def _record(self, record: dict[str, Any], parse_error: str | None = None,
                mine: bool = False) -> dict[str, Any]:
        """`mine`: `record` is this enricher's to change (else the output is a copy)."""
        out = self._fields_of(record if mine else dict(record), parse_error)
        key = self.options.time_key
        if key is not None and key in out:
            out[key] = eventtime.restamped(self.own_value(out), out[key])
        return out

    def own_value(self, record: dict[str, Any]) -> Any:
        """The `time` an enriched record holds (see `eventtime.own_value`), for the record
        this enricher made last where its object is encoded JSON."""
        key = self.options.key
        if type(record.get(key)) is Fragment:
            return self._encoded_time
        return eventtime.own_value(record, key)

    def own_event_time(self, record: dict[str, Any]) -> msgpack.ExtType | None:
        """`eventtime.own_event_time` of the record this enricher made last."""
        return eventtime.event_time_of(self.own_value(record))

    def _fields_of(self, record: dict[str, Any], parse_error: str | None) -> dict[str, Any]:
        for key in self._text_keys:
            text = record.get(key)
            if isinstance(text, str):
                outer = record_wrapper(record) if key == "log" else None
                return self._text(text.rstrip("\r\n"), record, parse_error, outer)
        fields = parse_json_record(record)
        if fields is not None:
            if parse_error:
                fields["parse_error"] = parse_error
            return self._access(record, fields)
        return self._other(record, parse_error or "no Nginx line in record")

    def enrich_value(self, value: Any, parse_error: str | None = None) -> dict[str, Any]:
        """Enrich a decoded msgpack object; a non-map is wrapped and flagged."""
        if parse_error is not None:
            return self._other({}, parse_error)
        if isinstance(value, dict):
            return self.enrich_record(value)
        return self._other({"value": as_text(value)[0]}, "msgpack value is not a map")

    def starts_record(self, line: str) -> bool:
        """Whether `line` after an error record begins a record (for multiline joining)."""
        return starts_record(line, self._access_format)

    def joiner(self) -> Joiner:
        """A multiline joiner that knows this enricher's access format."""
        return Joiner(functools.partial(continues, starts=self.starts_record), opens_record)

    def _text(self, text: str, base: dict[str, Any], parse_error: str | None,
              outer: dict[str, Any] | None = None) -> dict[str, Any]:
        """`outer`: what the record around the text says of its wrapper."""
        if not text:
            return self._other(base, "empty line")
        if len(text) > MAX_PARSED:
            return self._other(base, "line too long to parse")
        if text[:1] == "{":  # an `escape=json` access line inside `log`
            json_fields = parse_json_text(text)
            if json_fields is not None:
                return self._access(base, json_fields)
        inner, wrapper = unwrap(text)
        wrapper = combine(outer, wrapper)
        added: ErrorFields = {}  # what the pipeline knows of the line, last in the record
        if parse_error:
            added["parse_error"] = parse_error
        if wrapper is not None:
            added["wrapper"] = wrapper
        read = read_line(inner) if inner[4:5] == "/" else None
        if read is not None:  # the usual error line: see `recurring`
            if self.shaper.encoded and not added:
                encoded = self.recurring.encoded(read[0], read[1])
                if encoded is not None:
                    self._encoded_time = read[0].get("time")
                    return self.shaper.record(base, encoded)
            if self.shaper.schema == "flat":
                return self.recurring.flat_record(base, read[0], read[1], added)
            return self.shaper.record(base, self.recurring.facts(read[0], read[1], added))
        parsed = parse_text(inner, self._access_format)
        if parsed is None:
            return self._other(base, parse_error or "not an Nginx log line", wrapper)
        if isinstance(parsed, ParsedAccess):
            parsed.fields.update(added)
            return self._access(base, parsed.fields)
        error = parsed.fields
        verdict = self.classifier.error(error)  # what its rule extracts comes before `added`
        error.update(added)
        return self.shaper.record(base, self.shaper.facts("error", error, verdict))

    def _access(self, base: dict[str, Any], fields: AccessFields) -> dict[str, Any]:
        status = fields.get("status")
        verdict = self.classifier.status(status) if isinstance(status, int) else None
        if verdict is not None and self.shaper.encoded:
            encoded = self.shaper.encoded_facts("access", fields, verdict)
            if encoded is not None:
                self._encoded_time = fields.get("time")
                return self.shaper.record(base, encoded)
        return self.shaper.record(base, self.shaper.facts("access", fields, verdict))

    def _other(self, base: dict[str, Any], reason: str,
               wrapper: dict[str, Any] | None = None) -> dict[str, Any]:
        facts: dict[str, Any] = {"kind": "other", "parse_error": reason}
        if wrapper is not None:
            facts["wrapper"] = wrapper
        return self.shaper.record(base, facts)
