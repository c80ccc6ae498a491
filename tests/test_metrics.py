"""Prometheus metrics: the schema helper, the label caps, and `serve --metrics` end to end."""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from fluent.sender import FluentSender
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from ngx_enrich import metrics
from ngx_enrich.metrics import Metrics, NgxView, ngx_view, view_reader
from ngx_enrich.pipeline import Enricher, Options
from tests.test_serve import ERROR_LINE, Receiver, Sender, deliver, et, packed, wait_until

ROOT = Path(__file__).resolve().parents[1]
WAIT = 10.0
ERROR_LINES = (ROOT / "examples/logs/error.log").read_text().splitlines()
ACCESS_LINES = (ROOT / "examples/logs/access.log").read_text().splitlines()
GARBAGE: list[dict[str, Any]] = [
    {"log": "garbage, not from nginx"},
    {"msg": 42},  # no text field at all
    {"log": ""},
]
LabelSet = tuple[str, str, str, str]


def settled_scrape(serve: Any) -> dict[Any, float]:
    """A scrape once no chunk is in flight: a sender has its ack a moment before the server
    counts the chunk as done."""
    last: dict[Any, float] = {}

    def done() -> bool:
        last.clear()
        last.update(serve.scrape())
        return last.get(("ngx_enrich_chunks_pending", frozenset())) == 0

    wait_until(done, "no chunk in flight")
    return last


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the schema helper -----------------------------------------------------------------------------


def enriched(schema: str) -> list[dict[str, Any]]:
    enricher = Enricher(Options(schema=schema))
    records = [{"log": line} for line in [ERROR_LINE, *ACCESS_LINES[:2]]] + GARBAGE
    return [enricher.enrich_record(dict(r)) for r in records]


def test_view_reads_the_same_facts_in_every_schema() -> None:
    default = [ngx_view(r) for r in enriched("default")]
    assert default[0] == NgxView("error", "upstream", "upstream_refused", "error", None)
    assert default[1][:1] == ("access",) and default[1].category == "not_found"
    assert [v.kind for v in default[3:]] == ["other"] * 3
    assert all(v.parse_error for v in default[3:])
    assert not any(v.parse_error for v in default[:3])
    for schema in ("flat", "ecs"):
        assert [ngx_view(r, schema) for r in enriched(schema)] == default, schema


def test_view_follows_the_key_and_the_ecs_layout() -> None:
    enricher = Enricher(Options(schema="ecs", key="nginx"))
    record = enricher.enrich_record({"log": ERROR_LINE})
    assert record["error"]["type"] == "upstream_refused" and "category" not in record["nginx"]
    assert view_reader("ecs", "nginx")(record).category == "upstream_refused"
    # the default layout looks for the category under the key, where ECS has none
    assert view_reader("default", "nginx")(record).category is None
    flat = {"x_kind": "access", "x_category": "success", "x_area": "other"}
    assert ngx_view(flat, "flat", "x") == NgxView("access", "other", "success", None, None)
    assert ngx_view({"log": "never enriched"}) == NgxView(None, None, None, None, None)
    assert ngx_view({"ngx": "not an object"}) == NgxView(None, None, None, None, None)
    with pytest.raises(ValueError, match="schema"):
        view_reader("xml")


# -- labels stay bounded ---------------------------------------------------------------------------


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in registry.collect() for s in family.samples}


