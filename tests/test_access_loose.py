"""Access lines in formats nobody declared are read as far as they are recognisable."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ngx_enrich.parse.accesslog import parse_access_line
from ngx_enrich.pipeline import Enricher

T = "[26/Apr/2017:15:56:26 +0000]"


@pytest.mark.parametrize(("line", "want"), [
    (f'{T} "GET / HTTP/1.1" 444 0 "-" "curl/7.58.0"',
     {"status": 444, "path": "/", "remote_addr": None}),
    (f'203.0.113.9 - - {T} "HTTP/3.0" "GET /x HTTP/3.0" 200 512 "-" "curl"',
     {"status": 200, "protocol": "HTTP/3.0", "extra": '"HTTP/3.0"'}),
    (f"203.0.113.9 - - {T} \u201cGET /x HTTP/1.1\u201d 404 153 \u201c-\u201d \u201cMozilla\u201d",
     {"status": 404, "path": "/x", "user_agent": "Mozilla"}),
    (f'203.0.113.9 - bob {T} "GET /api HTTP/1.1" 0.003 app-1 502 157 "-" "curl"',
     {"status": 502, "remote_user": "bob", "extra": "0.003 app-1"}),
])
def test_undeclared_formats(line: str, want: dict) -> None:
    fields = parse_access_line(line)
    assert fields is not None
    assert {k: fields.get(k) for k in want} == want
    assert fields["time"] == "2017-04-26T15:56:26+00:00"
    assert fields["format"] == "guessed"


def test_declared_formats_are_not_guessed() -> None:
    fields = parse_access_line(f'10.0.0.1 - - {T} "GET / HTTP/1.1" 200 5 "-" "curl"')
    assert fields is not None and "format" not in fields


def test_iso_8601_time_in_brackets() -> None:
    fields = parse_access_line('10.0.0.1 - - [2026-11-29T18:24:26Z] "GET /x HTTP/1.1" 503 0')
    assert fields is not None
    assert (fields["time"], fields["status"], fields["format"]) == (
        "2026-11-29T18:24:26+00:00", 503, "guessed")


def test_status_gets_its_category() -> None:
    ngx = Enricher().enrich_line(f'{T} "GET / HTTP/1.1" 502 0 "-" "curl"')["ngx"]
    assert (ngx["kind"], ngx["category"]) == ("access", "bad_gateway")


# a 3-digit token between request and status would itself read as the status
_token = st.text(st.sampled_from("abc0123-._:"), min_size=1, max_size=8).filter(
    lambda t: not (len(t) == 3 and t.isdigit()))


@given(st.lists(_token, max_size=3), st.integers(100, 599), st.integers(0, 10**9))
def test_fields_between_request_and_status_are_kept_aside(between: list[str], status: int,
                                                         size: int) -> None:
    middle = "".join(f"{t} " for t in between)
    line = f'10.0.0.1 - - {T} "POST /a?b=1 HTTP/2.0" {middle}{status} {size} "-" "ua"'
    fields = parse_access_line(line)
    assert fields is not None
    assert (fields["status"], fields["bytes"], fields["method"]) == (status, size, "POST")
    assert fields.get("extra", "") == middle.strip()
