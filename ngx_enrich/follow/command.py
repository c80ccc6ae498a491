"""`ngx-enrich follow`: the command around the tailer.

This is the Fluent Bit shape: Fluent Bit has no exec filter, so `in_exec` runs ngx-enrich as a
source that reads the logs itself. Each batch of lines is enriched as the filter enriches
them, then given its event time and the path it came from.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ngx_enrich import argtypes, metrics
from ngx_enrich.eventtime import own_time_text, utc_iso
from ngx_enrich.follow.tailer import ReadBatch, Tailer
from ngx_enrich.io import Joiner
from ngx_enrich.parse.dispatch import continues, opens_record

log = logging.getLogger(__name__)


def _enrich(enrich_line: Callable[..., dict[str, Any]], line: str,
            err: str | None) -> dict[str, Any]:
    """Run the enricher; a line it fails on is passed through rather than dropped."""
    try:
        return enrich_line(line) if err is None else enrich_line(line, err)
    except Exception:
        log.exception("enrichment failed; passing the line through")
        return {"log": line}


def shape_batch(
    batch: ReadBatch,
    enrich_line: Callable[..., dict[str, Any]],
    *,
    time_key: str = "time",
    key: str = "ngx",
    joiner: Callable[[], Joiner] = lambda: Joiner(continues, opens_record),
) -> list[dict[str, Any]]:
    """Enrich every line of `batch`, adding the time field and the source path.

    The time is the record's own (`eventtime.own_time_text`) when it has one, else the time
    the batch was read.
    An existing `path` field (say, a request path from a JSON access log) is left alone.
    """
    read_time = utc_iso(batch.read_at)
    out = []
    # A multiline error record (FastCGI stderr) is written by Nginx in one go, so it is
    # joined within the batch; nothing is held across batches, so the saved offsets stay exact.
    join = joiner()
    for line, err in join.feed(batch.lines) + join.flush():
        record = _enrich(enrich_line, line, err)
        record[time_key] = own_time_text(record, key) or read_time
        record.setdefault("path", batch.path)
        out.append(record)
    return out




# --------------------------------------------------------------------------- command glue


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `ngx-enrich follow`."""
    parser.add_argument("files", metavar="FILE", nargs="+", help="log files to follow")
    parser.add_argument(
        "--from-start",
        action="store_true",
        help="read files without a saved position from the start (default: from the end)",
    )
    parser.add_argument(
        "--state",
        metavar="PATH",
        default=None,
        help="JSON file keeping read positions across restarts (default: none)",
    )
    parser.add_argument(
        "--poll",
        metavar="SECONDS",
        type=argtypes.positive_seconds,
        default=0.25,
        help="how often to look for new lines (default: 0.25)",
    )
    parser.add_argument("--once", action="store_true", help="read what is there now, then exit")
    parser.add_argument(
        "--time-key",
        metavar="NAME",
        default="time",
        help="field for the UTC event time (default: time)",
    )
    metrics.add_argument(parser)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn SIGTERM/SIGINT into `stop.set()` for the duration (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def follow_batches(
    tailer: Tailer,
    handle: Callable[[ReadBatch], None],
    stop: threading.Event,
    *,
    once: bool = False,
    after: Callable[[], None] = lambda: None,
) -> None:
    """Poll, hand each batch to `handle`, commit it; until `stop` (or the files end, `once`).

    `after` is called after every poll (to measure what is left to read)."""
    while not stop.is_set():
        batches = tailer.poll()
        for batch in batches:
            if stop.is_set():
                return
            handle(batch)
            tailer.commit(batch)
        after()
        if not batches:
            if once:
                return
            stop.wait(tailer.poll_interval)


def run(
    args: argparse.Namespace,
    enrich_line: Callable[..., dict[str, Any]],
    write: Callable[[list[dict[str, Any]]], None],
    joiner: Callable[[], Joiner] = lambda: Joiner(continues, opens_record),
    meter: metrics.Metrics | None = None,
) -> int:
    """Run `ngx-enrich follow`; 0 on a clean stop (SIGTERM/SIGINT, --once, reader gone).

    `meter`: the metrics to count into and serve at `args.metrics` (None: off)."""
    stop = threading.Event()
    key = getattr(args, "key", None) or "ngx"
    tailer = Tailer(
        args.files, from_start=args.from_start, state_path=args.state, poll_interval=args.poll
    )

    def handle(batch: ReadBatch) -> None:
        started = time.perf_counter()
        records = shape_batch(batch, enrich_line, time_key=args.time_key, key=key, joiner=joiner)
        if meter is None:
            write(records)
            return
        meter.enrich_time(time.perf_counter() - started)
        meter.record_in(len(batch.lines))
        write(records)
        meter.records_out(meter.view(r) for r in records)

    def measure() -> None:
        if meter is not None:
            for path, lag in tailer.lag().items():
                meter.file_followed(path, lag is not None)
                meter.file_lag(path, lag or 0)

    exposer = None
    if meter is not None:
        try:
            exposer = meter.serve(*args.metrics)
        except OSError as exc:
            print(f"ngx-enrich follow: cannot serve metrics on {args.metrics[0]}:"
                  f"{args.metrics[1]}: {exc}", file=sys.stderr)
            return 1

    with _stop_on_signals(stop):
        try:
            tailer.open()
        except OSError as exc:
            print(f"ngx-enrich follow: {exc}", file=sys.stderr)
            if exposer is not None:
                exposer.close()
            return 1
        try:
            follow_batches(tailer, handle, stop, once=args.once, after=measure)
        except BrokenPipeError:
            pass  # the reader went away; the state holds what it received
        finally:
            tailer.close()
            if exposer is not None:
                exposer.close()
    return 0
