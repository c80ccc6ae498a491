"""Forward protocol v1 without I/O: requests, event streams, acks and the shared-key handshake.

Requests are `[tag, time, record, option?]` (Message), `[tag, [entry, ...], option?]` (Forward),
`[tag, stream, option?]` with the entries packed back to back in a `bin` or `str` (PackedForward)
and the same stream gzipped (CompressedPackedForward). An entry is `[time, record]` or Fluent Bit's
`[[time, metadata], record]`. Times are EventTime (ext type 0), integers or floats and are kept as
decoded, so re-encoding them gives back the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeAlias, cast

import msgpack

from ngx_enrich import eventtime
from ngx_enrich.encode import Packer
from ngx_enrich.text import as_text

EVENT_TIME = 0
"""msgpack ext type code of EventTime."""

Time: TypeAlias = int | float | msgpack.ExtType
Record: TypeAlias = dict[str, Any]

_SURROGATE = "surrogateescape"
_EVENT_TIME_STRUCT = struct.Struct(">II")
_MAX_FORMATTED: Final = 4096


class ProtocolError(ValueError):
    """A request that cannot be served; `close` tells whether to drop the connection."""

    def __init__(self, message: str, *, close: bool = True) -> None:
        super().__init__(message)
        self.close = close


class HandshakeError(ProtocolError):
    """The HELO/PING/PONG exchange failed."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Decoding limits, per connection."""

    max_buffer: int = 8 << 20
    """Largest request accepted, in bytes (also caps every string, binary and array)."""
    max_decompressed: int = 32 << 20
    """Largest gzip payload after decompression, in bytes."""
    max_map_len: int = 1 << 16
    """Most keys in one map."""


def unpacker(limits: Limits, size: int | None = None) -> msgpack.Unpacker:
    """A streaming unpacker bounded by `limits` (`size` overrides the buffer bound)."""
    size = size or limits.max_buffer
    return msgpack.Unpacker(
        unicode_errors=_SURROGATE,
        max_buffer_size=size,
        max_str_len=size,
        max_bin_len=size,
        max_array_len=size,
        max_map_len=min(limits.max_map_len, size),
        max_ext_len=1024,
        ext_hook=_ext_type,
    )


def _ext_type(code: int, data: bytes) -> msgpack.ExtType:
    """`msgpack.ExtType(code, data)` without the checks of its Python constructor for the
    values the unpacker hands over (an ext code of 0 to 127 with its bytes)."""
    if 0 <= code <= 127:
        return cast(msgpack.ExtType, tuple.__new__(msgpack.ExtType, (code, data)))
    return msgpack.ExtType(code, data)


# -- times -------------------------------------------------------------------------------------


def event_time(seconds: int, nanoseconds: int = 0) -> msgpack.ExtType:
    """EventTime for `seconds` since the epoch plus `nanoseconds`."""
    return eventtime.event_time(seconds * eventtime.NS + nanoseconds)


def is_time(value: object) -> bool:
    """Whether `value` is an event time this hop accepts."""
    if type(value) is int:
        return value >= 0
    if isinstance(value, msgpack.ExtType):
        return value.code == EVENT_TIME and len(value.data) == 8
    if type(value) is float:
        return math.isfinite(value) and value >= 0
    return False


def time_ns(value: Time) -> int:
    """Nanoseconds since the epoch of an event time."""
    if isinstance(value, msgpack.ExtType):
        seconds, nanos = _EVENT_TIME_STRUCT.unpack(value.data)
        return int(seconds) * 1_000_000_000 + int(nanos)
    if isinstance(value, float):
        whole: int = math.floor(value)
        return whole * 1_000_000_000 + round((value - whole) * 1e9)
    return int(value) * 1_000_000_000


