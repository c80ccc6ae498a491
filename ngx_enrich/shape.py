"""Verdict + fields in, output record out, in the chosen schema.

- `default`: the input record unchanged plus one object under the `ngx` key.
- `flat`: the same facts as top-level `ngx_*` keys.
- `ecs`: Elastic Common Schema names, nested; explanation and hint under `ngx`.

Where records go to orjson alone (`encoded`: the filter's JSON output in the default schema),
the `ngx` object may come as encoded JSON: the verdict's part encoded once, the line's
values per line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from orjson import Fragment, dumps

from ngx_enrich.catalog import Template
from ngx_enrich.classify import Verdict
from ngx_enrich.fields import FIELDS, TEMPLATE_ONLY

SCHEMAS = ("default", "flat", "ecs")
_MAX_NAMES: Final = 4096
_INTERNAL: Final = tuple(TEMPLATE_ONLY)
# field -> (the objects it is nested in, its own name there)
# The keys of `Shaper.fragment`: a record's own field of one of these names keeps it built.
_VERDICT_KEYS: Final = ("kind", "category", "area", "severity", "rule", "hint", "explanation")
_ECS: Final = {f.name: (tuple(f.ecs.split(".")[:-1]), f.ecs.split(".")[-1])
              for f in FIELDS if f.ecs}


class _FlatNames(dict[str, str]):
    """Field -> its top-level name in the `flat` schema (`ngx_status`), made once per field."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def __missing__(self, name: str) -> str:
        flat = f"{self.key}_{name}"
        if len(self) < _MAX_NAMES:  # names come from records: keep the table bounded
            self[name] = flat
        return flat


