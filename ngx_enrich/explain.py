"""`ngx-enrich explain`: a readable account of one line, status code or message."""

from __future__ import annotations

from typing import Any

from ngx_enrich.pipeline import Enricher

_LABELS = {
    "en": {"what": "What happened", "check": "What to check", "parsed": "Parsed",
           "area": "area", "severity": "severity", "rule": "rule", "other":
           "This does not look like an Nginx log line, status code or message."},
    "zh": {"what": "发生了什么", "check": "需要检查", "parsed": "解析结果",
           "area": "领域", "severity": "严重程度", "rule": "规则", "other":
           "这看起来不像 Nginx 日志行、状态码或消息。"},
}
_SHOWN = ("level", "status", "syscall", "peer", "file_path", "errno", "errno_name", "ssl_error",
          "action", "side", "client", "server", "request", "upstream", "host", "zone", "excess",
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


def render(ngx: dict[str, Any], lang: str) -> str:
    """Plain text for a terminal."""
    words = _LABELS[lang]
    if ngx["kind"] == "other":
        return words["other"] + "\n"
    lines = [
        f"{ngx['category']}  ({words['area']}: {ngx['area']}, {words['severity']}: "
        f"{ngx['severity']}, {words['rule']}: {ngx['rule']})",
        "",
        words["what"],
        f"  {ngx['explanation']}",
        "",
        words["check"],
        f"  {ngx['hint'].split(': ', 1)[-1].split('：', 1)[-1]}",
    ]
    parsed = [f"  {key}: {ngx[key]}" for key in _SHOWN if key in ngx]
    if parsed:
        lines += ["", words["parsed"], *parsed]
    return "\n".join(lines) + "\n"
