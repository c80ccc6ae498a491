"""The forward listener: decode requests, enrich their events, hand them on, then ack.

Each connection is served one request at a time: the next bytes are read only after the
current request was delivered and acknowledged, so a slow next hop turns into TCP backpressure
on the sender instead of memory growth here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import stat
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ngx_enrich.forward import protocol
from ngx_enrich.forward.events import Enrich, OwnTime, enrich_into
from ngx_enrich.forward.sinks import Batch, DeliveryError, Sink, host_port

if TYPE_CHECKING:
    from ngx_enrich.metrics import Metrics, NgxView

log = logging.getLogger("ngx_enrich.forward")

READ_SIZE = 1 << 16
YIELD_EVERY = 2000


@dataclass(frozen=True, slots=True)
class Settings:
    """How the listener behaves."""

    limits: protocol.Limits = field(default_factory=protocol.Limits)
    tag_prefix: str | None = None
    shared_key: str | None = None
    self_hostname: str = "ngx-enrich"
    read_timeout: float = 30.0
    """Seconds a sender may pause in the middle of a request (or a handshake) before we close."""
    idle_timeout: float | None = None
    """Seconds a connection may sit between requests; None keeps it open."""
    max_connections: int = 64


class _Connection:
    __slots__ = ("busy", "peer", "task")

    def __init__(self, peer: str, task: asyncio.Task[Any]) -> None:
        self.peer = peer
        self.task = task
        self.busy = False


class ForwardServer:
    """Serves forward connections on one TCP or unix socket."""

    def __init__(
        self,
        enrich: Enrich,
        sink: Sink,
        settings: Settings | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        own_time: OwnTime | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`own_time`, when given, reads an enriched record's own time (as EventTime); where
        it finds one, that becomes the event's time. `metrics`, when given, counts
        records, chunks and enrichment time."""
        self.enrich = enrich
        self.metrics = metrics
        self.own_time = own_time
        self.sink = sink
        self.settings = settings or Settings()
        self.ssl_context = ssl_context
        self.fatal: DeliveryError | None = None
        self.failed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._unix_path: str | None = None
        self._conns: dict[asyncio.Task[Any], _Connection] = {}
        self._stopping = False
        self._enrich_failures = 0

    # -- lifecycle -----------------------------------------------------------------------------

    async def listen(self, address: str) -> str:
        """Start listening on `HOST:PORT` or `unix:PATH`; return the bound address."""
        if address.startswith("unix:"):
            path = address.removeprefix("unix:")
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    os.unlink(path)  # left over from a previous run
            self._server = await asyncio.start_unix_server(
                self._accept, path=path, ssl=self.ssl_context, **self._tls_options()
            )
            self._unix_path = path
            return f"unix:{path}"
        host, port = host_port(address)
        self._server = await asyncio.start_server(
            self._accept, host, port, ssl=self.ssl_context, **self._tls_options()
        )
        bound = self._server.sockets[0].getsockname()
        if self._server.sockets[0].family == socket.AF_INET6:
            return f"[{bound[0]}]:{bound[1]}"
        return f"{bound[0]}:{bound[1]}"

    def _tls_options(self) -> dict[str, Any]:
        if self.ssl_context is None:
            return {}
        return {"ssl_handshake_timeout": self.settings.read_timeout}

    async def close(self, drain_timeout: float = 30.0) -> None:
        """Stop accepting, let requests being delivered finish (and ack), then close."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns.values()):
            if not conn.busy:
                conn.task.cancel()
        pending = [conn.task for conn in self._conns.values()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=drain_timeout)
            for task in late:
                peer = self._peer(task)
                log.warning("%s: still delivering after %gs; closing", peer, drain_timeout)
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=5.0)
        if self._unix_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._unix_path)

    def _peer(self, task: asyncio.Task[Any]) -> str:
        conn = self._conns.get(task)
        return conn.peer if conn is not None else "connection"

    # -- one connection ------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer_name(writer)
        task = asyncio.current_task()
        assert task is not None
        if self._stopping:
            log.info("%s: refused, shutting down", peer)
            writer.close()
            return
        if len(self._conns) >= self.settings.max_connections:
            log.warning("%s: refused, %d connections open", peer, len(self._conns))
            writer.close()
            return
        conn = self._conns[task] = _Connection(peer, task)
        try:
            if self.settings.shared_key is None or await self._handshake(reader, writer, peer):
                await self._serve(conn, reader, writer)
        except asyncio.CancelledError:
            pass
        except (OSError, EOFError) as exc:
            log.info("%s: connection lost (%s)", peer, exc or type(exc).__name__)
        except Exception:  # a bug must cost one connection, never the server
            log.exception("%s: internal error; closing the connection", peer)
        finally:
            del self._conns[task]
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _serve(
        self, conn: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        settings = self.settings
        unpacker = protocol.unpacker(settings.limits)
        limit = settings.limits.max_buffer
        fed = done = 0  # bytes received; bytes of whole requests decoded
        while not self._stopping:
            partial = fed != done
            timeout = settings.read_timeout if partial else settings.idle_timeout
            try:
                data = await asyncio.wait_for(reader.read(READ_SIZE), timeout)
            except TimeoutError:
                if partial:
                    log.warning("%s: stalled inside a request for %gs; closing", conn.peer, timeout)
                else:
                    log.info("%s: idle for %gs; closing", conn.peer, timeout)
                return
            if not data:
                if partial:
                    log.warning("%s: closed in the middle of a request", conn.peer)
                return
            fed += len(data)
            too_big = False
            try:
                unpacker.feed(data)
            except Exception:  # BufferFull
                too_big = True
            while not too_big:
                try:
                    obj = next(unpacker)
                except StopIteration:
                    break
                except Exception as exc:
                    log.warning("%s: undecodable msgpack (%s); closing", conn.peer, _why(exc))
                    return
                end = unpacker.tell()
                too_big, done = end - done > limit, end
                if too_big:
                    break
                conn.busy = True
                try:
                    keep = await self._request(obj, conn.peer, writer)
                finally:
                    conn.busy = False
                if not keep or self._stopping:
                    return
            # The unpacker builds a request as its bytes arrive, so its own buffer bound does
            # not bound a request: the bytes of the one still incomplete are counted too.
            if too_big or fed - done > limit:
                log.warning("%s: request larger than %d bytes; closing", conn.peer, limit)
                return

    async def _request(self, obj: Any, peer: str, writer: asyncio.StreamWriter) -> bool:
        """Serve one decoded request; False closes the connection."""
        try:
            request = protocol.parse_request(obj)
        except protocol.ProtocolError as exc:
            log.warning("%s: %s%s", peer, exc, "; closing" if exc.close else "")
            return not exc.close
        if request is None:
            return True  # heartbeat
        signal = request.options.get("fluent_signal", 0)
        tag = request.tag
        if self.settings.tag_prefix:
            tag = f"{self.settings.tag_prefix}.{tag}"
        metrics = self.metrics
        if metrics is None:
            return await self._handle(request, signal, tag, peer, writer, None)
        views: list[NgxView] = []
        metrics.chunk_started(request.chunk)
        acked = False
        try:
            acked = await self._handle(request, signal, tag, peer, writer, views)
            return acked
        finally:
            metrics.chunk_finished(acked and request.chunk is not None)

    async def _handle(
        self,
        request: protocol.Request,
        signal: Any,
        tag: str,
        peer: str,
        writer: asyncio.StreamWriter,
        views: list[NgxView] | None,
    ) -> bool:
        """Enrich, deliver and ack one request; `views` collects what the metrics count."""
        batch = self.sink.batch(tag)
        try:
            if signal == 0:
                await self._fill(batch, request, views)
            else:
                request.skipped = request.size or 1
        except protocol.ProtocolError as exc:
            log.warning("%s: %s (tag %s); closing without ack", peer, exc, request.tag)
            return False
        finally:
            if views is not None and self.metrics is not None:
                self.metrics.record_in(len(views))
        if request.skipped:
            n, why = request.skipped, "not log events" if signal else "malformed"
            log.warning("%s: skipped %d %s entries (tag %s)", peer, n, why, request.tag)
        elif request.size is not None and request.size != batch.count:
            log.warning(
                "%s: size option says %d entries, found %d (tag %s)",
                peer,
                request.size,
                batch.count,
                request.tag,
            )
        if batch.count:
            try:
                await self.sink.deliver(batch)
            except DeliveryError as exc:
                log.warning("%s: not acked: %s; closing", peer, exc)
                if exc.fatal and self.fatal is None:
                    self.fatal = exc
                    self.failed.set()
                return False
            if views is not None and self.metrics is not None:
                self.metrics.records_out(views)
        if request.chunk is not None:
            writer.write(protocol.encode_ack(request.chunk))
            await asyncio.wait_for(writer.drain(), self.settings.read_timeout)
        return True

    async def _fill(
        self, batch: Batch, request: protocol.Request, views: list[NgxView] | None = None
    ) -> None:
        """Enrich the request's events into `batch`; with `views`, also collect what the
        metrics count and time the enrichment (without the pauses for other connections)."""
        limits = self.settings.limits
        view = self.metrics.view if self.metrics is not None else None
        events = request.events(limits)
        spent, start = 0.0, time.perf_counter()
        while enrich_into(events, YIELD_EVERY, self.enrich, batch.add, self.own_time,
                          self._enrich_failed, view, views) == YIELD_EVERY:
            spent += time.perf_counter() - start
            await asyncio.sleep(0)  # let other connections progress
            start = time.perf_counter()
        if views is not None and self.metrics is not None:
            self.metrics.enrich_time(spent + time.perf_counter() - start)

    def _enrich_failed(self, exc: Exception) -> None:
        self._enrich_failures += 1
        failures = self._enrich_failures
        if failures == 1 or failures % 10_000 == 0:
            log.warning("enrichment failed %d time(s): %s", failures, _why(exc))

    async def _handshake(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> bool:
        settings = self.settings
        assert settings.shared_key is not None
        nonce = os.urandom(16)
        writer.write(protocol.make_helo(nonce))
        unpacker = protocol.unpacker(protocol.Limits(max_buffer=64 << 10))
        try:
            async with asyncio.timeout(settings.read_timeout):
                await writer.drain()
                ping = await _read_one(reader, unpacker)
            salt, client = protocol.check_ping(
                ping,
                nonce=nonce,
                shared_key=settings.shared_key,
                self_hostname=settings.self_hostname,
            )
        except TimeoutError:
            log.warning("%s: no PING within %gs; closing", peer, settings.read_timeout)
            return False
        except protocol.HandshakeError as exc:
            log.warning("%s: handshake refused: %s", peer, exc)
            refusal = protocol.make_pong(False, str(exc), settings.self_hostname, b"", nonce, "")
            writer.write(refusal)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.drain(), 1.0)
            return False
        except (ValueError, protocol.ProtocolError, EOFError) as exc:
            log.warning("%s: handshake failed: %s", peer, _why(exc))
            return False
        writer.write(
            protocol.make_pong(True, "", settings.self_hostname, salt, nonce, settings.shared_key)
        )
        await asyncio.wait_for(writer.drain(), settings.read_timeout)
        log.info("%s: authenticated as %s", peer, client)
        return True


async def _read_one(reader: asyncio.StreamReader, unpacker: Any) -> Any:
    while True:
        try:
            return next(unpacker)
        except StopIteration:
            pass
        except Exception as exc:
            raise protocol.ProtocolError(f"undecodable msgpack ({_why(exc)})") from exc
        data = await reader.read(READ_SIZE)
        if not data:
            raise EOFError("closed during the handshake")
        try:
            unpacker.feed(data)
        except Exception as exc:
            raise protocol.ProtocolError("oversized handshake message") from exc


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return "unix peer" if not peer else str(peer)


def _why(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
