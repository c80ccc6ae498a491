"""The shipped Fluentd configs, run by the real Fluentd, fed real Nginx output.

Each test copies a shipped config with only paths and ports changed, starts Fluentd (and
`ngx-enrich serve` for the forward hop), appends the corpus to the log files Fluentd tails
and reads the enriched events from the `stdout` output the configs end in: every record
arrives once, enriched with its category, under its own tag, at the line's own time.
"""

from __future__ import annotations

import datetime as dt
import re
import signal
from pathlib import Path

import orjson
import pytest
from realpeers import (
    CUSTOM_FORMAT,
    FLUENTD,
    ROOT,
    Arrival,
    Proc,
    append,
    check_arrivals,
    corpus,
    env,
    free_port,
    loop_args,
    numbered,
    numbers,
    opened_by_any,
    prepare_logs,
    raw_text,
    render,
    serve,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    FLUENTD is None, reason="no Fluentd: set FLUENTD or put fluentd on PATH")

EXAMPLES = ROOT / "examples"
TAGS = {"error": "nginx.error", "access": "nginx.access"}
# `<match> @type stdout`: "2026-11-29 18:24:26.000000000 +0000 nginx.error: {...}"
STDOUT_EVENT = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [+-]\d{4}) (\S+): (\{.*\})$")


def arrivals(proc: Proc) -> list[Arrival]:
    """The events Fluentd's stdout output printed."""
    out = []
    for line in list(proc.out):
        m = STDOUT_EVENT.match(line)
        if m:
            when = dt.datetime.strptime(m.group(1)[:19] + m.group(1)[-6:], "%Y-%m-%d %H:%M:%S %z")
            out.append(Arrival(m.group(2), when.timestamp(), orjson.loads(m.group(3))))
    return out


def fluentd(conf: Path) -> Proc:
    assert FLUENTD is not None
    return Proc([FLUENTD, "-c", str(conf)], cwd=conf.parent, environ=env(), name="fluentd")


def _paths(tmp: Path) -> dict[str, str]:
    return {"/var/log/nginx/": f"{tmp}/logs/", "/var/lib/fluentd/": f"{tmp}/state/"}


def _run_until(proc: Proc, logs: Path, expected_count: int, lines: list, *,
               timeout: float = 60.0) -> list[Arrival]:
    wait_until(lambda: (opened_by_any(logs / "error.log") and opened_by_any(logs / "access.log"))
               or not proc.alive(), "Fluentd to follow the logs")
    assert proc.alive(), proc.tail()
    append(logs, lines)
    try:
        wait_until(lambda: len(arrivals(proc)) >= expected_count or not proc.alive(),
                   f"{expected_count} events", timeout)
    except AssertionError:
        raise AssertionError(f"{len(arrivals(proc))} of {expected_count} events arrived\n"
                             + "\n".join(t[:200] for t in proc.err[-10:])) from None
    return arrivals(proc)


@pytest.mark.parametrize("name", ["exec-filter-msgpack.conf", "exec-filter-json.conf"])
def test_exec_filter_config_enriches_every_record(name: str, tmp_path: Path) -> None:
    prepare_logs(tmp_path / "logs")
    replace = _paths(tmp_path)
    encoding = "msgpack" if "msgpack" in name else "json"
    command = f"command ngx-enrich --input {encoding} --output {encoding}"
    command += " --pad-to 8192" if encoding == "json" else ""
    # the one change beyond paths: the custom access format, as a user with one would add it
    replace[command] = f"{command} --log-format '{CUSTOM_FORMAT}'"
    conf = render(EXAMPLES / "fluentd" / name, tmp_path, replace)
    lines = corpus()
    proc = fluentd(conf)
    try:
        got = _run_until(proc, tmp_path / "logs", len(lines), lines)
    finally:
        proc.stop(signal.SIGTERM)
    check_arrivals(lines, got, tags=TAGS, label=name)
    # what ngx-enrich wrote back parsed for Fluentd: no parser errors in its log
    assert "pattern not matched" not in proc.text() and "error_class" not in proc.text()


def test_forward_hop_config_enriches_every_record(tmp_path: Path) -> None:
    prepare_logs(tmp_path / "logs")
    to_serve, back = free_port(), free_port()
    replace = {**_paths(tmp_path), "port 24225": f"port {to_serve}", "port 24224": f"port {back}"}
    conf = render(EXAMPLES / "forward" / "fluentd-forward-loop.conf", tmp_path, replace)
    hop = serve(*loop_args(to_serve, back), "--log-format", CUSTOM_FORMAT)
    lines = corpus()
    proc = fluentd(conf)
    try:
        got = _run_until(proc, tmp_path / "logs", len(lines), lines)
    finally:
        proc.stop(signal.SIGTERM)
        hop.stop()
    check_arrivals(lines, got, tags={k: f"enriched.{v}" for k, v in TAGS.items()},
                   label="fluentd-forward-loop.conf")


