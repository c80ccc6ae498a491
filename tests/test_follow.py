"""`ngx-enrich follow`: tail -F semantics, rotation, restarts and the records it emits."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from ngx_enrich import eventtime, follow
from ngx_enrich.follow import Tailer
from ngx_enrich.follow.tailer import READ_CHUNK
from ngx_enrich.io import write_json_lines
from ngx_enrich.pipeline import Enricher

ROOT = Path(__file__).resolve().parents[1]
TOTAL = 3000  # numbered lines written per concurrent test
EVERY = 400  # lines per log generation (between rotations)
LATE = 5  # lines the writer still puts in a renamed file before it reopens
BOUND = 60.0  # upper bound on any wait; never an expectation of speed
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def number(line: str) -> int:
    return int(line.split()[1])


class NginxLikeWriter:
    """Appends numbered lines through one O_APPEND descriptor, like Nginx, and rotates."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.next = 0
        self.rotations = 0
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _put(self, count: int) -> None:
        for _ in range(count):
            os.write(self._fd, f"line {self.next:06d} {'x' * 48}\n".encode())
            self.next += 1

    def write(self, count: int = 1) -> None:
        with self.lock:
            self._put(count)

    def rotate(self, mode: str, late: int = LATE) -> None:
        """`rename`: rename, a few late lines, reopen (Nginx after USR1). `create`: the new
        file exists before the late lines (logrotate `create`). `copytruncate`: copy, cut."""
        with self.lock:
            self.rotations += 1
            dest = f"{self.path}.{self.rotations}"
            if mode == "copytruncate":
                shutil.copyfile(self.path, dest)
                os.truncate(self.path, 0)
                return
            os.rename(self.path, dest)
            if mode == "create":
                self.path.touch()
            self._put(late)
            os.close(self._fd)
            self._fd = self._open()

    def close(self) -> None:
        os.close(self._fd)


