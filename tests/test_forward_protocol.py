"""Forward protocol v1 decoding and encoding, without sockets."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
from typing import Any

import msgpack
import ormsgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngx_enrich.forward import protocol
from ngx_enrich.forward.protocol import Limits, ProtocolError

LIMITS = Limits()
T0 = protocol.event_time(1714557600, 123456789)


def pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def decode(frame: bytes, limits: Limits = LIMITS) -> list[Any]:
    unpacker = protocol.unpacker(limits)
    unpacker.feed(frame)
    return list(unpacker)


def events(obj: object) -> tuple[list[tuple[object, dict]], protocol.Request]:
    request = protocol.parse_request(obj)
    assert request is not None
    return list(request.events(LIMITS)), request


def stream(*entries: object) -> bytes:
    return b"".join(pack(e) for e in entries)


# -- times -------------------------------------------------------------------------------------


def test_event_time_is_ext0_big_endian_seconds_and_nanoseconds() -> None:
    assert pack(T0) == b"\xd7\x00" + struct.pack(">II", 1714557600, 123456789)
    assert protocol.time_ns(T0) == 1714557600_123456789
    assert protocol.time_ns(1714557600) == 1714557600_000000000
    assert protocol.time_ns(1714557600.5) == 1714557600_500000000


def test_ext8_event_time_is_accepted() -> None:
    frame = b"\x93\xa1t" + b"\xc7\x08\x00" + struct.pack(">II", 7, 9) + b"\x81\xa1k\xa1v"
    (obj,) = decode(frame)
    got, _ = events(obj)
    assert [(protocol.time_ns(t), r) for t, r in got] == [(7_000_000_009, {"k": "v"})]


def test_time_formatter_keeps_nanoseconds() -> None:
    fmt = protocol.TimeFormatter()
    assert fmt(T0) == "2024-05-01T10:00:00.123456789Z"
    assert fmt(protocol.event_time(1714557600, 5)) == "2024-05-01T10:00:00.000000005Z"
    assert fmt(0) == "1970-01-01T00:00:00.000000000Z"


@pytest.mark.parametrize(
    "value, ok",
    [
        (0, True),
        (1.5, True),
        (T0, True),
        (-1, False),
        (True, False),
        (float("nan"), False),
        ("1714557600", False),
        (msgpack.ExtType(1, b"\0" * 8), False),
        (msgpack.ExtType(0, b"\0" * 4), False),
        (None, False),
    ],
)
def test_is_time(value: object, ok: bool) -> None:
    assert protocol.is_time(value) is ok


# -- modes -------------------------------------------------------------------------------------


def test_message_mode_with_option() -> None:
    (obj,) = decode(pack(["nginx.error", T0, {"log": "x"}, {"chunk": "abc"}]))
    got, request = events(obj)
    assert request.mode == "message"
    assert request.chunk == "abc"
    assert got == [(T0, {"log": "x"})]


def test_forward_mode_accepts_both_entry_layouts() -> None:
    entries = [[T0, {"n": 1}], [[T0, {"meta": 1}], {"n": 2}], [[5, None], {"n": 3}], [6, {"n": 4}]]
    (obj,) = decode(pack(["t", entries, {"size": 4}]))
    got, request = events(obj)
    assert request.mode == "forward" and request.size == 4
    assert got == [(T0, {"n": 1}), (T0, {"n": 2}), (5, {"n": 3}), (6, {"n": 4})]
    assert request.skipped == 0


@pytest.mark.parametrize("as_str", [False, True])
def test_packed_forward_bin_and_str(as_str: bool) -> None:
    # A record holding bytes that are not UTF-8 inside a str: the payload is not valid UTF-8
    # either, which is what Fluentd's str32 frames look like.
    raw_record = b"\x82\xa3log\xa4a\xffb\xc3\xa1n\x01"
    payload = pack([T0, {"n": 0}]) + b"\x92\xd7\x00" + T0.data + raw_record
    header = b"\x93\xa1t" + (b"\xdb" if as_str else b"\xc6") + struct.pack(">I", len(payload))
    frame = header + payload + pack({"chunk": "c1\n"})
    (obj,) = decode(frame)
    got, request = events(obj)
    assert request.mode == "packed"
    assert request.chunk == "c1\n"
    assert [r["n"] for _, r in got] == [0, 1]
    # the odd bytes survive: packing the record again gives the original bytes
    assert protocol.pack(got[1][1]) == raw_record


def test_compressed_packed_forward_multi_member_gzip() -> None:
    first = gzip.compress(stream(*([T0, {"n": i}] for i in range(3))))
    second = gzip.compress(stream(*([T0, {"n": i}] for i in range(3, 5))))
    obj = ["t", first + second, {"compressed": "gzip", "size": 5, "chunk": b"\x00\x01"}]
    got, request = events(decode(pack(obj))[0])
    assert [r["n"] for _, r in got] == [0, 1, 2, 3, 4]
    assert request.chunk == b"\x00\x01"


def test_gzip_is_detected_without_the_option() -> None:
    obj = ["t", gzip.compress(stream([1, {"a": 1}])), {"compressed": "text"}]
    got, _ = events(obj)
    assert got == [(1, {"a": 1})]


def test_gzip_bomb_is_refused() -> None:
    bomb = gzip.compress(stream(*([1, {"pad": "x" * 1000}] for _ in range(2000))))
    request = protocol.parse_request(["t", bomb, {"compressed": "gzip"}])
    assert request is not None
    with pytest.raises(ProtocolError, match="inflates beyond"):
        list(request.events(Limits(max_decompressed=100_000)))


@pytest.mark.parametrize(
    "payload, message",
    [
        (gzip.compress(b"\x92\x01\x80")[:-12], "truncated|corrupt"),
        (b"\x1f\x8bnot gzip at all", "corrupt"),
        (stream([1, {"a": 1}]) + b"\x92\x01", "middle of an entry"),
        (stream([1, {"a": 1}]) + b"\xc1", "undecodable"),
    ],
)
def test_broken_packed_streams_are_refused_whole(payload: bytes, message: str) -> None:
    request = protocol.parse_request(["t", payload])
    assert request is not None
    with pytest.raises(ProtocolError, match=message):
        list(request.events(LIMITS))


def test_unsupported_compression_is_refused() -> None:
    request = protocol.parse_request(["t", b"\x28\xb5\x2f\xfd....", {"compressed": "zstd"}])
    assert request is not None
    with pytest.raises(ProtocolError, match="zstd"):
        list(request.events(LIMITS))


def test_invalid_entries_are_skipped_and_counted() -> None:
    entries = [
        [T0, {"ok": 1}],
        [T0, "not a map"],
        ["noon", {"a": 1}],
        [-1, {"group": "marker"}],
        [msgpack.ExtType(3, b"\0" * 8), {"a": 1}],
        [T0],
        [[T0, "meta"], {"a": 1}],
        "entry",
        [2, {"ok": 2}],
    ]
    got, request = events(["t", entries])
    assert [r for _, r in got] == [{"ok": 1}, {"ok": 2}]
    assert request.skipped == 7


def test_message_with_a_bad_record_is_skipped() -> None:
    # Fluentd may send the tag and option keys as bin: read as text, chunk echoed as sent
    got, request = events([b"nginx.error", [[1, {b"log": b"x"}]], {b"chunk": b"c", b"size": 1}])
    assert request.tag == "nginx.error" and request.chunk == b"c" and request.size == 1
    assert got == [(1, {b"log": b"x"})]  # records are decoded by the enricher, not here
    got, request = events(["t", 1, ["not", "a", "map"], {"chunk": "x"}])
    assert got == [] and request.skipped == 1 and request.chunk == "x"


def test_nil_is_a_heartbeat() -> None:
    assert protocol.parse_request(None) is None


@pytest.mark.parametrize(
    "obj, close",
    [
        ({"tag": "t"}, False),
        (42, False),
        ("tag", False),
        (["t"], True),
        (["t", 1, {}, {}, "extra"], True),
        ([7, [[1, {}]]], True),
        (["t", {"a": 1}], True),
        (["t", None], True),
        (["t", [[1, {}]], "options"], True),
        (["t", [[1, {}]], {"chunk": 5}], True),
        (["t", 1], True),
    ],
)
def test_bad_requests(obj: object, close: bool) -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.parse_request(obj)
    assert info.value.close is close


# -- limits ------------------------------------------------------------------------------------


def test_huge_declared_map_is_rejected_by_the_unpacker() -> None:
    unpacker = protocol.unpacker(LIMITS)
    unpacker.feed(b"\xdf" + struct.pack(">I", 100_000_000))
    with pytest.raises(ValueError, match="max_map_len"):
        next(unpacker)


def test_huge_declared_array_is_rejected_by_the_unpacker() -> None:
    unpacker = protocol.unpacker(Limits(max_buffer=1 << 20))
    unpacker.feed(b"\xdd" + struct.pack(">I", 0xFFFFFFFF))
    with pytest.raises(ValueError, match="max_array_len"):
        next(unpacker)


def test_oversized_request_overflows_the_buffer() -> None:
    unpacker = protocol.unpacker(Limits(max_buffer=4096))
    with pytest.raises(msgpack.exceptions.BufferFull):
        unpacker.feed(b"\xc6" + struct.pack(">I", 10_000) + b"\0" * 5000)


def test_gunzip_limit_is_exact() -> None:
    data = b"a" * 1000
    blob = gzip.compress(data) + gzip.compress(data)
    assert protocol.gunzip(blob, 2000) == data * 2
    with pytest.raises(ProtocolError):
        protocol.gunzip(blob, 1999)


# -- encoding ----------------------------------------------------------------------------------


def test_entry_packer_keeps_times_and_records_exact() -> None:
    packer = protocol.EntryPacker()
    packer.add(T0, {"log": "a\udcffb", "n": 1})
    packer.add(1714557600.25, {"n": 2})
    packer.add(1714557600, {"n": 3})
    payload = packer.payload()
    assert payload.startswith(b"\x92\xd7\x00" + T0.data)
    frame = protocol.encode_packed_forward("t", payload, size=packer.count, chunk="c")
    (obj,) = decode(frame)
    assert obj[0] == "t" and isinstance(obj[1], bytes) and obj[2] == {"size": 3, "chunk": "c"}
    got, _ = events(obj)
    assert got == [
        (T0, {"log": "a\udcffb", "n": 1}),
        (1714557600.25, {"n": 2}),
        (1714557600, {"n": 3}),
    ]
    assert b"a\xffb" in payload


@pytest.mark.parametrize("chunk", ["p8n9gmxTQVC8/nh2wlKKeQ==\n", b"\x00\xffraw", "ü"])
def test_ack_echoes_the_chunk(chunk: str | bytes) -> None:
    ack = protocol.encode_ack(chunk)
    assert msgpack.unpackb(ack) == {"ack": chunk}
    (obj,) = decode(pack(["t", 1, {}, {"chunk": chunk}]))
    request = protocol.parse_request(obj)
    assert request is not None and request.chunk is not None
    assert protocol.encode_ack(request.chunk) == ack


def test_chunk_ids_are_base64_of_128_bits() -> None:
    import base64

    ids = {protocol.new_chunk_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(base64.b64decode(i)) == 16 for i in ids)


# -- handshake ---------------------------------------------------------------------------------


def test_handshake_digests_follow_the_specification() -> None:
    nonce, salt, key = b"\x01" * 16, b"\x02" * 16, "s3cret"
    expected = hashlib.sha512(salt + b"fluent-bit" + nonce + key.encode()).hexdigest()
    assert protocol.shared_key_digest(salt, "fluent-bit", nonce, key) == expected

    helo = msgpack.unpackb(protocol.make_helo(nonce))
    assert helo[0] == "HELO" and helo[1]["nonce"] == nonce
    assert protocol.read_helo(helo) == nonce

    ping = msgpack.unpackb(protocol.make_ping("fluent-bit", salt, nonce, key))
    assert ping == ["PING", "fluent-bit", salt, expected, "", ""]
    got_salt, host = protocol.check_ping(ping, nonce=nonce, shared_key=key, self_hostname="srv")
    assert (got_salt, host) == (salt, "fluent-bit")

    pong = msgpack.unpackb(protocol.make_pong(True, "", "srv", salt, nonce, key))
    assert pong[:4] == ["PONG", True, "", "srv"]
    assert pong[4] == hashlib.sha512(salt + b"srv" + nonce + key.encode()).hexdigest()
    protocol.check_pong(pong, salt=salt, nonce=nonce, shared_key=key, self_hostname="fluent-bit")


def test_handshake_rejections() -> None:
    nonce, salt = b"n" * 16, b"s" * 16
    ping = msgpack.unpackb(protocol.make_ping("client", salt, nonce, "wrong"))
    with pytest.raises(protocol.HandshakeError, match="mismatch"):
        protocol.check_ping(ping, nonce=nonce, shared_key="right", self_hostname="srv")
    with pytest.raises(protocol.HandshakeError, match="same hostname"):
        protocol.check_ping(ping, nonce=nonce, shared_key="wrong", self_hostname="client")
    with pytest.raises(protocol.HandshakeError, match="PING"):
        protocol.check_ping(["PONG"], nonce=nonce, shared_key="k", self_hostname="srv")
    refused = msgpack.unpackb(protocol.make_pong(False, "nope", "srv", b"", nonce, ""))
    with pytest.raises(protocol.HandshakeError, match="nope"):
        protocol.check_pong(refused, salt=salt, nonce=nonce, shared_key="k", self_hostname="c")
    forged = msgpack.unpackb(protocol.make_pong(True, "", "srv", salt, nonce, "other"))
    with pytest.raises(protocol.HandshakeError, match="different shared key"):
        protocol.check_pong(forged, salt=salt, nonce=nonce, shared_key="k", self_hostname="c")
    # Fluentd's in_forward sends an auth salt with every HELO, users configured or not
    assert protocol.read_helo(["HELO", {b"nonce": b"n", "auth": b"salt"}]) == b"n"


# -- properties --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
records = st.dictionaries(st.text(max_size=10), json_values, max_size=6)
times = st.one_of(
    st.integers(0, 2**32 - 1),
    st.builds(protocol.event_time, st.integers(0, 2**32 - 1), st.integers(0, 999_999_999)),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(times, records), max_size=20), st.booleans())
def test_packed_round_trip(events_in: list[tuple[object, dict]], compress: bool) -> None:
    packer = protocol.EntryPacker()
    for time, record in events_in:
        packer.add(time, record)  # type: ignore[arg-type]
    payload = packer.payload()
    options = {"compressed": "gzip"} if compress else {}
    frame = pack(["tag", gzip.compress(payload) if compress else payload, options])
    (obj,) = decode(frame)
    got, request = events(obj)
    assert got == events_in and request.skipped == 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_protocol_errors(data: bytes) -> None:
    unpacker = protocol.unpacker(Limits(max_buffer=1 << 16))
    unpacker.feed(data)
    try:
        objs = list(unpacker)
    except (ValueError, msgpack.exceptions.UnpackException):
        return  # the server closes such connections
    for obj in objs:
        try:
            request = protocol.parse_request(obj)
            if request is not None:
                list(request.events(Limits(max_buffer=1 << 16)))
        except ProtocolError:
            pass


@given(st.lists(st.integers(0, 3000), max_size=60), st.integers(50, 5000))
def test_entry_pieces_split_at_entry_boundaries(sizes: list[int], limit: int) -> None:
    """A batch goes on in pieces of at most `limit` bytes, whole entries only, in order."""
    packer = protocol.EntryPacker()
    for n, size in enumerate(sizes):
        packer.add(n, {"log": "x" * size})
    pieces = list(packer.pieces(limit))
    assert b"".join(p for p, _ in pieces) == packer.payload()
    assert sum(c for _, c in pieces) == len(sizes)
    for payload, count in pieces:
        assert len(payload) <= limit or count == 1
        entries = list(msgpack.Unpacker(io.BytesIO(payload), raw=False))
        assert len(entries) == count


def _msgpack_reference(obj: object) -> bytes:
    """What msgpack itself writes (escaping surrogates back to their bytes)."""
    return msgpack.Packer(use_bin_type=True, unicode_errors="surrogateescape",
                          default=protocol._pack_default).pack(obj)


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True),
    st.text(max_size=40), st.text(st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)),
    st.binary(max_size=40), st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=20)),
    st.sampled_from(["x" * 40, "y" * 300, "é" * 70_000]))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=20), st.tuples(inner, inner),
    st.dictionaries(st.one_of(st.text(max_size=8), st.integers(0, 9)), inner, max_size=20)),
    max_leaves=40)


@settings(max_examples=500, deadline=None)
@given(value=_VALUES)
def test_packed_bytes_are_msgpack_s_whichever_packer_wrote_them(value: object) -> None:
    # ormsgpack writes what it can, msgpack the rest: the bytes must be msgpack's own
    assert protocol.pack(value) == _msgpack_reference(value)


def test_an_enriched_record_is_packed_by_the_fast_packer() -> None:
    from ngx_enrich import encode
    from ngx_enrich.pipeline import Enricher

    record = Enricher().enrich_value(
        {b"message": b"2026/04/08 21:07:15 [error] 7#7: *3 access forbidden by rule, client: "
                     b"192.0.2.1, server: s", b"time": msgpack.ExtType(0, bytes(8))})
    fast = ormsgpack.packb(record, default=encode._ext, option=encode._FAST)
    assert fast == encode.Packer().pack(record) == _msgpack_reference(record)
