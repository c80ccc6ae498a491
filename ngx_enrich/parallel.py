"""`--workers N`: enrich batches in N processes, write results in input order."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from typing import BinaryIO

from ngx_enrich.encode import json_lines
from ngx_enrich.io import QUIET, Joiner, Line, read_lines
from ngx_enrich.pipeline import Enricher

_enricher: Enricher | None = None


def _init(enricher: Enricher) -> None:
    global _enricher
    _enricher = enricher


def _work(records: list[Line]) -> bytes:
    assert _enricher is not None
    enrich = _enricher.enrich_line
    return json_lines([enrich(text, err) for text, err in records])


def _records(fd: int, quiet: float, multiline: bool, first: bytes,
             enricher: Enricher) -> Iterator[list[Line]]:
    joiner = Joiner(enricher.starts_record) if multiline else None
    for batch in read_lines(fd, quiet if multiline else None, first):
        if joiner is None:
            records = batch or []
        else:
            records = joiner.flush() if batch is None else joiner.feed(batch)
        if records:
            yield records
    if joiner is not None and (tail := joiner.flush()):
        yield tail


def pump_parallel(fd: int, enricher: Enricher, out: BinaryIO, workers: int,
                  quiet: float = QUIET, multiline: bool = True, first: bytes = b"") -> None:
    """Like `io.pump`, with the enrichment spread over `workers` processes."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers, initializer=_init, initargs=(enricher,)) as pool:
        for block in pool.imap(_work, _records(fd, quiet, multiline, first, enricher)):
            out.write(block)
            out.flush()
