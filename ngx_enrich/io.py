"""Bytes in, bytes out: read records from files or pipes, write JSON lines.

Input is read with `os.read`, which returns as soon as some data is there, so a live
pipe (`tail -F ... |`) gets every record written and flushed as soon as it is read,
while a file or a busy pipe is processed in large batches.

Raw error-log records may span several physical lines (`FastCGI sent in stderr` with a
PHP stack trace): a line that does not start a record of its own continues the error
record before it. The last record is held back until the next one starts, input ends,
or input stays quiet for `quiet` seconds, so a live pipe is never held back for long.
"""

from __future__ import annotations

import os
import select
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, Final, cast

import msgpack

from ngx_enrich.encode import Packer, json_lines

CHUNK = 1 << 16
MAX_PIECE = 8 << 20  # a "line" longer than this is emitted in pieces
MAX_RECORD_LINES: Final = 1000  # a multiline record is closed after this many lines
QUIET = 0.2
BAD_UTF8: Final = "invalid UTF-8 (bytes shown as \\xNN)"

Line = tuple[str, str | None]  # text, parse error


def read_lines(fd: int, quiet: float | None = None,
               first: bytes = b"") -> Iterator[list[Line] | None]:
    """Yield batches of complete lines until EOF; None when input stayed quiet.

    `first` is data already read from `fd` (to sniff the input format).
    """
    pending = b""
    while True:
        if first:
            chunk, first = first, b""
        elif quiet is not None and not _readable(fd, quiet):
            yield None
            continue
        else:
            chunk = os.read(fd, CHUNK)
        if not chunk:
            break
        data = pending + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
            if len(pending) > MAX_PIECE:
                yield decode(pending)
                pending = b""
            continue
        pending = data[cut + 1:]
        yield decode(data[:cut])
    if pending:
        yield decode(pending)


def sniff(fd: int) -> tuple[str, bytes]:
    """Read the first chunk and tell whether the stream is msgpack maps or text lines."""
    first = os.read(fd, CHUNK)
    return ("msgpack" if first and first[0] in MSGPACK_MAP_FIRST else "json"), first


def _readable(fd: int, timeout: float) -> bool:
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    except (OSError, ValueError):  # not selectable: just read
        return True
    return bool(ready)


def decode(block: bytes) -> list[Line]:
    """Split a block of complete lines; bad UTF-8 is kept as \\xNN and flagged."""
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError:
        return _decode_by_line(block)
    if "\r" not in text:  # no line ends in CR: none to chomp
        return [(line, None) for line in text.split("\n")]
    return [(_chomp(line), None) for line in text.split("\n")]


def _decode_by_line(block: bytes) -> list[Line]:
    out: list[Line] = []
    for raw in block.split(b"\n"):
        try:
            out.append((_chomp(raw.decode("utf-8")), None))
        except UnicodeDecodeError:
            out.append((_chomp(raw.decode("utf-8", "backslashreplace")), BAD_UTF8))
    return out


def _chomp(line: str) -> str:
    return line[:-1] if line.endswith("\r") else line


class Joiner:
    """Groups physical lines into logical records.

    `opens(line)`: the line starts a record that the next lines may continue;
    `continues(lines, line)`: `line` goes on with the open record `lines`. Every other line is
    a record of its own, passed on at once.
    """

    def __init__(self, continues: Callable[[list[str], str], bool],
                 opens: Callable[[str], bool]) -> None:
        self._continues = continues
        self._opens = opens
        self._open: list[str] = []
        self._error: str | None = None

    def feed(self, lines: list[Line]) -> list[Line]:
        """Add lines; return the records that are complete."""
        done: list[Line] = []
        for text, err in lines:
            if self._open:
                if len(self._open) < MAX_RECORD_LINES and self._continues(self._open, text):
                    self._open.append(text)
                    self._error = self._error or err
                    continue
                done.append(self._close())
            if self._opens(text):
                self._open, self._error = [text], err
            else:
                done.append((text, err))
        return done

    def flush(self) -> list[Line]:
        """The held-back record, if any."""
        return [self._close()] if self._open else []

    def _close(self) -> Line:
        record = ("\n".join(self._open), self._error)
        self._open, self._error = [], None
        return record


# Records are written in groups of this many: a buffer for a whole batch (hundreds of KiB)
# would be taken from the kernel and handed back each time, costing a page fault per page.
WRITE_GROUP: Final = 32


def write_json_lines(out: BinaryIO, records: list[dict[str, Any]]) -> None:
    """Write records as JSON lines and flush."""
    if records:
        for i in range(0, len(records), WRITE_GROUP):
            out.write(json_lines(records[i:i + WRITE_GROUP]))
        out.flush()


