"""The benchmark to quote: ngx-enrich next to the real Fluent Bit's bare regex parse and a bare
Python pass-through, in the same run, in steady state, per CPU-second.

    python tests/bench/compare.py [--lines N] [--quick] [--repeat R]

Every program reads a pipe fed from a thread of this process and writes to /dev/null (serve
receives acked PackedForward over loopback). Cost is CPU time, user + system over all threads
of the child, from `os.wait4`; the program's start/stop cost is removed by running it on a
1-line input too: per-line cost = (cpu_N - cpu_1) / (N - 1), each the least of R runs. Fluent
Bit is found by $FLUENT_BIT, then on PATH; without it its rows are skipped.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import inputs
import orjson
from bench_filter import FLOOR
from bench_serve import send_all

ROOT = Path(__file__).resolve().parents[2]
SHARED_PARSERS = ROOT.parent / "shared" / "bench" / "fluent-bit-parsers.conf"
ENRICH = [sys.executable, "-m", "ngx_enrich"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TZ": "UTC"}
FEED_BLOCK = 1 << 20
NL = b"\n"
FALLBACK_PARSERS = r"""[PARSER]
    Name        nginx
    Format      regex
    Regex       ^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^\"]*?)(?: +\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>[^\"]*)")
    Time_Key    time
    Time_Format %d/%b/%Y:%H:%M:%S %z

[PARSER]
    Name        nginx_error
    Format      regex
    Regex       ^(?<time>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(?<level>\w+)\] (?<pid>\d+)#(?<tid>\d+): (?:\*(?<cid>\d+) )?(?<message>.*)$
    Time_Key    time
    Time_Format %Y/%m/%d %H:%M:%S
