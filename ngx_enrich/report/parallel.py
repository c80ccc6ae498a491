"""One large file counted by several worker processes, then merged.

The parent reads the file and deals it out in turn, in blocks of whole records: a block
always ends just before a line that starts a record of its own (such a line never continues
a multiline record, so every record stays whole in one block), and the same file is always
split the same way, so a report is the same run after run. Each worker is a forked copy that reads
its blocks from a pipe exactly as the filter reads a file (`io.pump` with the enricher's
joiner) into its own collector, and sends that back pickled; the parent merges them. The
counts are those of a single pass; top lists merge as bounded summaries do (their error
bounds add up).
"""

from __future__ import annotations

import io
import os
import pickle
import select
import signal
import stat
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import suppress
from typing import Any, BinaryIO

from ngx_enrich.io import pump
from ngx_enrich.pipeline import Enricher
from ngx_enrich.report.collect import Collector

BLOCK = 1 << 20
MAX_BLOCK = 8 << 20  # a block without a record start in it is handed on whole
MIN_SIZE = 8 << 20  # smaller files are read in one process
PART = 4 << 20  # at least this much input per worker
HOLD = 86400.0  # a worker never flushes a record for silence: its pipe is never quiet for long


class WorkerFailed(RuntimeError):
    """A worker process ended without sending its counts."""


def jobs_for(fd: int, wanted: int) -> int:
    """How many workers to use for `fd`: 1 unless it is a regular file worth splitting."""
    if wanted <= 1:
        return 1
    try:
        info = os.fstat(fd)
    except OSError:
        return 1
    if not stat.S_ISREG(info.st_mode) or info.st_size < MIN_SIZE:
        return 1
    return min(wanted, info.st_size // PART)


def default_jobs() -> int:
    """The processors this process may run on, at most 4."""
    return max(1, min(len(os.sched_getaffinity(0)), 4))


def count_file(fd: int, jobs: int, enricher: Enricher, make: Callable[[], Collector],
               multiline: bool) -> Collector:
    """Count `fd` with `jobs` workers; their collectors merged into one."""
    workers: list[tuple[int, int, int]] = []  # pid, block pipe, result pipe
    running: set[int] = set()
    try:
        for _ in range(jobs):
            blocks_in, blocks_out = os.pipe()
            results_in, results_out = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                others = [blocks_out, results_in, *(end for w in workers for end in w[1:])]
                _worker(blocks_in, results_out, others, enricher, make, multiline)
            running.add(pid)
            os.close(blocks_in)
            os.close(results_out)
            workers.append((pid, blocks_out, results_in))
        try:
            _deal(fd, [w[1] for w in workers], enricher.starts_record)
        except BrokenPipeError:
            raise WorkerFailed("a worker process ended early") from None
        for _, blocks_out, _ in workers:
            os.close(blocks_out)
        merged: Collector | None = None
        for pid, _, results_in in workers:
            part = _result(results_in)
            _, status = os.waitpid(pid, 0)
            running.discard(pid)
            if part is None or os.waitstatus_to_exitcode(status):
                raise WorkerFailed("a worker process failed")
            if merged is None:
                merged = part
            else:
                merged.merge(part)
        assert merged is not None
        return merged
    finally:
        for pid, blocks_out, results_in in workers:
            for end in (blocks_out, results_in):
                with suppress(OSError):
                    os.close(end)
            if pid in running:
                with suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
                    os.waitpid(pid, 0)


def _worker(blocks: int, results: int, inherited: list[int], enricher: Enricher,
            make: Callable[[], Collector], multiline: bool) -> None:  # pragma: no cover
    """The child: count the blocks of its pipe, write the pickled collector, exit."""
    status = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for fd in inherited:  # the parent's pipe ends: their readers must see EOF without us
            os.close(fd)
        collector = make()

        def count(_out: BinaryIO, records: list[dict[str, Any]]) -> None:
            collector.add(records)

        joiner = enricher.joiner() if multiline else None
        pump(blocks, enricher.enrich_line, io.BytesIO(), joiner, quiet=HOLD, write=count)
        data = pickle.dumps(collector.portable(), protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(data)
        while view:
            view = view[os.write(results, view):]
        status = 0
    finally:
        os._exit(status)


def _result(fd: int) -> Collector | None:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    if not chunks:
        return None
    part = pickle.loads(b"".join(chunks))
    return part if isinstance(part, Collector) else None


def _deal(fd: int, outs: list[int], starts: Callable[[str], bool]) -> None:
    """Read `fd` and hand it out in blocks that end before a record start, block `i` to
    worker `i % len(outs)`, so the same file is always split the same way (and the merged
    estimates are the same run after run). Up to two blocks wait for each worker; writes
    go to whichever worker's pipe has room."""
    queued: dict[int, deque[memoryview]] = {out: deque() for out in outs}
    size = dict.fromkeys(outs, 0)
    for out in outs:
        os.set_blocking(out, False)
    blocks = _blocks(fd, starts)
    turn = 0
    more = True
    while True:
        out = outs[turn % len(outs)]
        if more and size[out] < 2 * BLOCK:
            block = next(blocks, None)
            if block is None:
                more = False
            else:
                queued[out].append(memoryview(block))
                size[out] += len(block)
                turn += 1
        wrote = False
        for out in outs:
            while queued[out]:
                head = queued[out][0]
                try:
                    n = os.write(out, head)
                except BlockingIOError:
                    break
                wrote = True
                size[out] -= n
                if n == len(head):
                    queued[out].popleft()
                else:
                    queued[out][0] = head[n:]
        busy = [out for out in outs if queued[out]]
        if not more and not busy:
            return
        if not wrote and (not more or size[outs[turn % len(outs)]] >= 2 * BLOCK):
            select.select([], busy, [])


def _blocks(fd: int, starts: Callable[[str], bool]) -> Iterator[bytes]:
    """The input in blocks of whole records (each ends just before a record start)."""
    pending = b""
    while chunk := os.read(fd, BLOCK):
        pending += chunk
        cut = _cut(pending, starts)
        if cut <= 0 and len(pending) > MAX_BLOCK:
            cut = len(pending)
        if cut > 0:
            yield pending[:cut]
            pending = pending[cut:]
    if pending:
        yield pending


def _cut(data: bytes, starts: Callable[[str], bool], tries: int = 64) -> int:
    """The end of the last whole line in `data` after which a record starts; 0: none."""
    end = data.rfind(b"\n")
    while tries and end > 0:
        tries -= 1
        start = data.rfind(b"\n", 0, end) + 1
        if start <= 0:
            return 0
        line = data[start:end].decode("utf-8", "replace").removesuffix("\r")
        if starts(line):
            return start
        end = start - 1
    return 0
