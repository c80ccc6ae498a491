"""The Nginx record inside what wraps it on the way: container runtimes, syslog, init scripts.

Records arrive wrapped more often than bare: `docker compose logs` (`web_1  | ...`), a runtime's
RFC 3339 timestamp in front (`docker logs --timestamps`, log viewers), Kubernetes CRI files
(`<time> stderr F ...`), syslog (RFC 3164 and 5424, with or without `<PRI>`, Nginx's own
`error_log syslog:` output and journald's short form `Mon DD hh:mm:ss host nginx[pid]: `),
init scripts (`Restarting nginx: `) and cloud consoles' log stream names (`aws logs tail`:
`<time> web/nginx/1a2b3c <record>`). Wrappers nest; `unwrap` takes them off from the outside
in and says what they were (`kind`, outermost first) and what they told (their own time, host,
service, stream, syslog facility and severity, pid, log stream).
"""

from __future__ import annotations

import re
from typing import Any, Final

_RFC3339 = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?"
_COMPOSE_RE: Final = re.compile(r"([A-Za-z0-9][\w.-]{0,62})\s+\| ?", re.ASCII)
_CRI_RE: Final = re.compile(rf"({_RFC3339}) (stdout|stderr) ([FP]) ", re.ASCII)
_STAMP_RE: Final = re.compile(rf"({_RFC3339})[ \t]+", re.ASCII)
_PRI_RE: Final = re.compile(r"<(\d{1,3})>", re.ASCII)
# RFC 3164 / journald short: "Mon DD hh:mm:ss host tag[pid]: " (tag up to 48 characters)
_BSD_RE: Final = re.compile(
    r"([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (\S{1,255}) ([\w./-]{1,48})(?:\[(\d{1,10})\])?: ",
    re.ASCII)
# RFC 5424 after <PRI>: "1 TIMESTAMP HOST APP PROCID MSGID [SD]|- "
_IETF_RE: Final = re.compile(
    rf"1 ({_RFC3339}|-) (\S{{1,255}}) (\S{{1,48}}) (\S{{1,128}}) (\S{{1,32}}) "
    r"(?:-|(?:\[[^\]]*\])+) ", re.ASCII)
_INIT_RE: Final = re.compile(r"(?:Starting|Restarting|Reloading|Stopping) nginx: ", re.ASCII)
# A cloud console's log stream (or group/stream) name in front, as `aws logs tail` prints it
# after the time: taken only when an Nginx record follows.
_STREAM_RE: Final = re.compile(
    r"([\w.\-$]+(?:/[\w.\-$\[\]]+)+) (?=\d{4}/\d\d/\d\d |nginx: |\d{1,3}(?:\.\d{1,3}){3} |\[)",
    re.ASCII)
_MONTHS: Final = frozenset(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                     "Nov", "Dec"))
MAX_DEPTH: Final = 4


def _syslog(text: str, info: dict[str, Any]) -> int:
    """Length of a syslog header at the start of `text`, 0 when there is none."""
    pos = 0
    pri = _PRI_RE.match(text)
    if pri is not None:
        value = int(pri.group(1))
        if value > 191:
            return 0
        info["facility"], info["severity"] = divmod(value, 8)
        pos = pri.end()
    ietf = _IETF_RE.match(text, pos) if pri is not None else None
    if ietf is not None:
        stamp, host, app, procid = ietf.group(1, 2, 3, 4)
        if stamp != "-":
            info["time"] = stamp
        info["host"], info["service"] = host, app
        if procid.isdigit():
            info["pid"] = int(procid)
        return ietf.end()
    bsd = _BSD_RE.match(text, pos)
    if bsd is None or bsd.group(1)[:3] not in _MONTHS:
        return 0
    stamp, host, tag, pid = bsd.groups()
    info["time"], info["host"], info["service"] = stamp, host, tag
    if pid:
        info["pid"] = int(pid)
    return bsd.end()


def _layer(text: str, info: dict[str, Any]) -> tuple[str, int]:
    """The kind and length of the wrapper at the start of `text` ("", 0 when none)."""
    first = text[:1]
    if first.isdigit() and text[4:5] == "-":  # YYYY-: a timestamp, not an error-log date
        cri = _CRI_RE.match(text)
        if cri is not None:
            info["time"], info["stream"] = cri.group(1), cri.group(2)
            if cri.group(3) == "P":
                info["partial"] = True
            return "cri", cri.end()
        stamp = _STAMP_RE.match(text)
        if stamp is not None:
            info["time"] = stamp.group(1)
            return "timestamp", stamp.end()
    if first == "<" or first in "JFMASOND":
        size = _syslog(text, info)
        if size:
            return "syslog", size
    if first in "SR":
        init = _INIT_RE.match(text)
        if init is not None:
            return "init_script", init.end()
    if "/" in text[:120]:
        stream = _STREAM_RE.match(text)
        if stream is not None:
            info["log_stream"] = stream.group(1)
            return "log_stream", stream.end()
    if " | " in text[:80] or "  |" in text[:80]:
        compose = _COMPOSE_RE.match(text)
        if compose is not None:
            info["service"] = compose.group(1)
            return "docker_compose", compose.end()
    return "", 0


def unwrap(text: str) -> tuple[str, dict[str, Any] | None]:
    """The record inside the wrappers at the start of `text`, and what they were (or None)."""
    if text[:1].isdigit() and text[4:5] != "-" and " | " not in text[:80]:
        return text, None  # the common case: a bare error or access line
    kinds: list[str] = []
    info: dict[str, Any] = {}
    for _ in range(MAX_DEPTH):
        layer: dict[str, Any] = {}
        kind, size = _layer(text, layer)
        if not size:
            break
        kinds.append(kind)
        for key, value in layer.items():
            info.setdefault(key, value)  # the outermost wrapper's word wins
        text = text[size:]
    if not kinds:
        return text, None
    return text, {"kind": kinds, **info}


_DOCKER_KEYS: Final = frozenset(("log", "stream", "time", "attrs"))
_CRI_KEYS: Final = frozenset(("log", "stream", "time", "_p", "logtag"))


def record_wrapper(record: dict[str, Any]) -> dict[str, Any] | None:
    """What a decoded record says of its wrapper: a docker json-file object
    (`{"log", "stream", "time"}`) or a CRI line as Fluent Bit's `cri` parser splits it."""
    keys = record.keys()
    if "stream" not in keys or "time" not in keys:
        return None
    info: dict[str, Any] = {"stream": record["stream"], "time": record["time"]}
    if keys <= _DOCKER_KEYS:
        return {"kind": ["docker_json"], **info}
    if keys <= _CRI_KEYS:
        if record.get("_p", record.get("logtag")) == "P":
            info["partial"] = True
        return {"kind": ["cri"], **info}
    return None


def combine(outer: dict[str, Any] | None, inner: dict[str, Any] | None
            ) -> dict[str, Any] | None:
    """Two wrapper reports, the outer around the inner, as one."""
    if outer is None or inner is None:
        return outer or inner
    return {**inner, **outer, "kind": [*outer["kind"], *inner["kind"]]}
