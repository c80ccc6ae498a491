"""Helpers for the end-to-end tests with the real Fluent Bit and Fluentd.

The programs are found by `FLUENT_BIT` / `FLUENTD`, then on PATH; tests that need one skip
with a reason when it is absent. A shipped config is copied into the test's folder with only
paths, ports, the Elasticsearch address and credentials changed (`render`). The test corpus is
real Nginx output (`examples/logs/`), a multiline FastCGI record and an access line in a custom
`log_format`, each with the category and event time it must arrive with.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


def program(variable: str, name: str) -> str | None:
    """The program named by `$variable`, else `name` on PATH."""
    given = os.environ.get(variable)
    if given:
        return given if Path(given).is_file() else shutil.which(given)
    return shutil.which(name)


FLUENT_BIT = program("FLUENT_BIT", "fluent-bit")
FLUENTD = program("FLUENTD", "fluentd")
needs_fluent_bit = pytest.mark.skipif(
    FLUENT_BIT is None, reason="no Fluent Bit: set FLUENT_BIT or put fluent-bit on PATH")
needs_fluentd = pytest.mark.skipif(
    FLUENTD is None, reason="no Fluentd: set FLUENTD or put fluentd on PATH")

# The custom access format of the corpus, as `--log-format` gets it.
CUSTOM_FORMAT = ('$remote_addr [$time_local] "$request" $status rt=$request_time '
                 'ua="$upstream_addr" us="$upstream_status"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env(**extra: str) -> dict[str, str]:
    """The environment for the programs: this Python's scripts first on PATH, UTC."""
    scripts = sysconfig.get_path("scripts")
    path = os.pathsep.join([scripts, os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, "TZ": "UTC", **extra}


def wait_until(check: Callable[[], object], what: str, timeout: float = 30.0,
               step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(step)


def wait_for_count(count: Callable[[], int], target: int, what: str, stall: float = 30.0,
                   stop: Callable[[], bool] = lambda: False, step: float = 0.25) -> None:
    """Wait until `count()` reaches `target`, giving up only once it has not grown for `stall`
    seconds (or `stop()` holds): a loaded machine delivers later, not never."""
    last, since = -1, time.monotonic()
    while True:
        now = count()
        if now >= target or stop():
            return
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > stall:
            raise AssertionError(f"{what}: stuck at {now} for {stall:g}s")
        time.sleep(step)


# -- configs -----------------------------------------------------------------------------------


def render(source: Path, folder: Path, replace: dict[str, str],
           siblings: Iterable[str] = ()) -> Path:
    """Copy a shipped config (and the files it includes) into `folder`, replacing strings.

    Every key of `replace` must occur in the config: a test that believes it redirected a
    path the config no longer has would test nothing.
    """
    folder.mkdir(parents=True, exist_ok=True)
    text = source.read_text()
    for old, new in replace.items():
        assert old in text, f"{old!r} is not in {source.name}"
        text = text.replace(old, new)
    target = folder / source.name
    target.write_text(text)
    for name in siblings:
        shutil.copy(source.parent / name, folder / name)
    return target


# -- processes ---------------------------------------------------------------------------------


class Proc:
    """A child process whose stdout and stderr are collected by threads."""

    def __init__(self, argv: list[str], *, cwd: Path | None = None,
                 environ: dict[str, str] | None = None, name: str = "") -> None:
        self.name = name or Path(argv[0]).name
        self.argv = argv
        self.proc = subprocess.Popen(argv, cwd=cwd, env=environ or env(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stdout, self.out),
                                      (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, into: list[str]) -> None:
        for raw in stream:
            into.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the process and wait for it (killing it after `timeout`)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        for reader in self._readers:
            reader.join(5)
        return int(self.proc.returncode)

    def kill(self) -> None:
        """kill -9, as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait(10)

    def text(self) -> str:
        return "\n".join([*self.err, *self.out])

    def tail(self, lines: int = 40) -> str:
        return f"--- {self.name} ---\n" + "\n".join((self.err + self.out)[-lines:])


def peak_rss_kib(pid: int) -> int:
    """VmHWM of a running process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def loop_args(to_serve: int, back: int) -> tuple[str, ...]:
    """`serve` as the forward loops' comments start it: listen, forward back, tag prefix."""
    return ("--listen", f"127.0.0.1:{to_serve}", "--to", f"forward://127.0.0.1:{back}",
            "--tag-prefix", "enriched")


def serve(*args: str, environ: dict[str, str] | None = None) -> Proc:
    """`ngx-enrich serve ARGS`; returns once it listens."""
    proc = Proc([sys.executable, "-m", "ngx_enrich", "serve", *args], cwd=ROOT,
                environ=environ, name="ngx-enrich serve")
    wait_until(lambda: "listening on" in proc.text() or not proc.alive(), "serve to listen")
    assert proc.alive(), proc.tail()
    return proc


def opened_by_any(path: Path) -> bool:
    """Whether some process has `path` open (a tailer that is following it)."""
    target = str(path.resolve())
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        with contextlib.suppress(OSError):
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == target:
                        return True
    return False


# -- TLS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path
    key: Path


def make_tls(folder: Path) -> Tls:
    """A CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ngx-enrich test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    tls = Tls(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    tls.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tls.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return tls


# -- the corpus --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One log record to append and what it must arrive as."""

    stream: str  # "error" or "access": which file it goes to
    text: str  # the record (a multiline record has \n inside)
    category: str | None
    seconds: int  # its own time, epoch seconds (TZ=UTC for error lines)


def _golden(name: str, stream: str) -> list[Line]:
    lines = (FIXTURES / f"{name}.log").read_text().splitlines()
    golden = [orjson.loads(g) for g in (FIXTURES / f"{name}.en.jsonl").read_text().splitlines()]
    assert len(lines) == len(golden)
    return [Line(stream, text, g["ngx"].get("category"), _seconds(g["ngx"]["time"]))
            for text, g in zip(lines, golden, strict=True)]


def _seconds(iso: str) -> int:
    return int(dt.datetime.fromisoformat(iso).timestamp())


FASTCGI = (
    '2026/11/29 18:30:01 [error] 5373#5373: *31 FastCGI sent in stderr: "PHP message: PHP '
    "Fatal error:  Uncaught Error: Call to undefined function db_connect() in "
    "/var/www/html/index.php:3\n"
    "Stack trace:\n"
    "#0 {main}\n"
    '  thrown in /var/www/html/index.php on line 3" while reading response header from '
    'upstream, client: 127.0.0.1, server: localhost, request: "GET /index.php HTTP/1.1", '
    'upstream: "fastcgi://unix:/run/php/php8.2-fpm.sock:", host: "localhost"'
)
CUSTOM_ACCESS = ('203.0.113.9 [29/Nov/2026:18:33:21 +0000] "GET /api/orders HTTP/1.1" 502 '
                 'rt=0.003 ua="10.0.0.9:8080, 10.0.0.10:8080" us="502, 502"')


def corpus(*, custom_format: bool = True) -> list[Line]:
    """The records every pipeline test appends, in order."""
    lines = _golden("nginx-1.22--error", "error") + _golden("nginx-1.22--access", "access")
    lines.append(Line("error", FASTCGI, "fastcgi_stderr", _seconds("2026-11-29T18:30:01Z")))
    if custom_format:
        lines.append(Line("access", CUSTOM_ACCESS, "bad_gateway",
                          _seconds("2026-11-29T18:33:21Z")))
    return lines


def append(logs: Path, lines: Iterable[Line]) -> None:
    """Append records to logs/error.log and logs/access.log as Nginx writes them."""
    for stream in ("error", "access"):
        text = "".join(line.text + "\n" for line in lines if line.stream == stream)
        with open(logs / f"{stream}.log", "a") as out:
            out.write(text)


def prepare_logs(logs: Path) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    for stream in ("error", "access"):
        (logs / f"{stream}.log").touch()


def numbered(count: int, start: int = 0) -> Iterator[Line]:
    """Error lines carrying a unique number in the request path (for at-least-once tests)."""
    for n in range(start, start + count):
        yield Line("error", (
            f"2026/11/29 18:40:{n % 60:02d} [error] 77#77: *{n} connect() failed (111: "
            "Connection refused) while connecting to upstream, client: 10.1.2.3, server: "
            f'shop, request: "GET /n/{n} HTTP/1.1", upstream: "http://10.0.0.7:8080/n/{n}", '
            'host: "shop"'), "upstream_refused", 0)


def numbered_access(count: int, start: int = 0) -> Iterator[Line]:
    """Access lines (combined format, 502) carrying a unique number in the request path."""
    for n in range(start, start + count):
        yield Line("access", (
            f'10.1.2.3 - - [29/Nov/2026:18:40:{n % 60:02d} +0000] "GET /n/{n} HTTP/1.1" 502 '
            '157 "-" "curl/8.5.0"'), "bad_gateway", _seconds(f"2026-11-29T18:40:{n % 60:02d}Z"))


NUMBER = re.compile(r"GET /n/(\d+) ")


def numbers(texts: Iterable[str]) -> list[int]:
    return [int(m.group(1)) for t in texts if (m := NUMBER.search(t))]


# -- what arrived ------------------------------------------------------------------------------


@dataclass
class Arrival:
    """One enriched event as the last program in the pipeline saw it."""

    tag: str
    seconds: float
    record: dict[str, Any]


def raw_text(record: dict[str, Any]) -> str | None:
    """The raw Nginx record inside an enriched record (any schema)."""
    event = record.get("event")
    if isinstance(event, dict) and isinstance(event.get("original"), str):
        return str(event["original"])  # ecs: `message` is the parsed message there
    for key in ("log", "message"):
        value = record.get(key)
        if isinstance(value, str):
            return value
    return None


def category_of(record: dict[str, Any]) -> str | None:
    ngx = record.get("ngx")
    if isinstance(ngx, dict) and "category" in ngx:
        return ngx["category"]
    if "ngx_category" in record:
        return record["ngx_category"]
    error = record.get("error")
    return error.get("type") if isinstance(error, dict) else None


def kind_of(record: dict[str, Any]) -> str | None:
    for key in ("ngx", "event"):
        value = record.get(key)
        if isinstance(value, dict) and "kind" in value:
            return str(value["kind"])
    return record.get("ngx_kind")


def check_arrivals(expected: list[Line], arrived: list[Arrival], *, tags: dict[str, str],
                   exact_time: bool = True, label: str = "") -> None:
    """Every expected record arrived once, enriched with its category, tag and own time."""
    pending: dict[str, list[Arrival]] = {}
    for item in arrived:
        text = raw_text(item.record)
        assert text is not None, f"no raw line in {item.record}"
        pending.setdefault(text.rstrip("\n"), []).append(item)
    problems = []
    for line in expected:
        got = pending.get(line.text)
        if not got:
            problems.append(f"missing: {line.text[:100]}")
            continue
        item = got.pop(0)
        if category_of(item.record) != line.category:
            problems.append(f"category {category_of(item.record)} != {line.category}: "
                            f"{line.text[:80]}")
        if item.tag != tags[line.stream]:
            problems.append(f"tag {item.tag} != {tags[line.stream]}: {line.text[:80]}")
        if exact_time and int(item.seconds) != line.seconds:
            problems.append(f"time {item.seconds} != {line.seconds}: {line.text[:80]}")
    extra = [t for t, items in pending.items() for _ in items]
    assert not problems, "\n".join(problems[:20])
    assert not extra, f"{len(extra)} unexpected records, e.g. {extra[:3]}"
    if label:
        enriched = sum(1 for a in arrived if kind_of(a.record) in ("error", "access"))
        print(f"\n{label}: {len(expected)} records in, {len(arrived)} arrived, "
              f"{enriched} enriched")