class TimeFormatter:
    """Formats event times as RFC 3339 UTC strings with nanoseconds, caching the second and
    the last times met (events of one second often share their time)."""

    __slots__ = ("_done", "_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""
        self._done: dict[Time, str] = {}

    def __call__(self, value: Time) -> str:
        text = self._done.get(value)
        if text is None:
            text = self._format(value)
            if len(self._done) >= _MAX_FORMATTED:
                self._done.clear()
            self._done[value] = text
        return text

    def _format(self, value: Time) -> str:
        seconds, nanos = divmod(time_ns(value), 1_000_000_000)
        if seconds != self._second:
            stamp = datetime.fromtimestamp(seconds, UTC)
            self._prefix = stamp.strftime("%Y-%m-%dT%H:%M:%S")
            self._second = seconds
        return f"{self._prefix}.{nanos:09d}Z"


# -- requests ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    """One decoded request; iterate `events()` to get its valid `(time, record)` pairs."""

    tag: str
    mode: str
    body: Any
    options: dict[Any, Any]
    skipped: int = 0

    @property
    def chunk(self) -> str | bytes | None:
        """The `chunk` option: when present, the sender waits for `{"ack": chunk}`."""
        return self.options.get("chunk")

    @property
    def size(self) -> int | None:
        """The `size` option (number of entries) if the sender gave one."""
        size = self.options.get("size")
        return size if type(size) is int else None

    def events(self, limits: Limits) -> Iterator[tuple[Time, Record]]:
        """Yield valid events; invalid entries are counted in `skipped`.

        Raises ProtocolError when a packed stream is undecodable, so a request is never half
        delivered.
        """
        if self.mode == "message":
            time, record = self.body
            if is_time(time) and type(record) is dict:
                yield time, record
            else:
                self.skipped += 1
            return
        entries = self.body if self.mode == "forward" else _stream(self.body, self.options, limits)
        for entry in entries:
            event = _entry(entry)
            if event is None:
                self.skipped += 1
            else:
                yield event


def parse_request(obj: Any) -> Request | None:
    """Validate the shape of a decoded request; None for a heartbeat (`nil`).

    Raises ProtocolError: `close=False` for a value that is not an array (ignored, as the
    specification asks), `close=True` for an array that is not a valid request.
    """
    if obj is None:
        return None
    if type(obj) is not list:
        raise ProtocolError(f"ignored a request that is a {type(obj).__name__}", close=False)
    count = len(obj)
    if not 2 <= count <= 4:
        raise ProtocolError(f"request array has {count} elements")
    tag, second = obj[0], obj[1]
    if type(tag) is bytes:  # Fluentd may send the tag as bin
        tag = as_text(tag)[0]
    if type(tag) is not str:
        raise ProtocolError(f"tag is a {type(tag).__name__}, not a string")
    kind = type(second)
    if kind is list or kind is bytes or kind is str:
        if count > 3:
            raise ProtocolError(f"request array has {count} elements")
        mode = "forward" if kind is list else "packed"
        body = second
        if kind is str:
            body = second.encode("utf-8", _SURROGATE)
        options = obj[2] if count == 3 else None
    elif kind is int or kind is float or kind is msgpack.ExtType:
        if count < 3:
            raise ProtocolError("message request has no record")
        mode, body = "message", (second, obj[2])
        options = obj[3] if count == 4 else None
    else:
        raise ProtocolError(f"second element is a {kind.__name__}")
    if options is None:
        options = {}
    elif type(options) is not dict:
        raise ProtocolError(f"option is a {type(options).__name__}, not a map")
    else:  # keys and values as text, but `chunk` is echoed back exactly as it came
        options = {as_text(k)[0]: v if k in ("chunk", b"chunk") else as_text(v)[0]
                   for k, v in options.items()}
    chunk = options.get("chunk")
    if chunk is not None and type(chunk) not in (str, bytes):
        raise ProtocolError(f"chunk option is a {type(chunk).__name__}")
    return Request(tag, mode, body, options)


def _entry(entry: Any) -> tuple[Time, Record] | None:
    if type(entry) is not list or len(entry) != 2:
        return None
    head, record = entry
    if type(record) is not dict:
        return None
    if type(head) is list:  # [[time, metadata], record]
        if len(head) != 2 or (head[1] is not None and type(head[1]) is not dict):
            return None
        head = head[0]
    return (head, record) if is_time(head) else None


def _stream(payload: bytes, options: dict[Any, Any], limits: Limits) -> Iterator[Any]:
    compressed = options.get("compressed")
    if compressed == "gzip" or payload[:2] == b"\x1f\x8b":
        payload = gunzip(payload, limits.max_decompressed)
    elif compressed not in (None, "text"):
        raise ProtocolError(f"unsupported compression {compressed!r}")
    if not payload:
        return
    stream = unpacker(limits, max(len(payload), 1024))
    stream.feed(payload)
    end = 0
    while True:
        try:
            entry = next(stream)
        except StopIteration:
            break
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}"
            raise ProtocolError(f"undecodable packed entries ({why})") from exc
        end = stream.tell()  # after a whole entry, tell() is where it ends
        yield entry
    if end != len(payload):
        raise ProtocolError("packed entries end in the middle of an entry")


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress one or more concatenated gzip members, refusing to exceed `limit` bytes."""
    out = bytearray()
    rest = data
    try:
        while rest and rest.strip(b"\0"):
            inflater = zlib.decompressobj(wbits=31)
            pending = rest
            while not inflater.eof:
                piece = inflater.decompress(pending, limit + 1 - len(out))
                out += piece
                if len(out) > limit:
                    raise ProtocolError(f"gzip payload inflates beyond {limit} bytes")
                pending = inflater.unconsumed_tail
                if not piece and not pending and not inflater.eof:
                    raise ProtocolError("truncated gzip payload")
            rest = inflater.unused_data
    except zlib.error as exc:
        raise ProtocolError(f"corrupt gzip payload ({exc})") from exc
    return bytes(out)


# -- encoding ----------------------------------------------------------------------------------


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, set | frozenset):
        return list(obj)
    return str(obj)


def pack(obj: Any) -> bytes:
    """`obj` as msgpack, the bytes of strings decoded with surrogate escapes restored."""
    return Packer(_pack_default).pack(obj)


class EntryPacker:
    """Builds a PackedForward stream of plain `[time, record]` entries."""

    __slots__ = ("_buf", "_ends", "_pack", "count")

    def __init__(self) -> None:
        self._pack = Packer(_pack_default).pack
        self._buf = bytearray()
        self._ends: list[int] = []
        self.count = 0

    def add(self, time: Time, record: Record) -> None:
        """Append one entry (the time is packed as given, so EventTime stays exact)."""
        self._buf += self._pack([time, record])
        self._ends.append(len(self._buf))
        self.count += 1

    def payload(self) -> bytes:
        """The packed entries."""
        return bytes(self._buf)

    def pieces(self, limit: int) -> Iterator[tuple[bytes, int]]:
        """The entries as payloads of at most `limit` bytes each (an entry larger than that
        goes alone), with their entry counts."""
        start = count = 0
        for n, end in enumerate(self._ends):
            if end - start > limit and count:
                cut = self._ends[n - 1]
                yield bytes(self._buf[start:cut]), count
                start, count = cut, 0
            count += 1
        if count:
            yield bytes(self._buf[start:]), count


def encode_packed_forward(
    tag: str, payload: bytes, *, size: int, chunk: str | bytes | None = None
) -> bytes:
    """A PackedForward request with the entries as `bin` and options `size` and `chunk`."""
    options: dict[str, Any] = {"size": size}
    if chunk is not None:
        options["chunk"] = chunk
    return pack([tag, payload, options])


def encode_ack(chunk: str | bytes) -> bytes:
    """The `{"ack": chunk}` response, echoing the chunk's bytes and type."""
    return pack({"ack": chunk})


