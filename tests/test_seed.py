"""Every status and server message of the seed document maps to its stable category."""

from __future__ import annotations

import pytest

from ngx_enrich.pipeline import Enricher, Options

PREFIX = "2026/04/08 21:07:15 [error] 2211#2211: *1833 "
TAIL = (', client: 203.0.113.9, server: example.com, request: "GET /api HTTP/1.1", '
        'upstream: "http://127.0.0.1:8080/api", host: "example.com"')
CLIENT_TAIL = ', client: 203.0.113.9, server: example.com, request: "GET / HTTP/1.1"'

SEED_MESSAGES = [
    ("[info] ", "recv() failed (104: Connection reset by peer)", "", "client_reset", "client"),
    ("[error] ", "recv() failed (104: Connection reset by peer) while connecting to upstream",
     TAIL, "upstream_reset", "upstream"),
    ("[error] ", "recv() failed (104: Connection reset by peer) while reading response header "
     "from upstream", TAIL, "upstream_reset", "upstream"),
    ("[error] ", "connect() failed (111: Connection refused) while connecting to upstream",
     TAIL, "upstream_refused", "upstream"),
    ("[error] ", "connect() failed (111: Connection refused) while reading response header "
     "from upstream", TAIL, "upstream_refused", "upstream"),
    ("[error] ", "connect() failed (111: Connection refused) while sending request to upstream",
     TAIL, "upstream_refused", "upstream"),
    ("[error] ", "connect() failed (110: Connection timed out) while connecting to upstream",
     TAIL, "upstream_connect_timeout", "upstream"),
    ("[error] ", "connect() failed (110: Connection timed out) while reading upstream",
     TAIL, "upstream_timeout", "upstream"),
    ("[error] ", "connect() failed (110: Connection timed out) while reading response header "
     "from upstream", TAIL, "upstream_timeout", "upstream"),
    ("[error] ", "no live upstreams while connecting to upstream", TAIL,
     "upstream_unavailable", "upstream"),
    ("[error] ", "upstream prematurely closed connection while reading response header from "
     "upstream", TAIL, "upstream_closed", "upstream"),
    ("[error] ", "upstream sent invalid header while reading response header from upstream",
     TAIL, "upstream_invalid_response", "upstream"),
    ("[error] ", "upstream sent no valid HTTP/1.0 header while reading response header from "
     "upstream", TAIL, "upstream_invalid_response", "upstream"),
    ("[error] ", "client intended to send too large body", CLIENT_TAIL,
     "client_body_too_large", "limits"),
    ("[error] ", "client intended to send too large body: 10485760 bytes", CLIENT_TAIL,
     "client_body_too_large", "limits"),
    ("[error] ", "no resolver defined to resolve example.com", CLIENT_TAIL, "no_resolver", "dns"),
    ("[notice] ", "reopening logs", "", "logs_reopened", "lifecycle"),
    ("[notice] ", "gracefully shutting down", "", "graceful_shutdown", "lifecycle"),
    ("[info] ", "SSL_do_handshake() failed while SSL handshaking", ", client: 198.51.100.7, "
     "server: 0.0.0.0:443", "tls_handshake_failed", "tls"),
    ("[info] ", "SSL_do_handshake() failed (SSL: error:14094416:SSL routines:ssl3_read_bytes:"
     "sslv3 alert certificate unknown) while SSL handshaking", ", client: 198.51.100.7, "
     "server: 0.0.0.0:443", "tls_certificate_rejected", "tls"),
    ("[info] ", "SSL_do_handshake() failed (SSL: error:1408A0C1:SSL routines:"
     "ssl3_get_client_hello:no shared cipher) while SSL handshaking",
     ", client: 198.51.100.7, server: 0.0.0.0:443", "tls_no_shared_cipher", "tls"),
    ("[info] ", "SSL_do_handshake() failed (SSL: error:1417A0C1:SSL routines:"
     "tls_post_process_client_hello:no shared cipher) while SSL handshaking",
     ", client: 198.51.100.7, server: 0.0.0.0:443", "tls_no_shared_cipher", "tls"),
    ("[info] ", "SSL_write() failed while sending response to client", CLIENT_TAIL,
     "tls_write_failed", "client"),
    ("[error] ", "SSL_read() failed (SSL: error:140940E5:SSL routines:ssl3_read_bytes:ssl "
     "handshake failure:SSL alert unexpected message) while reading upstream", TAIL,
     "upstream_tls_failed", "upstream"),
]
FPM = ("[29-Nov-2026 18:20:26] WARNING: [pool www] server reached max_children setting, "
       "consider raising it")
SEED_STATUSES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 408: "request_timeout", 413: "request_entity_too_large",
    414: "request_uri_too_long", 415: "unsupported_media_type", 499: "client_closed_request",
    500: "internal_server_error", 502: "bad_gateway", 503: "service_unavailable",
    504: "gateway_timeout",
}
ENRICHERS = {lang: Enricher(Options(lang=lang)) for lang in ("en", "zh")}


def _line(level: str, message: str, tail: str) -> str:
    return PREFIX.replace("[error] ", level) + message + tail


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize(("level", "message", "tail", "category", "area"), SEED_MESSAGES,
                         ids=[m[1][:60] for m in SEED_MESSAGES])
def test_seed_message(lang: str, level: str, message: str, tail: str, category: str,
                      area: str) -> None:
    ngx = ENRICHERS[lang].enrich_line(_line(level, message, tail))["ngx"]
    assert ngx["kind"] == "error"
    assert (ngx["category"], ngx["area"]) == (category, area)
    assert ngx["rule"] != "fallback"
    _assert_language(ngx, lang)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_seed_fpm_max_children(lang: str) -> None:
    ngx = ENRICHERS[lang].enrich_line(FPM)["ngx"]
    assert (ngx["category"], ngx["area"], ngx["pool"]) == ("fpm_max_children", "app", "www")
    _assert_language(ngx, lang)


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize(("status", "category"), sorted(SEED_STATUSES.items()))
def test_seed_status(lang: str, status: int, category: str) -> None:
    line = (f'203.0.113.9 - - [08/Apr/2026:21:07:15 +0000] "GET /x HTTP/1.1" {status} 153 '
            f'"-" "curl/8.5.0"')
    ngx = ENRICHERS[lang].enrich_line(line)["ngx"]
    assert (ngx["kind"], ngx["status"], ngx["category"]) == ("access", status, category)
    _assert_language(ngx, lang)


def _assert_language(ngx: dict, lang: str) -> None:
    text = ngx["explanation"]
    has_cjk = any("\u4e00" <= ch <= "\u9fff" for ch in text)
    assert has_cjk is (lang == "zh"), text
    assert "{" not in text and ngx["hint"]
