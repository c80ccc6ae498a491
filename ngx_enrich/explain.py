"""`ngx-enrich explain`: a readable account of one line, status code or message."""

from __future__ import annotations

from typing import Any

from ngx_enrich.pipeline import Enricher

_SHOWN = ("level", "status", "syscall", "peer", "file_path", "errno", "errno_name", "ssl_error",
          "action", "client", "server", "request", "upstream", "host", "zone", "excess",
          "directive", "conf_file", "conf_line", "pool", "method", "path")
_SYNTHETIC = ("remote_addr", "ident", "time", "request", "method", "path", "protocol", "bytes")
_BARE_PREFIX = "1970/01/01 00:00:00 [{level}] 0#0: "


def as_record(text: str, enricher: Enricher) -> dict[str, Any]:
    """Enrich a line; a bare status code or message is completed into a line first."""
    text = text.strip()
    if text.isdigit() and len(text) == 3:
        line = f'- - - [01/Jan/1970:00:00:00 +0000] "GET / HTTP/1.1" {text} 0 "-" "-"'
        ngx: dict[str, Any] = enricher.enrich_line(line)[enricher.options.key]
        return {k: v for k, v in ngx.items() if k not in _SYNTHETIC}
    ngx = enricher.enrich_line(text)[enricher.options.key]
    if ngx["kind"] != "other":
        return ngx
    for level in ("info", "error"):
        bare = enricher.enrich_line(_BARE_PREFIX.format(level=level) + text)
        ngx = bare[enricher.options.key]
        if ngx.get("rule") != "fallback":
            break
    for key in ("time", "pid", "tid"):
        ngx.pop(key, None)
    return ngx


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