def write_msgpack(out: BinaryIO, records: list[dict[str, Any]]) -> None:
    """Write records as a stream of msgpack maps (no delimiters) and flush."""
    if records:
        pack = Packer().pack
        for i in range(0, len(records), WRITE_GROUP):
            out.write(b"".join([pack(r) for r in records[i:i + WRITE_GROUP]]))
        out.flush()


Writer = Callable[[BinaryIO, list[dict[str, Any]]], None]
WRITERS: dict[str, Writer] = {"json": write_json_lines, "msgpack": write_msgpack}
MSGPACK_MAP_FIRST: Final = frozenset((*range(0x80, 0x90), 0xDE, 0xDF))


_MSGPACK_ERRORS: Final = (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
                   msgpack.BufferFull)


def read_msgpack(fd: int, first: bytes = b"", max_buffer: int = 64 << 20,
                 ) -> Iterator[list[tuple[Any, str | None]]]:
    """Yield batches of (object, parse error) from a msgpack stream until EOF.

    At undecodable bytes one flagged item is yielded and decoding resumes one byte later,
    so the objects after a bad stretch are still read.
    """
    buf = b""
    chunk = first
    while True:
        if not chunk:
            chunk = os.read(fd, CHUNK)
            if not chunk:
                break
        buf += chunk
        chunk = b""
        batch, buf = _decode_msgpack(buf, max_buffer)
        if batch:
            yield batch
    if buf:
        yield [(None, "truncated msgpack at end of input")]


def _decode_msgpack(buf: bytes, max_buffer: int) -> tuple[list[tuple[Any, str | None]], bytes]:
    """The objects complete in `buf`, and the bytes left over for the next read."""
    batch: list[tuple[Any, str | None]] = []
    skipping = False
    while buf:
        unpacker = msgpack.Unpacker(raw=False, unicode_errors="backslashreplace",
                                    strict_map_key=False, max_buffer_size=max(max_buffer,
                                                                              len(buf)))
        unpacker.feed(buf)
        good = 0
        try:
            for obj in unpacker:
                batch.append((obj, None))
                good = unpacker.tell()
                skipping = False
            if len(buf) - good > max_buffer:
                raise msgpack.BufferFull
            return batch, buf[good:]
        except _MSGPACK_ERRORS as exc:
            if not skipping:
                batch.append((None, f"invalid msgpack ({type(exc).__name__}); bytes skipped"))
                skipping = True
            buf = buf[good + 1:]
    return batch, buf


class BlockPadding:
    """An output that can be padded with newlines to a multiple of `size` bytes.

    Fluentd's exec_filter reads a JSON child's stdout `stream_buffer_size` bytes at a time and
    each read waits until the block is full, so the last records before a pause would wait for
    more traffic. Whitespace between JSON documents is ignored by JSON readers; padding the
    block when input pauses lets every record through at once.
    """

    def __init__(self, out: BinaryIO, size: int) -> None:
        self.out = out
        self.size = size
        self.written = 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()

    def pad(self) -> None:
        """Fill the current block (nothing when it is already full)."""
        missing = -self.written % self.size
        if missing:
            self.write(b"\n" * missing)
            self.flush()


def pump(fd: int, enrich: Callable[[str, str | None], dict[str, Any]], out: BinaryIO,
         joiner: Joiner | None, quiet: float = QUIET, write: Writer = write_json_lines,
         first: bytes = b"", pad_to: int = 0) -> int:
    """Enrich every record of `fd` into `out`; return the number of records written.

    `joiner` groups multiline records (None: one record per line). With `pad_to`, the output
    is padded to a multiple of that many bytes whenever input pauses.
    """
    count = 0
    padded = BlockPadding(out, pad_to) if pad_to else None
    if padded is not None:
        out = cast(BinaryIO, padded)
    for batch in read_lines(fd, quiet if joiner is not None or padded else None, first):
        if batch is None:
            records = joiner.flush() if joiner is not None else []
        elif joiner is None:
            records = batch
        else:
            records = joiner.feed(batch)
        write(out, [enrich(text, err) for text, err in records])
        count += len(records)
        if batch is None and padded is not None:
            padded.pad()
    if joiner is not None:
        tail = joiner.flush()
        write(out, [enrich(text, err) for text, err in tail])
        count += len(tail)
    return count


def pump_msgpack(fd: int, enrich_value: Callable[[Any, str | None], dict[str, Any]],
                 out: BinaryIO, write: Writer = write_msgpack, first: bytes = b"") -> int:
    """Enrich every object of a msgpack stream into `out`."""
    count = 0
    for batch in read_msgpack(fd, first):
        write(out, [enrich_value(obj, err) for obj, err in batch])
        count += len(batch)
    return count
