"""Follow files like `tail -F`: rotation by rename and by copytruncate, positions kept.

A `Tailer` hands out read batches of complete lines; once a batch is delivered, `commit` moves
the saved position past it, so a restart neither loses nor repeats a line.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ngx_enrich.follow.state import Entries, load_state, save_state
from ngx_enrich.io import MAX_PIECE, Line, decode

log = logging.getLogger(__name__)

FP_BYTES = 64  # bytes at the head of a file that identify it beside its inode
READ_CHUNK = 1 << 20  # bytes read from one file per poll
ROTATE_WAIT = 5.0  # seconds a rotated-away file is still read (the writer may not have reopened)


# --------------------------------------------------------------------------- file identity


def _fingerprint(fd: int, length: int) -> tuple[str, int]:
    """Hash of the first `length` bytes of an open file, and how many bytes it covers."""
    head = os.pread(fd, length, 0) if length else b""
    return hashlib.blake2b(head, digest_size=16).hexdigest(), len(head)


def _stat(path: str) -> os.stat_result | None:
    """`os.stat` that answers None for a missing file."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _end_of_last_line(fd: int, size: int) -> int:
    """Offset just past the last newline before `size` (0 when there is none)."""
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        idx = os.pread(fd, pos - start, start).rfind(b"\n")
        if idx >= 0:
            return start + idx + 1
        pos = start
    return 0


@dataclass(eq=False, slots=True)
class _Stream:
    """One open file: where it was read to, what was committed, and how to recognise it."""

    fd: int
    dev: int
    ino: int
    read_pos: int
    committed: int
    fp: str
    fp_len: int
    until: float | None = None  # wall-clock time after which a rotated file is closed
    at_eof: bool = False

    @classmethod
    def open(cls, path: str, offset: int | None = None, until: float | None = None) -> _Stream:
        """Open `path` at `offset` (None: after its last complete line)."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # a directory, or /dev/stdout as in some images
                raise OSError(errno.EINVAL, "not a regular file", path)
            if offset is None:
                offset = _end_of_last_line(fd, st.st_size)
            fp, fp_len = _fingerprint(fd, FP_BYTES)
        except OSError:
            os.close(fd)
            raise
        return cls(fd, st.st_dev, st.st_ino, offset, offset, fp, fp_len, until)

    def same_file(self, st: os.stat_result | None) -> bool:
        """Whether `st` describes this stream's file."""
        return st is not None and (st.st_dev, st.st_ino) == (self.dev, self.ino)

    def content_replaced(self) -> bool:
        """True when the file shrank below our position or its head changed (copytruncate)."""
        size = os.fstat(self.fd).st_size
        if size < self.read_pos:
            return True
        fp, fp_len = _fingerprint(self.fd, self.fp_len)
        if (fp, fp_len) != (self.fp, self.fp_len):
            return True
        if self.fp_len < FP_BYTES and size > self.fp_len:
            self.fp, self.fp_len = _fingerprint(self.fd, FP_BYTES)
        return False

    def entry(self) -> dict[str, Any]:
        """The state-file entry for this stream."""
        out: dict[str, Any] = {
            "dev": self.dev,
            "ino": self.ino,
            "offset": self.committed,
            "fp": self.fp,
            "fp_len": self.fp_len,
        }
        if self.until is not None:
            out["until"] = self.until
        return out

    def close(self) -> None:
        """Close the file descriptor."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _open_quietly(path: str, offset: int, until: float) -> _Stream | None:
    """Open a rotated file found a moment ago; None if it has gone since."""
    try:
        return _Stream.open(path, offset, until=until)
    except OSError:
        return None


def _matches(path: str, entry: dict[str, Any]) -> bool:
    """Whether the file at `path` starts with the bytes fingerprinted in `entry`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return _fingerprint(fd, entry["fp_len"]) == (entry["fp"], entry["fp_len"])
    finally:
        os.close(fd)


def _find_sibling(path: str, entry: dict[str, Any], *, by_inode: bool) -> str | None:
    """Find, next to `path`, the file described by `entry`.

    `by_inode`: the file renamed away (same device and inode). Otherwise: a copy made by
    copytruncate (name starts with the log's name, same head bytes, long enough).
    """
    folder, base = os.path.split(os.path.abspath(path))
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    for de in entries:
        if de.name == base or not de.is_file(follow_symlinks=False):
            continue
        st = de.stat(follow_symlinks=False)
        if by_inode:
            if (st.st_dev, st.st_ino) != (entry["dev"], entry["ino"]):
                continue
        elif not de.name.startswith(base) or st.st_size < entry["offset"] or entry["fp_len"] == 0:
            continue
        if _matches(de.path, entry):
            return de.path
    return None


