"""A progress bar on stderr while input files are read, by bytes (tqdm).

Shown only when stderr is a terminal, so never in a pipe or under Fluentd / Fluent Bit,
and not with `--quiet`. Only regular files (stdin too, when it is one) have a size to
measure against; pipes are not shown. The readers need no hook: a thread polls each file
descriptor's offset (`os.lseek`), which is how far `os.read` has got.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Never, TextIO

if TYPE_CHECKING:  # loaded only when a bar is shown: the import costs ~30 ms at start
    from tqdm import tqdm

INTERVAL = 0.1
DELAY = 0.3  # inputs read faster than this show no bar at all


def wanted(stream: TextIO, quiet: bool) -> bool:
    """Whether to show progress on `stream`: a terminal, and not --quiet."""
    if quiet:
        return False
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False


class Progress:
    """Bytes read of `fds` (regular files only) as one bar; `done(fd)` before closing one."""

    def __init__(self, fds: Sequence[int], names: Sequence[str], stream: TextIO,
                 enabled: bool) -> None:
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._files: dict[int, tuple[int, str]] = {}  # fd -> (start offset, name)
        self._finished = 0
        self._bar: tqdm[Never] | None = None
        self._thread: threading.Thread | None = None
        total = 0
        if enabled:
            for fd, name in zip(fds, names, strict=True):
                try:
                    info = os.fstat(fd)
                    start = os.lseek(fd, 0, os.SEEK_CUR)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    self._files[fd] = (start, os.path.basename(name) or name)
                    total += max(info.st_size - start, 0)
        if self._files:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                             file=stream, leave=False, dynamic_ncols=True, delay=DELAY,
                             mininterval=INTERVAL)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar.close()

    def done(self, fd: int) -> None:
        """`fd` is read to its end (or given up): count it whole, stop polling it."""
        with self._lock:
            entry = self._files.pop(fd, None)
            if entry is not None:
                self._finished += self._offset(fd, entry[0])

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            self._poll()

    def _poll(self) -> None:
        bar = self._bar
        assert bar is not None
        with self._lock:
            done = self._finished + sum(self._offset(fd, start)
                                        for fd, (start, _) in self._files.items())
            current = next(iter(self._files.values()), None)
        if current is not None and bar.desc != current[1]:
            bar.set_description_str(current[1], refresh=False)
        done = min(done, int(bar.total or 0))
        if done > bar.n:
            bar.update(done - bar.n)

    @staticmethod
    def _offset(fd: int, start: int) -> int:
        try:
            return max(os.lseek(fd, 0, os.SEEK_CUR) - start, 0)
        except OSError:
            return 0
