"""A real Nginx writes real logs; ngx-enrich classifies every line of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ngx_enrich.pipeline import Enricher

try:
    from nginx_harness import nginx_available, running_nginx, trigger_standard_cases
except ImportError:  # pragma: no cover - imported as a package
    from tests.nginx_harness import nginx_available, running_nginx, trigger_standard_cases

pytestmark = pytest.mark.nginx

# status in the access log -> (category of the access line, category of its error line)
EXPECTED = {
    404: ("not_found", "not_found"),
    403: ("forbidden", {"access_forbidden_by_rule", "directory_index_forbidden"}),
    413: ("request_entity_too_large", "client_body_too_large"),
    502: ("bad_gateway", "upstream_refused"),
    504: ("gateway_timeout", "upstream_timeout"),
    499: ("client_closed_request", "client_closed_request"),
    503: ("service_unavailable", "limit_req_rejected"),
}


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str], list]:
    if not nginx_available():
        pytest.skip("nginx is not installed")
    tmp = tmp_path_factory.mktemp("nginx")
    with running_nginx(tmp) as run:
        cases = trigger_standard_cases(run)
    error = Path(run.error_log).read_text().splitlines()
    access = Path(run.access_log).read_text().splitlines()
    return error, access, cases


def test_access_lines_get_the_status_category(captured) -> None:
    _, access, cases = captured
    enricher = Enricher()
    recs = [enricher.enrich_line(line)["ngx"] for line in access]
    assert all(r["kind"] == "access" for r in recs)
    by_request = [(r["path"], r["status"]) for r in recs]
    assert by_request == cases
    for rec in recs:
        if rec["status"] in EXPECTED:
            assert rec["category"] == EXPECTED[rec["status"]][0], rec


def test_error_lines_get_specific_categories(captured) -> None:
    error, _, _ = captured
    enricher = Enricher()
    recs = [enricher.enrich_line(line)["ngx"] for line in error]
    assert all(r["kind"] == "error" for r in recs)
    by_cid = {r["cid"]: r for r in recs if "cid" in r and r["level"] != "notice"}
    seen = set()
    for rec in by_cid.values():
        for status, (_, wanted) in EXPECTED.items():
            wanted_set = wanted if isinstance(wanted, set) else {wanted}
            if rec["category"] in wanted_set:
                seen.add(status)
    assert seen == set(EXPECTED), f"missing error categories for {set(EXPECTED) - seen}"
    assert all(r["rule"] != "fallback" for r in recs if r["level"] != "notice")