class Collector:
    """Polls a tailer, commits each batch, and lets the writer wait for the reader."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.high = -1
        self.cond = threading.Condition()
        self.writer_waiting = False  # the file does not change while this is set
        self.gave_up = False

    def take(self, tailer: Tailer) -> int:
        batches = tailer.poll()
        for batch in batches:
            got = [number(line) for line, _ in batch.lines]
            with self.cond:
                self.numbers.extend(got)
                self.high = max([self.high, *got])
                self.cond.notify_all()
            tailer.commit(batch)
        return len(batches)

    def wait_seen(self, n: int) -> bool:
        with self.cond:
            self.writer_waiting = True
            self.cond.wait_for(lambda: self.high >= n or self.gave_up, timeout=BOUND)
            self.writer_waiting = False
            return self.high >= n

    def give_up(self) -> None:
        with self.cond:
            self.gave_up = True
            self.cond.notify_all()


def produce(writer: NginxLikeWriter, col: Collector, mode: str, errors: list[str]) -> None:
    """Write TOTAL lines, rotating every EVERY lines. The writer stays at most ~100 lines
    ahead of the reader, so reads interleave with writes, and rotates only once the reader
    has seen the current file (no reader can follow a file it never saw open)."""
    first = 0
    while writer.next < TOTAL:
        writer.write()
        behind = writer.next % 50 == 0 and not col.wait_seen(writer.next - 100)
        rotate = writer.next - first >= EVERY and writer.next <= TOTAL - LATE
        if behind or (rotate and not col.wait_seen(first)):
            errors.append(f"the reader stopped short of line {writer.next}")
            return
        if rotate:
            writer.rotate(mode)
            first = writer.next


def run_concurrently(
    tmp_path: Path, mode: str, cycle: Callable[[Collector], int]
) -> tuple[list[int], NginxLikeWriter]:
    """Write in a thread while `cycle` reads; stop when all arrived, or when the file is not
    changing (writer done, or waiting for the reader) and the reader finds nothing more:
    a lost line then fails fast instead of waiting out the bound."""
    path = tmp_path / "error.log"
    writer = NginxLikeWriter(path)
    col, errors = Collector(), list[str]()
    thread = threading.Thread(target=produce, args=(writer, col, mode, errors), daemon=True)
    thread.start()
    deadline, idle = time.monotonic() + BOUND, 0
    while len(col.numbers) < TOTAL and time.monotonic() < deadline and idle < 100:
        got = cycle(col)
        still = not thread.is_alive() or col.writer_waiting
        idle = 0 if got or not still else idle + 1
        if not got:
            time.sleep(0.002)
    col.give_up()
    thread.join(BOUND)
    writer.close()
    assert not errors
    return col.numbers, writer


def poll_until(tailer: Tailer, col: Collector, want: int) -> None:
    """Poll until `want` lines arrived; with no writer running, 20 empty polls mean no more."""
    idle = 0
    while len(col.numbers) < want and idle < 20:
        idle = 0 if col.take(tailer) else idle + 1


def lines_of(tailer: Tailer) -> list[str]:
    """Everything readable now (a few polls, committed)."""
    out: list[str] = []
    for _ in range(10):
        for batch in tailer.poll():
            out.extend(text for text, _ in batch.lines)
            tailer.commit(batch)
    return out


# --------------------------------------------------------------------------- rotation, live


@pytest.mark.parametrize("mode", ["rename", "copytruncate"])
def test_rotation_while_writing_loses_and_repeats_nothing(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "error.log"
    path.touch()
    with Tailer([str(path)], from_start=True, rotate_wait=BOUND) as tailer:

        def cycle(col: Collector) -> int:
            return col.take(tailer)

        numbers, writer = run_concurrently(tmp_path, mode, cycle)
    assert writer.rotations >= TOTAL // EVERY - 1
    assert numbers == list(range(TOTAL))


def test_rename_with_late_writes_after_new_file_appears(tmp_path: Path) -> None:
    """logrotate `create`: the new file exists while Nginx still writes the old one."""
    path = tmp_path / "error.log"
    path.touch()
    with Tailer([str(path)], from_start=True, rotate_wait=BOUND) as tailer:

        def cycle(col: Collector) -> int:
            return col.take(tailer)

        numbers, writer = run_concurrently(tmp_path, "create", cycle)
    assert writer.rotations >= TOTAL // EVERY - 1
    assert len(numbers) == TOTAL
    assert sorted(numbers) == list(range(TOTAL))


@pytest.mark.parametrize("mode", ["rename", "copytruncate"])
def test_restarts_from_state_while_writing_and_rotating(tmp_path: Path, mode: str) -> None:
    path, state = tmp_path / "error.log", tmp_path / "state" / "follow.json"
    path.touch()
    restarts = 0

    def cycle(col: Collector) -> int:
        nonlocal restarts
        restarts += 1
        with Tailer(
            [str(path)], from_start=True, state_path=str(state), rotate_wait=BOUND
        ) as tailer:
            return col.take(tailer)  # one poll per process lifetime

    numbers, writer = run_concurrently(tmp_path, mode, cycle)
    assert restarts > 2 * writer.rotations
    assert numbers == list(range(TOTAL))


@pytest.mark.parametrize("after", [8, 40])  # new file shorter / longer than the old offset
def test_copytruncate_unread_lines_come_from_the_copy(tmp_path: Path, after: int) -> None:
    path = tmp_path / "error.log"
    writer = NginxLikeWriter(path)
    col = Collector()
    with Tailer([str(path)], from_start=True) as tailer:
        writer.write(10)
        poll_until(tailer, col, 10)
        writer.write(7)  # not read before the cut
        writer.rotate("copytruncate")
        writer.write(after)
        poll_until(tailer, col, writer.next)
        assert lines_of(tailer) == []
    writer.close()
    assert col.numbers == list(range(writer.next))


def test_backlog_of_renamed_file_comes_before_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    writer = NginxLikeWriter(path)
    col = Collector()
    with Tailer([str(path)], from_start=True) as tailer:
        writer.write(3)
        poll_until(tailer, col, 3)
        writer.write(3 * READ_CHUNK // 60)  # more than one read's worth
        writer.rotate("rename")
        writer.write(10)
        poll_until(tailer, col, writer.next)
    writer.close()
    assert col.numbers == list(range(writer.next))


# --------------------------------------------------------------------------- restarts, exact


@pytest.mark.parametrize("mode", ["rename", "copytruncate"])
def test_restart_after_rotation_while_stopped(tmp_path: Path, mode: str) -> None:
    path, state = tmp_path / "access.log", tmp_path / "pos.json"
    writer = NginxLikeWriter(path)
    col = Collector()
    writer.write(10)
    with Tailer([str(path)], from_start=True, state_path=str(state)) as tailer:
        poll_until(tailer, col, 10)
    writer.write(7)  # unread when the rotation happens
    writer.rotate(mode)
    writer.write(8)
    with Tailer([str(path)], state_path=str(state)) as tailer:
        poll_until(tailer, col, writer.next)
        assert lines_of(tailer) == []
    writer.close()
    assert col.numbers == list(range(writer.next))


def test_restart_neither_repeats_nor_skips(tmp_path: Path) -> None:
    path, state = tmp_path / "error.log", tmp_path / "pos.json"
    path.write_text("".join(f"line {i} a\n" for i in range(5)))
    with Tailer([str(path)], from_start=True, state_path=str(state)) as tailer:
        assert [number(x) for x in lines_of(tailer)] == [0, 1, 2, 3, 4]
    with path.open("a") as fh:
        fh.write("line 5 b\nline 6 b\n")
    with Tailer([str(path)], from_start=True, state_path=str(state)) as tailer:
        assert [number(x) for x in lines_of(tailer)] == [5, 6]
    saved = json.loads(state.read_text())["files"][str(path)]
    assert saved[-1]["offset"] == path.stat().st_size
    assert not Path(f"{state}.tmp").exists()


def test_same_inode_with_other_content_is_read_from_start(tmp_path: Path) -> None:
    """Inode reuse (or a rewrite while stopped): the fingerprint, not the inode, decides."""
    path, state = tmp_path / "error.log", tmp_path / "pos.json"
    path.write_text("line 0 first generation\nline 1 first generation\n")
    with Tailer([str(path)], from_start=True, state_path=str(state)) as tailer:
        lines_of(tailer)
    with path.open("r+") as fh:  # same inode, new content, longer than the saved offset
        fh.write("line 7 second generation\nline 8 second generation, longer\n")
    with Tailer([str(path)], state_path=str(state)) as tailer:
        assert [number(x) for x in lines_of(tailer)] == [7, 8]


def test_unreadable_state_file_is_ignored(tmp_path: Path) -> None:
    path, state = tmp_path / "error.log", tmp_path / "pos.json"
    path.write_text("line 0 a\n")
    state.write_text('{"version": 1, "files": {"x": [{"dev": "no"}]}}')
    with Tailer([str(path)], from_start=True, state_path=str(state)) as tailer:
        assert lines_of(tailer) == ["line 0 a"]
    assert json.loads(state.read_text())["files"][str(path)][0]["offset"] == 9


# --------------------------------------------------------------------------- positions, lines


def test_default_starts_at_end_from_start_reads_all(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    path.write_text("old 1\nold 2\n")
    with Tailer([str(path)]) as tail_end, Tailer([str(path)], from_start=True) as tail_all:
        assert lines_of(tail_end) == []
        assert lines_of(tail_all) == ["old 1", "old 2"]
        with path.open("a") as fh:
            fh.write("new 3\n")
        assert lines_of(tail_end) == ["new 3"]
        assert lines_of(tail_all) == ["new 3"]


def test_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    path.write_bytes(b"")
    with Tailer([str(path)], from_start=True) as tailer:
        with path.open("ab") as fh:
            fh.write(b"one\ntw")
            fh.flush()
            assert lines_of(tailer) == ["one"]
            fh.write(b"o\r\nthr")
            fh.flush()
            assert lines_of(tailer) == ["two"]
            fh.write(b"ee\n")
        assert lines_of(tailer) == ["three"]


def test_start_at_end_keeps_an_unfinished_last_line(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    path.write_text("done\nhalf")
    with Tailer([str(path)]) as tailer:
        assert lines_of(tailer) == []
        with path.open("a") as fh:
            fh.write(" and the rest\n")
        assert lines_of(tailer) == ["half and the rest"]


def test_file_created_after_start_is_read_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "later.log"
    with Tailer([str(path)]) as tailer:
        assert lines_of(tailer) == []
        path.write_text("first\nsecond\n")
        assert lines_of(tailer) == ["first", "second"]


def test_rotated_file_unfinished_line_is_emitted_when_released(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    path.write_text("")
    with Tailer([str(path)], from_start=True, rotate_wait=0) as tailer:
        with path.open("a") as fh:
            fh.write("complete\ncut off")
        path.rename(tmp_path / "error.log.1")
        path.write_text("fresh\n")
        assert lines_of(tailer) == ["complete", "cut off", "fresh"]


def test_path_that_is_no_regular_file_is_reported_not_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "access.log"
    path.mkdir()
    with Tailer([str(path)], from_start=True) as tailer:
        assert lines_of(tailer) == []
    assert "not a regular file" in caplog.text


def test_bad_bytes_do_not_stop_the_stream(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    path.write_bytes(b"ok\n\xff\xfe broken\nafter\n")
    with Tailer([str(path)], from_start=True) as tailer:
        assert lines_of(tailer) == ["ok", "\\xff\\xfe broken", "after"]
    recs = run_once(["--from-start", str(path)], Enricher().enrich_line)
    assert [r["ngx"].get("parse_error", "") for r in recs][1].startswith("invalid UTF-8")


# --------------------------------------------------------------------------- the command


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    follow.add_arguments(parser)
    return parser.parse_args(argv)


def run_once(argv: list[str], enrich: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
    out = io.BytesIO()
    assert follow.run(parse(["--once", *argv]), enrich,
                      lambda records: write_json_lines(out, records)) == 0
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_arguments() -> None:
    args = parse(["a.log", "b.log"])
    assert (args.files, args.from_start, args.state, args.poll, args.once, args.time_key) == (
        ["a.log", "b.log"],
        False,
        None,
        0.25,
        False,
        "time",
    )
    with pytest.raises(SystemExit):
        parse(["--poll", "0", "a.log"])
    with pytest.raises(SystemExit):
        parse([])


def test_records_get_utc_time_and_source_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    times = {
        "offset": "2026-11-29T19:20:26.5+01:00",
        "access": "2026-11-29T10:20:26-08:00",
        "error": "2026-11-30T02:20:26",  # no zone: local time (TZ above)
        "epoch": 1795976426,
        "garbage": "yesterday",
    }

    def enrich(line: str) -> dict[str, Any]:
        return {"log": line, "ngx": {"kind": "error", "time": times.get(line)}}

    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    error_log.write_text("offset\naccess\nerror\nepoch\n")
    access_log.write_text("garbage\nnone\n")
    try:
        recs = run_once(
            ["--from-start", "--time-key", "ts", str(error_log), str(access_log)], enrich
        )
    finally:
        monkeypatch.setenv("TZ", "UTC")  # as the suite pins it
        time.tzset()
    assert [r["log"] for r in recs] == ["offset", "access", "error", "epoch", "garbage", "none"]
    assert [r["ts"] for r in recs[:4]] == [
        "2026-11-29T18:20:26.500000Z",
        "2026-11-29T18:20:26.000000Z",
        "2026-11-29T18:20:26.000000Z",
        "2026-11-29T18:20:26.000000Z",
    ]
    assert all(ISO_Z.match(r["ts"]) for r in recs[4:])  # read time
    assert [r["path"] for r in recs] == [str(error_log)] * 4 + [str(access_log)] * 2
    assert all("time" not in r for r in recs)


def test_flat_schema_time_is_used() -> None:
    record = {"log": "x", "ngx_time": "2026-11-29T19:20:26+01:00"}
    assert eventtime.own_time_text(record, "ngx") == "2026-11-29T18:20:26.000000Z"
    assert eventtime.own_time_text({"log": "x"}, "ngx") is None


def test_restamped_is_like_of_the_own_time_whatever_the_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import msgpack

    olds = ["2026-01-01T00:00:00.000000000+0000", 1, 1.5, True,
            msgpack.ExtType(0, bytes(8)), None]
    owns = ["2026-11-29T19:20:26+01:00", "2026-11-30T02:20:26", "yesterday", 1795976426, None]
    try:
        for zone in ("UTC", "Asia/Shanghai", "UTC"):  # naive times follow the zone
            monkeypatch.setenv("TZ", zone)
            time.tzset()
            for own in owns:
                for schema_record in ({"ngx": {"time": own}}, {"ngx_time": own}):
                    for old in olds:
                        ns = eventtime.own_time_ns(schema_record)
                        want = old if ns is None else eventtime.like(old, ns)
                        for _ in range(2):  # computed, then from the cache
                            got = eventtime.restamped(
                                eventtime.own_value(schema_record, "ngx"), old)
                            assert got == want and type(got) is type(want)
    finally:
        monkeypatch.setenv("TZ", "UTC")  # as the suite pins it
        time.tzset()
    for own in owns:
        record = {"ngx": {"time": own}}
        ns = eventtime.own_time_ns(record)
        want = None if ns is None else eventtime.event_time(ns)
        assert eventtime.own_event_time(record) == want
        assert eventtime.own_event_time(record) == want  # from the cache
    shanghai = {"ngx": {"time": "2026-11-30T02:20:26"}}
    assert eventtime.restamped(eventtime.own_value(shanghai, "ngx"), "x") == \
        "2026-11-30T02:20:26.000000000+0000"


def test_enricher_failure_passes_the_line_through(tmp_path: Path) -> None:
    def enrich(line: str) -> dict[str, Any]:
        if line == "bad":
            raise ValueError(line)
        return {"log": line, "ngx": {}}

    path = tmp_path / "error.log"
    path.write_text("good\nbad\nalso good\n")
    recs = run_once(["--from-start", str(path)], enrich)
    assert [r["log"] for r in recs] == ["good", "bad", "also good"]
    assert "ngx" not in recs[1]


def test_once_with_state_continues_where_the_last_run_stopped(tmp_path: Path) -> None:
    path, state = tmp_path / "error.log", tmp_path / "pos.json"
    path.write_text("before\n")
    argv = ["--state", str(state), str(path)]
    assert run_once(argv, lambda line: {"log": line}) == []  # starts at the end
    with path.open("a") as fh:
        fh.write("after 1\nafter 2\n")
    assert [r["log"] for r in run_once(argv, lambda line: {"log": line})] == ["after 1", "after 2"]
    assert run_once(argv, lambda line: {"log": line}) == []


def _read_line(proc: subprocess.Popen[bytes]) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], BOUND)
    assert ready, "no output from the follower"
    return proc.stdout.readline()


SCRIPT = """
import argparse, sys
from ngx_enrich import follow
from ngx_enrich.io import write_json_lines
parser = argparse.ArgumentParser()
follow.add_arguments(parser)
write = lambda records: write_json_lines(sys.stdout.buffer, records)
sys.exit(follow.run(parser.parse_args(sys.argv[1:]), lambda line: {"log": line}, write))
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_state_and_exits_zero(tmp_path: Path, sig: signal.Signals) -> None:
    path, state = tmp_path / "error.log", tmp_path / "pos.json"
    path.write_text("one\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-c",
        SCRIPT,
        "--from-start",
        "--poll",
        "0.05",
        "--state",
        str(state),
        str(path),
    ]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env) as proc:
        assert orjson.loads(_read_line(proc))["log"] == "one"
        with path.open("a") as fh:
            fh.write("two\n")
        assert orjson.loads(_read_line(proc))["log"] == "two"
        proc.send_signal(sig)
        assert proc.wait(BOUND) == 0
    assert json.loads(state.read_text())["files"][str(path)][0]["offset"] == 8


