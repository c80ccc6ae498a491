"""The filter command: one record out per line in, in order, whatever the input."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ngx_enrich import __version__, build

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "logs" / "error.log"
ERR = ('2026/04/08 21:07:15 [error] 2211#2211: *1 connect() failed (111: Connection refused) '
       'while connecting to upstream, client: 1.2.3.4, server: x, request: "GET / HTTP/1.1", '
       'upstream: "http://127.0.0.1:8080/", host: "x"')


def test_mixed_input_one_record_per_line_in_order(run_cli) -> None:
    lines = [
        ERR.encode(),
        b'{"log": "' + ERR.replace('"', '\\"').encode() + b'", "stream": "stderr"}',
        b'{"broken json',
        b"",
        b"\x00\x01binary\xff\xfe garbage",
        b"x" * (1 << 20),
        b'127.0.0.1 - - [29/Nov/2026:18:24:26 +0000] "GET /a HTTP/1.1" 404 153 "-" "curl"',
        b'{"remote": "1.2.3.4", "host": "-", "user": "-", "method": "GET", "path": "/",'
        b' "code": "502", "size": "157", "referer": "-", "agent": "curl"}',
        b"[1, 2]",
        b"just some words",
    ]
    result = run_cli([], stdin=b"\n".join(lines) + b"\n")
    assert result.status == 0, result.stderr
    recs = result.records
    assert len(recs) == len(lines)
    kinds = [r["ngx"]["kind"] for r in recs]
    assert kinds == ["error", "error", "other", "other", "other", "other", "access", "access",
                     "other", "other"]
    assert recs[0]["ngx"]["category"] == recs[1]["ngx"]["category"] == "upstream_refused"
    assert recs[1]["stream"] == "stderr"
    assert recs[2] == {"log": '{"broken json', "ngx": {"kind": "other",
                                                      "parse_error": "invalid JSON"}}
    for i in (3, 4, 5, 8, 9):
        assert recs[i]["ngx"]["parse_error"]
    assert "\\xff" in recs[4]["log"]
    assert len(recs[5]["log"]) == 1 << 20
    assert (recs[7]["ngx"]["status"], recs[7]["ngx"]["category"]) == (502, "bad_gateway")


def test_last_line_without_newline_and_crlf(run_cli) -> None:
    result = run_cli([], stdin=ERR.encode() + b"\r\n" + ERR.encode())
    assert [r["log"] for r in result.records] == [ERR, ERR]


_PREFIXES = st.sampled_from([
    b"", b"2026/04/08 21:07:15 [error] 2211#2211: *1 ", b"nginx: [emerg] ", b"nginx: ",
    b'1.2.3.4 - - [07/Feb/2020:11:49:30 +0000] "GET / HTTP/1.1" 200 ', b"{",
    b"[29-Nov-2026 18:20:26] WARNING: [pool www] ",
    b"2026/04/08 21:07:15 [info] 1#1: *1 x (SSL: ",
])


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.lists(st.tuples(_PREFIXES, st.binary(max_size=200)).map(
    lambda t: (t[0] + t[1]).replace(b"\n", b"")), max_size=20))
def test_arbitrary_bytes_one_json_object_per_line(run_cli, data: list[bytes]) -> None:
    result = run_cli(["--no-multiline"], stdin=b"".join(d + b"\n" for d in data))
    assert result.status == 0
    recs = result.records
    assert len(recs) == len(data)
    assert all(isinstance(r, dict) and r["ngx"]["kind"] in ("error", "access", "other")
               for r in recs)


def test_files_and_dash(run_cli, tmp_path: Path) -> None:
    a = tmp_path / "a.log"
    a.write_text(ERR + "\n")
    result = run_cli([str(a), "-", str(a)], stdin=b"stdin line\n")
    assert [r["log"] for r in result.records] == [ERR, "stdin line", ERR]


def test_missing_file_and_bad_flag_are_one_line_and_exit_2(run_cli, tmp_path: Path) -> None:
    missing = run_cli([str(tmp_path / "nope.log")])
    assert missing.status == 2 and missing.stdout == b""
    assert missing.stderr.count("\n") == 1 and "nope.log" in missing.stderr
    bad = run_cli(["--no-such-flag"])
    assert bad.status == 2 and bad.stderr.count("\n") == 1 and "--no-such-flag" in bad.stderr
    lang = run_cli(["--lang", "fr"])
    assert lang.status == 2 and lang.stderr.count("\n") == 1


def test_schemas_and_key(run_cli) -> None:
    flat = run_cli(["--schema", "flat"], stdin=ERR.encode()).records[0]
    assert flat["ngx_category"] == "upstream_refused" and flat["ngx_errno"] == 111
    key = run_cli(["--key", "enrich", "--lang", "zh"], stdin=ERR.encode()).records[0]
    assert "ngx" not in key and "后端" in key["enrich"]["explanation"]
    ecs = run_cli(["--schema", "ecs"], stdin=ERR.encode()).records[0]
    assert ecs["error"]["type"] == "upstream_refused"
    assert ecs["process"]["pid"] == 2211 and ecs["log"]["level"] == "error"
    assert ecs["event"]["original"] == ERR and ecs["ngx"]["area"] == "upstream"


def test_field_option(run_cli) -> None:
    rec = orjson.dumps({"raw": ERR, "log": "not this"})
    out = run_cli(["--field", "raw"], stdin=rec).records[0]
    assert out["ngx"]["category"] == "upstream_refused" and out["log"] == "not this"


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "ngx_enrich", *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)


def _read_line(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no output while the input pipe stayed open"
    return proc.stdout.readline()


def test_live_pipe_is_flushed_without_waiting_for_more_input() -> None:
    proc = _spawn()
    assert proc.stdin is not None
    try:
        for _ in range(2):
            proc.stdin.write(ERR.encode() + b"\n")
            proc.stdin.flush()
            rec = orjson.loads(_read_line(proc))
            assert rec["ngx"]["category"] == "upstream_refused"
    finally:
        proc.kill()
        proc.wait()


def test_ctrl_c_exits_130_without_traceback() -> None:
    proc = _spawn()
    assert proc.stdin is not None
    try:
        proc.stdin.write(ERR.encode() + b"\n")
        proc.stdin.flush()
        _read_line(proc)  # running and reading
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130
    assert b"Traceback" not in err


def test_head_ends_quietly(tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    big.write_text((ERR + "\n") * 200_000)
    cmd = f"{sys.executable} -m ngx_enrich {big} | head -1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, cwd=ROOT,
                          timeout=120)
    assert done.stdout.count(b"\n") == 1
    assert done.stderr == b""
    assert done.returncode == 0


def test_version_and_module_entry() -> None:
    done = subprocess.run([sys.executable, "-m", "ngx_enrich", "--version"], capture_output=True,
                          text=True, cwd=ROOT, timeout=30)
    assert done.stdout.strip() == f"ngx-enrich {__version__} ({build()})"


def test_bundled_sample_runs(run_cli) -> None:
    result = run_cli([str(SAMPLE)])
    lines = SAMPLE.read_text().splitlines()
    assert result.status == 0 and len(result.records) == len(lines)
    assert os.path.getsize(SAMPLE) > 0
    assert time.timezone == 0  # the suite pins TZ=UTC


FASTCGI = [
    '2026/04/08 21:07:15 [error] 2211#2211: *9 FastCGI sent in stderr: "PHP message: PHP '
    "Fatal error:  Uncaught Error: Call to undefined function f() in /var/www/a.php:5",
    "Stack trace:",
    "#0 {main}",
    '  thrown in /var/www/a.php on line 5" while reading response header from upstream, client: '
    '203.0.113.9, server: example.com, request: "GET /a.php HTTP/1.1", upstream: '
    '"fastcgi://unix:/run/php/php-fpm.sock:", host: "example.com"',
]


def test_multiline_fastcgi_record_is_one_record(run_cli) -> None:
    lines = [ERR, *FASTCGI, ERR, "continuation of nothing"]
    recs = run_cli([], stdin="\n".join(lines).encode() + b"\n").records
    assert len(recs) == 4
    fcgi = recs[1]
    assert fcgi["log"] == "\n".join(FASTCGI)
    assert fcgi["ngx"]["category"] == "fastcgi_stderr"
    assert fcgi["ngx"]["upstream"] == "fastcgi://unix:/run/php/php-fpm.sock:"
    assert fcgi["ngx"]["action"] == "reading response header from upstream"
    # a complete error record is never extended: the line after it is a record of its own
    assert recs[2]["log"] == ERR
    assert recs[3]["log"] == "continuation of nothing"
    assert recs[3]["ngx"]["kind"] == "other"
    flat = run_cli(["--no-multiline"], stdin="\n".join(lines).encode()).records
    assert len(flat) == len(lines)


LUA = [
    "2024/03/02 10:11:12 [error] 7#7: *3 lua entry thread aborted: runtime error: "
    "/etc/nginx/lua/auth.lua:12: attempt to index a nil value (local 'res')",
    "stack traceback:",
    "coroutine 0:",
    "\t/etc/nginx/lua/auth.lua: in function 'check'",
    '\taccess_by_lua(nginx.conf:40):2: in main chunk, client: 10.0.0.1, server: api, request: '
    '"GET /v1 HTTP/1.1", host: "api"',
]


@pytest.mark.parametrize("record", [FASTCGI, LUA], ids=["fastcgi", "lua"])
def test_pending_multiline_record_is_emitted_when_input_goes_quiet(record: list[str]) -> None:
    proc = _spawn("--quiet-flush", "0.2")
    assert proc.stdin is not None
    try:
        proc.stdin.write(("\n".join(record) + "\n").encode())
        proc.stdin.flush()
        rec = orjson.loads(_read_line(proc))
        assert rec["log"] == "\n".join(record)
        assert rec["ngx"]["kind"] == "error" and rec["ngx"]["client"] in ("203.0.113.9",
                                                                        "10.0.0.1")
    finally:
        proc.kill()
        proc.wait()


PATHOLOGICAL = [
    "x" * 65_000,
    "a " * 32_000,
    "1.2.3.4 - - [" * 5_000,
    "2026/04/08 21:07:15 [error] 1#1: " + "x, client: " * 5_000,
    "2026/04/08 21:07:15 [error] 1#1: *1 " + "a while b (" * 5_000,
    "2026/04/08 21:07:15 [error] 1#1: *1 " + "(SSL: (" * 8_000,
    "2026/04/08 21:07:15 [error] 1#1: *1 open() " + "x in /a.conf:1 " * 4_000,
    '1.2.3.4 - - [07/Feb/2020:11:49:30 +0000] "GET / HTTP/1.1" 200 1 "-" "-" 1 0.1 [a] [] '
    + "a : a, " * 8_000 + " b b b",
    "y" * (1 << 20),
]


def test_pathological_lines_finish(tmp_path: Path) -> None:
    """Guards against patterns that backtrack: the whole run must end (generous bound)."""
    log = tmp_path / "evil.log"
    log.write_text("\n".join(PATHOLOGICAL) + "\n")
    done = subprocess.run([sys.executable, "-m", "ngx_enrich", "--no-multiline", str(log)],
                          capture_output=True, cwd=ROOT, timeout=120, check=True)
    assert done.stdout.count(b"\n") == len(PATHOLOGICAL)


def test_odd_numbers_and_keys_never_stop_the_stream(run_cli) -> None:
    import msgpack

    lines = [
        "2026/04/08 21:07:15 [error] 1#1: *1 x failed (²: y)",
        "2026/04/08 21:07:15 [error] 1#1: *1 x failed (" + "9" * 5000 + ": y)",
        '1.2.3.4 - - [07/Feb/2020:11:49:30 +0000] "GET / HTTP/1.1" 200 99999999999999999999999 '
        '"-" "-"',
        '1.2.3.4 - - [07/Feb/2020:11:49:30 +0000] "GET / HTTP/1.1" 200 1 "-" "-" 1 0.1 [a] [] '
        "10.1.0.5:80 0 0.001 ² abc123",
        ERR,
    ]
    result = run_cli(["--no-multiline"], stdin="\n".join(lines).encode())
    assert result.status == 0 and len(result.records) == len(lines)
    assert result.records[-1]["ngx"]["category"] == "upstream_refused"
    packed = msgpack.packb({1: "int key", "log": ERR, "raw": b"\xff"})
    rec = run_cli(["--input", "msgpack"], stdin=packed).records[0]
    assert rec["1"] == "int key" and rec["ngx"]["category"] == "upstream_refused"


def test_quiet_flush_must_be_positive(run_cli) -> None:
    result = run_cli(["--quiet-flush", "0"])
    assert result.status == 2 and result.stderr.count("\n") == 1


def test_ecs_keeps_the_original_line_from_message(run_cli) -> None:
    rec = run_cli(["--schema", "ecs"], stdin=orjson.dumps({"message": ERR})).records[0]
    assert rec["event"]["original"] == ERR
    assert rec["message"].startswith("connect() failed")
