"""Fluentd exec_filter framing: records in as exec_filter writes them, out as it reads them.

exec_filter's msgpack formatter writes maps back to back with no delimiter and its parser
streams maps from our stdout; its json formatter writes one JSON document per line and its
parser is a streaming JSON parser (documents, newlines not required).
"""

from __future__ import annotations

import io
import json
import select
import subprocess
import sys
from pathlib import Path

import msgpack

ROOT = Path(__file__).resolve().parents[1]
ERR = ('2026/04/08 21:07:15 [error] 2211#2211: *1 connect() failed (111: Connection refused) '
       'while connecting to upstream, client: 1.2.3.4, server: x, request: "GET /ü HTTP/1.1", '
       'upstream: "http://127.0.0.1:8080/", host: "x"')
PHP = ('2026/04/08 21:07:16 [error] 2211#2211: *9 FastCGI sent in stderr: "PHP message: PHP '
       'Fatal error:  boom\nStack trace:\n#0 {main}" while reading response header from upstream, '
       'client: 1.2.3.4, server: x, request: "GET /a.php HTTP/1.1", upstream: '
       '"fastcgi://unix:/run/php.sock:", host: "x"')
# As <inject> adds them: tag and a string time with nanoseconds.
RECORDS = [
    {"message": ERR, "tag": "nginx.error", "time": "2026-04-08T21:07:15.123456789+0000"},
    {"message": PHP, "tag": "nginx.error", "time": "2026-04-08T21:07:16.000000001+0000"},
    {"message": "not nginx at all", "tag": "nginx.error", "time": "2026-04-08T21:07:17.5+0000"},
]


def _run(args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "ngx_enrich", *args], input=data,
                          capture_output=True, cwd=ROOT, timeout=60, check=True)


def _check(out: list[dict]) -> None:
    assert len(out) == len(RECORDS)
    for sent, got in zip(RECORDS, out, strict=True):
        assert (got["tag"], got["time"], got["message"]) == (sent["tag"], sent["time"],
                                                             sent["message"])
    kinds = [(o["ngx"]["kind"], o["ngx"].get("category")) for o in out]
    assert kinds == [("error", "upstream_refused"), ("error", "fastcgi_stderr"),
                     ("other", None)]


def test_msgpack_both_ways() -> None:
    data = b"".join(msgpack.packb(r) for r in RECORDS)
    done = _run(["--input", "msgpack", "--output", "msgpack"], data)
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(done.stdout)
    _check(list(unpacker))
    assert done.stderr == b""


def test_json_both_ways_read_as_a_stream_of_documents() -> None:
    data = b"".join(json.dumps(r).encode() + b"\n" for r in RECORDS)
    done = _run(["--input", "json", "--output", "json"], data)
    text, pos, out = done.stdout.decode(), 0, []
    decoder = json.JSONDecoder()
    while pos < len(text):
        obj, end = decoder.raw_decode(text, pos)
        out.append(obj)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    _check(out)


def test_auto_input_tells_msgpack_from_text() -> None:
    data = b"".join(msgpack.packb(r) for r in RECORDS)
    done = _run(["--input", "auto"], data)
    _check([json.loads(line) for line in done.stdout.splitlines()])


def test_bad_msgpack_bytes_yield_a_flagged_record_and_the_stream_goes_on() -> None:
    first, second = msgpack.packb(RECORDS[0]), msgpack.packb(RECORDS[1])
    huge_map = b"\xdf\x7f\xff\xff\xff"  # declares two billion entries
    data = first + b"\xc1\xc1" + second + huge_map + first + b"\x82"
    done = _run(["--input", "msgpack", "--output", "msgpack"], data)
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(done.stdout)
    out = [o["ngx"] for o in unpacker]
    # the maps around the bad stretches all come through, in order
    assert [o["category"] for o in out if "category" in o] == [
        "upstream_refused", "fastcgi_stderr", "upstream_refused"]
    flags = [o["parse_error"] for o in out if "category" not in o]
    assert flags[0].startswith("invalid msgpack") and flags[-1].startswith("truncated msgpack")
    assert out[1]["parse_error"].startswith("invalid msgpack")


def test_msgpack_records_are_answered_while_stdin_stays_open() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "ngx_enrich", "--input", "msgpack",
                             "--output", "msgpack"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, cwd=ROOT)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        unpacker = msgpack.Unpacker(raw=False)
        for record in RECORDS[:2]:
            proc.stdin.write(msgpack.packb(record))
            proc.stdin.flush()
            got = None
            while got is None:
                ready, _, _ = select.select([proc.stdout], [], [], 10)
                assert ready, "no answer while stdin stays open"
                unpacker.feed(proc.stdout.read1(65536))
                got = next(iter(unpacker), None)
            assert got["tag"] == record["tag"] and "ngx" in got
    finally:
        proc.kill()
        proc.wait()


def _as_fluentd(record: dict) -> bytes:
    """What Fluentd's msgpack formatter writes for an in_tail record: strings as bin."""
    return msgpack.packb({k.encode(): v.encode() for k, v in record.items()}, use_bin_type=True)


def _fluentd_records(tail: bytes = b"") -> bytes:
    return b"".join(_as_fluentd({"message": r["message"], "fluentd_tag": r["tag"],
                                 "fluentd_time": "2031-01-01T00:00:00.5+0000"})
                    for r in RECORDS) + tail


def test_bin_strings_are_read_as_text_and_the_time_key_gets_the_line_time() -> None:
    done = _run(["--input", "msgpack", "--output", "msgpack"], _fluentd_records())
    out = list(msgpack.Unpacker(io.BytesIO(done.stdout), raw=False))
    _check([{**o, "tag": o["fluentd_tag"], "time": r["time"]}
            for o, r in zip(out, RECORDS, strict=True)])
    # the line's own time (TZ=UTC) where the line has one; else the time Fluentd gave
    assert [o["fluentd_time"] for o in out] == ["2026-04-08T21:07:15.000000000+0000",
                                                "2026-04-08T21:07:16.000000000+0000",
                                                "2031-01-01T00:00:00.5+0000"]
    assert all(isinstance(o["fluentd_tag"], str) for o in out)


def test_event_time_keep_leaves_the_time_key_alone() -> None:
    done = _run(["--input", "msgpack", "--output", "json", "--event-time", "keep"],
                _fluentd_records())
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o["fluentd_time"] for o in out] == ["2031-01-01T00:00:00.5+0000"] * 3
    assert out[0]["ngx"]["category"] == "upstream_refused"


def test_bin_with_bad_utf8_is_kept_as_escapes_and_flagged() -> None:
    bad = msgpack.packb({b"message": ERR.encode() + b" \xff\xfe"}, use_bin_type=True)
    done = _run(["--input", "msgpack", "--output", "json"], bad)
    (out,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert out["message"].endswith(" \\xff\\xfe")
    assert out["ngx"]["category"] == "upstream_refused"
    assert "UTF-8" in out["ngx"]["parse_error"]
