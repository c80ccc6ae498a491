"""Where enriched events go: JSON lines on stdout or in a file, or the next forward hop.

A sink takes a whole request at a time (a batch). `deliver()` returns only once the batch is
handed on (written and flushed, or acknowledged by the next hop); the server acks the sender
after that, never before.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import ssl
import sys
from abc import ABC, abstractmethod
from typing import IO, TYPE_CHECKING

import orjson

from ngx_enrich.encode import encode_json
from ngx_enrich.forward import protocol
from ngx_enrich.forward.client import ForwardClient

if TYPE_CHECKING:
    from ngx_enrich.metrics import Metrics

log = logging.getLogger("ngx_enrich.forward")


class DeliveryError(Exception):
    """A batch was not handed on; `fatal` means no later batch can be either."""

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


class Batch(ABC):
    """Enriched events of one request, encoded for one sink."""

    __slots__ = ("count", "tag")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.count = 0

    @abstractmethod
    def add(self, time: protocol.Time, record: protocol.Record) -> None:
        """Append one event."""


class Sink(ABC):
    """Destination of enriched batches."""

    description = "sink"

    @abstractmethod
    def batch(self, tag: str) -> Batch:
        """An empty batch for events tagged `tag`."""

    @abstractmethod
    async def deliver(self, batch: Batch) -> None:
        """Hand the batch on or raise DeliveryError."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""


# -- JSON lines --------------------------------------------------------------------------------


class JsonBatch(Batch):
    """Lines of `{"tag": ..., "time": RFC 3339 with nanoseconds, "record": {...}}`."""

    __slots__ = ("_format", "_head", "lines")

    def __init__(self, tag: str, formatter: protocol.TimeFormatter) -> None:
        super().__init__(tag)
        self._head = b'{"tag":' + orjson.dumps(tag) + b',"time":"'
        self._format = formatter
        self.lines: list[bytes] = []

    def add(self, time: protocol.Time, record: protocol.Record) -> None:
        stamp = self._format(time).encode("ascii")
        self.lines.append(self._head + stamp + b'","record":' + encode_json(record) + b"}\n")
        self.count += 1


class JsonLinesSink(Sink):
    """Writes JSON lines to a binary stream, flushing (and optionally fsyncing) per batch."""

    def __init__(self, stream: IO[bytes] | None, *, fsync: bool, description: str) -> None:
        self.stream = stream
        self.fsync = fsync
        self.description = description
        self._format = protocol.TimeFormatter()
        self._lock = asyncio.Lock()

    def batch(self, tag: str) -> JsonBatch:
        return JsonBatch(tag, self._format)

    async def deliver(self, batch: Batch) -> None:
        assert isinstance(batch, JsonBatch)
        data = b"".join(batch.lines)
        async with self._lock:
            try:
                await asyncio.to_thread(self._write, data)
            except BrokenPipeError as exc:
                raise DeliveryError(f"{self.description} is closed", fatal=True) from exc
            except OSError as exc:
                raise DeliveryError(f"cannot write {self.description}: {exc}") from exc

    def _write(self, data: bytes) -> None:
        assert self.stream is not None
        self.stream.write(data)
        self.stream.flush()
        if self.fsync:
            try:
                os.fsync(self.stream.fileno())
            except OSError as exc:  # pipes, terminals and /dev/null cannot be synced
                if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
                    raise


class StdoutSink(JsonLinesSink):
    """JSON lines on standard output (diagnostics go to standard error)."""

    def __init__(self) -> None:
        super().__init__(None, fsync=False, description="stdout")

    async def open(self) -> None:
        self.stream = sys.stdout.buffer


class FileSink(JsonLinesSink):
    """JSON lines appended to a file, flushed and fsynced before the sender is acked."""

    def __init__(self, path: str) -> None:
        super().__init__(None, fsync=True, description=f"file {path}")
        self.path = path

    async def open(self) -> None:
        self.stream = open(self.path, "ab")  # noqa: SIM115 - closed in close()

    async def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


# -- forward -----------------------------------------------------------------------------------


class ForwardBatch(Batch):
    """Events packed as a PackedForward stream of plain `[time, record]` entries."""

    __slots__ = ("entries",)

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.entries = protocol.EntryPacker()

    def add(self, time: protocol.Time, record: protocol.Record) -> None:
        self.entries.add(time, record)
        self.count += 1


MAX_CHUNK = 4 << 20
"""Largest PackedForward payload sent to the next hop, in bytes."""