def new_chunk_id() -> str:
    """A fresh `chunk` value: Base64 of 128 random bits."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


# -- handshake ---------------------------------------------------------------------------------


def _raw(value: str | bytes) -> bytes:
    return value.encode("utf-8", _SURROGATE) if isinstance(value, str) else value


def shared_key_digest(salt: str | bytes, hostname: str, nonce: str | bytes, shared_key: str) -> str:
    """Hex SHA-512 of salt + hostname + nonce + shared key, as PING and PONG carry it."""
    digest = hashlib.sha512(_raw(salt))
    digest.update(_raw(hostname))
    digest.update(_raw(nonce))
    digest.update(_raw(shared_key))
    return digest.hexdigest()


def make_helo(nonce: bytes) -> bytes:
    """The server's HELO (no user authentication, keepalive allowed)."""
    return pack(["HELO", {"nonce": nonce, "auth": b"", "keepalive": True}])


def read_helo(msg: Any) -> bytes:
    """The nonce of a HELO; raises HandshakeError when `msg` is not one."""
    if type(msg) is not list or len(msg) != 2 or as_text(msg[0])[0] != "HELO" \
            or type(msg[1]) is not dict:
        raise HandshakeError(f"expected HELO, got {brief(msg)}")
    options = {as_text(k)[0]: v for k, v in msg[1].items()}
    nonce = options.get("nonce")
    if not isinstance(nonce, str | bytes):
        raise HandshakeError("HELO carries no nonce")
    # `auth` is a salt for user authentication. Fluentd's in_forward sends one whenever it has
    # a <security> section, users or not, so it proves nothing: the PING carries an empty
    # username, and a server that does require users refuses it in its PONG.
    return _raw(nonce)


