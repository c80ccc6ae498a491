"""Throughput of the filter command against a bare pass-through floor.

    python tests/bench/bench_filter.py [LINES]

Prints lines/s and peak RSS for: the floor (read lines, wrap each in {"log": ...} with
orjson, write), then `ngx-enrich` on error lines and on access lines, and the Fluentd
exec_filter msgpack path (`--input msgpack --output msgpack`, maps with tag and time).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = r"""
import sys, orjson
out = sys.stdout.buffer
for block in iter(lambda: sys.stdin.buffer.read(1 << 16) + sys.stdin.buffer.readline(), b""):
    out.write(b"".join(orjson.dumps({"log": l.decode()}, option=orjson.OPT_APPEND_NEWLINE)
                       for l in block.splitlines()))
"""
ERRORS = [
    '{t} [error] 2211#2211: *{c} connect() failed (111: Connection refused) while connecting to '
    'upstream, client: 203.0.113.{n}, server: example.com, request: "GET /api/{c} HTTP/1.1", '
    'upstream: "http://10.0.0.{n}:8080/api/{c}", host: "example.com"',
    '{t} [error] 2211#2211: *{c} open() "/var/www/html/img/{c}.png" failed (2: No such file or '
    'directory), client: 198.51.100.{n}, server: example.com, request: "GET /img/{c}.png '
    'HTTP/1.1", host: "example.com", referrer: "https://example.com/"',
    '{t} [error] 2211#2211: *{c} upstream timed out (110: Connection timed out) while reading '
    'response header from upstream, client: 203.0.113.{n}, server: example.com, request: '
    '"POST /checkout HTTP/1.1", upstream: "http://10.0.0.{n}:8080/checkout", host: "example.com"',
    '{t} [info] 2211#2211: *{c} client prematurely closed connection while sending to client, '
    'client: 198.51.100.{n}, server: example.com, request: "GET /big.iso HTTP/1.1", host: "x"',
    '{t} [error] 2211#2211: *{c} limiting requests, excess: {n}.520 by zone "perip", client: '
    '192.0.2.{n}, server: api.example.com, request: "POST /login HTTP/1.1", host: "api"',
]
ACCESS = ('203.0.113.{n} - - [08/Apr/2026:21:07:{s:02d} +0000] "GET /api/items/{c}?page={n} '
          'HTTP/1.1" {status} {c} "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64) '
          'AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"')


def make(path: Path, count: int, kind: str) -> None:
    rnd = random.Random(7)
    with path.open("w") as fh:
        for i in range(count):
            n, c = rnd.randrange(1, 250), 1000 + i
            if kind == "error":
                fh.write(rnd.choice(ERRORS).format(t="2026/04/08 21:07:15", c=c, n=n) + "\n")
            else:
                status = rnd.choice((200, 200, 200, 304, 404, 499, 502, 504))
                fh.write(ACCESS.format(n=n, c=c, s=i % 60, status=status) + "\n")


def measure(cmd: list[str], data: Path) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of one run of `cmd` with `data` on stdin."""
    start = time.perf_counter()
    with data.open("rb") as src, open(os.devnull, "wb") as sink:
        proc = subprocess.Popen(cmd, stdin=src, stdout=sink)
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{cmd} failed with {proc.returncode}")
    return elapsed, usage.ru_maxrss


def make_msgpack(text: Path, path: Path) -> None:
    import msgpack

    with text.open() as src, path.open("wb") as out:
        for line in src:
            out.write(msgpack.packb({"message": line.rstrip("\n"), "tag": "nginx.error",
                                     "time": "2026-04-08T21:07:15.123456789+0000"}))


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    with tempfile.TemporaryDirectory() as tmp:
        packed = Path(tmp) / "error.msgpack"
        for kind in ("error", "access"):
            data = Path(tmp) / f"{kind}.log"
            make(data, count, kind)
            for name, cmd in (("floor", [sys.executable, "-c", FLOOR]),
                              ("ngx-enrich", [sys.executable, "-m", "ngx_enrich"])):
                elapsed, peak_kib = measure(cmd, data)
                print(f"{kind:6} {name:10} {count / elapsed:>10,.0f} lines/s  "
                      f"peak RSS {peak_kib / 1024:.0f} MiB  ({count:,} lines, {elapsed:.2f} s)")
            if kind == "error":
                make_msgpack(data, packed)
        elapsed, peak_kib = measure([sys.executable, "-m", "ngx_enrich", "--input", "msgpack",
                                     "--output", "msgpack"], packed)
        print(f"exec   msgpack    {count / elapsed:>10,.0f} records/s  "
              f"peak RSS {peak_kib / 1024:.0f} MiB  ({count:,} error records, {elapsed:.2f} s)")


if __name__ == "__main__":
    main()
