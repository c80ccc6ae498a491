"""`ngx-enrich serve`: the command-line face of the forward hop."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
import threading
from typing import TYPE_CHECKING

from ngx_enrich import argtypes, metrics
from ngx_enrich.forward import protocol
from ngx_enrich.forward.server import ForwardServer, Settings
from ngx_enrich.forward.sinks import Sink, host_port, make_sink

if TYPE_CHECKING:
    from ngx_enrich.pipeline import Enricher

log = logging.getLogger("ngx_enrich.forward")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `serve` to its sub-parser."""
    net = parser.add_argument_group("listening")
    net.add_argument(
        "--listen",
        default="127.0.0.1:24225",
        metavar="ADDR",
        help="HOST:PORT or unix:PATH to accept forward connections on (default: %(default)s)",
    )
    net.add_argument("--tls-cert", metavar="FILE", help="serve TLS with this certificate (PEM)")
    net.add_argument("--tls-key", metavar="FILE", help="private key for --tls-cert (PEM)")
    net.add_argument(
        "--shared-key",
        metavar="KEY",
        help="require the HELO/PING/PONG handshake with this key "
        "(default: $NGX_ENRICH_SHARED_KEY, else no handshake)",
    )
    net.add_argument(
        "--self-hostname",
        default="ngx-enrich",
        metavar="NAME",
        help="hostname used in handshakes; must differ from the peers' (default: %(default)s)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--to",
        default="stdout",
        metavar="DEST",
        help="stdout: JSON lines {tag, time, record}; file:PATH: the same, fsynced before "
        "each ack; forward://HOST:PORT or forward+tls://HOST:PORT: the next forward hop, acked "
        "(at-least-once); fluent://HOST:PORT: best effort via fluent-logger (default: stdout)",
    )
    out.add_argument("--tag-prefix", metavar="PREFIX", help="rewrite every tag to PREFIX.TAG")
    out.add_argument(
        "--event-time",
        choices=("line", "keep"),
        default="line",
        help="line (default): an event whose log line carries its own time gets that time "
        "(Elasticsearch's @timestamp), so a replayed backlog lands when it happened; keep: "
        "leave every event time as the sender sent it",
    )
    out.add_argument(
        "--to-shared-key",
        metavar="KEY",
        help="shared key of the next forward hop (default: $NGX_ENRICH_TO_SHARED_KEY)",
    )
    out.add_argument("--to-tls-ca", metavar="FILE", help="CA bundle to verify forward+tls://")
    out.add_argument(
        "--to-tls-insecure",
        action="store_true",
        help="do not verify the certificate of forward+tls:// (testing only)",
    )
    out.add_argument(
        "--retry-timeout",
        type=argtypes.seconds,
        default=60.0,
        metavar="SECONDS",
        help="keep retrying the next hop this long per chunk, then close the sender's "
        "connection without an ack so it resends (default: %(default)g)",
    )
    lim = parser.add_argument_group("limits")
    lim.add_argument(
        "--max-buffer",
        type=argtypes.size,
        default=8 << 20,
        metavar="SIZE",
        help="largest request accepted; larger ones close the connection (default: 8M)",
    )
    lim.add_argument(
        "--max-decompressed",
        type=argtypes.size,
        default=32 << 20,
        metavar="SIZE",
        help="largest gzip payload once inflated (default: 32M)",
    )
    lim.add_argument(
        "--max-connections",
        type=argtypes.count,
        default=64,
        metavar="N",
        help="concurrent connections; more are refused (default: %(default)s)",
    )
    lim.add_argument(
        "--read-timeout",
        type=argtypes.positive_seconds,
        default=30.0,
        metavar="SECONDS",
        help="close a sender that stalls inside a request or handshake (default: %(default)g)",
    )
    lim.add_argument(
        "--idle-timeout",
        type=argtypes.seconds,
        default=0.0,
        metavar="SECONDS",
        help="close connections idle between requests this long; 0 never (default: 0)",
    )
    lim.add_argument(
        "--drain-timeout",
        type=argtypes.seconds,
        default=30.0,
        metavar="SECONDS",
        help="on SIGTERM, wait this long for chunks being delivered (default: %(default)g)",
    )
    metrics.add_argument(parser.add_argument_group("monitoring"))