"""  # noqa: E501 - Fluent Bit's stock regex, verbatim
Feed = Path | Callable[[], Iterable[bytes]]


@dataclass(frozen=True)
class Run:
    """One finished child: CPU seconds (user + system, all threads) and peak RSS."""

    cpu: float
    rss_kib: int
    wall: float


@dataclass(frozen=True)
class Row:
    """One line of the table: steady-state cost of one program on one kind of line."""

    name: str
    kind: str
    lines: int
    input_bytes: int
    one: Run
    many: Run
    enrich: bool = False

    @property
    def per_line(self) -> float:
        return max(self.many.cpu - self.one.cpu, 1e-9) / (self.lines - 1)

    @property
    def rate(self) -> float:
        return 1 / self.per_line

    @property
    def mb_rate(self) -> float:
        return self.rate * self.input_bytes / self.lines / 1e6


# running and measuring


def _feeder(src: Feed, stdin: int) -> threading.Thread:
    def feed() -> None:
        try:
            if isinstance(src, Path):
                with src.open("rb") as fh:
                    while block := fh.read(FEED_BLOCK):
                        _write_all(stdin, block)
            else:
                for block in src():
                    _write_all(stdin, block)
        except BrokenPipeError:
            pass  # the child died; its exit status says why
        finally:
            os.close(stdin)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class HighWater:
    """Polls a running child's VmHWM, its peak RSS.

    Not ru_maxrss: the child is started with vfork, and exec keeps the old address space's
    high-water mark, so ru_maxrss reports this (large) parent's peak instead.
    """

    def __init__(self, pid: int, every: float = 0.01) -> None:
        self.peak = 0
        self._path = Path(f"/proc/{pid}/status")
        self._every = every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while True:
            try:
                for line in self._path.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak = max(self.peak, int(line.split()[1]))
            except OSError:
                return
            if self._done.wait(self._every):
                return

    def stop(self) -> int:
        """Stop polling; the peak in KiB."""
        self._done.set()
        self._thread.join()
        return self.peak


def _reap(proc: subprocess.Popen[bytes], what: str, watch: HighWater,
          stderr: Path | None = None) -> Run:
    """Wait for `proc` with wait4; its own CPU time (all threads) and peak RSS."""
    start = time.perf_counter()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    peak = watch.stop()
    if proc.returncode not in (0, -signal.SIGTERM):
        tail = stderr.read_text(errors="replace")[-800:] if stderr and stderr.exists() else ""
        raise SystemExit(f"{what} failed with exit status {proc.returncode}\n{tail}")
    return Run(usage.ru_utime + usage.ru_stime, peak, wall)


def run_piped(cmd: list[str], src: Feed, tmp: Path) -> Run:
    """Run `cmd` with `src` written into its stdin pipe and stdout on /dev/null."""
    errors = tmp / "stderr.txt"
    with errors.open("wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=err, env=ENV, cwd=ROOT)
    assert proc.stdin is not None
    watch = HighWater(proc.pid)
    fd = os.dup(proc.stdin.fileno())
    proc.stdin.close()
    try:
        feeder = _feeder(src, fd)
        run = _reap(proc, shlex.join(cmd[:4]), watch, errors)
        feeder.join()
        return run
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.returncode is None:
        proc.kill()
        proc.wait()


def run_serve(frames: list[tuple[bytes, str]], tmp: Path) -> Run:
    """`ngx-enrich serve --to file:/dev/null`: send `frames` acked, then SIGTERM and reap."""
    cmd = [*ENRICH, "serve", "--listen", "127.0.0.1:0", "--to", "file:/dev/null"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV,
                            cwd=ROOT)
    assert proc.stderr is not None
    watch = HighWater(proc.pid)
    try:
        port = 0
        for raw in proc.stderr:
            found = re.search(rb"listening on 127\.0\.0\.1:(\d+)", raw)
            if found:
                port = int(found.group(1))
                break
        if not port:
            raise SystemExit("ngx-enrich serve did not start")
        drain = threading.Thread(target=proc.stderr.read, daemon=True)
        drain.start()
        send_all(port, frames)
        proc.send_signal(signal.SIGTERM)
        run = _reap(proc, "ngx-enrich serve", watch)
        drain.join()
        proc.stderr.close()
        return run
    finally:
        _stop(proc)


def least(runs: Callable[[], Run], repeat: int) -> Run:
    """The cheapest of `repeat` runs (noise only ever adds), with the highest peak RSS."""
    done = [runs() for _ in range(repeat)]
    best = min(done, key=lambda r: r.cpu)
    return Run(best.cpu, max(r.rss_kib for r in done), best.wall)


# Fluent Bit


def find_fluent_bit() -> str | None:
    """$FLUENT_BIT, else fluent-bit on PATH."""
    env = os.environ.get("FLUENT_BIT")
    if env:
        return env if os.access(env, os.X_OK) else shutil.which(env)
    return shutil.which("fluent-bit")


def fluent_bit_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    return (out.stdout or out.stderr).splitlines()[0].strip() if out.stdout or out.stderr else "?"


def parser_names(text: str) -> tuple[str, str]:
    """The access and error parser names of a parsers file."""
    names = re.findall(r"^\s*Name\s+(\S+)", text, re.MULTILINE | re.IGNORECASE)
    access = "nginx" if "nginx" in names else next(n for n in names if "error" not in n)
    error = next(n for n in names if "error" in n)
    return access, error


def fluent_bit_config(tmp: Path, parser: str, output: str = "null") -> Path:
    """A config file for stdin -> `parser` -> `output`, with the parsers copied beside it."""
    parsers = tmp / "parsers.conf"
    if not parsers.exists():
        if SHARED_PARSERS.exists():
            shutil.copyfile(SHARED_PARSERS, parsers)
        else:
            parsers.write_text(FALLBACK_PARSERS)
    extra = "\n    Format json_lines" if output == "stdout" else ""
    conf = tmp / f"fluent-bit-{parser}-{output}.conf"
    conf.write_text(
        f"[SERVICE]\n    Flush 1\n    Grace 1\n    Log_Level warn\n    Parsers_File {parsers}\n"
        f"[INPUT]\n    Name stdin\n    Parser {parser}\n"
        f"[OUTPUT]\n    Name {output}\n    Match *{extra}\n")
    return conf


def fluent_bit_check(binary: str, tmp: Path, parser: str, data: bytes, key: str) -> str:
    """Run the parser into stdout once and count the records it really parsed."""
    conf = fluent_bit_config(tmp, parser, "stdout")
    out = subprocess.run([binary, "-q", "-c", str(conf)], input=data, capture_output=True,
                         timeout=60, check=True).stdout
    records = [orjson.loads(line) for line in out.splitlines() if line.startswith(b"{")]
    parsed = sum(key in r for r in records)
    stray = Counter(k for r in records for k, v in r.items()
                    if isinstance(v, str) and v.startswith("\n"))
    note = "".join(f' ({n:,} with the previous "\\n" kept at the start of {k!r})'
                   for k, n in stray.items())
    return f"{parsed:,}/{data.count(NL):,} parsed{note}"


# the inputs on disk


@dataclass
class Kind:
    """One kind of line ("access" or "error") in all its input forms."""

    name: str
    lines: list[str]  # the first 20,000
    files: dict[str, tuple[Path, Path]]  # form -> (1-line file, N-line file)
    frames: list[tuple[bytes, str]]
    first_frame: list[tuple[bytes, str]]


def prepare(kind: str, count: int, tmp: Path) -> Kind:
    lines = inputs.Lines(kind).take(count)
    tag = f"nginx.{kind}"
    forms: dict[str, Callable[[list[str]], bytes]] = {
        "text": inputs.text_block, "json": inputs.json_block,
        "msgpack": lambda part: inputs.msgpack_block(part, tag),
    }
    files = {}
    for form, encode in forms.items():
        one, many = tmp / f"{kind}-1.{form}", tmp / f"{kind}-n.{form}"
        one.write_bytes(encode(lines[:1]))
        with many.open("wb") as fh:
            for start in range(0, count, 20_000):
                fh.write(encode(lines[start:start + 20_000]))
        files[form] = (one, many)
    return Kind(kind, lines[:20_000], files, inputs.forward_frames(lines, tag),
                inputs.forward_frames(lines[:1], tag))


def sample_check(kinds: dict[str, Kind], rules: Path) -> dict[str, str]:
    """Run the filter with the 500 rules on a sample: records out, share classified, and
    that no generated rule matched."""
    notes = {}
    for name, kind in kinds.items():
        sample = inputs.text_block(kind.lines[:20_000])
        out = subprocess.run([*ENRICH, "--rules", str(rules)], input=sample, env=ENV, cwd=ROOT,
                             capture_output=True, check=True).stdout.splitlines()
        got = [orjson.loads(line)["ngx"] for line in out]
        bench = sum(str(r.get("rule", "")).startswith("bench_rule_") for r in got)
        if bench or len(got) != sample.count(NL):
            raise SystemExit(f"{name}: {len(got)} records for {sample.count(NL)} lines, "
                             f"{bench} matched a generated rule")
        if name == "error":
            known = sum(r.get("rule") not in (None, "fallback") for r in got) / len(got)
            rules_seen = len({r.get("rule") for r in got})
            notes[name] = f"{known:.0%} classified, {rules_seen} distinct rules"
        else:
            statuses = len({r.get("status") for r in got})
            notes[name] = f"{statuses} statuses"
    return notes


# live latency and memory


def latency(kind: str, seconds: float, rate: int) -> tuple[list[float], float]:
    """Write lines into the filter's pipe at `rate` lines/s; per-record latency in ms (write
    to read back), and that of the last record (held until input is quiet)."""
    count = int(seconds * rate)
    lines = inputs.Lines(kind, seed=3).take(count + 1)
    data = [(line + "\n").encode() for line in lines[1:]]
    proc = subprocess.Popen(ENRICH, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=ENV, cwd=ROOT, bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    wfd, rfd = proc.stdin.fileno(), proc.stdout.fileno()
    arrived: list[float] = []
    done = threading.Event()

    def read() -> None:
        while chunk := os.read(rfd, 1 << 16):
            now = time.perf_counter()
            arrived.extend([now] * chunk.count(b"\n"))
            if len(arrived) > count:
                done.set()
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        os.write(wfd, (lines[0] + "\n").encode())  # warm-up: imports, first-use caches
        deadline = time.perf_counter() + 10
        while not arrived and time.perf_counter() < deadline:
            time.sleep(0.01)
        sent = []
        start = time.perf_counter()
        for i, line in enumerate(data):
            pause = start + i / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            sent.append(time.perf_counter())
            os.write(wfd, line)
        done.wait(10)
        proc.stdin.close()
        reader.join(10)
        proc.wait(10)
    finally:
        _stop(proc)
    got = [(a - s) * 1000 for s, a in zip(sent, arrived[1:], strict=False)]
    if len(got) != count:
        raise SystemExit(f"latency: {len(got)} of {count} records came back")
    return got[:-1], got[-1]


def access_stream(count: int, block: int = 5000) -> Callable[[], Iterator[bytes]]:
    """Access lines generated on the fly, so no multi-million-line file is needed."""
    def blocks() -> Iterator[bytes]:
        gen = inputs.Lines("access", seed=11)
        for start in range(0, count, block):
            yield inputs.text_block(gen.take(min(block, count - start)))
    return blocks


# the report


def machine() -> str:
    model = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = len(os.sched_getaffinity(0))
    return f"{cores} CPUs ({os.cpu_count()} online), {model}, Linux {platform.release()}"


def revision() -> str:
    """The measured ngx-enrich's version and the git commit of its tree."""
    version = subprocess.run([*ENRICH, "--version"], env=ENV, cwd=ROOT, text=True,
                             capture_output=True).stdout.strip() or "ngx-enrich ?"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, text=True, capture_output=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return version
    return f"{version} (git {head}{', with local changes' if dirty else ''})"


