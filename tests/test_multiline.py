"""Multiline joining never swallows: only an open record is continued, and only by a line that
looks like its continuation. A complete record is never extended."""

from __future__ import annotations

import random
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from ngx_enrich.io import Joiner
from ngx_enrich.parse.dispatch import continues, opens_record

COMPLETE = [
    '2026/04/08 21:07:15 [error] 2211#2211: *{n} connect() failed (111: Connection refused) '
    'while connecting to upstream, client: 203.0.113.9, server: example.com, request: '
    '"GET /n/{n} HTTP/1.1", upstream: "http://127.0.0.1:8080/", host: "example.com"',
    '2026/04/08 21:07:16 [error] 2211#2211: *{n} open() "/srv/www/{n}.html" failed (2: No such '
    'file or directory), client: 198.51.100.7, server: example.com, request: "GET /{n}.html '
    'HTTP/1.1", host: "example.com"',
    '2026/04/08 21:07:17 [error] 2211#2211: *{n} FastCGI sent in stderr: "PHP message: PHP '
    'Warning:  Undefined variable $x in /var/www/{n}.php on line 3" while reading response '
    'header from upstream, client: 203.0.113.9, server: example.com, request: "GET /{n}.php '
    'HTTP/1.1", upstream: "fastcgi://unix:/run/php/php-fpm.sock:", host: "example.com"',
]
FASTCGI = [
    '2026/04/08 21:07:18 [error] 2211#2211: *9 FastCGI sent in stderr: "PHP message: PHP '
    'Fatal error:  Uncaught Error: Call to undefined function "f"() in /var/www/a.php:5',
    "Stack trace:",
    "#0 {main}",
    "garbage inside the quoted stderr is still stderr",
    '  thrown in /var/www/a.php on line 5" while reading response header from upstream, client: '
    '203.0.113.9, server: example.com, request: "GET /a.php HTTP/1.1", upstream: '
    '"fastcgi://unix:/run/php/php-fpm.sock:", host: "example.com"',
]
LUA = [
    "2024/03/02 10:11:12 [error] 7#7: *3 lua entry thread aborted: runtime error: "
    "/etc/nginx/lua/auth.lua:12: attempt to index a nil value (local 'res')",
    "stack traceback:",
    "coroutine 0:",
    "\t[C]: in function 'error'",
    "\t/etc/nginx/lua/auth.lua: in function 'check'",
    '\taccess_by_lua(nginx.conf:40):2: in main chunk, client: 10.0.0.1, server: api, request: '
    '"GET /v1 HTTP/1.1", host: "api"',
]


def join(lines: list[str]) -> list[str]:
    joiner = Joiner(continues, opens_record)
    return [text for text, _ in joiner.feed([(line, None) for line in lines]) + joiner.flush()]


def test_fastcgi_and_lua_records_are_one_record_each() -> None:
    assert join([*FASTCGI, *LUA]) == ["\n".join(FASTCGI), "\n".join(LUA)]


def test_lines_after_a_closed_record_are_records_of_their_own() -> None:
    after = ["Stack trace:", "#1 not a frame of anything", "  indented", "PHP message: late"]
    assert join([*FASTCGI, *after]) == ["\n".join(FASTCGI), *after]
    assert join([*LUA, *after]) == ["\n".join(LUA), *after]


def test_a_record_start_ends_an_unterminated_quote() -> None:
    cut = FASTCGI[:3]
    line = COMPLETE[0].format(n=1)
    assert join([*cut, line]) == ["\n".join(cut), line]


def test_a_tail_less_record_takes_only_continuation_lines() -> None:
    start = "2026/04/08 21:07:15 [notice] 1#1: start worker processes"
    assert join([start, "stray words", "\tindented"]) == [start, "stray words", "\tindented"]


def test_mixed_garbage_and_complete_lines_are_never_joined() -> None:
    """The case that once came out as 1,037 records for 3,000 lines."""
    rng = random.Random(7)
    lines = []
    for n in range(3000):
        if rng.random() < 0.5:
            lines.append(rng.choice(COMPLETE).format(n=n))
        else:
            word = "".join(rng.choices(string.ascii_letters + string.digits + " {}[]#:,\"'",
                                       k=rng.randint(1, 60)))
            lines.append(rng.choice(["", "x", "#", "PHP message: "]) + word.strip())
    assert join(lines) == lines


_garbage = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=80).filter(
    lambda s: not s[:1].isspace() and not s.startswith(("#", "PHP message:", "Stack trace:",
                                                        "stack traceback:", "coroutine ")))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 2), _garbage), max_size=30))
def test_complete_records_and_garbage_keep_their_count(items: list[int | str]) -> None:
    lines = [COMPLETE[i].format(n=k) if isinstance(i, int) else i for k, i in enumerate(items)]
    assert join(lines) == lines