# --------------------------------------------------------------------------- the tailer


@dataclass(eq=False, slots=True)
class ReadBatch:
    """Complete lines read from one file in one go; `Tailer.commit` it once it is delivered."""

    path: str
    lines: list[Line]  # text and parse error (bad UTF-8 is kept as \xNN and flagged)
    read_at: datetime
    stream: _Stream
    end: int


@dataclass(eq=False, slots=True)
class _Watch:
    """One followed path: its current file and files rotated away but still being read."""

    path: str
    current: _Stream | None = None
    draining: list[_Stream] = field(default_factory=list)
    seen: bool = False  # a file was there once: anything new at the path is read from 0
    warned: str = ""


class Tailer:
    """Follow files with `tail -F` semantics and persist positions in a JSON state file.

    Use as a context manager; call `poll()` for batches of complete lines and `commit()` each
    batch after it has been delivered. The state file only ever holds committed positions.
    """

    def __init__(
        self,
        paths: list[str],
        *,
        from_start: bool = False,
        state_path: str | None = None,
        poll_interval: float = 0.25,
        rotate_wait: float = ROTATE_WAIT,
    ) -> None:
        self.from_start = from_start
        self.state_path = state_path
        self.poll_interval = poll_interval
        self.rotate_wait = rotate_wait
        self._watches = [_Watch(p) for p in dict.fromkeys(paths)]

    # -- lifecycle

    def __enter__(self) -> Tailer:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Position every file (from the state file, else at the start or end) and save."""
        saved = self._load_state()
        for w in self._watches:
            self._restore(w, saved.get(os.path.abspath(w.path)))
        self.save_state()

    def close(self) -> None:
        """Save the committed positions and close every file."""
        self.save_state()
        for w in self._watches:
            for s in self._streams(w):
                s.close()
            w.current, w.draining = None, []

    # -- reading

    def poll(self) -> list[ReadBatch]:
        """Read at most one chunk from each open file; empty when nothing new arrived."""
        out: list[ReadBatch] = []
        for w in self._watches:
            out.extend(self._poll_watch(w, time.time()))
        return out

    def lag(self) -> dict[str, int | None]:
        """Per followed path, the bytes of its current file not yet delivered (None: not open)."""
        out: dict[str, int | None] = {}
        for w in self._watches:
            s = w.current
            try:
                out[w.path] = None if s is None else os.fstat(s.fd).st_size - s.committed
            except OSError:
                out[w.path] = None
        return out

    def commit(self, batch: ReadBatch) -> None:
        """Record `batch` as delivered and write the state file.

        Commit batches in the order `poll()` returned them, before the next `poll()`.
        """
        batch.stream.committed = max(batch.stream.committed, batch.end)
        self.save_state()

    def _poll_watch(self, w: _Watch, now: float) -> list[ReadBatch]:
        """Notice rotation, read rotated files, then the current one (one chunk each)."""
        # Look at the path before reading the old file: when a new file is already there,
        # whatever the old one holds was written before we looked, so reading it now misses
        # nothing that belongs ahead of the new file's first lines.
        st = _stat(w.path)
        if w.current is not None and not w.current.same_file(st):
            w.current.until = now + self.rotate_wait
            w.draining.append(w.current)
            w.current = None
        out = [b for s in w.draining if (b := self._read(w.path, s, final=now >= (s.until or 0)))]
        self._retire(w, now)
        if w.current is None and st is not None:
            self._open_current(w)
        cur = w.current
        if cur is None or not all(s.at_eof for s in w.draining):
            return out  # rotated files first, so lines keep their order
        before = cur.read_pos
        batch = self._read(w.path, cur, final=False)
        # Checked after the read: a truncation that raced it is caught and the read discarded.
        if cur.content_replaced():
            cur.read_pos = before
            self._truncated(w, cur, now)
        elif batch is not None:
            out.append(batch)
        return out

    @staticmethod
    def _read(path: str, s: _Stream, *, final: bool) -> ReadBatch | None:
        """One chunk of complete lines from `s` (advancing it); `final` adds a partial tail."""
        data = os.pread(s.fd, READ_CHUNK, s.read_pos)
        if b"\n" not in data and len(data) == READ_CHUNK:
            data = os.pread(s.fd, MAX_PIECE, s.read_pos)
        s.at_eof = len(data) < READ_CHUNK
        cut = data.rfind(b"\n") + 1
        if (final and s.at_eof) or len(data) >= MAX_PIECE:
            cut = len(data)  # a line that will never be finished, or too long to wait for
        if cut == 0:
            return None
        chunk = data[:cut] if data[cut - 1 : cut] == b"\n" else data[:cut] + b"\n"
        s.read_pos += cut
        return ReadBatch(path, decode(chunk[:-1]), datetime.now(UTC), s, s.read_pos)

    def _retire(self, w: _Watch, now: float) -> None:
        """Close rotated files whose wait is over, once everything read from them is committed."""
        keep = []
        for s in w.draining:
            done = s.until is not None and now >= s.until and s.at_eof
            if done and s.committed == s.read_pos:
                s.close()
            else:
                keep.append(s)
        w.draining = keep

    def _open_current(self, w: _Watch) -> None:
        """Open the file now at the path: from 0 if the path had a file before."""
        try:
            offset = 0 if (w.seen or self.from_start) else None
            w.current = _Stream.open(w.path, offset)
        except FileNotFoundError:
            return
        except OSError as exc:
            self._warn_once(w, f"cannot read {w.path}: {exc}")
            return
        w.seen, w.warned = True, ""

    def _truncated(self, w: _Watch, cur: _Stream, now: float) -> None:
        """Copytruncate: finish the copy if it can be found, then restart the file at 0."""
        entry = {**cur.entry(), "offset": cur.read_pos}
        copy = _find_sibling(w.path, entry, by_inode=False)
        stream = _open_quietly(copy, cur.read_pos, until=now) if copy else None
        if stream is not None:
            w.draining.append(stream)
        else:
            log.warning("%s was truncated; unread lines before the cut are lost", w.path)
        fp, fp_len = _fingerprint(cur.fd, FP_BYTES)
        w.current = _Stream(cur.fd, cur.dev, cur.ino, 0, 0, fp, fp_len)

    def _warn_once(self, w: _Watch, message: str) -> None:
        if w.warned != message:
            log.warning("%s", message)
            w.warned = message

    @staticmethod
    def _streams(w: _Watch) -> list[_Stream]:
        return [*w.draining, *([w.current] if w.current else [])]

    # -- state

    def _restore(self, w: _Watch, entries: list[dict[str, Any]] | None) -> None:
        """Reopen what the state file recorded for `w`, or take the starting position.

        `entries` is None for a path the state file does not know, [] for one that had no
        file when the state was written (so a file there now is new: read from 0).
        """
        w.seen = entries is not None
        if not entries:
            self._open_current(w)
            if w.current is None:
                self._warn_once(
                    w, f"{w.path} does not exist; it is read from its start when it appears"
                )
            w.seen = True
            return
        *older, last = entries
        for entry in older:
            self._reopen_rotated(w, entry)
        st = _stat(w.path)
        if st is not None and (st.st_dev, st.st_ino) == (last["dev"], last["ino"]):
            if st.st_size >= last["offset"] and _matches(w.path, last):
                w.current = _Stream.open(w.path, last["offset"])
                return
            self._reopen_rotated(w, last, by_inode=False)  # truncated while we were away
        else:
            self._reopen_rotated(w, last)  # rotated (or removed) while we were away
        self._open_current(w)

    def _reopen_rotated(self, w: _Watch, entry: dict[str, Any], *, by_inode: bool = True) -> None:
        """Find a file rotated away while we were stopped and finish reading it."""
        found = _find_sibling(w.path, entry, by_inode=by_inode)
        until = entry.get("until") or time.time() + self.rotate_wait
        stream = _open_quietly(found, entry["offset"], until=until) if found else None
        if stream is None:
            log.warning("%s: a rotated file could not be found; its unread lines are lost", w.path)
        else:
            w.draining.append(stream)

    def _load_state(self) -> Entries:
        return load_state(self.state_path)

    def save_state(self) -> None:
        """Write the committed positions to the state file, if there is one."""
        if self.state_path:
            save_state(self.state_path, {
                os.path.abspath(w.path): [s.entry() for s in self._streams(w)]
                for w in self._watches
            })
