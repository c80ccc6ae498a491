"""Error lines whose message recurs: what the message decides, worked out once.

The same few messages recur in an error log with other times, connections and clients. A
message's parts, the stage, the verdict, the values its rule extracts and, unless it names a
value of the line (an upstream, a client), the explanation follow from the level and the
message alone, so they are kept per (level, message) and a recurring line costs only its
prefix and context tail. The record is the one the stages give one by one (the tests compare
the two on every line they have).
"""

from __future__ import annotations

from typing import Any, Final

from ngx_enrich.catalog import Template
from ngx_enrich.classify import Classifier
from ngx_enrich.fields import TEMPLATE_ONLY
from ngx_enrich.parse.dispatch import stage
from ngx_enrich.parse.errorlog import LINE_KEYS, message_parts
from ngx_enrich.record import ErrorFields
from ngx_enrich.shape import Shaper

MAX_KNOWN: Final = 4096  # per generation
# Names an explanation may use whose value differs from line to line.
_PER_LINE: Final = (LINE_KEYS - {"level"}) | {"parse_error", "wrapper"}


class Known:
    """What one (level, message) decides."""

    __slots__ = ("first", "last", "template", "values")

    def __init__(self, first: dict[str, Any], last: dict[str, Any], values: ErrorFields,
                 template: Template | None) -> None:
        self.first = first  # kind and verdict, with the explanation when the message decides it
        self.last = last  # the message, its parts, stage and extracted values, as emitted
        self.values = values  # all the message decides (with the values for texts alone)
        self.template = template  # the explanation to render per line, if it names line values


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
        level = line.get("level", "")
        known = self._known.get((level, message))
        if known is None:
            known = self._old.get((level, message)) or self._learn(level, message)
            self._remember((level, message), known)
        if known.template is None:
            ngx = {**known.first, **line, **known.last}
        else:
            text = known.template.render({**line, **known.values, **(added or {})})
            ngx = {**known.first, "explanation": text, **line, **known.last}
        if added:
            ngx.update(added)
        return ngx

    def _learn(self, level: str, message: str) -> Known:
        parts = message_parts(message)
        fields: ErrorFields = {"level": level, "message": message, **parts}
        fields["stage"] = stage(fields)
        verdict = self._classifier.verdict(fields)
        found = self._classifier.extracted(verdict, message)
        last = {"message": message, **parts, "stage": fields["stage"], **found}
        fields.update(found)
        first = self._shaper.fragment("error", verdict)
        template: Template | None = None
        if "explanation" not in first:
            text = self._shaper.template(verdict)
            if _PER_LINE.isdisjoint(text.names):
                first = {**first, "explanation": text.render(fields)}
            else:
                template = text
        return Known(first, {k: v for k, v in last.items() if k not in TEMPLATE_ONLY}, fields,
                     template)

    def _remember(self, key: tuple[str, str], known: Known) -> None:
        if len(self._known) >= MAX_KNOWN:
            self._old, self._known = self._known, {}
        self._known[key] = known