def out_counts(found: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[LabelSet, float]:
    counts = {}
    for (name, labels), value in found.items():
        if name == "ngx_enrich_records_out_total":
            d = dict(labels)
            counts[(d["kind"], d["area"], d["category"], d["severity"])] = value
    return counts


def test_values_outside_the_catalogue_become_other_and_missing_ones_none() -> None:
    meter = Metrics(categories={"upstream_refused"}, registry=CollectorRegistry())
    meter.record_out(NgxView("error", "upstream", "upstream_refused", "error", None))
    meter.record_out(NgxView("error", "upstream", "made_up_by_a_rule", "error", None), 2)
    meter.record_out(NgxView("weird", "galaxy", "unknown", "catastrophic", None))
    meter.record_out(NgxView(None, None, None, None, None))
    meter.record_out(NgxView(7, ["x"], "", {"a": 1}, None))  # not strings at all
    assert out_counts(samples(meter.registry)) == {
        ("error", "upstream", "upstream_refused", "error"): 1,
        ("error", "upstream", "other", "error"): 2,
        ("other", "other", "unknown", "other"): 1,  # `unknown` is the classifier's fallback
        ("none", "none", "none", "none"): 2,
    }


def test_user_rules_add_their_categories_up_to_a_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('''
[[rule]]
id = "my_rule"
category = "my_category"
area = "upstream"
severity = "error"
match = { head = "my message" }
en = "English text."
zh = "中文说明。"
check = ["proxy_pass"]
samples = ["2026/04/08 21:07:15 [error] 1#1: my message"]
''')
    enricher = Enricher(Options(rules=(rules,)))
    record = enricher.enrich_line("2026/04/08 21:07:15 [error] 1#1: my message")
    assert record["ngx"]["category"] == "my_category"
    meter = Metrics.for_enricher(enricher, registry=CollectorRegistry())
    meter.record_out(meter.view(record))
    assert out_counts(samples(meter.registry)) == {("error", "upstream", "my_category", "error"): 1}
    assert "my_category" not in Metrics.for_enricher(Enricher(), registry=CollectorRegistry()
                                                     ).categories

    many = SimpleNamespace(rules=[SimpleNamespace(category=f"extra_{i}") for i in range(5)]
                           + [SimpleNamespace(category="upstream_refused")], statuses={})
    monkeypatch.setattr(metrics, "MAX_EXTRA_CATEGORIES", 3)
    kept = metrics.catalogue_categories(many)  # type: ignore[arg-type]
    assert {c for c in kept if c.startswith("extra_")} == {"extra_0", "extra_1", "extra_2"}
    assert {"upstream_refused", "success", "unknown"} <= kept  # built-in ones always kept


def test_records_out_adds_a_batch_up_and_counts_its_parse_errors() -> None:
    meter = Metrics.for_enricher(Enricher(), registry=CollectorRegistry())
    views = [meter.view(r) for r in enriched("default")]
    meter.records_out(views)
    found = samples(meter.registry)
    assert found[("ngx_enrich_parse_errors_total", frozenset())] == 3
    counts = out_counts(found)
    assert counts[("other", "none", "none", "none")] == 3
    assert counts[("error", "upstream", "upstream_refused", "error")] == 1
    assert sum(counts.values()) == len(views)


def test_chunks_pending_acked_and_resent() -> None:
    meter = Metrics(registry=CollectorRegistry())
    value = meter.registry.get_sample_value
    meter.chunk_started("a")
    meter.chunk_started(None)
    assert value("ngx_enrich_chunks_pending") == 2
    meter.chunk_finished(acked=False)  # "a", closed without an ack
    meter.chunk_finished(acked=False)  # the message without a chunk id
    meter.chunk_started("a")  # the sender tries again
    meter.chunk_started(b"b")
    meter.chunk_finished(acked=True)
    meter.chunk_finished(acked=True)
    assert value("ngx_enrich_chunks_pending") == 0
    assert value("ngx_enrich_chunks_acked_total") == 2
    assert value("ngx_enrich_chunks_resent_total") == 1


def test_follow_gauges_exist_only_for_the_configured_files() -> None:
    meter = Metrics(files=["/var/log/nginx/error.log", "/var/log/nginx/access.log"],
                    registry=CollectorRegistry())
    value = meter.registry.get_sample_value
    error = {"file": "/var/log/nginx/error.log"}
    assert value("ngx_enrich_files_followed", error) == 0  # shown before the first poll
    assert meter.file_followed("/var/log/nginx/error.log", True)
    assert meter.file_lag("/var/log/nginx/error.log", 4096)
    assert not meter.file_followed("/var/log/nginx/error.log.1", True)
    assert not meter.file_lag("/tmp/elsewhere.log", 1)
    assert value("ngx_enrich_files_followed", error) == 1
    assert value("ngx_enrich_lag_bytes", error) == 4096
    files = {dict(labels)["file"] for (name, labels) in samples(meter.registry)
             if name in ("ngx_enrich_files_followed", "ngx_enrich_lag_bytes")}
    assert files == {"/var/log/nginx/error.log", "/var/log/nginx/access.log"}
    # serve has no files: no follow gauges at all
    names = {name for name, _ in samples(Metrics(registry=CollectorRegistry()).registry)}
    assert not names & {"ngx_enrich_files_followed", "ngx_enrich_lag_bytes"}


def test_metrics_server_serves_and_releases_its_port() -> None:
    meter = Metrics(registry=CollectorRegistry())
    meter.record_in(3)
    exposer = meter.serve("127.0.0.1", 0)
    try:
        text = urllib.request.urlopen(f"http://{exposer.address}/metrics", timeout=WAIT).read()
    finally:
        exposer.close()
    found = scraped(text.decode())
    assert found[("ngx_enrich_records_in_total", frozenset())] == 3
    host, port = exposer.address.rsplit(":", 1)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past TIME_WAIT
        sock.bind((host, int(port)))  # nobody listens there any more
        sock.listen()


# -- the command -----------------------------------------------------------------------------------


def scraped(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


class Serve:
    """`ngx-enrich serve --metrics` in a child process; stdout and stderr read as they come."""

    def __init__(self, *args: str) -> None:
        self.metrics_port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ngx_enrich", "serve", "--listen", "127.0.0.1:0",
             "--metrics", f"127.0.0.1:{self.metrics_port}", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        self.stdout: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._threads = [threading.Thread(target=self._read, args=(out,), daemon=True)
                         for out in ("stdout", "stderr")]
        for thread in self._threads:
            thread.start()
        wait_until(lambda: self.port is not None or self.proc.poll() is not None, "listening")
        assert self.port is not None, self.stderr

    def _read(self, which: str) -> None:
        stream = getattr(self.proc, which)
        for line in stream:
            if which == "stdout":
                self.stdout.append(orjson.loads(line))
            else:
                self.stderr.append(line.decode())

    @property
    def port(self) -> int | None:
        for line in list(self.stderr):
            if "listening on 127.0.0.1:" in line:
                return int(line.split("listening on 127.0.0.1:")[1].split(",")[0])
        return None

    def scrape(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        return scraped(urllib.request.urlopen(url, timeout=WAIT).read().decode())

    def value(self, name: str) -> float:
        return self.scrape().get((name, frozenset()), 0.0)

    def finish(self) -> int:
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=WAIT * 2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        for thread in self._threads:
            thread.join(WAIT)
        return code


def labels_in_output(record: dict[str, Any], schema: str) -> LabelSet:
    """What the output says, read here independently of the code under test."""
    if schema == "flat":
        facts = {k.removeprefix("ngx_"): v for k, v in record.items() if k.startswith("ngx_")}
    else:
        facts = dict(record["ngx"])
        if schema == "ecs":
            facts["category"] = record.get("error", {}).get("type")
    return tuple(facts.get(k) or "none" for k in ("kind", "area", "category", "severity"))  # type: ignore[return-value]


@pytest.mark.parametrize("schema", ["default", "flat", "ecs"])
def test_serve_counts_match_what_it_wrote(schema: str) -> None:
    serve = Serve("--to", "stdout", "--schema", schema)
    try:
        assert any(f"metrics at http://127.0.0.1:{serve.metrics_port}/metrics" in line
                   for line in serve.stderr)
        port = serve.port
        assert port is not None
        sender = FluentSender(None, host="127.0.0.1", port=port, forward_packet_error=False)
        records = [{"log": line} for line in ERROR_LINES + ACCESS_LINES] + GARBAGE
        for record in records:
            assert sender.emit("nginx", record), sender.last_error
        sender.close()
        chunk = Sender(port)  # one acknowledged PackedForward chunk as well
        chunk.send(packed("nginx.error", [(et(1714557600, n), {"log": ERROR_LINE})
                                          for n in range(5)], "c-1"))
        assert chunk.reply() == {"ack": "c-1"}
        chunk.close()
        total = len(records) + 5
        wait_until(lambda: len(serve.stdout) >= total, f"{total} records on stdout")
        found = settled_scrape(serve)
    finally:
        assert serve.finish() == 0
    assert len(serve.stdout) == total == 36 + 5
    out = [line["record"] for line in serve.stdout]
    expected = collections.Counter(labels_in_output(r, schema) for r in out)
    assert out_counts(found) == dict(expected)
    assert expected[("error", "upstream", "upstream_refused", "error")] == 6
    assert sum(1 for k in expected.elements() if k[0] == "access") == 11
    parse_errors = sum(1 for r in out if (r.get("ngx_parse_error") if schema == "flat"
                                          else r["ngx"].get("parse_error")))
    assert parse_errors == len(GARBAGE)
    one: frozenset[tuple[str, str]] = frozenset()
    assert found[("ngx_enrich_parse_errors_total", one)] == parse_errors
    assert found[("ngx_enrich_records_in_total", one)] == total
    assert found[("ngx_enrich_chunks_acked_total", one)] == 1  # fluent-logger asks for no ack
    assert found[("ngx_enrich_chunks_pending", one)] == 0
    assert found[("ngx_enrich_chunks_resent_total", one)] == 0
    assert found[("ngx_enrich_next_hop_failures_total", one)] == 0
    assert found[("ngx_enrich_enrich_seconds_count", one)] == len(records) + 1  # per request
    assert 0 < found[("ngx_enrich_enrich_seconds_sum", one)] < 5


def test_dead_next_hop_is_counted_then_delivery_resumes() -> None:
    hop_port = free_port()  # nothing listens there yet
    serve = Serve("--to", f"forward://127.0.0.1:{hop_port}", "--retry-timeout", "60")
    receiver = None
    try:
        port = serve.port
        assert port is not None
        first = Sender(port)
        first.send(packed("t", [(et(1, n), {"log": ERROR_LINE, "id": f"a{n}"})
                                for n in range(5)], "chunk-a"))

        def retrying() -> bool:
            found = serve.scrape()
            return (found.get(("ngx_enrich_next_hop_retries_total", frozenset()), 0) >= 2
                    and found.get(("ngx_enrich_chunks_pending", frozenset())) == 1)

        wait_until(retrying, "retries against the closed port")
        frame_b = packed("t", [(et(2, n), {"log": ERROR_LINE, "id": f"b{n}"})
                               for n in range(5)], "chunk-b")
        second = Sender(port)
        second.send(frame_b)
        assert second.closed()  # refused at once while chunk-a retries
        second.close()
        during = serve.scrape()
        assert during[("ngx_enrich_chunks_pending", frozenset())] == 1
        assert during[("ngx_enrich_chunks_acked_total", frozenset())] == 0
        assert during[("ngx_enrich_next_hop_failures_total", frozenset())] >= 2
        assert not out_counts(during)  # nothing handed on yet

        receiver = Receiver(hop_port).start()
        assert first.reply(timeout=WAIT) == {"ack": "chunk-a"}
        first.close()
        assert deliver(port, frame_b, "chunk-b") == 0  # the sender's resend goes through
        wait_until(lambda: len(receiver.ids()) == 10, "both chunks at the next hop")
        found = settled_scrape(serve)
    finally:
        code = serve.finish()
        if receiver is not None:
            receiver.stop()
    assert code == 0
    one: frozenset[tuple[str, str]] = frozenset()
    assert found[("ngx_enrich_chunks_pending", one)] == 0
    assert found[("ngx_enrich_chunks_acked_total", one)] == 2
    assert found[("ngx_enrich_chunks_resent_total", one)] == 1
    assert found[("ngx_enrich_records_in_total", one)] == 15  # chunk-b arrived twice
    assert out_counts(found) == {("error", "upstream", "upstream_refused", "error"): 10}
    failures = found[("ngx_enrich_next_hop_failures_total", one)]
    assert failures >= 2
    assert found[("ngx_enrich_next_hop_retries_total", one)] == failures  # each one retried
    assert sorted(receiver.ids()) == sorted([f"a{n}" for n in range(5)]
                                            + [f"b{n}" for n in range(5)])


def run_serve(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "ngx_enrich", "serve",
                           "--listen", "127.0.0.1:0", *args],
                          capture_output=True, env=env, timeout=WAIT * 3)


@pytest.mark.parametrize("value", ["9145", "localhost", "127.0.0.1:port", "127.0.0.1:70000",
                                   ":9145"])
def test_bad_metrics_address_is_a_usage_error(value: str) -> None:
    result = run_serve("--metrics", value)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and "--metrics" in lines[0] and "HOST:PORT" in lines[0], lines
    assert result.stdout == b""


def test_metrics_port_in_use_is_status_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_serve("--metrics", f"127.0.0.1:{port}")
    assert result.returncode == 1
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and f"cannot serve metrics on 127.0.0.1:{port}" in lines[0], lines


def test_metrics_off_loads_nothing_and_counts_nothing() -> None:
    import argparse

    from ngx_enrich.forward import command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--to", "forward://127.0.0.1:1"])
    assert args.metrics is None
    server, sink = command._build(args, Enricher())
    assert server.metrics is None and sink.client.metrics is None  # type: ignore[attr-defined]
    args = parser.parse_args(["--metrics", "[::1]:9145"])
    assert args.metrics == ("::1", 9145)
    code = ("import sys, ngx_enrich.cli, ngx_enrich.forward.command, ngx_enrich.metrics; "
            "sys.exit('prometheus_client' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=WAIT * 3)
    assert done.returncode == 0, "prometheus_client is loaded only when --metrics is given"


def test_a_slow_scrape_does_not_hold_up_records() -> None:
    serve = Serve("--to", "stdout")
    try:
        port = serve.port
        assert port is not None
        stalled = socket.create_connection(("127.0.0.1", serve.metrics_port), timeout=WAIT)
        stalled.sendall(b"GET /metrics HTTP/1.1\r\n")  # and never finishes the request
        sender = Sender(port)
        sender.send(packed("t", [(et(1, 0), {"log": ERROR_LINE})], "k"))
        assert sender.reply() == {"ack": "k"}
        sender.close()
        assert serve.value("ngx_enrich_chunks_acked_total") == 1  # other scrapes still served
        stalled.close()
    finally:
        assert serve.finish() == 0


# -- follow ------------------------------------------------------------------------------------


def test_follow_counts_what_it_wrote_and_the_lag_of_each_file(tmp_path: Path) -> None:
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    error_log.write_text("".join(line + "\n" for line in ERROR_LINES))
    access_log.write_text("".join(line + "\n" for line in ACCESS_LINES) + "not nginx at all\n")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ngx_enrich", "follow", "--from-start", "--poll", "0.05",
         "--metrics", f"127.0.0.1:{port}", str(error_log), str(access_log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out: list[dict[str, Any]] = []
    reader = threading.Thread(target=lambda: out.extend(orjson.loads(x) for x in proc.stdout),
                              daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}/metrics"

    def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        try:
            return scraped(urllib.request.urlopen(url, timeout=WAIT).read().decode())
        except OSError:
            return {}

    total = len(ERROR_LINES) + len(ACCESS_LINES) + 1
    try:
        wait_until(lambda: scrape().get(("ngx_enrich_records_in_total", frozenset())) == total,
                   "every line read")
        with error_log.open("a") as fh:
            fh.write("2026/04/08 21:07:15 [error] 1#1: half a line")  # no newline yet
        path = str(error_log)
        lag = ("ngx_enrich_lag_bytes", frozenset({("file", path)}))
        wait_until(lambda: scrape().get(lag) == 44, "the unfinished line as lag")
        found = scrape()
    finally:
        proc.terminate()
        assert proc.wait(timeout=WAIT * 2) == 0
        reader.join(WAIT)
    assert len(out) == total
    assert out_counts(found) == collections.Counter(labels_in_output(r, "default") for r in out)
    assert found[("ngx_enrich_parse_errors_total", frozenset())] == sum(
        1 for r in out if r["ngx"].get("parse_error"))
    for name in (str(error_log), str(access_log)):
        assert found[("ngx_enrich_files_followed", frozenset({("file", name)}))] == 1
    assert found[("ngx_enrich_lag_bytes", frozenset({("file", str(access_log))}))] == 0
    assert found[("ngx_enrich_enrich_seconds_count", frozenset())] >= 2