class ForwardSink(Sink):
    """The next forward hop, acked: a batch is delivered when the hop acknowledges it.

    Batches go one at a time. While the hop is down, one batch keeps retrying and every other
    is refused at once (the sender keeps it and sends it again), so an outage costs no memory
    here: the backlog stays in the sender's buffer, where it is meant to be.
    """

    def __init__(self, client: ForwardClient, *, retry_timeout: float,
                 max_chunk: int = MAX_CHUNK) -> None:
        self.client = client
        self.retry_timeout = retry_timeout
        self.max_chunk = max_chunk
        self.description = f"forward://{client.address}"
        self._lock = asyncio.Lock()

    def batch(self, tag: str) -> ForwardBatch:
        return ForwardBatch(tag)

    async def deliver(self, batch: Batch) -> None:
        assert isinstance(batch, ForwardBatch)
        if self.client.failing and self._lock.locked():
            raise DeliveryError(f"{self.description} is down; another chunk is retrying")
        try:
            async with asyncio.timeout(self.retry_timeout), self._lock:
                # Enriched events are several times larger than the raw lines they came from:
                # one sender's chunk may go on as several, each acked, so that no request
                # exceeds what the next hop takes (Fluent Bit's in_forward: 6 MB by default).
                for payload, count in batch.entries.pieces(self.max_chunk):
                    await self.client.send(batch.tag, payload, count)
        except TimeoutError as exc:
            raise DeliveryError(
                f"{self.description} did not ack within {self.retry_timeout:g}s"
            ) from exc

    async def close(self) -> None:
        await self.client.close()


class EventBatch(Batch):
    """Events kept as Python objects."""

    __slots__ = ("events",)

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.events: list[tuple[protocol.Time, protocol.Record]] = []

    def add(self, time: protocol.Time, record: protocol.Record) -> None:
        self.events.append((time, record))
        self.count += 1


class FluentLoggerSink(Sink):
    """Best effort through fluent-logger's FluentSender: Message mode, no acks.

    A batch counts as delivered once FluentSender has sent or buffered it; what its in-memory
    buffer cannot hold while the next hop is down is dropped (and logged).
    """

    def __init__(self, host: str, port: int, *, timeout: float = 3.0,
                 metrics: Metrics | None = None) -> None:
        """`metrics`, when given, counts batches FluentSender could not send."""
        from fluent.sender import FluentSender

        self.metrics = metrics
        self.description = f"fluent://{host}:{port}"
        self.sender = FluentSender(
            None,
            host=host,
            port=port,
            timeout=timeout,
            forward_packet_error=False,
            buffer_overflow_handler=self._overflow,
            msgpack_kwargs={
                "use_bin_type": True,
                "unicode_errors": "surrogateescape",
                "default": str,
            },
        )
        self._lock = asyncio.Lock()
        self._failing = False

    def batch(self, tag: str) -> EventBatch:
        return EventBatch(tag)

    async def deliver(self, batch: Batch) -> None:
        assert isinstance(batch, EventBatch)
        async with self._lock:
            await asyncio.to_thread(self._emit, batch)

    def _emit(self, batch: EventBatch) -> None:
        ok = True
        for time, record in batch.events:
            ok = self.sender.emit_with_time(batch.tag, time, record) and ok
        if not ok and self.metrics is not None:
            self.metrics.next_hop_failure()
        if not ok and not self._failing:
            log.warning("%s: %s; buffering in memory", self.description, self.sender.last_error)
        self._failing = not ok

    def _overflow(self, pending: bytes) -> None:
        log.warning("%s: dropped %d buffered bytes", self.description, len(pending))

    async def close(self) -> None:
        await asyncio.to_thread(self.sender.close)


# -- construction ------------------------------------------------------------------------------


def host_port(text: str, *, default_port: int | None = None) -> tuple[str, int]:
    """Split `host:port` or `[v6]:port` into a host and a port."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, ""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port and default_port is not None:
        port = str(default_port)
    if not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def make_sink(
    dest: str,
    *,
    retry_timeout: float = 60.0,
    shared_key: str | None = None,
    self_hostname: str = "ngx-enrich",
    tls_ca: str | None = None,
    tls_insecure: bool = False,
    metrics: Metrics | None = None,
) -> Sink:
    """Build the sink named by a `--to` value.

    `stdout`, `file:PATH`, `forward://HOST:PORT` (acked), `forward+tls://HOST:PORT` (acked, TLS)
    or `fluent://HOST:PORT` (best effort, fluent-logger). `metrics`, when given, counts the
    next hop's failures and retries.
    """
    if dest in ("stdout", "-"):
        return StdoutSink()
    if dest.startswith("file:"):
        path = dest.removeprefix("file:").removeprefix("//")
        if not path:
            raise ValueError("file: needs a path, as in file:/var/log/ngx-enrich.jsonl")
        return FileSink(path)
    scheme, sep, rest = dest.partition("://")
    if not sep:
        raise ValueError(f"unknown destination {dest!r}")
    if scheme == "fluent":
        return FluentLoggerSink(*host_port(rest, default_port=24224), metrics=metrics)
    if scheme in ("forward", "forward+tls"):
        host, port = host_port(rest, default_port=24224)
        context = None
        if scheme == "forward+tls":
            context = ssl.create_default_context(cafile=tls_ca)
            if tls_insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        client = ForwardClient(
            host, port, ssl_context=context, shared_key=shared_key, self_hostname=self_hostname,
            metrics=metrics,
        )
        return ForwardSink(client, retry_timeout=retry_timeout)
    raise ValueError(f"unknown destination scheme {scheme!r} in {dest!r}")
