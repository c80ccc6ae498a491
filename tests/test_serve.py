"""`serve` over loopback: real senders, a real next hop, acks, failures and limits."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import hashlib
import io
import logging
import os
import re
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
from fluent.sender import EventTime, FluentSender

from ngx_enrich.forward import protocol
from ngx_enrich.forward.client import ForwardClient
from ngx_enrich.forward.server import ForwardServer, Settings
from ngx_enrich.forward.sinks import FileSink, ForwardSink, Sink, make_sink
from ngx_enrich.pipeline import Enricher, Options

ROOT = Path(__file__).resolve().parents[1]
WAIT = 10.0  # upper bound for anything we wait on; never asserted as a duration
ERROR_LINE = (
    "2024/05/01 10:00:00 [error] 12#12: *3 connect() failed (111: Connection refused) while "
    'connecting to upstream, client: 10.0.0.1, server: _, request: "GET / HTTP/1.1", '
    'upstream: "http://127.0.0.1:8080/", host: "example.com"'
)


@functools.cache
def enricher() -> Enricher:
    return Enricher(Options())


def enrich(record: dict[str, Any]) -> dict[str, Any]:
    return enricher().enrich_record(record)


def pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def et(seconds: int, nanos: int) -> msgpack.ExtType:
    return msgpack.ExtType(0, struct.pack(">II", seconds, nanos))


def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.01)


# -- the server under test, in a thread -----------------------------------------------------------


class Serve:
    """A ForwardServer on its own event loop thread."""

    def __init__(
        self,
        sink: Sink,
        settings: Settings | None = None,
        *,
        listen: str = "127.0.0.1:0",
        ssl_context: ssl.SSLContext | None = None,
        enrich: Callable[[dict[str, Any]], dict[str, Any]] = enrich,
    ) -> None:
        self.sink = sink
        self.server = ForwardServer(enrich, sink, settings, ssl_context=ssl_context)
        self.listen = listen
        self.address = ""
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self.sink.open()
            self.address = await self.server.listen(self.listen)
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self._ready.set()
        await self._stop.wait()
        await self.server.close(drain_timeout=WAIT)
        await self.sink.close()

    def __enter__(self) -> Serve:
        self._thread.start()
        assert self._ready.wait(WAIT), "server did not start"
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(WAIT * 2)
        assert not self._thread.is_alive(), "server did not stop"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    # Only complete lines: the file may be read while a write is under way.
    complete = path.read_bytes().rpartition(b"\n")[0]
    return [orjson.loads(line) for line in complete.splitlines()]


# -- a next hop written independently of the code under test ---------------------------------------


class Receiver:
    """A minimal forward server: stores events, then acks. Can hold acks, die and come back."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.events: list[tuple[str, Any, dict[str, Any]]] = []
        self.frames: list[list[Any]] = []
        self.held = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.release.set()
        self._server: socketserver.ThreadingTCPServer | None = None
        self._socks: set[socket.socket] = set()
        self._closing = threading.Event()

    def start(self) -> Receiver:
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                receiver._serve(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._closing.clear()
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
        return self

    def stop(self) -> None:
        """Die: stop listening and cut every connection, acked or not."""
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.lock:
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._socks.clear()

    def ids(self) -> list[str]:
        with self.lock:
            return [record["id"] for _, _, record in self.events]

    def _serve(self, sock: socket.socket) -> None:
        with self.lock:
            self._socks.add(sock)
        sock.settimeout(0.05)
        unpacker = msgpack.Unpacker(raw=False)
        while not self._closing.is_set():
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            unpacker.feed(data)
            for frame in unpacker:
                tag, entries, options = frame
                assert isinstance(entries, bytes), "the forward client sends bin PackedForward"
                decoded = list(msgpack.Unpacker(io.BytesIO(entries), raw=False))
                with self.lock:
                    self.frames.append(frame)
                    self.held += 1
                try:
                    while not self.release.wait(0.05):
                        if self._closing.is_set():
                            return
                    with self.lock:
                        if self._closing.is_set():
                            return
                        self.events.extend((tag, t, r) for t, r in decoded)
                finally:
                    with self.lock:
                        self.held -= 1
                with contextlib.suppress(OSError):
                    sock.sendall(pack({"ack": options["chunk"]}))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hop = Receiver().start()
    yield hop
    hop.release.set()
    hop.stop()


def forward_sink(port: int, *, retry_timeout: float = 5.0, **client: Any) -> ForwardSink:
    hop = ForwardClient("127.0.0.1", port, backoff=(0.02, 0.2), ack_timeout=WAIT, **client)
    return ForwardSink(hop, retry_timeout=retry_timeout)


# -- a hand-driven sender -----------------------------------------------------------------------


class Sender:
    """A raw forward client: frames in, replies out, with explicit socket timeouts."""

    def __init__(self, port: int, *, wrap: Callable[[socket.socket], socket.socket] | None = None):
        sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.sock = wrap(sock) if wrap else sock
        self.unpacker = msgpack.Unpacker(raw=False)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self, timeout: float = WAIT) -> Any:
        """The next reply, or None when the server closed the connection."""
        self.sock.settimeout(timeout)
        while True:
            for obj in self.unpacker:
                return obj
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.unpacker.feed(data)

    def closed(self, timeout: float = WAIT) -> bool:
        """True once the server closed the connection (without replying)."""
        return self.reply(timeout) is None

    def close(self) -> None:
        self.sock.close()