# --------------------------------------------------------------------------- shipped configs

FLUENT_BIT = ROOT / "fluent-bit"


def _classic_sections(path: Path) -> list[dict[str, str]]:
    """[SECTION] blocks of a classic Fluent Bit file as {lower-case key: value}."""
    sections: list[dict[str, str]] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            sections.append({"": line[1:-1]})
        elif line and not line.startswith("#") and sections:
            key, _, value = line.partition(" ")
            sections[-1][key.lower()] = value.strip()
    return sections


def _yaml(path: Path) -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load(path.read_text())


def _exec_and_parser(style: str) -> tuple[str, dict[str, Any]]:
    if style == "classic":
        sections = _classic_sections(FLUENT_BIT / "exec-source.conf")
        exec_in = next(s for s in sections if s.get("name") == "exec")
        service = next(s for s in sections if s[""] == "SERVICE")
        parsers = _classic_sections(FLUENT_BIT / service["parsers_file"])
    else:
        conf = _yaml(FLUENT_BIT / "exec-source.yaml")
        exec_in = next(i for i in conf["pipeline"]["inputs"] if i["name"] == "exec")
        parsers = _yaml(FLUENT_BIT / conf["service"]["parsers_file"])["parsers"]
    parser = next(p for p in parsers if p.get("name") == exec_in["parser"])
    assert str(exec_in["oneshot"]).lower() == str(exec_in["threaded"]).lower() == "true"
    return exec_in["command"], parser