def table(rows: list[Row]) -> str:
    fb = {r.kind: r for r in rows if r.name.startswith("fluent-bit")}
    base = {r.kind: r for r in rows if r.name == "ngx-enrich --schema default"}
    head = (f"{'program':<38} {'kind':<6} {'lines/CPU-s':>12} {'MB/CPU-s':>9} "
            f"{'vs FB':>7} {'vs default':>10} {'start ms':>9} {'peak MiB':>9}")
    out = [head, "-" * len(head)]
    for r in rows:
        vs_fb = f"{r.rate / fb[r.kind].rate:.3f}x" if r.kind in fb else "-"
        vs_def = (f"{r.per_line / base[r.kind].per_line:.2f}x cost"
                  if r.enrich and r.kind in base else "")
        out.append(f"{r.name:<38} {r.kind:<6} {r.rate:>12,.0f} {r.mb_rate:>9.1f} {vs_fb:>7} "
                   f"{vs_def:>10} {r.one.cpu * 1000:>9.0f} {r.many.rss_kib / 1024:>9.1f}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=None, help="lines per kind (200,000)")
    parser.add_argument("--quick", action="store_true",
                        help="50,000 lines, one run each, no 5M memory run")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per measurement, the cheapest kept (2; 1 with --quick)")
    opts = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    count = opts.lines or (50_000 if opts.quick else 200_000)
    repeat = opts.repeat or (1 if opts.quick else 2)
    if count < 1000:
        parser.error("--lines must be at least 1000")
    began = time.perf_counter()
    fluent_bit = find_fluent_bit()

    print(f"machine: {machine()}")
    print(f"{revision()}; python {platform.python_version()}; "
          f"{fluent_bit_version(fluent_bit) if fluent_bit else 'Fluent Bit: not found'}")
    print(f"command: {shlex.join(['python', *sys.argv])}  ({count:,} lines per kind, "
          f"cheapest of {repeat} run(s) per point)")

    with tempfile.TemporaryDirectory(prefix="ngx-enrich-compare-") as name:
        tmp = Path(name)
        kinds = {kind: prepare(kind, count, tmp) for kind in ("access", "error")}
        rules = tmp / "rules-500.toml"
        rules.write_text(inputs.rules_toml(500))
        subprocess.run([*ENRICH, "rules", "--check", str(rules)], env=ENV, cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
        notes = sample_check(kinds, rules)
        for kind in kinds.values():
            size = kind.files["text"][1].stat().st_size
            print(f"input {kind.name}: {count:,} lines, {size / count:.0f} B/line average "
                  f"({notes[kind.name]} in a 20,000-line sample)")
        rows: list[Row] = []

        def steady(name: str, kind: Kind, cmd: list[str], form: str, enrich: bool) -> None:
            one, many = kind.files[form]
            rows.append(Row(name, kind.name, count, many.stat().st_size,
                            least(partial(run_piped, cmd, one, tmp), repeat),
                            least(partial(run_piped, cmd, many, tmp), repeat), enrich))

        if fluent_bit:
            parsers_text = (SHARED_PARSERS.read_text() if SHARED_PARSERS.exists()
                            else FALLBACK_PARSERS)
            names = dict(zip(("access", "error"), parser_names(parsers_text), strict=True))
            checks = []
            for kind in kinds.values():
                key = "code" if kind.name == "access" else "level"
                sample = inputs.text_block(kind.lines[:5000])
                found = fluent_bit_check(fluent_bit, tmp, names[kind.name], sample, key)
                checks.append(f"{kind.name} {found}")
            print(f"Fluent Bit parse check (stdout output): {'; '.join(checks)}")
        else:
            print("Fluent Bit: not found ($FLUENT_BIT or fluent-bit on PATH); its rows skipped")

        for kind in kinds.values():
            if fluent_bit:
                conf = fluent_bit_config(tmp, names[kind.name])
                steady(f"fluent-bit stdin -> {names[kind.name]} -> null", kind,
                       [fluent_bit, "-q", "-c", str(conf)], "text", False)
            steady("python pass-through (orjson {log})", kind, [sys.executable, "-c", FLOOR],
                   "text", False)
            for schema in ("default", "flat", "ecs"):
                steady(f"ngx-enrich --schema {schema}", kind, [*ENRICH, "--schema", schema],
                       "text", True)
            steady('ngx-enrich, {"log": ...} JSON input', kind, ENRICH, "json", True)
            steady("ngx-enrich exec_filter msgpack (bin)", kind,
                   [*ENRICH, "--input", "msgpack", "--output", "msgpack"], "msgpack", True)
            steady("ngx-enrich --rules (500 extra rules)", kind, [*ENRICH, "--rules", str(rules)],
                   "text", True)
            frames_bytes = sum(len(f) for f, _ in kind.frames)
            first, frames = kind.first_frame, kind.frames
            rows.append(Row("ngx-enrich serve, acked forward", kind.name, count, frames_bytes,
                            least(partial(run_serve, first, tmp), repeat),
                            least(partial(run_serve, frames, tmp), repeat), True))

        print()
        print(table(rows))
        print("lines/CPU-s = (N - 1) / (cpu_N - cpu_1), CPU = user + system of the child, all "
              "threads (os.wait4);\nstart ms = cpu_1, the 1-line run; MB = input bytes as fed "
              "(JSON, msgpack and forward frames are larger);\npeak = VmHWM of the N-line run; "
              "serve: batches of 1,000 acked per chunk, --to file:/dev/null")

        print()
        print("live latency: each line's write into the pipe to its record read back (a record "
              "held open for\ncontinuation lines waits for the next line, or --quiet-flush "
              "0.2 s after the last)")
        for kind in kinds.values():
            lat, last = latency(kind.name, 5.0, 1000)
            q = statistics.quantiles(lat, n=100)
            print(f"  {kind.name} lines at 1,000 lines/s for 5 s (default filter): "
                  f"p50 {q[49]:.2f} ms, p99 {q[98]:.2f} ms, max {max(lat):.2f} ms; "
                  f"last record {last:.1f} ms")

        peaks = []
        for size in () if opts.quick else (1_000_000, 5_000_000):
            run = run_piped(ENRICH, access_stream(size), tmp)
            peaks.append(run.rss_kib)
            print(f"memory: filter on {size:,} access lines generated into the pipe: peak RSS "
                  f"{run.rss_kib / 1024:.1f} MiB ({size / run.cpu:,.0f} lines/CPU-s incl. start)")
        if len(peaks) == 2:
            print(f"memory: 5M vs 1M lines: {peaks[1] / peaks[0] - 1:+.1%} peak RSS")
        else:
            print("memory: 1M/5M-line runs skipped (--quick)")
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
