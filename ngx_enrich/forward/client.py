"""A small forward client that waits for acks: PackedForward out, `{"ack": chunk}` back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from typing import TYPE_CHECKING, Any

from ngx_enrich.forward import protocol

if TYPE_CHECKING:
    from ngx_enrich.metrics import Metrics

log = logging.getLogger("ngx_enrich.forward")


class ForwardError(ConnectionError):
    """The next hop did not acknowledge a chunk."""


class ForwardClient:
    """Sends packed event streams to one forward server, one chunk at a time.

    `send()` retries with exponential backoff, reconnecting as needed, until the chunk is
    acknowledged; bound it with `asyncio.timeout()`. Not safe for concurrent `send()` calls.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        shared_key: str | None = None,
        self_hostname: str = "ngx-enrich",
        connect_timeout: float = 10.0,
        ack_timeout: float = 60.0,
        backoff: tuple[float, float] = (0.1, 5.0),
        limits: protocol.Limits | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        """`metrics`, when given, counts failed attempts and retries."""
        self.host, self.port = host, port
        self.metrics = metrics
        self.ssl_context = ssl_context
        self.shared_key = shared_key
        self.self_hostname = self_hostname
        self.connect_timeout = connect_timeout
        self.ack_timeout = ack_timeout
        self.backoff = backoff
        self.limits = limits or protocol.Limits(max_buffer=1 << 20)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._unpacker: Any = None
        self._failing = 0

    @property
    def failing(self) -> bool:
        """Whether the last attempt to reach the next hop failed."""
        return self._failing > 0

    @property
    def address(self) -> str:
        """host:port of the next hop."""
        return f"{self.host}:{self.port}"

    async def send(self, tag: str, payload: bytes, size: int) -> None:
        """Deliver one packed stream of `size` entries; returns once it is acknowledged."""
        chunk = protocol.new_chunk_id()
        frame = protocol.encode_packed_forward(tag, payload, size=size, chunk=chunk)
        delay = self.backoff[0]
        while True:
            try:
                await self._attempt(frame, chunk)
            except (OSError, EOFError, TimeoutError, protocol.ProtocolError) as exc:
                self._drop()
                self._failing += 1
                if self.metrics is not None:
                    self.metrics.next_hop_failure()
                if self._failing == 1:
                    log.warning("next hop %s: %s; retrying until it acks", self.address, _why(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff[1])
                if self.metrics is not None:
                    self.metrics.next_hop_retry()
                continue
            except BaseException:
                self._drop()  # cancelled mid-exchange: the stream position is unknown
                raise
            if self._failing:
                log.warning("next hop %s: delivering again", self.address)
                self._failing = 0
            return

    async def close(self) -> None:
        """Close the connection, if any."""
        writer = self._writer
        self._drop()
        if writer is not None:
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _attempt(self, frame: bytes, chunk: str) -> None:
        if self._writer is None:
            await self._connect()
        assert self._writer is not None
        self._writer.write(frame)
        await asyncio.wait_for(self._writer.drain(), self.ack_timeout)
        reply = await self._read(self.ack_timeout)
        if type(reply) is list and reply[:1] == ["HELO"]:
            raise protocol.HandshakeError("the next hop requires a shared key")
        if type(reply) is not dict or reply.get("ack") != chunk:
            raise protocol.ProtocolError(f"unexpected reply {protocol.brief(reply)}")

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.host,
                self.port,
                ssl=self.ssl_context,
                ssl_handshake_timeout=self.connect_timeout if self.ssl_context else None,
            ),
            self.connect_timeout,
        )
        self._unpacker = protocol.unpacker(self.limits)
        if self.shared_key is not None:
            await self._handshake(self.shared_key)

    async def _handshake(self, shared_key: str) -> None:
        assert self._writer is not None
        nonce = protocol.read_helo(await self._read(self.connect_timeout))
        salt = os.urandom(16).hex()  # text, as Fluentd sends it (Fluent Bit wants a str)
        self._writer.write(protocol.make_ping(self.self_hostname, salt, nonce, shared_key))
        protocol.check_pong(
            await self._read(self.connect_timeout),
            salt=salt,
            nonce=nonce,
            shared_key=shared_key,
            self_hostname=self.self_hostname,
        )

    async def _read(self, timeout: float) -> Any:
        assert self._reader is not None
        while True:
            try:
                return next(self._unpacker)
            except StopIteration:
                pass
            except Exception as exc:
                raise protocol.ProtocolError(f"undecodable reply ({_why(exc)})") from exc
            data = await asyncio.wait_for(self._reader.read(65536), timeout)
            if not data:
                raise EOFError("connection closed by the next hop")
            try:
                self._unpacker.feed(data)
            except Exception as exc:
                raise protocol.ProtocolError(f"oversized reply ({_why(exc)})") from exc

    def _drop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
        self._unpacker = None


def _why(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
