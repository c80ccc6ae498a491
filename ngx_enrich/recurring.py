"""Error lines whose message recurs: what the message decides, worked out once.

The same few messages recur in an error log with other times, connections and clients. A
message's parts, the stage, the verdict, the values its rule extracts and, unless it names a
value of the line (an upstream, a client), the explanation follow from the level and the
message alone, so they are kept per (level, message) and a recurring line costs only its
prefix and context tail. The record is the one the stages give one by one (the tests compare
the two on every line they have). For a shaper with `encoded`, the message's share is kept
encoded too, and the `ngx` object comes as encoded JSON.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

from orjson import Fragment, dumps

from ngx_enrich.catalog import Template
from ngx_enrich.classify import Classifier
from ngx_enrich.fields import TEMPLATE_ONLY
from ngx_enrich.parse.dispatch import stage
from ngx_enrich.parse.errorlog import LINE_KEYS, split_parts
from ngx_enrich.record import ErrorFields
from ngx_enrich.shape import Shaper, explanation_member, members

MAX_KNOWN: Final = 4096  # per generation
# Names an explanation may use whose value differs from line to line.
_PER_LINE: Final = (LINE_KEYS - {"level"}) | {"parse_error", "wrapper"}


class Known:
    """What one (level, message) decides."""

    __slots__ = ("encoded", "first", "flat", "last", "template", "values")

    def __init__(self, first: dict[str, Any], last: dict[str, Any], values: ErrorFields,
                 template: Template | None) -> None:
        self.first = first  # kind and verdict, with the explanation when the message decides it
        self.last = last  # the message, its parts, stage and extracted values, as emitted
        self.values = values  # all the message decides (with the values for texts alone)
        self.template = template  # the explanation to render per line, if it names line values
        # `first` and `last` encoded as the start and the end of an object, when the line's
        # keys cannot meet theirs
        self.encoded: tuple[bytes, bytes] | None = None
        # `first` and `last` with their `flat` schema names, made on first need
        self.flat: tuple[dict[str, Any], dict[str, Any]] | None = None

    def explanation(self, line: ErrorFields, added: ErrorFields | None = None) -> str:
        """The explanation for a line of this message (`template` is set)."""
        assert self.template is not None
        return self.template.render({**line, **self.values, **(added or {})})


class Recurring:
    """The `ngx` objects of error lines, their message's share computed once."""

    def __init__(self, classifier: Classifier, shaper: Shaper) -> None:
        self._classifier = classifier
        self._shaper = shaper
        # Two generations: when the young one is full it becomes the old one, and what is met
        # again there moves back, so the messages that recur outlive those seen once.
        self._known: dict[tuple[str, str], Known] = {}
        self._old: dict[tuple[str, str], Known] = {}

    def facts(self, line: ErrorFields, message: str,
              added: ErrorFields | None = None) -> dict[str, Any]:
        """The `ngx` object of an error line read by `errorlog.read_line` (`line`: its prefix
        and tail); `added`: what the pipeline adds (parse error, wrapper)."""
        known = self._known_for(line.get("level", ""), message)
        if known.template is None:
            ngx = {**known.first, **line, **known.last}
        else:
            text = known.explanation(line, added)
            ngx = {**known.first, "explanation": text, **line, **known.last}
        if added:
            ngx.update(added)
        return ngx

    def flat_record(self, base: dict[str, Any], line: ErrorFields, message: str,
                    added: ErrorFields | None = None) -> dict[str, Any]:
        """`base` with the members `facts` gives, under their `flat` schema names (for a
        shaper of that schema), added in the order and with the values `Shaper.record` gives
        them."""
        known = self._known_for(line.get("level", ""), message)
        names = self._shaper.flat_names
        flat = known.flat
        if flat is None:
            flat = known.flat = ({names[k]: v for k, v in known.first.items()},
                                 {names[k]: v for k, v in known.last.items()})
        base.update(flat[0])
        if known.template is not None:
            base[names["explanation"]] = known.explanation(line, added)
        base.update({names[k]: v for k, v in line.items()})
        base.update(flat[1])
        if added:
            base.update({names[k]: v for k, v in added.items()})
        return base

    def encoded(self, line: ErrorFields, message: str) -> Fragment | None:
        """`facts` (with nothing added) as encoded JSON, for a shaper with `encoded`; None
        where the object must be built."""
        known = self._known_for(line.get("level", ""), message)
        if known.encoded is None:
            return None
        try:
            values = dumps(line)
        except TypeError:
            return None
        head, tail = known.encoded
        if known.template is None:
            return Fragment(b"".join((head, values[1:-1], tail)))
        text = known.explanation(line)
        return Fragment(b"".join((head, explanation_member(text), values[1:-1], tail)))

    def _known_for(self, level: str, message: str) -> Known:
        known = self._known.get((level, message))
        if known is None:
            known = self._old.get((level, message)) or self._learn(level, message)
            self._remember((level, message), known)
        return known

    def _learn(self, level: str, message: str) -> Known:
        parts = split_parts(message)  # not `message_parts`: kept here, with the rest
        fields: ErrorFields = {"level": level, "message": message, **parts}
        fields["stage"] = stage(fields)
        verdict = self._classifier.fresh_verdict(fields)
        found = self._classifier.extracted(verdict, message)
        last = {"message": message, **parts, "stage": fields["stage"], **found}
        fields.update(found)
        first = self._shaper.fragment("error", verdict)
        head = self._shaper.head("error", verdict) if self._shaper.encoded else b""
        template: Template | None = None
        if "explanation" not in first:
            text = self._shaper.template(verdict)
            if _PER_LINE.isdisjoint(text.names):
                first = {**first, "explanation": text.render(fields)}
                head = b""  # the message's own: encoded below
            else:
                template = text
        emitted = {k: v for k, v in last.items() if k not in TEMPLATE_ONLY}
        known = Known(first, emitted, fields, template)
        if self._shaper.encoded and not any(k in LINE_KEYS or k in first or k == "explanation"
                                            for k in emitted):
            with contextlib.suppress(TypeError):  # a value orjson refuses: built per line
                after = members(emitted)
                known.encoded = (head or b"{" + members(first) + b",",
                                 (b"," + after if after else b"") + b"}")
        return known

    def _remember(self, key: tuple[str, str], known: Known) -> None:
        if len(self._known) >= MAX_KNOWN:
            self._old, self._known = self._known, {}
        self._known[key] = known