def writes_json(args: argparse.Namespace) -> bool:
    """Whether the events go to JSON lines and nothing else reads their records (no
    `--metrics`): then the enricher may hand records on with their objects as encoded JSON."""
    dest = args.to
    return args.metrics is None and (dest in ("stdout", "-") or dest.startswith("file:"))


def run(args: argparse.Namespace, enricher: Enricher) -> int:
    """Serve until SIGTERM or SIGINT, then drain; return the exit status."""
    _setup_logging()
    meter = metrics.Metrics.for_enricher(enricher) if args.metrics is not None else None
    try:
        server, sink = _build(args, enricher, meter)
    except (ValueError, OSError, ssl.SSLError) as exc:
        log.error("serve: %s", exc)
        return 2
    exposer = None
    if meter is not None:
        host, port = args.metrics
        try:
            exposer = meter.serve(host, port)
        except OSError as exc:
            log.error("serve: cannot serve metrics on %s:%d: %s", host, port, exc)
            return 1
        log.info("serve: metrics at http://%s/metrics", exposer.address)
    try:
        return asyncio.run(_serve(server, sink, args.listen, args.drain_timeout))
    finally:
        if exposer is not None:
            exposer.close()


def _build(
    args: argparse.Namespace, enricher: Enricher, meter: metrics.Metrics | None = None
) -> tuple[ForwardServer, Sink]:
    """The server and its sink from the parsed options (their defaults live in the parser);
    `meter`: the metrics to count into, or None when `--metrics` is off."""
    if not args.listen.startswith("unix:"):
        host_port(args.listen)  # a bad address is a usage error, reported before anything starts
    settings = Settings(
        limits=protocol.Limits(max_buffer=args.max_buffer,
                               max_decompressed=args.max_decompressed),
        tag_prefix=args.tag_prefix or None,
        shared_key=args.shared_key or os.environ.get("NGX_ENRICH_SHARED_KEY") or None,
        self_hostname=args.self_hostname,
        read_timeout=args.read_timeout,
        idle_timeout=args.idle_timeout or None,
        max_connections=args.max_connections,
    )
    context = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise ValueError("--tls-cert and --tls-key go together")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    sink = make_sink(
        args.to,
        retry_timeout=args.retry_timeout,
        shared_key=args.to_shared_key or os.environ.get("NGX_ENRICH_TO_SHARED_KEY") or None,
        self_hostname=settings.self_hostname,
        tls_ca=args.to_tls_ca,
        tls_insecure=args.to_tls_insecure,
        metrics=meter,
    )
    own_time = enricher.own_event_time if args.event_time == "line" else None
    server = ForwardServer(
        enricher.enrich_record, sink, settings, ssl_context=context, own_time=own_time,
        metrics=meter,
    )
    return server, sink


async def _serve(server: ForwardServer, sink: Sink, listen: str, drain_timeout: float) -> int:
    try:
        await sink.open()
    except OSError as exc:
        log.error("serve: cannot open %s: %s", sink.description, exc)
        return 1
    try:
        bound = await server.listen(listen)
    except (OSError, ValueError) as exc:
        log.error("serve: cannot listen on %s: %s", listen, exc)
        await sink.close()
        return 1
    log.info("serve: listening on %s, sending to %s", bound, sink.description)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    if threading.current_thread() is threading.main_thread():
        for sig in signals:
            loop.add_signal_handler(sig, stop.set)
    waits = [asyncio.create_task(stop.wait()), asyncio.create_task(server.failed.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
        log.info("serve: stopping; draining chunks in flight")
        await server.close(drain_timeout)
        await sink.close()
        if threading.current_thread() is threading.main_thread():
            for sig in signals:
                loop.remove_signal_handler(sig)
    if server.fatal is not None:
        log.error("serve: %s", server.fatal)
        return 1
    log.info("serve: stopped")
    return 0


def _setup_logging() -> None:
    """Diagnostics go to stderr, so that stdout carries only records."""
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, format="ngx-enrich: %(levelname)s: %(message)s")
    package = logging.getLogger("ngx_enrich")
    if package.level == logging.NOTSET:
        package.setLevel(logging.INFO)
