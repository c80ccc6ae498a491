"""Run a real nginx, trigger the standard failure cases, and check what it logged."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

try:
    from nginx_harness import (
        STANDARD_ERROR_MESSAGES,
        LogFormat,
        nginx_available,
        running_nginx,
        trigger_standard_cases,
    )
except ImportError:  # tests/ imported as a package
    from tests.nginx_harness import (
        STANDARD_ERROR_MESSAGES,
        LogFormat,
        nginx_available,
        running_nginx,
        trigger_standard_cases,
    )

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.skipif(not nginx_available(), reason="nginx is not installed"),
]

COMBINED = re.compile(
    r'^(?P<addr>\S+) - (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) '
    r'(?P<proto>[^"]+)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" "(?P<ua>[^"]*)"$'
)
ERROR_LINE = re.compile(
    r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} \[(?P<level>[a-z]+)\] \d+#\d+: (?P<message>.*)$"
)


@dataclass
class Captured:
    cases: list[tuple[str, int]]
    error_log: str
    access_log: str


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Captured]:
    with running_nginx(tmp_path_factory.mktemp("nginx")) as run:
        cases = trigger_standard_cases(run)
    yield Captured(cases, run.error_log.read_text(), run.access_log.read_text())


def _access_entries(text: str) -> list[tuple[str, int]]:
    entries = []
    for line in text.splitlines():
        match = COMBINED.match(line)
        assert match, f"not a combined log line: {line!r}"
        assert match["addr"] == "127.0.0.1"
        entries.append((match["path"], int(match["status"])))
    return entries


def test_standard_cases_cover_the_required_statuses(captured: Captured) -> None:
    statuses = [status for _, status in captured.cases]
    for required in (404, 403, 413, 502, 504, 499, 200, 503):
        assert required in statuses
    first = [statuses.index(s) for s in (404, 403, 413, 502, 504, 499)]
    assert first == sorted(first)


def test_access_log_has_each_status_for_its_path(captured: Captured) -> None:
    entries = _access_entries(captured.access_log)
    for case in captured.cases:
        assert case in entries, f"{case} missing from access log"
    assert len(entries) == len(captured.cases)


@pytest.mark.parametrize("status", sorted(STANDARD_ERROR_MESSAGES))
def test_error_log_has_expected_messages(captured: Captured, status: int) -> None:
    for needle in STANDARD_ERROR_MESSAGES[status]:
        assert needle in captured.error_log, f"{status}: {needle!r} not in error log"


def test_error_log_lines_and_levels(captured: Captured) -> None:
    parsed = []
    for line in captured.error_log.splitlines():
        match = ERROR_LINE.match(line)
        assert match, f"not an error log line: {line!r}"
        parsed.append((match["level"], match["message"]))

    def level_of(needle: str) -> str:
        return next(level for level, message in parsed if needle in message)

    assert level_of("client prematurely closed connection") == "info"
    assert level_of("upstream timed out") == "error"
    assert level_of("access forbidden by rule") == "error"
    assert level_of("exited with code 0") == "notice"  # graceful stop was logged
    assert all(m.startswith("*") for _, m in parsed if ", client: " in m)


def test_missing_file_line_names_the_path(captured: Captured) -> None:
    line = next(ln for ln in captured.error_log.splitlines() if "missing.html" in ln)
    assert re.search(r'open\(\) "/\S+/html/missing\.html" failed \(2: No such file', line)
    assert 'request: "GET /missing.html HTTP/1.1"' in line


CUSTOM = (
    '$remote_addr [$time_local] "$request" $status rt=$request_time '
    'us=$upstream_status urt="$upstream_response_time" ua="$upstream_addr"'
)
CUSTOM_LINE = re.compile(
    r'^127\.0\.0\.1 \[[^\]]+\] "(?P<request>[^"]+)" (?P<status>\d{3}) rt=(?P<rt>\d+\.\d{3}) '
    r'us=(?P<us>\S+) urt="(?P<urt>[^"]*)" ua="(?P<ua>[^"]*)"$'
)
JSON_FORMAT = (
    '{"time":"$time_iso8601","remote_addr":"$remote_addr","request":"$request",'
    '"status":$status,"request_time":$request_time,"upstream_status":"$upstream_status",'
    '"upstream_response_time":"$upstream_response_time","upstream_addr":"$upstream_addr",'
    '"user_agent":"$http_user_agent"}'
)


def test_custom_and_json_log_formats_round_trip(tmp_path: Path) -> None:
    formats = {"upstreaminfo": CUSTOM, "jsonlog": LogFormat(JSON_FORMAT, escape="json")}
    with running_nginx(
        tmp_path,
        log_formats=formats,
        access_format="upstreaminfo",
        extra_access_logs={"access.json": "jsonlog"},
    ) as run:
        assert run.get("/api/items") == 200
        assert run.get("/refused") == 502
        assert run.get("/index.html") == 200
        status, _ = run.request("GET", "/api/quoted", headers={"User-Agent": 'odd "agent"\\x'})
        assert status == 200
        fast = f"127.0.0.1:{run.fast_upstream_port}"
        closed = f"127.0.0.1:{run.closed_port}"

    custom = [CUSTOM_LINE.match(line) for line in run.access_log.read_text().splitlines()]
    assert all(custom), run.access_log.read_text()
    rows = {m["request"]: m for m in custom if m}
    api = rows["GET /api/items HTTP/1.1"]
    assert (api["status"], api["us"], api["ua"]) == ("200", "200", fast)
    assert re.fullmatch(r"\d+\.\d{3}", api["urt"])
    refused = rows["GET /refused HTTP/1.1"]
    assert (refused["status"], refused["us"], refused["ua"]) == ("502", "502", closed)
    static = rows["GET /index.html HTTP/1.1"]
    assert (static["us"], static["urt"], static["ua"]) == ("-", "-", "-")

    records = [json.loads(line) for line in run.extra_logs["access.json"].read_text().splitlines()]
    by_request = {r["request"]: r for r in records}
    assert by_request["GET /api/items HTTP/1.1"]["upstream_status"] == "200"
    assert by_request["GET /refused HTTP/1.1"]["status"] == 502
    assert by_request["GET /index.html HTTP/1.1"]["upstream_addr"] == ""
    assert by_request["GET /api/quoted HTTP/1.1"]["user_agent"] == 'odd "agent"\\x'
    assert all(isinstance(r["request_time"], float | int) for r in records)
