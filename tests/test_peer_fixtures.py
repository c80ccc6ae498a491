"""Other tools' own test inputs: every line parses, and stated values match ours."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from conftest import shared_file

from ngx_enrich.io import Joiner
from ngx_enrich.parse.dispatch import continues, opens_record
from ngx_enrich.pipeline import Enricher

ENRICH = Enricher()
# Their field name -> ours (names differ, values must not).
ERROR_NAMES = {"client": "client", "server": "server", "request": "request", "host": "host",
               "pid": "pid", "tid": "tid", "cid": "cid", "referer": "referrer",
               "upstream": "upstream", "excess": "excess", "zone": "zone"}
ACCESS_NAMES = {"client": "remote_addr", "request": "request", "referer": "referer",
          "remote_addr": "remote_addr", "remote_user": "remote_user", "status": "status",
          "body_bytes_size": "bytes", "http_referer": "referer",
          "http_user_agent": "user_agent", "http_x_forwarded_for": "x_forwarded_for",
          "request_length": "request_length", "request_time": "request_time",
          "proxy_upstream_name": "proxy_upstream_name", "req_id": "request_id",
          "upstream_addr": "upstream_addr", "upstream_status": "upstream_status",
          "user": "remote_user", "agent": "user_agent", "size": "bytes"}


def _same_instant(theirs: str, ours: str) -> bool:
    a = datetime.fromisoformat(theirs.replace("Z", "+00:00"))
    b = datetime.fromisoformat(ours)
    if b.tzinfo is None or a.tzinfo is None:
        return a.replace(tzinfo=None) == b.replace(tzinfo=None)
    return a == b


def _vector_cases() -> list[dict]:
    path = shared_file("peer-fixtures", "vector-parse_nginx_log-cases.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_vector_cases_values_match() -> None:
    checked = 0
    for case in _vector_cases():
        if case.get("expected_error") or case.get("expected") is None:
            continue
        ngx = ENRICH.enrich_line(case["line"])["ngx"]
        assert ngx["kind"] in ("error", "access"), case["case"]
        for theirs, value in case["expected"].items():
            ours = (ERROR_NAMES if ngx["kind"] == "error" else ACCESS_NAMES).get(theirs)
            if value == "-" or value is None:
                assert ngx.get(ours) is None  # absent for us too
            elif theirs == "timestamp":
                assert _same_instant(value, ngx["time"]), case["case"]
            elif theirs == "message" and "message" in ngx:
                assert ngx["message"].startswith(value), case["case"]
            elif theirs == "severity":
                assert ngx["level"] == value
            elif ours == "upstream_addr":
                assert ngx[ours] == [v.strip() for v in str(value).split(",")]
            elif ours == "upstream_status":
                assert ngx[ours] == [int(v) for v in str(value).split(",")]
            elif ours is not None and value not in ("", None, "-"):  # "-" is absent for us
                assert ngx.get(ours) == value, (case["case"], theirs)
            checked += 1
    assert checked > 100


def test_fluentd_cases_values_match() -> None:
    path = shared_file("peer-fixtures", "fluentd-parser_nginx-cases.jsonl")
    for raw in path.read_text().splitlines():
        case = json.loads(raw)
        ngx = ENRICH.enrich_line(case["line"])["ngx"]
        exp = case["expected"]
        assert ngx["kind"] == "access"
        assert ngx["remote_addr"] == exp["remote"]
        assert ngx.get("ident", "-") == exp["host"]
        assert (ngx["method"], ngx["path"]) == (exp["method"], exp["path"])
        assert (str(ngx["status"]), str(ngx.get("bytes", "-"))) == (exp["code"], exp["size"])
        assert _same_instant(case["expected_time"], ngx["time"])


@pytest.mark.parametrize("name", ["filebeat-nginx-access-test.log", "elastic-nginx-access-test.log",
                                  "filebeat-nginx-ingress_controller-test.log"])
def test_every_access_line_parses(name: str) -> None:
    lines = [ln for ln in shared_file("peer-fixtures", name).read_text().splitlines() if ln]
    recs = [ENRICH.enrich_line(ln)["ngx"] for ln in lines]
    assert all(r["kind"] == "access" for r in recs), [r for r in recs if r["kind"] != "access"]
    assert all(isinstance(r["status"], int) for r in recs)


def test_filebeat_error_log_matches_expected() -> None:
    lines = shared_file("peer-fixtures", "filebeat-nginx-error.log").read_text().splitlines()
    expected = json.loads(shared_file("peer-fixtures",
                                      "filebeat-nginx-error.log-expected.json").read_text())
    joiner = Joiner(continues, opens_record)
    records = [text for text, _ in joiner.feed([(ln, None) for ln in lines]) + joiner.flush()]
    assert len(records) == len(expected)
    for line, exp in zip(records, expected, strict=True):
        ngx = ENRICH.enrich_line(line)["ngx"]
        assert ngx["kind"] == "error"
        assert ngx["level"] == exp["log.level"]
        assert ngx["pid"] == exp["process.pid"] and ngx["tid"] == exp["process.thread.id"]
        assert ngx["cid"] == exp["nginx.error.connection_id"]
        assert exp["message"].startswith(ngx["message"][:60])


def test_amplify_and_datadog_error_lines_parse() -> None:
    path = shared_file("peer-fixtures", "amplify-error-category-cases.jsonl")
    for raw in path.read_text().splitlines():
        ngx = ENRICH.enrich_line(json.loads(raw)["line"])["ngx"]
        assert ngx["kind"] == "error" and ngx["rule"] != "fallback"
    text = shared_file("peer-fixtures", "datadog-nginx_tests.yaml").read_text()
    samples = [json.loads(ln.split("sample: ", 1)[1]) for ln in text.splitlines()
               if "sample: " in ln]
    assert len(samples) == 6
    kinds = [ENRICH.enrich_line(s)["ngx"]["kind"] for s in samples]
    assert kinds.count("access") == 4 and kinds.count("error") == 2