def test_forward_hop_survives_serve_killed_mid_stream(tmp_path: Path) -> None:
    """Fluentd require_ack_response: kill -9 serve during 50,000 lines; all arrive."""
    prepare_logs(tmp_path / "logs")
    to_serve, back = free_port(), free_port()
    replace = {**_paths(tmp_path), "port 24225": f"port {to_serve}", "port 24224": f"port {back}"}
    conf = render(EXAMPLES / "forward" / "fluentd-forward-loop.conf", tmp_path, replace)
    hop_args = loop_args(to_serve, back)
    hop = serve(*hop_args)
    total = 50_000
    proc = fluentd(conf)
    logs = tmp_path / "logs"
    try:
        wait_until(lambda: opened_by_any(logs / "error.log"), "Fluentd to follow the log")
        lines = list(numbered(total))
        append(logs, lines[: total // 2])
        wait_until(lambda: len(arrivals(proc)) > 2000, "the first events", 60)
        hop.kill()
        append(logs, lines[total // 2:])
        hop = serve(*hop_args)
        seen = wait_until(lambda: _all_numbers(proc, total), f"all {total} numbers", 240, 0.5)
    finally:
        proc.stop(signal.SIGTERM)
        hop.stop()
    got = numbers(raw_text(a.record) or "" for a in arrivals(proc))
    assert seen == set(range(total))
    print(f"\nFluentd -> serve (killed) -> Fluentd: {total} lines, {len(got)} events, "
          f"{len(got) - total} duplicates")


def _all_numbers(proc: Proc, total: int) -> set[int] | None:
    seen = set(numbers(raw_text(a.record) or "" for a in arrivals(proc)))
    return seen if len(seen) >= total else None


def _child_pids(needle: str) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in text and "fluentd" not in text:
            pids.append(int(cmdline.parent.name))
    return pids


def _read_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def test_exec_filter_child_killed_mid_stream(tmp_path: Path) -> None:
    """What Fluentd does when the ngx-enrich child dies: it starts a new one (child_respawn);
    the records of the chunk being written to the dead child are lost, later ones arrive."""
    import os

    prepare_logs(tmp_path / "logs")
    conf = render(EXAMPLES / "fluentd" / "exec-filter-msgpack.conf", tmp_path, _paths(tmp_path))
    logs = tmp_path / "logs"
    proc = fluentd(conf)
    needle = "ngx-enrich --input msgpack"
    try:
        wait_until(lambda: opened_by_any(logs / "error.log") and _child_pids(needle),
                   "Fluentd and its child")
        (first,) = _child_pids(needle)
        batches = [list(numbered(5_000, start)) for start in range(0, 30_000, 5_000)]
        append(logs, batches[0])
        wait_until(lambda: len(arrivals(proc)) >= 5_000, "the first batch", 60)
        start = _read_bytes(first)
        append(logs, [line for batch in batches[1:4] for line in batch])
        # kill it while it is reading that chunk (15,000 records, about 3 MB)
        wait_until(lambda: _read_bytes(first) > start + (256 << 10), "the child to start on "
                   "the chunk", 60, 0.001)
        os.kill(first, signal.SIGKILL)
        second = wait_until(lambda: [p for p in _child_pids(needle) if p != first],
                            "a new child", 60)
        for batch in batches[4:]:
            append(logs, batch)
        late = set(range(20_000, 30_000))
        wait_until(lambda: late <= set(numbers(raw_text(a.record) or ""
                                               for a in arrivals(proc))),
                   "the records written after the restart", 120, 0.5)
    finally:
        proc.stop(signal.SIGTERM)
    every = numbers(raw_text(a.record) or "" for a in arrivals(proc))
    got = set(every)
    assert second and set(range(5_000)) <= got and late <= got
    print(f"\nexec_filter child killed: 30000 lines, {len(got)} arrived, {30_000 - len(got)} "
          f"lost, {len(every) - len(got)} duplicates; child {first} replaced by {second[0]}")


def _bad_fluentd(tmp: Path, port: int, key: str, ca: Path) -> Proc:
    """One Fluentd with three wrong senders: a wrong key, plain text to TLS, no key."""
    def match(tag: str, body: str) -> str:
        return f"""
<source>
  @type sample
  tag bad.{tag}
  sample {{"message": "{tag}: INTRUDER"}}
  rate 5
</source>
<match bad.{tag}>
  @type forward
  require_ack_response true
  ack_response_timeout 5s
  {body}
  <server>
    host 127.0.0.1
    port {port}
  </server>
  <buffer>
    flush_interval 1s
    retry_wait 1s
    retry_max_interval 2s
  </buffer>
</match>
"""
    tls = f"transport tls\n  tls_cert_path {ca}\n  tls_verify_hostname false"
    conf = tmp / "bad.conf"
    conf.write_text(
        match("wrong-key", f"{tls}\n  <security>\n    self_hostname intruder\n"
                           "    shared_key not-the-key\n  </security>")
        + match("plain-text", f"<security>\n    self_hostname plain\n    shared_key {key}\n"
                              "  </security>")
        + match("no-key", tls))
    return fluentd(conf)


def test_secure_forward_hop_refuses_wrong_senders(tmp_path: Path) -> None:
    from realpeers import make_tls

    prepare_logs(tmp_path / "logs")
    key = "s3cret-shared-key"
    tls = make_tls(tmp_path / "tls")  # ngx-enrich's listener
    own = make_tls(tmp_path / "fluentd-tls")  # Fluentd's in_forward
    to_serve, back = free_port(), free_port()
    replace = {**_paths(tmp_path), "port 24225": f"port {to_serve}", "port 24224": f"port {back}",
               "/etc/fluentd/tls/ca.crt": str(tls.ca),
               "/etc/fluentd/tls/fluentd.crt": str(own.cert),
               "/etc/fluentd/tls/fluentd.key": str(own.key)}
    conf = render(EXAMPLES / "forward" / "fluentd-forward-loop-secure.conf", tmp_path, replace)
    hop = serve("--listen", f"127.0.0.1:{to_serve}", "--tls-cert", str(tls.cert),
                "--tls-key", str(tls.key), "--to", f"forward+tls://127.0.0.1:{back}",
                "--to-tls-ca", str(own.ca), "--tag-prefix", "enriched",
                "--log-format", CUSTOM_FORMAT,
                environ=env(NGX_ENRICH_SHARED_KEY=key, NGX_ENRICH_TO_SHARED_KEY=key))
    bad = _bad_fluentd(tmp_path, to_serve, key, tls.ca)
    lines = corpus()
    proc = Proc([str(FLUENTD), "-c", str(conf)], cwd=tmp_path,
                environ=env(NGX_ENRICH_SHARED_KEY=key), name="fluentd")
    try:
        got = _run_until(proc, tmp_path / "logs", len(lines), lines)
        append(tmp_path / "logs", list(numbered(100)))  # the good sender keeps going
        wait_until(lambda: len(arrivals(proc)) >= len(lines) + 100, "more events")
        wait_until(lambda: "shared key mismatch" in hop.text(), "the wrong key refused", 30)
    finally:
        bad.stop()
        proc.stop(signal.SIGTERM)
        hop.stop()
    everything = arrivals(proc)
    assert not [a for a in everything if "INTRUDER" in (raw_text(a.record) or "")]
    check_arrivals(lines, [a for a in got if "/n/" not in (raw_text(a.record) or "")],
                   tags={k: f"enriched.{v}" for k, v in TAGS.items()},
                   label="fluentd-forward-loop-secure.conf")
    assert set(numbers(raw_text(a.record) or "" for a in everything)) == set(range(100))
    refusals = hop.text()
    assert "shared key mismatch" in refusals  # the wrong key
    assert "expected PING, got ['bad.no-key'" in refusals  # no key: records instead of a PING


@pytest.mark.parametrize("pad", [False, True])
def test_json_exec_filter_delay(pad: bool, tmp_path: Path) -> None:
    """Fluentd reads a JSON child's stdout in stream_buffer_size blocks: without --pad-to the
    records of the last, partly filled block wait (here until shutdown); with it none wait."""
    import time

    prepare_logs(tmp_path / "logs")
    replace = _paths(tmp_path)
    if not pad:
        replace[" --pad-to 8192"] = ""
    conf = render(EXAMPLES / "fluentd" / "exec-filter-json.conf", tmp_path, replace)
    lines = [line for line in corpus(custom_format=False) if line.stream == "error"][:22]
    proc = fluentd(conf)
    logs = tmp_path / "logs"
    try:
        wait_until(lambda: opened_by_any(logs / "error.log"), "Fluentd to follow the log")
        start = time.monotonic()
        append(logs, lines)
        if pad:
            wait_until(lambda: len(arrivals(proc)) >= len(lines), "every record", 30)
        else:
            wait_until(lambda: arrivals(proc), "the first block", 30)
            time.sleep(5)  # four flush intervals and more
        live, waited = len(arrivals(proc)), time.monotonic() - start
    finally:
        proc.stop(signal.SIGTERM)
    assert len(arrivals(proc)) == len(lines)  # at shutdown the held records come out
    if pad:
        assert live == len(lines)
    else:
        assert live < len(lines)
    rest = f", {len(lines) - live} at shutdown" if live < len(lines) else ""
    print(f"\nexec_filter JSON, --pad-to {'8192' if pad else 'off'}: {live} of {len(lines)} "
          f"records out within {waited:.1f}s{rest}")