def packed(tag: str, events: list[tuple[Any, dict[str, Any]]], chunk: str | None) -> bytes:
    payload = b"".join(pack([t, r]) for t, r in events)
    options: dict[str, Any] = {"size": len(events)}
    if chunk is not None:
        options["chunk"] = chunk
    return pack([tag, payload, options])


def deliver(port: int, frame: bytes, chunk: str, attempts: int = 200) -> int:
    """Send until acked, as Fluent Bit would; return the number of unacked attempts."""
    for failed in range(attempts):
        sender = None
        try:
            sender = Sender(port)
            sender.send(frame)
            if sender.reply() == {"ack": chunk}:
                return failed
        except OSError:
            time.sleep(0.05)
        finally:
            if sender is not None:
                sender.close()
    raise AssertionError(f"chunk {chunk} never acked")


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ngx_enrich.forward" and r.levelno >= logging.WARNING
    ]


# -- fluent-logger ---------------------------------------------------------------------------------


def test_fluent_logger_events_arrive_enriched_with_tag_and_nanoseconds(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with Serve(FileSink(str(out))) as serve:
        sender = FluentSender(None, host="127.0.0.1", port=serve.port, forward_packet_error=False)
        for i in range(20):
            assert sender.emit_with_time(
                "nginx.error", EventTime(1714557600, 1000 + i), {"log": ERROR_LINE, "i": i}
            )
        labelled = FluentSender("nginx", host="127.0.0.1", port=serve.port, timeout=WAIT)
        assert labelled.emit_with_time("access", 1714557601, {"log": "not nginx", "i": 20})
        sender.close()
        labelled.close()
        wait_until(lambda: len(read_jsonl(out)) == 21, "21 records")
    lines = read_jsonl(out)
    by_i = {line["record"]["i"]: line for line in lines}
    assert sorted(by_i) == list(range(21))
    for i in range(20):
        assert by_i[i]["tag"] == "nginx.error"
        assert by_i[i]["time"] == f"2024-05-01T10:00:00.{1000 + i:09d}Z"
        assert by_i[i]["record"]["log"] == ERROR_LINE
        assert isinstance(by_i[i]["record"]["ngx"], dict)
    assert by_i[20]["tag"] == "nginx.access"
    assert by_i[20]["time"] == "2024-05-01T10:00:01.000000000Z"


def test_fluent_logger_over_a_unix_socket(tmp_path: Path) -> None:
    out, path = tmp_path / "out.jsonl", tmp_path / "fwd.sock"
    with Serve(FileSink(str(out)), listen=f"unix:{path}") as serve:
        assert serve.address == f"unix:{path}"
        sender = FluentSender(None, host=f"unix://{path}", forward_packet_error=False)
        assert sender.emit_with_time("nginx.error", EventTime(5, 6), {"log": ERROR_LINE})
        sender.close()
        wait_until(lambda: len(read_jsonl(out)) == 1, "one record")
    assert read_jsonl(out)[0]["time"] == "1970-01-01T00:00:05.000000006Z"
    assert not path.exists()


def test_best_effort_sink_through_fluent_logger(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    hop = Serve(FileSink(str(out)), enrich=lambda r: r)
    with hop, Serve(make_sink(f"fluent://127.0.0.1:{hop.port}")) as serve:
        sender = Sender(serve.port)
        events = [(et(1714557600, n), {"log": ERROR_LINE, "n": n}) for n in range(5)]
        sender.send(packed("nginx.error", events, "be"))
        assert sender.reply() == {"ack": "be"}
        sender.close()
        wait_until(lambda: len(read_jsonl(out)) == 5, "five records at the hop")
    lines = read_jsonl(out)
    assert [line["record"]["n"] for line in lines] == list(range(5))
    assert lines[3]["time"] == "2024-05-01T10:00:00.000000003Z"
    assert all(isinstance(line["record"]["ngx"], dict) for line in lines)


# -- hand-built frames and acks --------------------------------------------------------------------


def frames_for_every_mode() -> list[tuple[str, bytes, str | bytes, int]]:
    t = et(1714557600, 999_999_999)
    batch = [(t, {"log": ERROR_LINE, "n": n}) for n in range(3)]
    stream = b"".join(pack([tt, r]) for tt, r in batch)
    str_frame = b"\x93\xa1t" + b"\xdb" + struct.pack(">I", len(stream)) + stream
    gz = gzip.compress(stream[: len(stream) // 2]) + gzip.compress(stream[len(stream) // 2 :])
    return [
        ("message", pack(["t", t, batch[0][1], {"chunk": "m1"}]), "m1", 1),
        ("forward", pack(["t", [[tt, r] for tt, r in batch], {"chunk": "f1"}]), "f1", 3),
        (
            "forward with metadata",
            pack(["t", [[[tt, {"m": 1}], r] for tt, r in batch], {"chunk": b"\x00\xff"}]),
            b"\x00\xff",
            3,
        ),
        ("packed bin", pack(["t", stream, {"chunk": "p1", "size": 3}]), "p1", 3),
        (
            "packed str, Fluentd style",
            str_frame + pack({"chunk": "Zm9vYmFyYmF6cXV4eHl6Cg==\n", "compressed": "text"}),
            "Zm9vYmFyYmF6cXV4eHl6Cg==\n",
            3,
        ),
        (
            "compressed, two gzip members",
            pack(["t", gz, {"chunk": "c1", "compressed": "gzip", "size": 3}]),
            "c1",
            3,
        ),
    ]


@pytest.mark.parametrize("case", frames_for_every_mode(), ids=lambda c: c[0])
def test_every_mode_is_acked_after_the_events_are_written(
    tmp_path: Path, case: tuple[str, bytes, str | bytes, int]
) -> None:
    _, frame, chunk, count = case
    out = tmp_path / "out.jsonl"
    with Serve(FileSink(str(out))) as serve:
        sender = Sender(serve.port)
        sender.send(frame)
        reply = sender.sock.recv(65536)
        # the ack is the exact msgpack map {"ack": chunk}, and the file is complete at that point
        assert reply == pack({"ack": chunk})
        lines = read_jsonl(out)
        assert len(lines) == count
        for line in lines:
            assert line["tag"] == "t"
            assert line["time"] == "2024-05-01T10:00:00.999999999Z"
            assert line["record"]["log"] == ERROR_LINE
            assert isinstance(line["record"]["ngx"], dict)
        sender.close()


def test_requests_without_chunk_get_no_reply_and_keep_the_connection(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with Serve(FileSink(str(out))) as serve:
        sender = Sender(serve.port)
        sender.send(pack(["t", 1, {"log": "a"}]) + pack(["t", 2, {"log": "b"}, {"chunk": "x"}]))
        assert sender.reply() == {"ack": "x"}  # the first request produced no reply
        assert [line["record"]["log"] for line in read_jsonl(out)] == ["a", "b"]
        sender.close()


# -- the next hop ----------------------------------------------------------------------------------


def test_next_hop_gets_tag_time_and_enriched_record_intact(receiver: Receiver) -> None:
    sink = forward_sink(receiver.port)
    settings = Settings(tag_prefix="enriched")
    times = [et(1714557600, 1), et(1714557600, 999_999_999), 1714557601, 1714557602.5]
    with Serve(sink, settings) as serve:
        sender = Sender(serve.port)
        entries = [
            [[t, {"fb": "meta"}] if i % 2 else t, {"log": ERROR_LINE, "id": str(i)}]
            for i, t in enumerate(times)
        ]
        sender.send(pack(["nginx.error", entries, {"chunk": "k"}]))
        assert sender.reply() == {"ack": "k"}
        sender.close()
    assert receiver.ids() == ["0", "1", "2", "3"]  # delivered before the ack, in order
    for (tag, t, record), sent in zip(receiver.events, times, strict=True):
        assert tag == "enriched.nginx.error"
        assert t == sent and type(t) is type(sent)  # EventTime bytes, int and float kept
        assert record["log"] == ERROR_LINE and isinstance(record["ngx"], dict)
    (frame,) = receiver.frames
    assert frame[2]["size"] == 4 and isinstance(frame[2]["chunk"], str)


def test_dead_next_hop_means_no_ack_and_every_record_arrives_after_it_returns(
    receiver: Receiver,
) -> None:
    sink = forward_sink(receiver.port, retry_timeout=0.5)
    chunks = 12
    per_chunk = 25
    with Serve(sink) as serve:
        unacked = 0
        for c in range(chunks):
            events = [
                (et(1714557600, c * 1000 + n), {"log": ERROR_LINE, "id": f"{c}-{n}"})
                for n in range(per_chunk)
            ]
            frame = packed("nginx.error", events, f"chunk-{c}")
            if c == 4:
                # the hop dies while holding this chunk unacked
                receiver.release.clear()
                sender = Sender(serve.port)
                sender.send(frame)
                wait_until(lambda: receiver.held == 1, "the hop to receive chunk 4")
                receiver.stop()
                assert sender.closed(), "serve must close the sender's connection without an ack"
                sender.close()
                assert not any(i.startswith("4-") for i in receiver.ids())
                # while it is down, nothing is acked
                assert deliver_once(serve.port, frame, "chunk-4") is False
                receiver.release.set()
                receiver.start()
            unacked += deliver(serve.port, frame, f"chunk-{c}")
            # acked means delivered: the chunk is at the next hop now
            assert {f"{c}-{n}" for n in range(per_chunk)} <= set(receiver.ids())
    expected = {f"{c}-{n}" for c in range(chunks) for n in range(per_chunk)}
    got = receiver.ids()
    assert set(got) == expected and len(got) >= len(expected)
    with receiver.lock:
        for tag, t, record in receiver.events:
            c, n = map(int, record["id"].split("-"))
            assert tag == "nginx.error" and t == et(1714557600, c * 1000 + n)
            assert record["log"] == ERROR_LINE and isinstance(record["ngx"], dict)


def deliver_once(port: int, frame: bytes, chunk: str) -> bool:
    sender = Sender(port)
    try:
        sender.send(frame)
        return sender.reply() == {"ack": chunk}
    finally:
        sender.close()


def test_hop_back_within_the_retry_window_is_acked_on_the_same_connection(
    receiver: Receiver,
) -> None:
    port = receiver.port
    sink = forward_sink(port, retry_timeout=WAIT * 3)
    with Serve(sink) as serve:
        sender = Sender(serve.port)
        sender.send(packed("t", [(1, {"id": "warmup"})], "w"))
        assert sender.reply() == {"ack": "w"}
        receiver.stop()
        sender.send(packed("t", [(2, {"id": "during outage"})], "o"))
        # serve is retrying; the sender sees nothing yet
        with pytest.raises(TimeoutError):
            sender.reply(timeout=0.3)
        receiver.start()
        assert sender.reply() == {"ack": "o"}
        sender.close()
    assert receiver.ids() == ["warmup", "during outage"]


def test_slow_next_hop_applies_backpressure_instead_of_buffering(receiver: Receiver) -> None:
    receiver.release.clear()  # the hop takes the first chunk and sits on it
    settings = Settings(limits=protocol.Limits(max_buffer=256 << 10))
    attempted = 256 << 20
    with Serve(forward_sink(receiver.port, retry_timeout=WAIT * 6), settings) as serve:
        sender = Sender(serve.port)
        record = {"log": ERROR_LINE, "pad": "x" * 400}
        frame = packed("t", [(1, record)] * 30, "same")
        sender.sock.settimeout(2.0)
        sent = 0
        try:
            while sent < attempted:
                sent += sender.sock.send(frame)
        except TimeoutError:
            pass  # the socket is full: serve stopped reading
        wait_until(lambda: receiver.held == 1, "the first chunk at the hop")
        assert sent < 32 << 20, f"serve swallowed {sent} bytes without delivering"
        assert len(receiver.frames) == 1
        sender.close()
        receiver.release.set()


# -- malformed input -------------------------------------------------------------------------------

GOOD = pack(["t", 1, {"log": "ok"}, {"chunk": "good"}])


@pytest.mark.parametrize(
    "data, outcome, expect_in_log",
    [
        pytest.param(b"\xc1\xc1\xc1", "close", "undecodable", id="garbage bytes"),
        pytest.param(b"\xdf\x05\xf5\xe1\x00", "close", "max_map_len", id="100M-entry map"),
        pytest.param(
            b"\x93\xa1t\x01\xdf\x05\xf5\xe1\x00", "close", "max_map_len", id="huge inner map"
        ),
        pytest.param(pack({"tag": "t"}), "keep", "ignored", id="non-array request"),
        pytest.param(pack("nginx.error"), "keep", "ignored", id="string request"),
        pytest.param(pack([1, [[1, {}]]]), "close", "tag", id="integer tag"),
        pytest.param(pack(["t", {"a": 1}]), "close", "second element", id="map for entries"),
        pytest.param(pack(["t", [[1, {}]], [1]]), "close", "option", id="option not a map"),
        pytest.param(pack(["t", 1, {}, {}, 5]), "close", "elements", id="request too long"),
        pytest.param(
            pack(["t", 1, "text", {"chunk": "r"}]), "ack", "skipped 1", id="record not a map"
        ),
        pytest.param(
            pack(["t", b"\x92\x01\xc1", {"chunk": "g"}]),
            "close",
            "undecodable packed",
            id="garbage inside a packed stream",
        ),
        pytest.param(
            pack(["t", b"\x28\xb5\x2f\xfd", {"compressed": "zstd"}]), "close", "zstd", id="zstd"
        ),
        pytest.param(
            pack(["t", b"\0" * (300 << 10)]), "close", "max_bin_len|larger than", id="huge bin"
        ),
        pytest.param(
            pack(["t", [[1, {"pad": "x" * 200}]] * 1500]), "close", "larger than", id="too big"
        ),
        pytest.param(pack(None), "keep", None, id="nil heartbeat"),
    ],
)
def test_malformed_input_costs_one_connection_and_one_log_line(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    data: bytes,
    outcome: str,
    expect_in_log: str | None,
) -> None:
    caplog.set_level(logging.INFO, logger="ngx_enrich")
    out = tmp_path / "out.jsonl"
    settings = Settings(limits=protocol.Limits(max_buffer=256 << 10))
    with Serve(FileSink(str(out)), settings) as serve:
        bystander = Sender(serve.port)  # another sender, connected all along
        bad = Sender(serve.port)
        with contextlib.suppress(OSError):  # the server may hang up while we still write
            bad.send(data)
        if outcome == "close":
            assert bad.closed()
        else:
            if outcome == "ack":
                assert bad.reply() == {"ack": "r"}
            bad.send(GOOD)  # the same connection still works
            assert bad.reply() == {"ack": "good"}
        bad.close()
        logged = warnings_of(caplog)
        if expect_in_log is None:
            assert logged == []
        else:
            assert len(logged) == 1, logged
            assert re.search(expect_in_log, logged[0])
        bystander.send(GOOD)
        assert bystander.reply() == {"ack": "good"}
        bystander.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert all(line["record"].get("log") == "ok" for line in read_jsonl(out))


def test_a_stalled_sender_is_cut_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(read_timeout=0.2)
    with Serve(FileSink(str(tmp_path / "out.jsonl")), settings) as serve:
        stalled = Sender(serve.port)
        stalled.send(GOOD[:5])
        assert stalled.closed()
        assert any("stalled" in line for line in warnings_of(caplog))
        other = Sender(serve.port)
        other.send(GOOD)
        assert other.reply() == {"ack": "good"}
        other.close()


def test_bad_entries_are_skipped_and_the_rest_delivered(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    entries = [[1, {"log": "a"}], [1, "x"], ["when", {"log": "b"}], [2, {"log": "c"}], 7]
    with Serve(FileSink(str(out))) as serve:
        sender = Sender(serve.port)
        sender.send(pack(["t", entries, {"chunk": "mixed"}]))
        assert sender.reply() == {"ack": "mixed"}
        sender.close()
    assert [line["record"]["log"] for line in read_jsonl(out)] == ["a", "c"]


def test_connections_beyond_the_limit_are_refused(tmp_path: Path) -> None:
    with Serve(FileSink(str(tmp_path / "o.jsonl")), Settings(max_connections=2)) as serve:
        first, second = Sender(serve.port), Sender(serve.port)
        for s in (first, second):  # make sure both are being served
            s.send(GOOD)
            assert s.reply() == {"ack": "good"}
        third = Sender(serve.port)
        assert third.closed()
        first.close()
        wait_until(lambda: len(serve.server._conns) == 1, "the first connection to go")
        fourth = Sender(serve.port)
        fourth.send(GOOD)
        assert fourth.reply() == {"ack": "good"}
        for s in (second, third, fourth):
            s.close()


def test_enrichment_errors_pass_records_through(tmp_path: Path) -> None:
    def broken(record: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    out = tmp_path / "out.jsonl"
    with Serve(FileSink(str(out)), enrich=broken) as serve:
        sender = Sender(serve.port)
        sender.send(GOOD)
        assert sender.reply() == {"ack": "good"}
        sender.close()
    assert [line["record"] for line in read_jsonl(out)] == [{"log": "ok"}]


# -- shared key ------------------------------------------------------------------------------------


def handshake(sender: Sender, key: str, hostname: str = "fluent-bit") -> list[Any]:
    helo = sender.reply()
    assert helo[0] == "HELO"
    nonce = helo[1]["nonce"]
    salt = os.urandom(16)
    digest = hashlib.sha512(salt + hostname.encode() + nonce + key.encode()).hexdigest()
    sender.send(pack(["PING", hostname, salt, digest, "", ""]))
    pong = sender.reply()
    if pong is not None and pong[1] is True:
        server = pong[3].encode()
        assert pong[4] == hashlib.sha512(salt + server + nonce + key.encode()).hexdigest()
    return pong


def test_shared_key_handshake(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out.jsonl"
    settings = Settings(shared_key="s3cret", self_hostname="enricher")
    with Serve(FileSink(str(out)), settings) as serve:
        good = Sender(serve.port)
        pong = handshake(good, "s3cret")
        assert pong[:4] == ["PONG", True, "", "enricher"]
        good.send(GOOD)
        assert good.reply() == {"ack": "good"}
        good.close()

        bad = Sender(serve.port)
        pong = handshake(bad, "guess")
        assert pong[:3] == ["PONG", False, "shared key mismatch"]
        assert bad.closed()
        bad.close()

        skipper = Sender(serve.port)  # no PING at all: straight to events
        assert skipper.reply()[0] == "HELO"
        skipper.send(GOOD)
        reply = skipper.reply()
        assert reply is None or reply[:2] == ["PONG", False]
        assert skipper.closed()
        skipper.close()
    assert len(read_jsonl(out)) == 1
    assert any("shared key mismatch" in line for line in warnings_of(caplog))


def test_forward_client_handshakes_with_the_next_hop(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    second = Settings(shared_key="k2", self_hostname="second")
    with Serve(FileSink(str(out)), second, enrich=lambda r: r) as hop:
        first = forward_sink(hop.port, shared_key="k2", self_hostname="first")
        with Serve(first, Settings(tag_prefix="enriched")) as serve:
            sender = FluentSender(None, host="127.0.0.1", port=serve.port, timeout=WAIT)
            assert sender.emit_with_time("nginx.error", EventTime(9, 8), {"log": ERROR_LINE})
            sender.close()
            wait_until(lambda: len(read_jsonl(out)) == 1, "the record at the second hop")
    (line,) = read_jsonl(out)
    assert line["tag"] == "enriched.nginx.error"
    assert line["time"] == "1970-01-01T00:00:09.000000008Z"
    assert isinstance(line["record"]["ngx"], dict)


def test_wrong_key_to_the_next_hop_is_never_acked(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with Serve(FileSink(str(out)), Settings(shared_key="right", self_hostname="b")) as hop:
        first = forward_sink(hop.port, retry_timeout=0.5, shared_key="wrong", self_hostname="a")
        with Serve(first) as serve:
            sender = Sender(serve.port)
            sender.send(GOOD)
            assert sender.closed()
            sender.close()
    assert read_jsonl(out) == []


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        make_certificate_with_cryptography(cert, key)
    except ImportError:
        try:
            subprocess.run(
                [
                    "openssl",
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=localhost",
                    "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout",
                    str(key),
                    "-out",
                    str(cert),
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError):
            pytest.skip("neither the cryptography package nor the openssl command is available")
    return str(cert), str(key)


def make_certificate_with_cryptography(cert: Path, key: Path) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_tls_listener(tmp_path: Path, certificate: tuple[str, str]) -> None:
    cert, key = certificate
    out = tmp_path / "out.jsonl"
    client = ssl.create_default_context(cafile=cert)
    with Serve(FileSink(str(out)), ssl_context=server_context(cert, key)) as serve:
        sender = Sender(
            serve.port, wrap=lambda s: client.wrap_socket(s, server_hostname="localhost")
        )
        assert isinstance(sender.sock, ssl.SSLSocket) and sender.sock.version() is not None
        sender.send(GOOD)
        assert sender.reply() == {"ack": "good"}
        sender.close()

        plain = Sender(serve.port)  # msgpack where a TLS hello belongs
        with contextlib.suppress(OSError):
            plain.send(GOOD)
        assert plain.closed()
        plain.close()
    assert len(read_jsonl(out)) == 1


def test_tls_to_the_next_hop(tmp_path: Path, certificate: tuple[str, str]) -> None:
    cert, key = certificate
    out = tmp_path / "out.jsonl"
    with Serve(FileSink(str(out)), ssl_context=server_context(cert, key)) as hop:
        sink = make_sink(f"forward+tls://localhost:{hop.port}", tls_ca=cert, retry_timeout=WAIT)
        with Serve(sink) as serve:
            sender = Sender(serve.port)
            sender.send(GOOD)
            assert sender.reply() == {"ack": "good"}
            sender.close()
    assert len(read_jsonl(out)) == 1


# -- the command, as a process ---------------------------------------------------------------------


class Process:
    """`ngx-enrich serve` in a child process; stderr is collected line by line."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ngx_enrich", "serve", "--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        wait_until(lambda: self.port is not None or self.proc.poll() is not None, "listening")
        assert self.port is not None, self.stderr

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.decode())

    @property
    def port(self) -> int | None:
        for line in list(self.stderr):
            if "listening on 127.0.0.1:" in line:
                return int(line.split("listening on 127.0.0.1:")[1].split(",")[0])
        return None

    def finish(self, *, signal: bool = True) -> tuple[int, bytes]:
        """Send SIGTERM (unless already sent) and collect the exit status and stdout."""
        if signal:
            self.proc.terminate()
        try:
            stdout, _ = self.proc.communicate(timeout=WAIT * 2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        self._reader.join(WAIT)
        return self.proc.returncode, stdout


def test_command_writes_only_json_lines_to_stdout() -> None:
    proc = Process("--to", "stdout", "--tag-prefix", "enriched")
    try:
        good = Sender(proc.port)  # type: ignore[arg-type]
        good.send(
            pack(["nginx.error", [[et(1714557600, 42), {"log": ERROR_LINE}]] * 5, {"chunk": "a"}])
        )
        assert good.reply() == {"ack": "a"}
        bad = Sender(proc.port)  # type: ignore[arg-type]
        bad.send(b"\xc1 definitely not msgpack")
        assert bad.closed()
        good.send(
            pack(["nginx.access", 1714557600, {"log": "x" * 10, "raw": b"\xff"}, {"chunk": "b"}])
        )
        assert good.reply() == {"ack": "b"}
        good.close()
        bad.close()
    finally:
        code, stdout = proc.finish()
    assert code == 0
    lines = [orjson.loads(line) for line in stdout.splitlines()]
    assert len(lines) == 6
    assert {line["tag"] for line in lines} == {"enriched.nginx.error", "enriched.nginx.access"}
    assert lines[0]["time"] == "2024-05-01T10:00:00.000000000Z"  # the line's own time
    assert all(set(line) == {"tag", "time", "record"} for line in lines)
    # bad bytes are kept as \xNN, as for raw lines, and the record says so
    assert lines[-1]["record"]["raw"] == "\\xff"
    assert "UTF-8" in lines[-1]["record"]["ngx"]["parse_error"]
    assert any("undecodable" in line for line in proc.stderr)


def test_sigterm_drains_the_chunk_in_flight(receiver: Receiver) -> None:
    receiver.release.clear()
    proc = Process("--to", f"forward://127.0.0.1:{receiver.port}")
    signalled = False
    try:
        sender = Sender(proc.port)  # type: ignore[arg-type]
        idle = Sender(proc.port)  # type: ignore[arg-type]
        idle.send(pack(None))
        sender.send(packed("t", [(et(1, 2), {"log": ERROR_LINE, "id": "x"})], "inflight"))
        wait_until(lambda: receiver.held == 1, "the chunk at the next hop")
        proc.proc.send_signal(signal.SIGTERM)
        assert idle.closed()  # idle connections are closed at once
        idle.close()
        signalled = True
        wait_until(lambda: any("draining" in line for line in proc.stderr), "draining")
        assert proc.proc.poll() is None  # still waiting for the hop's ack
        receiver.release.set()
        assert sender.reply() == {"ack": "inflight"}
        sender.close()
    finally:
        code, stdout = proc.finish(signal=not signalled)
    assert code == 0 and stdout == b""
    assert receiver.ids() == ["x"]


def test_bad_destination_is_a_usage_error() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "ngx_enrich", "serve", "--to", "kafka://x"],
        capture_output=True,
        env=env,
        timeout=WAIT * 3,
    )
    assert result.returncode == 2
    assert b"unknown destination" in result.stderr and result.stdout == b""


def test_closed_stdout_stops_the_command_with_status_1() -> None:
    proc = Process("--to", "stdout")
    try:
        assert proc.proc.stdout is not None
        proc.proc.stdout.close()  # nobody reads the records any more
        sender = Sender(proc.port)  # type: ignore[arg-type]
        sender.send(GOOD)
        assert sender.closed()  # not acked: the sender keeps the chunk
        sender.close()
        code = proc.proc.wait(timeout=WAIT * 2)
    finally:
        if proc.proc.poll() is None:
            proc.proc.kill()
        proc.proc.wait(timeout=WAIT)
        proc._reader.join(WAIT)
    assert code == 1
    assert any("stdout is closed" in line for line in proc.stderr)
    assert not any("Traceback" in line for line in proc.stderr)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--listen", "localhost"], "HOST:PORT"),
        (["--max-buffer", "lots"], "size"),
        (["--tls-cert", "/nonexistent.pem"], "go together"),
    ],
)
def test_bad_options_are_usage_errors(argv: list[str], message: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "ngx_enrich", "serve", *argv],
        capture_output=True,
        env=env,
        timeout=WAIT * 3,
    )
    assert result.returncode == 2
    assert message.encode() in result.stderr and result.stdout == b""


def test_option_parsing() -> None:
    import argparse

    from ngx_enrich.forward import command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args([])
    assert (args.listen, args.to, args.max_buffer) == ("127.0.0.1:24225", "stdout", 8 << 20)
    args = parser.parse_args(["--max-buffer", "512K", "--max-decompressed", "1GiB"])
    assert (args.max_buffer, args.max_decompressed) == (512 << 10, 1 << 30)


def _bin(value: Any) -> Any:
    """`value` as Fluentd's in_tail sends it: every string a msgpack bin."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, dict):
        return {_bin(k): _bin(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bin(v) for v in value]
    return value


def test_command_reads_bin_strings_and_sets_the_line_time() -> None:
    """Fluentd's out_forward sends records as bin; the event time becomes the line's own."""
    access = ('10.0.0.1 - - [01/May/2024:12:30:05 +0200] "GET /x HTTP/1.1" 404 5 "-" "curl"')
    packed = b"".join(pack(_bin([1800000000, {"message": line, "n": [1, "a"]}]))
                      for line in (ERROR_LINE, access, "not nginx"))
    proc = Process("--field", "message")
    try:
        sender = Sender(proc.port)  # type: ignore[arg-type]
        sender.send(pack([b"nginx.all", packed, {"chunk": b"c1", "size": 3}]))
        assert sender.reply() == {"ack": b"c1"}  # the chunk is echoed as it came
        sender.close()
    finally:
        code, stdout = proc.finish()
    assert code == 0
    lines = [orjson.loads(line) for line in stdout.splitlines()]
    assert [line["tag"] for line in lines] == ["nginx.all"] * 3
    assert [line["record"]["ngx"].get("category") for line in lines] == [
        "upstream_refused", "not_found", None]
    assert lines[0]["record"]["n"] == [1, "a"]
    assert [line["time"] for line in lines] == [
        "2024-05-01T10:00:00.000000000Z",  # TZ=UTC for the zone-less error line
        "2024-05-01T10:30:05.000000000Z",  # the access line's own offset
        "2027-01-15T08:00:00.000000000Z",  # no time of its own: the sender's is kept
    ]


def test_command_keeps_the_sender_time_when_asked() -> None:
    proc = Process("--event-time", "keep")
    try:
        sender = Sender(proc.port)  # type: ignore[arg-type]
        sender.send(pack(["nginx.error", et(1800000000, 7), {"log": ERROR_LINE}, {"chunk": "k"}]))
        assert sender.reply() == {"ack": "k"}
        sender.close()
    finally:
        code, stdout = proc.finish()
    assert code == 0
    record = orjson.loads(stdout)
    assert record["time"] == "2027-01-15T08:00:00.000000007Z"
    assert record["record"]["ngx"]["category"] == "upstream_refused"


def test_a_large_enriched_chunk_goes_on_in_pieces(receiver: Receiver) -> None:
    """Enriched events outgrow the raw chunk: the next hop gets several requests, each under
    the limit and acked, before the sender's one chunk is acked."""
    hop = ForwardClient("127.0.0.1", receiver.port, backoff=(0.02, 0.2), ack_timeout=WAIT)
    sink = ForwardSink(hop, retry_timeout=WAIT, max_chunk=20_000)
    events = [(1714557600 + n, {"log": ERROR_LINE, "id": f"e{n}"}) for n in range(200)]
    with Serve(sink) as serve:
        assert deliver(serve.port, packed("nginx.error", events, "big"), "big") == 0
    assert receiver.ids() == [f"e{n}" for n in range(200)]
    assert len(receiver.frames) > 5
    assert all(len(frame[1]) <= 20_000 for frame in receiver.frames)
    assert sum(frame[2]["size"] for frame in receiver.frames) == 200


def _served(tmp_path: Path, enricher: Enricher, frame: bytes, chunk: str) -> bytes:
    out = tmp_path / f"encoded-{enricher.options.encoded}.jsonl"
    server = ForwardServer(enricher.enrich_record, FileSink(str(out)),
                           own_time=enricher.own_event_time)
    serve = Serve(server.sink)
    serve.server = server
    with serve:
        sender = Sender(serve.port)
        sender.send(frame)
        assert sender.reply() == {"ack": chunk}
        sender.close()
    return out.read_bytes()


def test_records_written_as_encoded_json_are_the_built_ones(tmp_path: Path) -> None:
    # With JSON lines out and no metrics, `serve` has its records' objects encoded once
    # (`writes_json`); the lines, event times included, are those of built records.
    sys.path.insert(0, str(ROOT / "tests" / "bench"))
    from inputs import Lines

    lines = [*Lines("error").take(1500), *Lines("access").take(1500), "not nginx", ""]
    times = [et(1800000000, n) if n % 3 else 1800000000 + n for n in range(len(lines))]
    events = [(t, {"log": line, "source": "stdout"}) for t, line in zip(times, lines, strict=True)]
    events.append((et(1800000000, 0), {"log": ERROR_LINE, "ngx": "theirs"}))
    frame = packed("nginx", events, "c1")
    encoded = Enricher(Options(encoded=True))
    got = _served(tmp_path, encoded, frame, "c1")
    want = _served(tmp_path, Enricher(Options()), frame, "c1")
    assert got == want
    assert got.count(b"\n") == len(events)
    stamps = [line["time"] for line in read_jsonl(tmp_path / "encoded-True.jsonl")]
    assert sum(t.startswith("2026-04-08T21:") for t in stamps) == 3000  # the lines' own times
    assert [t[:4] for t in stamps[3000:]] == ["2027", "2027", "2024"]
    # and the encoded path was the one taken
    assert type(encoded.enrich_record({"log": ERROR_LINE})["ngx"]) is orjson.Fragment


@pytest.mark.parametrize(("argv", "encoded"), [
    ([], True), (["--to", "file:/tmp/x.jsonl"], True), (["--to", "-"], True),
    (["--to", "forward://127.0.0.1:24224"], False), (["--to", "fluent://127.0.0.1:24224"], False),
    (["--metrics", "127.0.0.1:0"], False)])
def test_only_json_lines_without_metrics_take_encoded_records(argv: list[str],
                                                              encoded: bool) -> None:
    from ngx_enrich.cli import COMMANDS
    from ngx_enrich.forward import command

    args = COMMANDS["serve"][0]().parse_args(argv)
    assert command.writes_json(args) is encoded
