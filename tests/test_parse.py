"""Parsers: structure of error and access lines, and properties over arbitrary input."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngx_enrich.parse import errorlog
from ngx_enrich.parse.accesslog import parse_access_line
from ngx_enrich.parse.errorlog import parse_error_line, ssl_reason

PREFIX = "2026/04/08 21:07:15 [error] 2211#2211: *1833 "


def test_error_prefix_and_tail_with_commas_and_quotes_in_request() -> None:
    line = (PREFIX + 'connect() failed (111: Connection refused) while connecting to upstream, '
            'client: 203.0.113.9, server: example.com, request: "GET /a?x=1, client: 9 HTTP/1.1", '
            'upstream: "http://10.0.0.1:8080/a", host: "example.com", '
            'referrer: "https://x/?q=\\"a\\", b"')
    f = parse_error_line(line)
    assert f is not None
    assert (f["level"], f["pid"], f["tid"], f["cid"]) == ("error", 2211, 2211, 1833)
    assert f["request"] == "GET /a?x=1, client: 9 HTTP/1.1"
    assert f["referrer"] == 'https://x/?q=\\"a\\", b'
    assert (f["client"], f["server"], f["host"]) == ("203.0.113.9", "example.com", "example.com")
    assert f["upstream"] == "http://10.0.0.1:8080/a"
    assert (f["syscall"], f["errno"], f["action"]) == ("connect()", 111, "connecting to upstream")
    assert f["message"].endswith("while connecting to upstream")


def test_errno_after_an_action_inside_the_format() -> None:
    f = parse_error_line('2026/04/08 21:07:19 [alert] 2210#2210: fork() failed while spawning '
                         '"worker process" (12: Cannot allocate memory)')
    assert f is not None and "cid" not in f
    assert (f["syscall"], f["errno"]) == ("fork()", 12)


def test_ssl_part_and_reason_in_both_openssl_forms() -> None:
    f = parse_error_line(PREFIX + "SSL_do_handshake() failed (SSL: error:0A00010B:SSL routines::"
                         "wrong version number) while SSL handshaking, client: 1.2.3.4, "
                         "server: 0.0.0.0:443")
    assert f is not None and f["ssl_error"] == "error:0A00010B:SSL routines::wrong version number"
    assert ssl_reason(f["ssl_error"]) == "wrong version number"
    old = "error:14094416:SSL routines:ssl3_read_bytes:sslv3 alert certificate unknown"
    assert ssl_reason(old) == "sslv3 alert certificate unknown"


def test_resolver_code_is_not_an_errno() -> None:
    f = parse_error_line(PREFIX + "backend.internal could not be resolved (3: Host not found), "
                         "client: 1.2.3.4, server: x")
    assert f is not None and "errno" not in f and f["rcode"] == 3


def test_stream_tail_and_stderr_form_and_conf_suffix() -> None:
    f = parse_error_line(PREFIX + 'upstream timed out (110: Connection timed out) while proxying '
                         'connection, client: 192.0.2.1, server: 0.0.0.0:5432, upstream: '
                         '"10.0.0.9:5432", bytes from/to client:512/0, '
                         'bytes from/to upstream:0/512')
    assert f is not None
    assert (f["bytes_from_client"], f["bytes_to_upstream"], f["upstream"]) == (512, 512,
                                                                              "10.0.0.9:5432")
    g = parse_error_line('nginx: [emerg] unknown directive "proxy_passs" in /etc/nginx/a.conf:12')
    assert g is not None and (g["level"], g["conf_file"], g["conf_line"]) == (
        "emerg", "/etc/nginx/a.conf", 12)


def test_access_variants() -> None:
    xff = parse_access_line('"10.5.102.222, 199.96.1.1" 10.2.1.185 - - [22/Jan/2016:13:18:29 '
                            '+0000] "GET /a?q=1 HTTP/1.1" 200 25507 "-" "Amazon CloudFront"')
    assert xff is not None
    assert (xff["remote_addr"], xff["x_forwarded_for"]) == ("10.2.1.185",
                                                            "10.5.102.222, 199.96.1.1")
    assert (xff["method"], xff["path"], xff["protocol"]) == ("GET", "/a?q=1", "HTTP/1.1")
    assert (xff["status"], xff["bytes"], xff["time"]) == (200, 25507,
                                                          "2016-01-22T13:18:29+00:00")
    assert "referer" not in xff
    vhost = parse_access_line('lessons.example.com 192.168.0.1 - - [09/Jun/2020:12:10:39 -0700] '
                              '"GET / HTTP/1.1" 206 76 "http://r/" "UA"')
    assert vhost is not None and (vhost["vhost"], vhost["remote_addr"]) == (
        "lessons.example.com", "192.168.0.1")
    assert vhost["time"].endswith("-07:00")
    empty = parse_access_line('127.0.0.1 - - [12/Apr/2018:09:48:40 +0200] "" 400 0 "-" "-"')
    assert empty is not None and empty["status"] == 400 and "method" not in empty


def test_ingress_upstream_lists() -> None:
    line = ('192.168.64.1 - - [07/Feb/2020:11:49:30 +0000] "GET /p HTTP/1.1" 502 59 "-" "curl" 94 '
            '0.100 [default-web-8080] [] 172.17.0.6:8080, 172.17.0.7:8080 61, - 0.100, 0.004 '
            '502, 200 0be411044cb1cb67580e115413b2da60')
    f = parse_access_line(line)
    assert f is not None
    assert f["upstream_addr"] == ["172.17.0.6:8080", "172.17.0.7:8080"]
    assert f["upstream_status"] == [502, 200]
    assert f["upstream_response_length"] == [61, None]
    assert f["request_id"] == "0be411044cb1cb67580e115413b2da60"


_safe = st.text(st.characters(blacklist_characters='"\n\r\\', blacklist_categories=("Cs",)),
                min_size=1, max_size=40).filter(lambda s: s.strip() == s and s)


@settings(max_examples=200)
@given(text=st.text(max_size=300))
def test_parsers_never_raise(text: str) -> None:
    parse_error_line(text)
    parse_access_line(text)
    parse_error_line(PREFIX + text)


@settings(max_examples=200)
@given(path=_safe.filter(lambda s: " " not in s), ua=_safe, status=st.integers(100, 599),
       size=st.integers(0, 10**9))
def test_access_round_trip(path: str, ua: str, status: int, size: int) -> None:
    line = (f'198.51.100.7 - bob [01/Apr/2021:12:02:31 +0000] "POST /{path} HTTP/2.0" '
            f'{status} {size} "-" "{ua}"')
    f = parse_access_line(line)
    assert f is not None
    assert (f["path"], f["status"], f["bytes"], f["remote_user"]) == (f"/{path}", status, size,
                                                                       "bob")
    assert f.get("user_agent") == (None if ua == "-" else ua)


@settings(max_examples=200)
@given(upstream=_safe.filter(lambda s: '"' not in s), request=_safe)
def test_error_tail_round_trip(upstream: str, request: str) -> None:
    line = (PREFIX + "upstream prematurely closed connection while reading upstream, client: "
            f'1.2.3.4, server: example.com, request: "{request}", upstream: "{upstream}", '
            'host: "example.com"')
    f = parse_error_line(line)
    assert f is not None
    assert (f["request"], f["upstream"], f["host"]) == (request, upstream, "example.com")


def test_tls_alert_number() -> None:
    f = parse_error_line(PREFIX + "SSL_do_handshake() failed (SSL: error:0A000416:SSL routines::"
                         "sslv3 alert certificate unknown:SSL alert number 46) while SSL "
                         "handshaking, client: 1.2.3.4, server: 0.0.0.0:443")
    assert f is not None and f["tls_alert"] == 46 and f["action"] == "SSL handshaking"


_VALUE = st.text(alphabet=st.sampled_from('ab/:.,"- \\?=&%1\t\n\u2003'), max_size=24)
_CLIENT = st.one_of(_VALUE, st.sampled_from(["1.2.3.4", "1.2.3.4 using starttls", "",
                                             "unix:", "a, server: b"]))


@settings(max_examples=1000)
@given(message=_VALUE, client=_CLIENT, server=_VALUE,
       quoted=st.lists(st.tuples(st.sampled_from(["request", "subrequest", "upstream", "host",
                                                   "referrer"]), _VALUE), max_size=5))
def test_the_usual_tail_read_at_once_reads_as_label_by_label(
        message: str, client: str, server: str, quoted: list[tuple[str, str]]) -> None:
    # The quick reading of the common HTTP tail must agree with the general reader,
    # key order included, on every tail it accepts (and leave the rest to it).
    order = ["request", "subrequest", "upstream", "host", "referrer"]
    parts = sorted(dict(quoted).items(), key=lambda kv: order.index(kv[0]))
    rest = (f"{message}, client: {client}, server: {server}"
            + "".join(f', {label}: "{value}"' for label, value in parts))
    fast: dict[str, object] = {}
    slow: dict[str, object] = {}
    start = rest.find(", client: ")
    fast_end = errorlog._split_tail(rest, fast)  # type: ignore[arg-type]
    slow_end = errorlog._tail_by_labels(rest, start, slow)  # type: ignore[arg-type]
    assert (fast_end, list(fast.items())) == (slow_end, list(slow.items()))


def test_the_usual_tail_is_read_at_once() -> None:
    rest = ('connect() failed (111: Connection refused) while connecting to upstream, client: '
            '203.0.113.7, server: api.example.com, request: "GET /a?b=c, d HTTP/1.1", '
            'upstream: "http://10.0.2.29:3000/a", host: "api.example.com", referrer: "-"')
    fields: dict[str, object] = {}
    assert errorlog._http_tail(rest, rest.find(", client: "), fields)  # type: ignore[arg-type]
    assert list(fields) == ["referrer", "host", "upstream", "request", "server", "client"]
    assert fields["request"] == "GET /a?b=c, d HTTP/1.1"
    for other in (rest + ", bytes from/to client:1/2", rest.replace("203.0.113.7", "a b, c"),
                  rest.replace('"GET', '"GET \\"x\\"')):
        assert not errorlog._http_tail(other, other.find(", client: "), {})  # type: ignore[arg-type]


def _prefix_by_regex(line: str) -> tuple[dict[str, object], int] | None:
    m = errorlog.PREFIX_RE.match(line)
    if m is None:
        return None
    stamp, level, pid, tid, cid = m.groups()
    fields: dict[str, object] = {"time": errorlog.stamp_time(stamp), "level": level,
                                 "pid": int(pid), "tid": int(tid)}
    if cid is not None:
        fields["cid"] = int(cid)
    return fields, m.end()


_DIGITS = st.text(alphabet=st.sampled_from("0123456789\u0663x "), min_size=0, max_size=20)


@settings(max_examples=1500)
@given(stamp=st.sampled_from(["2026/04/08 21:07:15", "2026/04/08 21:07:16", "2026/04/08 21:7:15",
                              "2026-04-08 21:07:15", "\u0662026/04/08 21:07:15"]),
       seen=st.booleans(),
       open_=st.sampled_from([" [", "[", "  [", " ("]),
       level=st.sampled_from(["error", "notice", "warn", "emerg", "debug", "fatal", "Error",
                              "", "error] [x"]),
       pid=_DIGITS, sep=st.sampled_from(["#", "# ", ""]), tid=_DIGITS,
       colon=st.sampled_from([": ", ":", " "]), star=st.sampled_from(["*", "", "**"]),
       cid=_DIGITS, space=st.sampled_from([" ", "", ": "]),
       message=st.sampled_from(["", "x", "connect() failed", "1 ", "#2: *3 x"]))
def test_prefix_read_by_position_reads_as_the_regex(
        stamp: str, seen: bool, open_: str, level: str, pid: str, sep: str, tid: str,
        colon: str, star: str, cid: str, space: str, message: str) -> None:
    # The positional reading must give what PREFIX_RE gives, key order included, or leave the
    # line to it; whether the second is known yet must not change the answer.
    line = f"{stamp}{open_}{level}] {pid}{sep}{tid}{colon}{star}{cid}{space}{message}"
    errorlog._TIMES.clear()
    if seen and errorlog.PREFIX_RE.match(stamp + " [error] 1#1: "):
        errorlog.stamp_time(stamp)
    fast = errorlog._read_prefix(line)
    want = _prefix_by_regex(line)
    if fast is not None:
        assert want is not None and (list(fast[0].items()), fast[1]) == (
            list(want[0].items()), want[1])
    got = errorlog.read_line(line)
    if want is None:
        assert got is None
    else:
        assert got is not None and list(got[0].items())[:len(want[0])] == list(want[0].items())


def test_the_usual_prefix_is_read_by_position() -> None:
    line = "2026/04/08 21:07:15 [notice] 2211#2212: *1833 signal process started"
    errorlog.stamp_time(line[:19])
    assert errorlog._read_prefix(line) == (
        {"time": errorlog.stamp_time(line[:19]), "level": "notice", "pid": 2211, "tid": 2212,
         "cid": 1833}, 46)


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
                                  "Asia/Kathmandu", "UTC"])
def test_error_times_found_per_hour_are_the_per_second_ones(
        zone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Seconds around the changes of offset (Lord Howe's is half an hour, at 02:00), in the
    # hours clocks skip, and stamps no clock shows: as read second by second.
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        errorlog._TIMES.clear()
        errorlog._OFFSETS.clear()
        days = ["2026/03/08", "2026/03/29", "2026/04/05", "2026/10/04", "2026/10/25",
                "2026/11/01", "2026/07/01", "2026/13/45", "1890/01/01"]
        for day in days:
            for hour in ("00", "01", "02", "03", "24"):
                for rest in ("00:00", "29:59", "30:00", "59:59", "60:00", "07:60"):
                    stamp = f"{day} {hour}:{rest}"
                    naive = f"{stamp[:4]}-{stamp[5:7]}-{stamp[8:10]}T{stamp[11:]}"
                    assert errorlog.stamp_time(stamp) == errorlog.local_time(naive), stamp
    finally:
        monkeypatch.setenv("TZ", "UTC")
        time.tzset()
        errorlog._TIMES.clear()
        errorlog._OFFSETS.clear()
