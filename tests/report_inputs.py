"""A seeded mixed log for the report tests: error and access lines from the benchmark
generators, plus the other forms the filter reads (docker compose and JSON wrappers,
multiline FastCGI records, garbage, empty lines)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import orjson

try:
    from bench.inputs import Lines
except ImportError:  # run from the repository root
    from tests.bench.inputs import Lines

STAMP = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ")
FASTCGI = [
    '{stamp} [error] 2211#2211: *{n} FastCGI sent in stderr: "PHP message: PHP Fatal error:  '
    'Uncaught Error: Call to undefined function f() in /var/www/a.php:5',
    "Stack trace:",
    "#0 {{main}}",
    '  thrown in /var/www/a.php on line 5" while reading response header from upstream, client: '
    '203.0.113.9, server: example.com, request: "GET /a.php?x={n} HTTP/1.1", upstream: '
    '"fastcgi://unix:/run/php/php-fpm.sock:", host: "example.com"',
]


def mixed_lines(count: int, seed: int = 5) -> list[str]:
    """About `count` physical lines; about half error, half access."""
    error, access = Lines("error", seed), Lines("access", seed)
    pick = random.Random(seed)
    out: list[str] = []
    for i in range(count):
        line = (error if pick.random() < 0.5 else access).next_line()
        if i % 1499 == 7:
            line = f"web_1  | {line}"
        elif i % 2003 == 11:
            line = orjson.dumps({"log": line, "stream": "stderr"}).decode()
        out.append(line)
        if i % 997 == 3:
            out.append(f"garbage {i} that is no Nginx line")
        if i % 4001 == 5:
            out.append("")
        if i % 3001 == 13:
            stamp = line[:19] if STAMP.match(line) else "2026/04/08 21:07:15"
            out += [part.format(stamp=stamp, n=i) for part in FASTCGI]
    return out


def write_mixed(path: Path, count: int, seed: int = 5) -> Path:
    """The mixed log written to `path`."""
    path.write_text("\n".join(mixed_lines(count, seed)) + "\n")
    return path
