"""Progress on stderr: shown on a terminal only, never in a pipe, and not with --quiet."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import orjson
import pytest

try:
    from report_inputs import write_mixed
except ImportError:
    from tests.report_inputs import write_mixed

ROOT = Path(__file__).resolve().parents[1]
BAR = b"%|"  # tqdm's bar: "  37%|███▋      | 1.2M/3.3M [...]"


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # big enough to take longer than the bar's delay to read, compiled and on two workers
    return write_mixed(tmp_path_factory.mktemp("progress") / "mixed.log", 250_000)


def run(args: list[str], stderr_tty: bool, stdout_tty: bool = False,
        stdin: Path | None = None) -> tuple[bytes, bytes, bytes]:
    """Run the CLI; (stdout, stderr) and what reached the terminal, if one was used."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    with open(stdin or os.devnull, "rb") as source:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ngx_enrich", *args], cwd=ROOT, stdin=source,
            stdout=slave if stdout_tty else subprocess.PIPE,
            stderr=slave if stderr_tty else subprocess.PIPE,
            env={**os.environ, "TERM": "xterm"})
    os.close(slave)
    terminal: list[bytes] = []
    out: list[bytes] = []
    deadline = time.monotonic() + 120
    streams = [master] + ([proc.stdout.fileno()] if proc.stdout else [])
    while streams and time.monotonic() < deadline:
        ready, _, _ = select.select(streams, [], [], 1)
        for fd in ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: every writer to the terminal is gone
                chunk = b""
            if not chunk:
                streams.remove(fd)
            elif fd == master:
                terminal.append(chunk)
            else:
                out.append(chunk)
    os.close(master)
    err = proc.stderr.read() if proc.stderr else b""
    assert proc.wait(timeout=30) == 0, err
    return b"".join(out), err, b"".join(terminal)


@pytest.mark.parametrize("command", [[], ["report", "--format", "json"],
                                     ["report", "--format", "json", "--jobs", "1"]],
                         ids=["filter", "report", "report-one-process"])
def test_progress_on_a_terminal(log: Path, command: list[str]) -> None:
    out, _, terminal = run([*command, str(log)], stderr_tty=True)
    assert BAR in terminal and b"mixed.log" in terminal
    assert b"B/s" in terminal or b"B [" in terminal
    assert terminal.rstrip(b" ").endswith(b"\r")  # the bar is cleared when done
    assert BAR not in out
    if command:
        assert orjson.loads(out)["records"] > 60_000
    else:
        assert all(line.startswith(b"{") for line in out.splitlines())


@pytest.mark.parametrize("command", [[], ["report", "--format", "json"]], ids=["filter", "report"])
def test_no_progress_in_a_pipe(log: Path, command: list[str]) -> None:
    _, err, _ = run([*command, str(log)], stderr_tty=False)
    assert err == b""


@pytest.mark.parametrize("command", [[], ["report", "--format", "json"]], ids=["filter", "report"])
def test_quiet_turns_it_off(log: Path, command: list[str]) -> None:
    _, _, terminal = run([*command, "--quiet", str(log)], stderr_tty=True)
    assert terminal == b""


def test_stdin_from_a_file_shows_progress_too(log: Path) -> None:
    _, _, terminal = run(["report", "--format", "json"], stderr_tty=True, stdin=log)
    assert BAR in terminal


def test_filter_writing_to_the_terminal_shows_no_bar(log: Path) -> None:
    _, _, terminal = run([str(log)], stderr_tty=True, stdout_tty=True)
    assert terminal.count(b"\n") > 60_000  # the records themselves
    assert BAR not in terminal
