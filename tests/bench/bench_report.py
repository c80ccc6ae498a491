"""Throughput and peak memory of `ngx-enrich report` on generated logs.

    python tests/bench/bench_report.py [LINES]

Writes LINES (default 1,000,000) realistic error lines, access lines and a half-and-half mix
(`inputs.Lines`) to temporary files, runs `ngx-enrich report --format json` on each (and
`--format html` and `--jobs 1` on the error log) in a child process, and prints seconds,
lines/s and the largest peak RSS of the process and its workers. Memory is meant to stay
flat: run it with 1M and 5M lines to compare.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inputs import Lines


def write(path: Path, count: int, kind: str) -> None:
    """`count` generated lines of `kind` (error, access or mixed) into `path`."""
    error, access = Lines("error"), Lines("access")
    pick = random.Random(11)
    with path.open("w") as out:
        for start in range(0, count, 10_000):
            size = min(10_000, count - start)
            if kind == "mixed":
                lines = [(error if pick.random() < 0.5 else access).next_line()
                         for _ in range(size)]
            else:
                lines = (error if kind == "error" else access).take(size)
            out.write("\n".join(lines) + "\n")


def measure(args: list[str]) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of `ngx-enrich report ARGS`, output discarded."""
    cmd = [sys.executable, "-m", "ngx_enrich", "report", "--quiet", *args]
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, env={**os.environ, "TZ": "UTC"})
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{cmd} failed")
    return elapsed, usage.ru_maxrss


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'input':<28}{'lines':>11}{'seconds':>10}{'lines/s':>11}{'peak RSS':>12}")
        for kind in ("error", "access", "mixed"):
            path = Path(tmp) / f"{kind}.log"
            write(path, count, kind)
            runs = [(f"{kind} --format json", ["--format", "json", str(path)])]
            if kind == "error":
                runs.append((f"{kind} --format html", ["--format", "html", str(path)]))
                runs.append((f"{kind} --jobs 1", ["--format", "json", "--jobs", "1", str(path)]))
            for name, args in runs:
                seconds, rss = measure(args)
                print(f"{name:<28}{count:>11,}{seconds:>10.1f}{count / seconds:>11,.0f}"
                      f"{rss / 1024:>9.1f} MiB", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
