"""Run a real nginx on loopback and capture the error and access logs it writes.

The harness writes a self-contained ``nginx.conf`` into a temporary prefix directory
(pid file, logs and temp paths all live there), starts two small Python upstreams in
threads (a normal one and a slow one), starts nginx in the foreground, and stops it
gracefully on exit so that every log line is on disk when the context manager returns.

``trigger_standard_cases`` then sends real HTTP requests that make nginx write the
error-log and access-log lines ngx-enrich has to understand (404, 403, 413, 502, 504,
499, 503 ...).
"""

from __future__ import annotations

import contextlib
import grp
import http.client
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = [
    "STANDARD_ERROR_MESSAGES",
    "LogFormat",
    "NginxRun",
    "Upstream",
    "nginx_available",
    "nginx_binary",
    "render_conf",
    "running_nginx",
    "trigger_standard_cases",
]

#: Seconds the slow upstream waits before answering; longer than the 1 s read timeout.
SLOW_UPSTREAM_DELAY = 2.0
#: Seconds the aborting client waits before closing its socket.
CLIENT_ABORT_AFTER = 0.3
USER_AGENT = "ngx-enrich-harness/1.0"

#: Substrings that ``trigger_standard_cases`` makes appear in the error log, by status.
STANDARD_ERROR_MESSAGES: dict[int, tuple[str, ...]] = {
    404: ("open() ", "failed (2: No such file or directory)"),
    403: ("access forbidden by rule", "is forbidden"),
    413: ("client intended to send too large body",),
    502: ("connect() failed (111: Connection refused) while connecting to upstream",),
    504: (
        "upstream timed out (110: Connection timed out) "
        "while reading response header from upstream",
    ),
    499: ("client prematurely closed connection",),
    503: ("limiting requests, excess:",),
}


@dataclass(frozen=True)
class LogFormat:
    """A ``log_format`` definition; ``escape`` is ``default``, ``json`` or ``none``."""

    fmt: str
    escape: str = "default"