def make_ping(hostname: str, salt: str | bytes, nonce: bytes, shared_key: str) -> bytes:
    """The client's PING for a HELO with `nonce`."""
    digest = shared_key_digest(salt, hostname, nonce, shared_key)
    return pack(["PING", hostname, salt, digest, "", ""])


def check_ping(msg: Any, *, nonce: bytes, shared_key: str, self_hostname: str) -> tuple[bytes, str]:
    """Verify a PING; return the client's salt and hostname or raise HandshakeError."""
    if type(msg) is not list or len(msg) != 6 or as_text(msg[0])[0] != "PING":
        raise HandshakeError(f"expected PING, got {brief(msg)}")
    _, hostname, salt, digest = msg[:4]
    hostname, digest = as_text(hostname)[0], as_text(digest)[0]
    if type(hostname) is not str or type(salt) not in (str, bytes) or type(digest) is not str:
        raise HandshakeError("PING has fields of the wrong type")
    if hostname == self_hostname:
        raise HandshakeError("client and server use the same hostname")
    expected = shared_key_digest(salt, hostname, nonce, shared_key)
    if not hmac.compare_digest(expected, digest):
        raise HandshakeError("shared key mismatch")
    return _raw(salt), hostname


def make_pong(
    ok: bool, reason: str, self_hostname: str, salt: bytes, nonce: bytes, shared_key: str
) -> bytes:
    """The server's PONG; the digest proves the server knows the shared key too."""
    digest = shared_key_digest(salt, self_hostname, nonce, shared_key) if ok else ""
    return pack(["PONG", ok, reason, self_hostname, digest])


def check_pong(
    msg: Any, *, salt: str | bytes, nonce: bytes, shared_key: str, self_hostname: str
) -> None:
    """Verify a PONG or raise HandshakeError."""
    if type(msg) is not list or len(msg) != 5 or as_text(msg[0])[0] != "PONG":
        raise HandshakeError(f"expected PONG, got {brief(msg)}")
    _, ok, reason, hostname, digest = as_text(msg)[0]
    if ok is not True:
        raise HandshakeError(f"authentication refused: {reason}")
    if type(hostname) is not str or type(digest) is not str:
        raise HandshakeError("PONG has fields of the wrong type")
    if hostname == self_hostname:
        raise HandshakeError("client and server use the same hostname")
    if not hmac.compare_digest(shared_key_digest(salt, hostname, nonce, shared_key), digest):
        raise HandshakeError("server proved a different shared key")


def brief(msg: Any) -> str:
    """A short repr of a decoded value for log lines."""
    text = repr(msg)
    return text if len(text) <= 60 else text[:57] + "..."