class Shaper:
    """Renders verdicts into records for one language, key and schema."""

    def __init__(self, lang: str, key: str, schema: str, translations: dict[str, str],
                 phrases: dict[str, str], encoded: bool = False) -> None:
        """`translations`: check items in Chinese; `phrases`: the catalogue's words for
        `lang` (hint prefix, list separator); `encoded`: the records go to orjson alone, so
        in the default schema the `ngx` object may be encoded JSON."""
        self.lang = lang
        self._translations = translations if lang == "zh" else {}
        self._phrases = phrases
        self.key = key
        self.schema = schema
        self._fragments: dict[tuple[str, int], dict[str, Any]] = {}
        self.encoded = encoded and schema == "default"
        self._heads: dict[tuple[str, int], bytes] = {}
        self._explained: dict[str, bytes] = {}
        self.flat_names = _FlatNames(key)  # field -> its `flat` name
        self._rendered: dict[tuple[int, int | str], str] = {}

    def fragment(self, kind: str, verdict: Verdict) -> dict[str, Any]:
        """The fixed part of the `ngx` object for a verdict, computed once per kind."""
        key = (kind, id(verdict))  # verdicts live as long as the classifier that made them
        frag = self._fragments.get(key)
        if frag is None:
            words = self._phrases
            hint = words["list_separator"].join(
                self._translations.get(item, item) for item in verdict.check)
            frag = {
                "kind": kind,
                "category": verdict.category,
                "area": verdict.area,
                "severity": verdict.severity,
                "rule": verdict.rule,
                "hint": words["hint_prefix"] + hint,
            }
            static = verdict.text[self.lang].static
            if static is not None:
                frag["explanation"] = static
            self._fragments[key] = frag
        return frag

    def head(self, kind: str, verdict: Verdict) -> bytes:
        """`fragment` encoded as the start of an object (`{"kind":"access",...,`), once per
        kind and verdict."""
        key = (kind, id(verdict))
        done = self._heads.get(key)
        if done is None:
            done = self._heads[key] = b"{" + members(self.fragment(kind, verdict)) + b","
        return done

    def _explanation_kept(self, text: str) -> bytes:
        """`explanation_member`, kept per text (a handful of texts make most of an access
        log)."""
        done = self._explained.get(text)
        if done is None:
            done = explanation_member(text)
            if len(self._explained) >= _MAX_NAMES:
                self._explained.clear()
            self._explained[text] = done
        return done

    def template(self, verdict: Verdict) -> Template:
        """The verdict's explanation in this shaper's language."""
        return verdict.text[self.lang]

    def facts(self, kind: str, fields: Mapping[str, Any], verdict: Verdict | None
              ) -> dict[str, Any]:
        """The `ngx` object: kind, verdict and parsed fields."""
        if verdict is None:
            ngx: dict[str, Any] = {"kind": kind}
        else:
            frag = self.fragment(kind, verdict)
            ngx = frag.copy()
            if "explanation" not in frag:
                ngx["explanation"] = self._explain(self.template(verdict), fields)
        ngx.update(fields)
        if kind == "error":  # only the error parsers hand over values for the texts alone
            for name in _INTERNAL:
                ngx.pop(name, None)
        return ngx

    def encoded_facts(self, kind: str, fields: Mapping[str, Any], verdict: Verdict
                      ) -> Fragment | None:
        """`facts` (of fields with a key at least) as encoded JSON for a shaper with
        `encoded`, or None where the object must be built (a field named like a part of the
        verdict; a value orjson refuses)."""
        for name in _VERDICT_KEYS:
            if name in fields:
                return None
        try:
            rest = dumps(fields)[1:]
        except TypeError:
            return None
        head = self.head(kind, verdict)
        if "explanation" in self.fragment(kind, verdict):
            return Fragment(head + rest)
        text = self._explain(self.template(verdict), fields)
        return Fragment(b"".join((head, self._explanation_kept(text), rest)))

    def _explain(self, template: Template, fields: Mapping[str, Any]) -> str:
        """The explanation for `fields`; kept per value for a text that names one field
        (`{status}` of the 2xx text: a handful of values for most of an access log)."""
        if len(template.names) != 1:
            return template.render(fields)
        value = fields.get(template.names[0])
        if type(value) is not int and type(value) is not str:
            return template.render(fields)
        key = (id(template), value)  # templates live as long as the verdicts that hold them
        text = self._rendered.get(key)
        if text is None:
            text = template.render(fields)
            if len(self._rendered) >= _MAX_NAMES:
                self._rendered.clear()
            self._rendered[key] = text
        return text

    def record(self, base: dict[str, Any], ngx: dict[str, Any] | Fragment
               ) -> dict[str, Any]:
        """Combine the input record and the facts in the chosen schema (`ngx` encoded only
        for a shaper with `encoded`)."""
        if self.schema == "default" or not isinstance(ngx, dict):
            base[self.key] = ngx
            return base
        if self.schema == "flat":
            names = self.flat_names
            for name, value in ngx.items():
                base[names[name]] = value
            return base
        return self._ecs(base, ngx)

    def _ecs(self, base: dict[str, Any], ngx: dict[str, Any]) -> dict[str, Any]:
        raw = base.pop("log", None)
        if raw is not None and not isinstance(raw, str):
            base[f"{self.key}_log"] = raw  # `log` is an object in ECS; keep the value aside
        original = raw if isinstance(raw, str) else next(
            (base[k] for k in ("message", "msg") if isinstance(base.get(k), str)), None)
        if original is not None:
            base.setdefault("event", {})["original"] = original
        out: dict[str, Any] = base
        custom: dict[str, Any] = {}
        ecs = _ECS
        for name, value in ngx.items():
            place = ecs.get(name)
            if place is None:
                custom[name] = value
                continue
            parents, leaf = place
            node = out
            for part in parents:
                child = node.get(part)  # not setdefault, whose misses cost more compiled
                if child is None and part not in node:
                    child = node[part] = {}
                elif not isinstance(child, dict):
                    break
                node = child
            else:
                node[leaf] = value if name != "errno" else str(value)
        kind = ngx.get("kind")
        event = out.setdefault("event", {})
        event["kind"] = "event"
        event["module"] = "nginx"
        event["dataset"] = f"nginx.{kind}"
        event["category"] = ["web"]
        event["type"] = [kind if kind in ("access", "error") else "info"]
        if "time" in ngx:
            event["created"] = ngx["time"]
        out["message"] = ngx.get("message") or original or ""
        out[self.key] = custom
        return out



def members(obj: Mapping[str, Any]) -> bytes:
    """An object's members as encoded JSON, without the braces (empty for no members)."""
    return dumps(obj)[1:-1]


def explanation_member(text: str) -> bytes:
    """`"explanation":"...",` (the comma included: members follow it)."""
    return b'"explanation":' + dumps(text) + b","