@dataclass
class Upstream:
    """A small HTTP upstream served from a thread; ``delay`` is seconds before answering."""

    server: ThreadingHTTPServer
    thread: threading.Thread
    delay: float

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@dataclass
class NginxRun:
    """A running nginx: where it logs and which loopback ports it and its upstreams use."""

    prefix: Path
    conf: Path
    error_log: Path
    access_log: Path
    port: int
    fast_upstream_port: int
    slow_upstream_port: int
    closed_port: int
    pid: int
    extra_logs: dict[str, Path] = field(default_factory=dict)

    @property
    def html(self) -> Path:
        """Document root of the default server."""
        return self.prefix / "html"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, bytes]:
        """Send one request over a fresh connection; return ``(status, body)``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = {"User-Agent": USER_AGENT, "Connection": "close", **(headers or {})}
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def get(self, path: str, *, timeout: float = 10.0) -> int:
        """GET ``path`` and return the status code."""
        return self.request("GET", path, timeout=timeout)[0]


def nginx_binary() -> str | None:
    """Path of the nginx binary, or ``None`` when it is not installed."""
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def nginx_available() -> bool:
    """True when an nginx binary exists and ``nginx -v`` runs."""
    binary = nginx_binary()
    if binary is None:
        return False
    try:
        subprocess.run([binary, "-v"], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quote(value: str) -> str:
    """Quote a string for nginx.conf (single quotes, backslash escapes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _UpstreamHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "harness-upstream"
    sys_version = ""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        time.sleep(getattr(self.server, "delay", 0.0))
        body = f"upstream ok {self.command} {self.path}\n".encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            # nginx already gave up on this request (504 or 499); nothing to answer.
            self.close_connection = True

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output quiet."""


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    delay: float = 0.0

    def handle_error(self, request: object, client_address: object) -> None:
        """Ignore connections nginx dropped on purpose."""


def _start_upstream(delay: float) -> Upstream:
    server = _QuietServer(("127.0.0.1", 0), _UpstreamHandler)
    server.delay = delay
    thread = threading.Thread(target=server.serve_forever, name="harness-upstream", daemon=True)
    thread.start()
    return Upstream(server=server, thread=thread, delay=delay)


def _stop_upstream(upstream: Upstream) -> None:
    upstream.server.shutdown()
    upstream.server.server_close()
    upstream.thread.join(timeout=5)


def _user_directive() -> str:
    """``user`` line letting the worker use the temp dir; only meaningful as root."""
    if os.geteuid() != 0:
        return ""
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f"user {user} {group};\n"


def render_conf(
    *,
    port: int,
    fast_port: int,
    slow_port: int,
    closed_port: int,
    http_extra: str = "",
    server_extra: str = "",
    log_formats: Mapping[str, str | LogFormat] | None = None,
    access_format: str = "combined",
    extra_access_logs: Mapping[str, str] | None = None,
) -> str:
    """Return the nginx.conf text; relative paths resolve against the ``-p`` prefix."""
    formats = []
    for name, spec in (log_formats or {}).items():
        fmt = spec if isinstance(spec, LogFormat) else LogFormat(spec)
        formats.append(f"    log_format {name} escape={fmt.escape} {_quote(fmt.fmt)};")
    access_logs = [f"    access_log logs/access.log {access_format};"]
    for filename, fmt_name in (extra_access_logs or {}).items():
        access_logs.append(f"    access_log logs/{filename} {fmt_name};")
    return f"""\
{_user_directive()}worker_processes 1;
daemon off;
master_process on;
pid logs/nginx.pid;
error_log logs/error.log info;

events {{
    worker_connections 128;
}}

http {{
    default_type application/octet-stream;
    sendfile off;
    keepalive_timeout 5s;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;

{chr(10).join(formats)}
{chr(10).join(access_logs)}

    limit_req_zone $binary_remote_addr zone=harness_limit:1m rate=1r/m;

    upstream fast_backend {{
        server 127.0.0.1:{fast_port};
    }}

{http_extra}

    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root html;
        index index.html;
        client_max_body_size 1k;

        location / {{
        }}

        location /private/ {{
            deny all;
        }}

        location /api/ {{
            proxy_pass http://fast_backend;
        }}

        location /limited {{
            limit_req zone=harness_limit nodelay;
            proxy_pass http://fast_backend;
        }}

        location /refused {{
            proxy_pass http://127.0.0.1:{closed_port};
        }}

        location /timeout {{
            proxy_pass http://127.0.0.1:{slow_port};
            proxy_read_timeout 1s;
        }}

        location /abort {{
            proxy_pass http://127.0.0.1:{slow_port};
            proxy_ignore_client_abort off;
            proxy_read_timeout 10s;
        }}

{server_extra}
    }}
}}
"""


def _prepare_prefix(prefix: Path) -> None:
    for sub in ("logs", "tmp", "html/private", "html/noindex"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    (prefix / "html" / "index.html").write_text("<h1>ngx-enrich harness</h1>\n")
    (prefix / "html" / "private" / "secret.txt").write_text("secret\n")
    (prefix / "html" / "noindex" / "data.txt").write_text("data\n")


def _wait_until_ready(prefix: Path, proc: subprocess.Popen[bytes], deadline: float) -> bool:
    """Wait for the pid file and the worker start notice.

    The listening socket is bound before either appears, so requests queue in the backlog
    from then on. Not probing the port keeps a "client closed connection" line out of
    the error log.
    """
    pid_file = prefix / "logs" / "nginx.pid"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if pid_file.exists() and "start worker process " in _tail(prefix / "logs" / "error.log"):
            return True
        time.sleep(0.02)
    return False


def _stop_nginx(proc: subprocess.Popen[bytes], binary: str, prefix: Path, conf: Path) -> None:
    """Graceful ``-s quit``; kill after a grace period. Master exit means logs are flushed."""
    if proc.poll() is None:
        quit_cmd = [binary, "-p", f"{prefix}/", "-c", str(conf), "-e", "logs/error.log", "-s"]
        try:
            subprocess.run([*quit_cmd, "quit"], capture_output=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def running_nginx(
    tmp: Path,
    *,
    http_extra: str = "",
    server_extra: str = "",
    log_formats: Mapping[str, str | LogFormat] | None = None,
    access_format: str = "combined",
    extra_access_logs: Mapping[str, str] | None = None,
    startup_timeout: float = 10.0,
) -> Iterator[NginxRun]:
    """Run nginx with its prefix in ``tmp`` and yield a :class:`NginxRun`.

    ``log_formats`` maps a name to a format string or :class:`LogFormat`;
    ``access_format`` names the format of ``logs/access.log``; ``extra_access_logs`` maps
    more file names (inside ``logs/``) to format names. ``http_extra`` and ``server_extra``
    are pasted into the ``http`` and ``server`` blocks. On exit nginx is stopped and all
    log lines are on disk.
    """
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed")
    prefix = Path(tmp).resolve()
    _prepare_prefix(prefix)
    conf = prefix / "nginx.conf"
    fast = _start_upstream(0.0)
    slow = _start_upstream(SLOW_UPSTREAM_DELAY)
    proc: subprocess.Popen[bytes] | None = None
    try:
        for _attempt in range(3):
            port, closed_port = _free_port(), _free_port()
            conf.write_text(
                render_conf(
                    port=port,
                    fast_port=fast.port,
                    slow_port=slow.port,
                    closed_port=closed_port,
                    http_extra=http_extra,
                    server_extra=server_extra,
                    log_formats=log_formats,
                    access_format=access_format,
                    extra_access_logs=extra_access_logs,
                )
            )
            for log in (prefix / "logs").glob("*.log"):
                log.write_bytes(b"")  # drop lines of a failed attempt
            with (prefix / "nginx.stderr").open("wb") as stderr:
                proc = subprocess.Popen(
                    [binary, "-p", f"{prefix}/", "-c", str(conf), "-e", "logs/error.log"],
                    stdin=subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                )
            if _wait_until_ready(prefix, proc, time.monotonic() + startup_timeout):
                break
            _stop_nginx(proc, binary, prefix, conf)
            if "Address already in use" not in _tail(prefix / "logs" / "error.log"):
                break
        if proc is None or proc.poll() is not None:
            raise RuntimeError(
                "nginx did not start:\n"
                + _tail(prefix / "logs" / "error.log")
                + _tail(prefix / "nginx.stderr")
            )
        yield NginxRun(
            prefix=prefix,
            conf=conf,
            error_log=prefix / "logs" / "error.log",
            access_log=prefix / "logs" / "access.log",
            port=port,
            fast_upstream_port=fast.port,
            slow_upstream_port=slow.port,
            closed_port=closed_port,
            pid=proc.pid,
            extra_logs={name: prefix / "logs" / name for name in (extra_access_logs or {})},
        )
    finally:
        if proc is not None:
            _stop_nginx(proc, binary, prefix, conf)
        _stop_upstream(fast)
        _stop_upstream(slow)


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def _raw_status(port: int, data: bytes, timeout: float = 10.0) -> int:
    """Send raw bytes, read the status line, and return the status code."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
    return int(buf.split(b" ", 2)[1])


