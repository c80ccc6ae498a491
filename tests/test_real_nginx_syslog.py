"""A real Nginx logs over syslog (UDP) as well as to files; what arrives is enriched like the
file lines: the syslog wrapper is taken off and reported, the verdict is the same."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from ngx_enrich.pipeline import Enricher

try:
    from nginx_harness import nginx_available, running_nginx, trigger_standard_cases
except ImportError:  # pragma: no cover - imported as a package
    from tests.nginx_harness import nginx_available, running_nginx, trigger_standard_cases

pytestmark = pytest.mark.nginx


class SyslogListener:
    """A UDP syslog receiver on loopback that keeps every datagram."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.messages: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            self.messages.append(data.decode("utf-8", "replace"))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_nginx_syslog_output_is_unwrapped_and_enriched(tmp_path: Path) -> None:
    if not nginx_available():
        pytest.skip("nginx is not installed")
    listener = SyslogListener()
    server = f"syslog:server=127.0.0.1:{listener.port}"
    # error_log in http replaces the inherited one, so the file is named again beside syslog
    extra = (f"    error_log {server},tag=nginx info;\n    error_log logs/error.log info;\n"
             f"    access_log {server},tag=nginx_access,severity=info combined;\n")
    try:
        with running_nginx(tmp_path, http_extra=extra) as run:
            trigger_standard_cases(run)
    finally:
        listener.close()
    files = (Path(run.error_log).read_text().splitlines()
             + Path(run.access_log).read_text().splitlines())
    enricher = Enricher()
    by_line = {line: enricher.enrich_line(line)["ngx"] for line in files}
    got = [enricher.enrich_line(message)["ngx"] for message in listener.messages]
    access = [n for n in got if n["kind"] == "access"]
    errors = [n for n in got if n["kind"] == "error"]
    assert len(access) >= 10 and len(errors) >= 8, listener.messages[:5]
    assert all(n["kind"] != "other" for n in got), [m for m, n in
                                                   zip(listener.messages, got, strict=True)
                                                   if n["kind"] == "other"][:3]
    same = 0
    for message, ngx in zip(listener.messages, got, strict=True):
        wrapper = ngx.pop("wrapper")
        assert wrapper["kind"] == ["syslog"]
        assert wrapper["service"] in ("nginx", "nginx_access")
        assert wrapper["facility"] == 23  # local7, Nginx's default
        inner = message.split(f"{wrapper['service']}: ", 1)[1]
        if inner in by_line:  # the same record in the file: the same facts
            assert ngx == by_line[inner]
            same += 1
    assert same == len(got), (same, len(got))  # every record is also in the files
    categories = {n["category"] for n in got}
    assert {"upstream_refused", "bad_gateway", "not_found", "limit_req_rejected"} <= categories
