"""`ngx-enrich explain`: a readable account of one line, status code or message."""

from __future__ import annotations

from typing import Any

from ngx_enrich.parse.errorlog import split_message
from ngx_enrich.pipeline import Enricher
from ngx_enrich.record import ErrorFields

_SHOWN = ("level", "status", "syscall", "peer", "file_path", "errno", "errno_name", "ssl_error",
          "action", "client", "server", "request", "upstream", "host", "zone", "excess",
          "directive", "conf_file", "conf_line", "pool", "method", "path")


def as_record(text: str, enricher: Enricher) -> dict[str, Any]:
    """The facts about a whole line, a bare status code or a bare message."""
    text = text.strip()
    if text.isdigit() and len(text) == 3:
        code = int(text)
        return enricher.shaper.facts("access", {"status": code}, enricher.classifier.status(code))
    ngx: dict[str, Any] = enricher.enrich_line(text)[enricher.options.key]
    if ngx["kind"] != "other":
        return ngx
    # A message without its line: read it as the message of an error record, at the level
    # its rule is most likely logged at.
    for level in ("info", "error"):
        fields: ErrorFields = {"level": level}
        split_message(text, fields)
        verdict = enricher.classifier.error(fields)
        if verdict.rule != "fallback":
            break
    return enricher.shaper.facts("error", fields, verdict)


def render(ngx: dict[str, Any], lang: str, phrases: dict[str, str]) -> str:
    """Plain text for a terminal; `phrases` are the catalogue's words for `lang`."""
    words = phrases
    if ngx["kind"] == "other":
        return words["explain_other"] + "\n"
    lines = [
        f"{ngx['category']}  ({words['explain_area']}: {ngx['area']}, "
        f"{words['explain_severity']}: {ngx['severity']}, {words['explain_rule']}: "
        f"{ngx['rule']})",
        "",
        words["explain_what"],
        f"  {ngx['explanation']}",
        "",
        words["explain_check"],
        f"  {ngx['hint'].removeprefix(words['hint_prefix'])}",
    ]
    parsed = [f"  {key}: {ngx[key]}" for key in _SHOWN if key in ngx]
    if parsed:
        lines += ["", words["explain_parsed"], *parsed]
    return "\n".join(lines) + "\n"