@pytest.mark.parametrize("style", ["classic", "yaml"])
def test_fluent_bit_exec_source_matches_follow(style: str) -> None:
    """The command parses as `follow` options, and the parser reads the time it writes."""
    command, parser = _exec_and_parser(style)
    words = command.split()
    assert words[:3] == ["exec", "ngx-enrich", "follow"]
    args = parse(words[3:])
    assert args.state and not args.once
    assert parser["format"] == "json"
    assert parser["time_key"] == args.time_key
    assert str(parser["time_keep"]).lower() in ("off", "false")
    # Fluent Bit reads %L (the fraction) itself and strptime the rest; %f stands in for it.
    fmt = parser["time_format"].replace("%L", "%f")
    stamp = eventtime.utc_iso(datetime(2026, 11, 29, 18, 20, 26, 123456, tzinfo=UTC))
    assert datetime.strptime(stamp, fmt) == datetime(2026, 11, 29, 18, 20, 26, 123456, tzinfo=UTC)


def _fluentd_sections(text: str, name: str) -> dict[str, str]:
    body = text.split(f"<{name}>", 1)[1].split(f"</{name}>", 1)[0]
    pairs = (ln.strip().split(None, 1) for ln in body.splitlines())
    return {p[0]: p[1] for p in pairs if len(p) == 2 and not p[0].startswith("#")}


@pytest.mark.parametrize("codec", ["msgpack", "json"])
def test_fluentd_exec_filter_round_trips_tag_and_time(codec: str) -> None:
    text = (ROOT / "examples" / "fluentd" / f"exec-filter-{codec}.conf").read_text()
    text = text.split("@type exec_filter", 1)[1]  # the exec_filter <match> onwards
    assert f"command ngx-enrich --input {codec} --output {codec}" in text
    assert _fluentd_sections(text, "format")["@type"] == codec
    assert _fluentd_sections(text, "parse")["@type"] == codec
    inject, extract = _fluentd_sections(text, "inject"), _fluentd_sections(text, "extract")
    for key in ("tag_key", "time_key", "time_type", "time_format"):
        assert inject[key] == extract[key]
    label = re.search(r"^\s*@label (@\w+)", text, re.M)
    assert label and f"<label {label.group(1)}>" in text  # re-emitted events cannot loop
