"""JSON encoding that never fails: whatever a record holds, one JSON document comes out.

Bytes become text (bad UTF-8 as U+FFFD), msgpack EventTime becomes RFC 3339 UTC with
nanoseconds, integers outside 64 bits and other objects become strings, lone surrogates are
replaced, and non-string keys are written as strings. `Packer` writes msgpack, restoring the
bytes of text that was decoded with surrogate escapes: ormsgpack packs what it packs as
msgpack does (str, bin, numbers, maps and arrays with string keys, ext types), about twice as
fast; msgpack packs the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgpack
import orjson
import ormsgpack
from orjson import dumps

from ngx_enrich.eventtime import NS, utc_text

_OPTIONS: Final = orjson.OPT_NON_STR_KEYS
# Types ormsgpack would write its own way are handed to `_ext`, which leaves them to msgpack.
_FAST: Final = (ormsgpack.OPT_PASSTHROUGH_BIG_INT | ormsgpack.OPT_PASSTHROUGH_DATACLASS
                | ormsgpack.OPT_PASSTHROUGH_DATETIME | ormsgpack.OPT_PASSTHROUGH_ENUM
                | ormsgpack.OPT_PASSTHROUGH_SUBCLASS | ormsgpack.OPT_PASSTHROUGH_UUID)
_LINE: Final = _OPTIONS | orjson.OPT_APPEND_NEWLINE


def event_time_text(seconds: int, nanos: int) -> str:
    """`2026-04-08T21:07:15.123456789Z`."""
    return utc_text(seconds * NS + nanos, 9)


def _default(obj: Any) -> Any:
    if isinstance(obj, bytes | bytearray):
        return bytes(obj).decode("utf-8", "replace")
    if isinstance(obj, msgpack.ExtType):
        if obj.code == 0 and len(obj.data) == 8:
            return event_time_text(int.from_bytes(obj.data[:4]), int.from_bytes(obj.data[4:]))
        return obj.data.hex()
    return str(obj)


def clean(value: Any) -> Any:
    """A copy orjson can always encode."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_clean_key(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    return value


def _clean_key(key: Any) -> str:
    if isinstance(key, bytes):
        return key.decode("utf-8", "replace")
    return clean(key) if isinstance(key, str) else str(key)


def encode_json(record: Any, *, newline: bool = False) -> bytes:
    """One JSON document for `record` (with a trailing newline if asked)."""
    option = _LINE if newline else _OPTIONS
    try:
        return orjson.dumps(record, default=_default, option=option)
    except TypeError:
        return orjson.dumps(clean(record), default=_default, option=option)


def json_lines(records: list[Any]) -> bytes:
    """JSON lines for a batch of records."""
    try:
        return b"".join([dumps(r, default=_default, option=_LINE) for r in records])
    except TypeError:  # one of them needs cleaning first
        return b"".join([encode_json(r, newline=True) for r in records])


class Packer:
    """msgpack for records whose text may hold surrogate escapes (bytes that were not UTF-8,
    kept as they came): ormsgpack first; for what it refuses, msgpack's own UTF-8 encoder,
    which refuses surrogates and is about twice as fast as the escaping one, then that one.
    Each writes what it writes the same bytes."""

    __slots__ = ("_escaped", "_plain")

    def __init__(self, default: Callable[[Any], Any] | None = None) -> None:
        self._plain = msgpack.Packer(use_bin_type=True, default=default).pack
        self._escaped = msgpack.Packer(use_bin_type=True, unicode_errors="surrogateescape",
                                       default=default).pack

    def pack(self, obj: Any) -> bytes:
        try:
            return ormsgpack.packb(obj, default=_ext, option=_FAST)
        except (TypeError, ValueError, OverflowError):  # surrogates, big ints, other types
            pass
        try:
            data: bytes = self._plain(obj)
        except UnicodeEncodeError:  # the packer's buffer is emptied on errors
            data = self._escaped(obj)
        return data


def _ext(obj: Any) -> Any:
    """ormsgpack's `default`: msgpack's ext type as ormsgpack's, nothing else."""
    if type(obj) is msgpack.ExtType:
        return ormsgpack.Ext(obj.code, obj.data)
    raise TypeError(type(obj).__name__)
