"""A record's own time, read back from the enriched record, for the pipeline's event time.

A raw line read by a tailer carries the time it was read; the line itself says when it was
written. Where the enrichment parsed a time (`time` in the added object, or `KEY_time` in the
flat schema) the pipeline modes can make that the event time, which is what Elasticsearch's
`@timestamp` is made from. Error-log times carry no zone and are read in the local zone.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from datetime import UTC, datetime
from typing import Any, Final

import msgpack

NS: Final = 1_000_000_000


def _zone() -> tuple[object, ...]:
    return (time.tzname, time.timezone, time.altzone)


@functools.lru_cache(maxsize=4096)
def _iso_ns(text: str, zone: object) -> int | None:
    """Nanoseconds since the epoch of ISO 8601 text (naive text is local time)."""
    with contextlib.suppress(OverflowError, OSError, ValueError):
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.astimezone()
        whole = int(moment.replace(microsecond=0).timestamp())
        return whole * NS + moment.microsecond * 1000
    return None


def iso_ns(text: str) -> int | None:
    """Nanoseconds since the epoch of ISO 8601 text (naive text is local time); None if it
    is not such a time."""
    return _iso_ns(text, _zone())


def own_time_ns(record: dict[str, Any], key: str = "ngx") -> int | None:
    """The enriched record's own time in nanoseconds since the epoch, if it has one."""
    return _ns_of(own_value(record, key))


def own_value(record: dict[str, Any], key: str) -> Any:
    """The enriched record's `time` as it holds it (in the `ngx` object, or `ngx_time`)."""
    ngx = record.get(key)
    return ngx.get("time") if isinstance(ngx, dict) else record.get(f"{key}_time")


def _ns_of(value: Any) -> int | None:
    if isinstance(value, str):
        return _iso_ns(value, _zone())
    if (type(value) is int or type(value) is float) and math.isfinite(value) and value >= 0:
        return round(value * NS)
    return None


_MAX_RESTAMPED: Final = 4096
# (own time's text, type of the old value) -> (restamped or None, the zone it was read in:
# None where the text names its offset, or is no time, so the zone does not matter)
_restamped: dict[tuple[str, type], tuple[Any, object]] = {}


def restamped(value: Any, old: Any) -> Any:
    """A record's own time (`value`, as `own_value` reads it) in the form of `old` (see
    `like`); `old` itself when the record has no time of its own. Cached by the own time's
    text, since records of one second share it."""
    if type(value) is not str:
        ns = _ns_of(value)
        return old if ns is None else like(old, ns)
    memo = (value, type(old))
    done = _restamped.get(memo)
    if done is None or (done[1] is not None and done[1] != _zone()):
        zone = _zone()
        ns = _iso_ns(value, zone)
        done = (None if ns is None else like(old, ns), zone if _naive(value) else None)
        if len(_restamped) >= _MAX_RESTAMPED:
            _restamped.clear()
        _restamped[memo] = done
    return old if done[0] is None else done[0]


def _naive(text: str) -> bool:
    """Whether `text` is an ISO 8601 time without an offset (read in the local zone)."""
    try:
        return datetime.fromisoformat(text).tzinfo is None
    except ValueError:
        return False


_NO_TIME: Final = msgpack.ExtType(0, b"")  # stands for "none of its own" in `own_event_time`


def own_event_time(record: dict[str, Any], key: str = "ngx") -> msgpack.ExtType | None:
    """The enriched record's own time as forward-protocol EventTime; None if it has none."""
    return event_time_of(own_value(record, key))


def event_time_of(value: Any) -> msgpack.ExtType | None:
    """A record's own time (as `own_value` reads it) as EventTime; None if it is none."""
    stamp = restamped(value, _NO_TIME)
    return None if stamp is _NO_TIME else stamp


def own_time_text(record: dict[str, Any], key: str = "ngx") -> str | None:
    """The enriched record's own time as UTC text with microseconds, if it has one."""
    ns = own_time_ns(record, key)
    return None if ns is None else utc_text(ns)


def utc_iso(moment: datetime) -> str:
    """`2026-11-29T18:20:26.123456Z`; a moment without a zone is taken as local time."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_text(ns: int, digits: int = 6, zone: str = "Z") -> str:
    """`2026-11-29T18:20:26.123456Z` (`digits` of fraction, `zone` as the suffix)."""
    seconds, nanos = divmod(ns, NS)
    return f"{_utc_second(seconds)}.{nanos:09d}"[: 20 + digits] + zone


@functools.lru_cache(maxsize=1024)
def _utc_second(seconds: int) -> str:
    """`2026-11-29T18:20:26`; cached, as records come in runs of the same second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


@functools.lru_cache(maxsize=1024)
def event_time(ns: int) -> msgpack.ExtType:
    """Forward-protocol EventTime (msgpack ext type 0); cached, as lines share their second."""
    seconds, nanos = divmod(ns, NS)
    return msgpack.ExtType(0, seconds.to_bytes(4, "big") + nanos.to_bytes(4, "big"))


def like(old: Any, ns: int) -> Any:
    """`ns` in the form of `old`, the time value a record arrived with.

    Text becomes UTC with nanoseconds and a `+0000` offset (what Fluentd's `<inject>` writes
    with `time_format %Y-%m-%dT%H:%M:%S.%N%z` and `utc true`); an integer stays whole seconds,
    a float becomes float seconds, EventTime stays EventTime.
    """
    if isinstance(old, msgpack.ExtType):
        return event_time(ns)
    if type(old) is int:
        return ns // NS
    if type(old) is float:
        return ns / NS
    return utc_text(ns, 9, "+0000")
