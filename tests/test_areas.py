"""Areas follow the subject of the message, not its level; `stage` says when it was written."""

from __future__ import annotations

import pytest

from ngx_enrich.pipeline import Enricher

ENRICHER = Enricher()
T = "2026/11/29 18:24:26"


@pytest.mark.parametrize(("line", "area", "stage"), [
    (f'{T} [emerg] 1#1: cannot load certificate "/etc/ssl/x.pem": BIO_new_file() failed (SSL: '
     "error:80000002:system library::No such file or directory:calling fopen(/etc/ssl/x.pem, r) "
     "error:10000080:BIO routines::no such file)", "tls", "startup"),
    (f'{T} [emerg] 1#1: host not found in upstream "app" in /etc/nginx/conf.d/default.conf:3',
     "dns", "startup"),
    (f'{T} [emerg] 1#1: mkdir() "/var/cache/nginx/client_temp" failed (13: Permission denied)',
     "filesystem", "startup"),
    (f"{T} [emerg] 1#1: bind() to 0.0.0.0:80 failed (98: Address already in use)",
     "lifecycle", "startup"),
    (f'{T} [emerg] 1#1: unknown directive "proxy_passs" in /etc/nginx/conf.d/app.conf:12',
     "config", "startup"),
    ('nginx: [emerg] unknown directive "proxy_passs" in /etc/nginx/conf.d/app.conf:12',
     "config", "startup"),
    (f"{T} [warn] 7#7: *3 an upstream response is buffered to a temporary file "
     "/var/cache/nginx/proxy_temp/1/00/0000000001 while reading upstream, client: 10.0.0.1, "
     'server: x, request: "GET /big HTTP/1.1", upstream: "http://10.0.0.2:80/big", host: "x"',
     "resources", "runtime"),
    (f"{T} [error] 7#7: *4 connect() failed (111: Connection refused) while connecting to "
     "upstream, client: 10.0.0.1, server: x", "upstream", "runtime"),
])
def test_area_by_subject_and_stage(line: str, area: str, stage: str) -> None:
    ngx = ENRICHER.enrich_line(line)["ngx"]
    assert (ngx["area"], ngx["stage"]) == (area, stage), ngx["rule"]
    assert ngx["rule"] != "fallback"


def test_an_undescribed_emerg_is_still_a_startup_error() -> None:
    ngx = ENRICHER.enrich_line(f"{T} [emerg] 1#1: something nobody wrote down")["ngx"]
    assert (ngx["stage"], ngx["severity"]) == ("startup", "critical")
