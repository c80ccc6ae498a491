"""Bytes in, bytes out: read lines from files or pipes, write JSON lines.

Input is read with `os.read`, which returns as soon as some data is there, so a live
pipe (`tail -F ... |`) gets every record written and flushed as soon as it is read,
while a file or a busy pipe is processed in large batches.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import orjson

CHUNK = 1 << 16
MAX_PENDING = 8 << 20  # a "line" longer than this is emitted in pieces
_DUMP = orjson.OPT_APPEND_NEWLINE
BAD_UTF8 = "invalid UTF-8 (bytes shown as \\xNN)"


def read_lines(fd: int) -> Iterator[list[tuple[str, str | None]]]:
    """Yield batches of (line, parse_error) from a file descriptor until EOF."""
    pending = b""
    while True:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            break
        data = pending + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
            if len(pending) > MAX_PENDING:
                yield decode(pending)
                pending = b""
            continue
        pending = data[cut + 1:]
        yield decode(data[:cut])
    if pending:
        yield decode(pending)


def decode(block: bytes) -> list[tuple[str, str | None]]:
    """Split a block of complete lines; bad UTF-8 is kept as \\xNN and flagged."""
    try:
        return [(_chomp(line), None) for line in block.decode("utf-8").split("\n")]
    except UnicodeDecodeError:
        out: list[tuple[str, str | None]] = []
        for raw in block.split(b"\n"):
            try:
                out.append((_chomp(raw.decode("utf-8")), None))
            except UnicodeDecodeError:
                out.append((_chomp(raw.decode("utf-8", "backslashreplace")), BAD_UTF8))
        return out


def _chomp(line: str) -> str:
    return line[:-1] if line.endswith("\r") else line


def write_json_lines(out: BinaryIO, records: list[dict[str, Any]]) -> None:
    """Write records as JSON lines and flush."""
    out.write(b"".join(orjson.dumps(r, option=_DUMP) for r in records))
    out.flush()


def pump(fd: int, enrich: Callable[[str, str | None], dict[str, Any]], out: BinaryIO) -> int:
    """Enrich every line of `fd` into `out`; return the number of records written."""
    count = 0
    for batch in read_lines(fd):
        records = [enrich(line, err) for line, err in batch]
        write_json_lines(out, records)
        count += len(records)
    return count