def _abort_request(port: int, path: str) -> None:
    """Send a request and close the socket before nginx can answer (-> 499)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {USER_AGENT}\r\n\r\n".encode()
        )
        time.sleep(CLIENT_ABORT_AFTER)


def _wait_for_log(path: Path, needle: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in _tail(path, 1 << 20):
            return
        time.sleep(0.05)


def trigger_standard_cases(run: NginxRun) -> list[tuple[str, int]]:
    """Send requests that produce the standard error cases; return ``(path, status)`` pairs.

    Order: 404, 403 (deny), 413, 502, 504, 499, then 200 (static), 200 (proxied),
    403 (directory index), 200 and 503 (``limit_req``). The statuses are what nginx logs in
    the access log; the client never sees the 499.
    """
    cases: list[tuple[str, int]] = []

    def expect(path: str, expected: int, got: int) -> None:
        if got != expected:
            raise AssertionError(f"{path}: expected {expected}, nginx answered {got}")
        cases.append((path, expected))

    expect("/missing.html", 404, run.get("/missing.html"))
    expect("/private/secret.txt", 403, run.get("/private/secret.txt"))
    upload = (
        f"POST /upload HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {USER_AGENT}\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n"
    )
    expect("/upload", 413, _raw_status(run.port, upload.encode()))
    expect("/refused", 502, run.get("/refused"))
    expect("/timeout", 504, run.get("/timeout"))
    _abort_request(run.port, "/abort")
    _wait_for_log(run.access_log, '"GET /abort HTTP/1.1" 499')
    cases.append(("/abort", 499))
    expect("/index.html", 200, run.get("/index.html"))
    expect("/api/orders?id=42", 200, run.get("/api/orders?id=42"))
    expect("/noindex/", 403, run.get("/noindex/"))
    expect("/limited", 200, run.get("/limited"))
    expect("/limited", 503, run.get("/limited"))
    return cases
