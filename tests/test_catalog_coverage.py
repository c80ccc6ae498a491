"""How much of what Nginx can write does the catalogue explain?

Two measurements, both read from ../shared (skipped cleanly in a fresh clone without it):

1. Every non-debug log call of the Nginx source (`reference/nginx-error-messages.tsv`) that a
   Linux build can produce is rendered into a realistic error-log line and classified. At
   least 90% of the run-time (non-emerg) formats must get a specific rule, and every
   `[emerg]` format must land in the config area with its file/line (and its directive when
   the format names one) extracted. The per-area table is printed (`pytest -s`).
2. Every error line of the other tools' fixtures and of examples/logs/error.log: at least
   98% must get a specific rule.

How a format becomes a line:
- Rows are dropped when a Linux build never compiles them (a platform macro in the build
  condition that is not negated, or a kqueue/devpoll/eventport/win32/... source file), when
  they are debug-only, or when they only pass another message through (`%*s`, `%s%s`).
- Level: a run-time `|` set takes `error` when it can (the level of a listed errno on a
  backend socket), else its most serious member; `(caller)` url errors are `[emerg]`.
- `%s`/`%V` get a value that fits their neighbours and the source's argument expression
  (a directive name before `" directive`, a path after `() "`, an address after `to `...);
  numbers become small integers.
- `has_errno` rows get ` (N: text)` with a plausible errno for the failing call (111 for
  connect(), 2 for open(), 104 for recv(), 28 for pwrite()...).
- Tails: the HTTP context for http run-time messages, the stream/mail one for theirs,
  ` in /etc/nginx/nginx.conf:12` for messages logged while parsing the configuration
  (ngx_conf_log_error, directive handlers, url errors). Startup `[emerg]` lines written by
  ngx_log_error (bind(), getpwnam()...) carry no file:line in real logs and get none here.
  `stderr` rows use the `nginx: ` form.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from ngx_enrich.pipeline import Enricher

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
PEER_FIXTURES = ROOT.parent / "shared" / "peer-fixtures"
MESSAGES = REFERENCE / "nginx-error-messages.tsv"

PREFIX = "2026/04/08 21:07:15 [{level}] 2211#2211: *42 "
HTTP_TAIL = (', client: 192.0.2.1, server: example.com, request: "GET / HTTP/1.1", '
             'host: "example.com"')
STREAM_TAIL = ", client: 192.0.2.1, server: 0.0.0.0:5432"
MAIL_TAIL = ", client: 192.0.2.1, server: 0.0.0.0:25"
CONF_TAIL = " in /etc/nginx/nginx.conf:12"

# Build conditions and source files that a Linux build never compiles.
NON_LINUX = ("KQUEUE", "DEVPOLL", "EVENTPORT", "WIN32", "FREEBSD", "DARWIN", "SOLARIS",
             "IOCP", "ACCEPTEX", "SETFIB", "SO_ACCEPTFILTER", "SO_REUSEPORT_LB",
             "SENDFILEV", "BORINGSSL")
NON_LINUX_FILES = ("kqueue", "devpoll", "eventport", "iocp", "win32", "freebsd", "darwin",
                   "solaris", "acceptex", "connectex")
LEVEL_ORDER = ("emerg", "alert", "crit", "error", "warn", "notice", "info")
CONF_CALLS = ("ngx_conf_log_error", "conf_handler_return", "ngx_url_t.err")

# A plausible errno per failing call (Linux numbers, glibc texts).
ERRNO_TEXT = {
    1: "Operation not permitted", 2: "No such file or directory", 3: "No such process",
    4: "Interrupted system call", 5: "Input/output error", 9: "Bad file descriptor",
    10: "No child processes", 11: "Resource temporarily unavailable",
    12: "Cannot allocate memory", 13: "Permission denied", 18: "Invalid cross-device link",
    22: "Invalid argument", 24: "Too many open files", 28: "No space left on device",
    32: "Broken pipe", 38: "Function not implemented", 98: "Address already in use",
    104: "Connection reset by peer", 107: "Transport endpoint is not connected",
    110: "Connection timed out", 111: "Connection refused",
}
ERRNO_BY_CALL = [
    (("connect",), 111),
    (("recv", "readv", "recvmsg", "recvfrom", "SSL_read", "read_early"), 104),
    (("send", "writev", "sendfile", "sendmsg", "sendto", "SSL_write", "SSL_shutdown",
      "SSL_do_handshake", "udp"), 32),
    (("open", "stat", "lstat", "unlink", "opendir", "realpath", "execve", "chdir",
      "getpwnam", "getgrnam", "dlopen", "readdir", "rmdir", "delete", "glob"), 2),
    (("fstat", "pread", "read", "io_getevents", "closedir", "aio", "fadvise",
      "directio", "O_DIRECT", "fsync"), 5),
    (("rename", "link"), 18),
    (("mkdir", "chown", "chmod", "setuid", "setgid", "initgroups", "setrlimit", "prctl",
      "chroot", "utimes", "futimes"), 1),
    (("pwrite", "write", "ftruncate", "fallocate", "copy"), 28),
    (("accept", "socket", "eventfd", "socketpair", "epoll_create", "dup"), 24),
    (("bind", "listen"), 98),
    (("fork", "pthread", "io_setup", "io_submit", "timer"), 11),
    (("mmap", "shmget", "shmat", "malloc", "posix_memalign", "memalign", "alloc"), 12),
    (("kill", "sched_"), 3),
    (("waitpid",), 10),
    (("shutdown",), 107),
    (("close", "epoll_ctl", "fcntl", "ioctl"), 9),
    (("epoll_wait", "select", "poll", "sigsuspend"), 4),
]
# Nginx's own printf: width/precision/`*`, modifiers u m x X, then one conversion.
_SPEC = re.compile(r"%0?\d*(?:\.\d+)?\*?[umxX]*[VvsOTMzidlDLAfPpcZNr]")


@dataclass(frozen=True)
class Case:
    level: str
    module: str
    component: str
    call: str
    fmt: str
    line: str


def _linux(row: dict[str, str]) -> bool:
    """False for calls that only non-Linux builds compile."""
    cond = row["build_condition"]
    for term in re.split(r"&&|\|\|", cond):
        term = term.strip()
        if any(p in term for p in NON_LINUX) and not term.startswith("!"):
            return False
    stem = Path(row["file"]).stem
    return not any(p in stem for p in NON_LINUX_FILES)


def _wrapper(fmt: str) -> bool:
    """A format that only passes another message through (`%*s`, `%s%s`, `%*s in %s:%ui`)."""
    text = _SPEC.sub("", fmt).replace("in command line", "").replace(" in :", "")
    return len(re.sub(r"[^A-Za-z]", "", text)) < 3


def _level(row: dict[str, str]) -> str:
    """A concrete level: `error` when a run-time set allows it, else the most serious."""
    levels = [lv for lv in row["level"].split("|") if lv in LEVEL_ORDER]
    if not levels:
        return "emerg" if row["call"] in CONF_CALLS else ""
    if "error" in levels:
        return "error"
    return min(levels, key=LEVEL_ORDER.index)


def _errno_for(message: str) -> int:
    """A plausible errno for a rendered message, judged by its failing call."""
    if "timed out" in message:
        return 110
    if "is not found" in message:
        return 2
    if "is forbidden" in message:
        return 13
    m = re.match(r"(?:[a-z ]+ )?([A-Za-z_][\w]*)\(", message)
    call = m.group(1) if m else message
    for names, number in ERRNO_BY_CALL:
        if any(call.startswith(n) for n in names):
            return number
    return 22


# Values for `%s`/`%V` by the argument expression the source passes.
ARG_VALUES = (
    ("failed", "open()"), ("signame", "SIGHUP"), ("addr", "10.0.0.5:8080"),
    ("peer", "10.0.0.5:8080"), ("server", "10.0.0.5:8080"), ("file", "/var/www/html/a.mp4"),
    ("path", "/var/cache/nginx/proxy_temp/1/00/0000000001"), ("dir", "/var/www/html/"),
    ("uri", "/index.html"), ("url", "http://backend:8080/"), ("host", "backend.example.com"),
    ("zone", "one"), ("method", "FOO"), ("key", "X-Custom"), ("header", "X-Custom"),
    ("value", "abc"), ("user", "admin"), ("cert", "/etc/nginx/ssl/site.pem"),
)


# What `shpool->log_ctx` appends to slab messages, by component.
ZONE_SUFFIXES = (
    ("limit_req", ' in limit_req zone "perip"'), ("limit_conn", ' in limit_conn_zone "addr"'),
    ("stapling", ' in OCSP cache "ocsp"'), ("openssl", ' in SSL session shared cache "SSL"'),
    ("sticky", ' in sticky session zone "sticky"'), ("file_cache", ' in cache keys zone "one"'),
    ("upstream", ' in upstream zone "backend"'),
)


def _value(fmt: str, start: int, end: int, spec: str, arg: str, component: str) -> str:
    """A plausible value for the `%` spec at fmt[start:end], judged by its neighbours."""
    before, after = fmt[:start], fmt[end:]
    if after.startswith(": %s)"):  # a format that prints its own errno: malloc() failing
        return "12"
    if before.endswith("%d: "):
        return ERRNO_TEXT[12]
    if spec[-1] in "sVv":
        if after.startswith('" directive') or before.endswith('directive "'):
            return "proxy_buffer_size"
        if after.startswith(":%ui") or after.startswith(":%d"):
            return "/etc/nginx/nginx.conf"
        if before.endswith(('variable "', '"$')) or after.startswith('" variable'):
            return "backend_host"
        if re.search(r'zone "$|cache "$', before):
            return "one"
        if before.endswith('upstream "'):
            return "backend:8080"
        if re.search(r'\) "$', before):
            return "/var/www/html/index.html"
        if "?" in arg and '"' in arg:  # `cond ? "udp " : ""`: the else branch
            return arg.rsplit(":", 1)[-1].strip().strip('"')
        if arg.endswith("err"):  # an ngx_url_t error string
            return "invalid port"
        if "log_ctx" in arg:
            return next((v for k, v in ZONE_SUFFIXES if k in component), ' in zone "one"')
        if arg == "name" and "process" in component:
            return "worker process"
        for needle, value in ARG_VALUES:
            if needle in arg.lower():
                return value
        if re.search(r"(?:to|on|from|for|address|peer|listen) $", before):
            return "10.0.0.5:8080"
        return "example"
    if spec.endswith("p"):
        return "00007F3A2C001000"
    if spec.endswith("c"):
        return "x"
    if spec[-1] in "xX" or spec[-2:] in ("xd", "Xd", "XD", "xD", "xL", "xi", "Xi"):
        return "1f"
    if spec.endswith("P"):
        return "2212"
    if spec.endswith("f") or spec.endswith("fM"):
        return "1.000"
    return "5"


def render(row: dict[str, str]) -> Case | None:
    """The row as a full error-log line, or None when Linux never writes it as text."""
    fmt = row["format"]
    if not _linux(row) or not row["regex"] or _wrapper(fmt) or row["level"] == "debug":
        return None
    if row["call"] == "ngx_url_t.err":
        fmt = fmt + ' in upstream "%V"'
    level = _level(row)
    args = [a.strip() for a in row["args"].split(" | ")]
    parts, pos = [], 0
    for m in _SPEC.finditer(fmt):
        if "*" in m.group() and args:
            args.pop(0)  # the length of a `%*s`
        arg = args.pop(0) if args else ""
        parts.append(fmt[pos:m.start()])
        parts.append(_value(fmt, m.start(), m.end(), m.group(), arg, row["component"]))
        pos = m.end()
    parts.append(fmt[pos:])
    message = "".join(parts)
    if row["has_errno"] == "yes" and not re.search(r"\(%d: %s\)$", fmt):
        number = _errno_for(message)
        message += f" ({number}: {ERRNO_TEXT[number]})"
    if row["level"] == "stderr":
        return Case("stderr", row["module"], row["component"], row["call"], row["format"],
                    "nginx: " + message)
    if row["call"] in CONF_CALLS:
        if "%s:%ui" not in fmt:
            message += CONF_TAIL
    elif level != "emerg":
        message += {"http": HTTP_TAIL, "stream": STREAM_TAIL, "mail": MAIL_TAIL}.get(
            row["module"], "")
    prefix = PREFIX.format(level=level)
    if fmt.startswith("*%uA "):  # the stream/mail session line carries its own `*N`
        prefix = prefix.replace("*42 ", "")
    line = prefix + message
    return Case(level, row["module"], row["component"], row["call"], row["format"], line)


def _cases() -> list[Case]:
    if not MESSAGES.exists():
        pytest.skip(f"{MESSAGES} not available (no ../shared beside this clone)")
    seen: set[tuple[str, str]] = set()
    cases = []
    with MESSAGES.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
            case = render(row)
            if case is None or (case.level, case.fmt) in seen:
                continue
            seen.add((case.level, case.fmt))
            cases.append(case)
    return cases


# Which part of Nginx wrote a message, judged from its source component.
SOURCE_AREAS = (
    ("quic", "http2"), ("proxy_v2", "upstream"), ("grpc", "upstream"), ("_v2", "http2"),
    ("_v3", "http2"), ("upstream", "upstream"), ("proxy", "upstream"),
    ("fastcgi", "upstream"), ("uwsgi", "upstream"), ("scgi", "upstream"),
    ("memcached", "upstream"), ("tunnel", "upstream"), ("event_connect", "upstream"),
    ("stream_pass", "upstream"), ("slice", "upstream"), ("mail", "upstream"),
    ("openssl", "tls"), ("ssl", "tls"), ("stapling", "tls"), ("resolver", "dns"),
    ("limit_", "limits"), ("file_cache", "cache"), ("access", "access"), ("auth", "access"),
    ("referer", "access"), ("secure_link", "access"), ("realip", "access"),
    ("ssi", "app"), ("xslt", "app"), ("image_filter", "app"), ("perl", "app"),
    ("static", "filesystem"), ("index", "filesystem"), ("dav", "filesystem"),
    ("files", "filesystem"), ("ngx_file", "filesystem"), ("mp4", "filesystem"),
    ("flv", "filesystem"), ("aio", "filesystem"), ("process", "lifecycle"),
    ("cycle", "lifecycle"), ("daemon", "lifecycle"), ("channel", "lifecycle"),
    ("nginx", "lifecycle"), ("_init", "lifecycle"), ("user", "lifecycle"),
    ("setaffinity", "lifecycle"), ("log", "lifecycle"), ("conf_file", "config"),
    ("script", "config"), ("variables", "config"), ("rewrite", "config"), ("map", "config"),
    ("geo", "config"), ("regex", "config"), ("hash", "config"), ("charset", "config"),
    ("request", "client"), ("parse", "client"), ("stream_core", "client"),
    ("stream_handler", "client"), ("epoll", "server"), ("poll", "server"),
    ("select", "server"), ("event", "server"), ("connection", "resources"),
    ("shm", "resources"), ("slab", "resources"), ("alloc", "resources"),
    ("degradation", "resources"), ("thread", "resources"), ("filter", "server"),
    ("chain", "server"), ("send", "server"), ("recv", "server"), ("http", "server"),
)


def source_area(case: Case) -> str:
    for needle, area in SOURCE_AREAS:
        if needle in case.component:
            return area
    return "other"


def _table(results: list[tuple[Case, dict]]) -> str:
    total: Counter[str] = Counter()
    specific: Counter[str] = Counter()
    for case, ngx in results:
        area = "emerg (startup)" if case.level == "emerg" else source_area(case)
        total[area] += 1
        specific[area] += ngx.get("rule", "fallback") != "fallback"
    rows = [f"{'source area':<16} {'formats':>7} {'specific':>8} {'coverage':>8}"]
    for area in sorted(total, key=lambda a: (-total[a], a)):
        rows.append(f"{area:<16} {total[area]:>7} {specific[area]:>8} "
                    f"{100 * specific[area] / total[area]:>7.1f}%")
    n, s = sum(total.values()), sum(specific.values())
    rows.append(f"{'all':<16} {n:>7} {s:>8} {100 * s / n:>7.1f}%")
    return "\n".join(rows)


@pytest.fixture(scope="module")
def classified() -> list[tuple[Case, dict]]:
    enricher = Enricher()
    return [(case, enricher.enrich_line(case.line)["ngx"]) for case in _cases()]


def test_source_formats_coverage(classified: list[tuple[Case, dict]]) -> None:
    print("\nCatalogue coverage of the Nginx source formats (Linux build)")
    print(_table(classified))
    runtime = [(c, ngx) for c, ngx in classified if c.level != "emerg"]
    missed = [c for c, ngx in runtime if ngx.get("rule", "fallback") == "fallback"]
    share = 1 - len(missed) / len(runtime)
    print(f"run-time formats: {len(runtime)}, specific: {share:.1%}")
    assert share >= 0.90, "\n".join(c.line for c in missed[:50])


def test_emerg_formats_are_startup_errors(classified: list[tuple[Case, dict]]) -> None:
    """Every `[emerg]` format is a startup error with a specific rule; its area follows the
    subject (a certificate is tls, a name is dns), so only `other` would be wrong."""
    problems = []
    areas: Counter[str] = Counter()
    for case, ngx in classified:
        if case.level != "emerg":
            continue
        areas[ngx.get("area", "")] += 1
        if ngx.get("kind") != "error" or ngx.get("stage") != "startup" \
                or ngx.get("area") in (None, "other") or ngx.get("rule") == "fallback":
            problems.append(f"area {ngx.get('area')}, stage {ngx.get('stage')}: {case.line}")
            continue
        if CONF_TAIL in case.line and (ngx.get("conf_file"), ngx.get("conf_line")) != (
                "/etc/nginx/nginx.conf", 12):
            problems.append(f"no file:line: {case.line}")
        if re.search(r'"%[Vs]" directive|directive "%[Vs]"', case.fmt) \
                and not ngx.get("directive"):
            problems.append(f"no directive: {case.line}")
    print(f"\n[emerg] formats by area: {dict(areas.most_common())}")
    assert not problems, "\n".join(problems[:50])
    assert areas["config"] > areas["tls"] > 0 and areas["dns"] and areas["filesystem"]


def _error_records(path: Path) -> list[str]:
    """Error-log records of a .log file; a line without a timestamp continues the last."""
    records: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if re.match(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[", line) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line
    return [r for r in records if re.match(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[", r)]


def peer_error_lines() -> list[str]:
    """Every error line of the peer fixtures and of our own example log."""
    if not PEER_FIXTURES.exists():
        pytest.skip(f"{PEER_FIXTURES} not available (no ../shared beside this clone)")
    lines = _error_records(PEER_FIXTURES / "filebeat-nginx-error.log")
    lines += _error_records(ROOT / "examples" / "logs" / "error.log")
    for event in json.loads((PEER_FIXTURES / "elastic-nginx-error-expected.json")
                            .read_text())["expected"]:
        lines.append(event["event"]["original"])
    for name in ("vector-parse_nginx_log-cases.jsonl", "amplify-error-category-cases.jsonl"):
        for raw in (PEER_FIXTURES / name).read_text().splitlines():
            case = json.loads(raw)
            if case.get("format") == "error":
                lines.append(case["line"])
    datadog = (PEER_FIXTURES / "datadog-nginx_tests.yaml").read_text()
    for m in re.finditer(r'^\s*sample: "(.*)"\s*$', datadog, re.M):
        sample = json.loads(f'"{m.group(1)}"')
        if re.match(r"\d{4}/\d\d/\d\d ", sample):
            lines.append(sample)
    return lines


def test_peer_fixture_coverage() -> None:
    lines = peer_error_lines()
    enricher = Enricher()
    results = [enricher.enrich_line(line)["ngx"] for line in lines]
    missed = [line for line, ngx in zip(lines, results, strict=True)
              if ngx.get("kind") != "error" or ngx.get("rule", "fallback") == "fallback"]
    share = 1 - len(missed) / len(lines)
    print(f"\npeer-fixture error lines: {len(lines)}, specific: {share:.1%}")
    assert len(lines) >= 20
    assert share >= 0.98, "\n".join(missed)
