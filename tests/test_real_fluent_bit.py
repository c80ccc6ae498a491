"""The shipped Fluent Bit configs, run by the real Fluent Bit, into an Elasticsearch stand-in.

Elasticsearch cannot run here: its place is taken by a loopback server that answers the bulk
API as Elasticsearch 8 does and checks every document against the index template
`ngx-enrich export es-template` generates (tests/es_standin.py). Each test copies a shipped
config with only paths, ports, the Elasticsearch address and the credentials changed, starts
Fluent Bit (and `ngx-enrich serve` where the config needs it), appends real Nginx output and
checks every document: it arrived once, enriched with its category, with its tag, with the
line's own time as `@timestamp`, and Elasticsearch rejected nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from es_standin import ElasticStandIn
from realpeers import (
    CUSTOM_FORMAT,
    FLUENT_BIT,
    ROOT,
    Arrival,
    Line,
    Proc,
    Tls,
    append,
    check_arrivals,
    corpus,
    env,
    free_port,
    loop_args,
    make_tls,
    numbered,
    numbers,
    opened_by_any,
    peak_rss_kib,
    prepare_logs,
    raw_text,
    render,
    serve,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    FLUENT_BIT is None, reason="no Fluent Bit: set FLUENT_BIT or put fluent-bit on PATH")

CONFIGS = ROOT / "fluent-bit"
PASSWORD = "es-test-password"
TAGS = {"error": "nginx.error", "access": "nginx.access"}


def template(schema: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "ngx_enrich", "export", "es-template",
                          "--schema", schema], capture_output=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


@contextlib.contextmanager
def elasticsearch(tls: Tls, schema: str = "default") -> Iterator[ElasticStandIn]:
    with ElasticStandIn(template(schema), tls=(str(tls.cert), str(tls.key))) as es:
        yield es


def es_arrivals(es: ElasticStandIn) -> list[Arrival]:
    out = []
    for _index, _id, source in list(es.documents):
        stamp = dt.datetime.fromisoformat(source["@timestamp"].replace("Z", "+00:00")[:26]
                                          + "+00:00")
        out.append(Arrival(source.get("fluent_tag", ""), stamp.timestamp(), source))
    return out


def fluent_bit(conf: Path, **extra: str) -> Proc:
    assert FLUENT_BIT is not None
    return Proc([FLUENT_BIT, "-c", str(conf)], cwd=conf.parent,
                environ=env(ES_PASSWORD=PASSWORD, **extra), name="fluent-bit")


def _replacements(tmp: Path, tls: Tls, es: ElasticStandIn, yaml: bool) -> dict[str, str]:
    port = "port: 9200" if yaml else "Port                 9200"
    return {
        "/var/log/nginx/": f"{tmp}/logs/",
        "/var/lib/fluent-bit/": f"{tmp}/state/",
        "/etc/fluent-bit/elasticsearch-ca.crt": str(tls.ca),
        port: port.replace("9200", str(es.port)),
    }


def _forward_ports(text_yaml: bool, to_serve: int, back: int) -> dict[str, str]:
    if text_yaml:
        return {"port: 24225": f"port: {to_serve}", "port: 24224": f"port: {back}"}
    return {"Port                   24225": f"Port                   {to_serve}",
            "Port           24224": f"Port           {back}"}


def _deliver(proc: Proc, es: ElasticStandIn, logs: Path, lines: list[Line],
             timeout: float = 60.0) -> list[Arrival]:
    wait_until(lambda: (opened_by_any(logs / "error.log") and opened_by_any(logs / "access.log"))
               or not proc.alive(), "the logs to be followed")
    assert proc.alive(), proc.tail()
    append(logs, lines)
    try:
        wait_until(lambda: len(es.documents) >= len(lines) or not proc.alive(),
                   f"{len(lines)} documents", timeout)
    except AssertionError:
        raise AssertionError(f"{len(es.documents)} of {len(lines)} documents; rejects "
                             f"{es.rejects[:3]}\n{proc.tail(15)}") from None
    return es_arrivals(es)


def _check_es(es: ElasticStandIn) -> None:
    assert not es.rejects, es.rejects[:5]
    for _index, _id, source in es.documents:
        assert list(source).count("@timestamp") == 1


@pytest.mark.parametrize(("name", "schema"), [
    ("forward-loop.conf", "default"), ("forward-loop.conf", "flat"),
    ("forward-loop.conf", "ecs"), ("forward-loop.yaml", "default")])
def test_forward_loop(name: str, schema: str, tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    prepare_logs(tmp_path / "logs")
    to_serve, back = free_port(), free_port()
    with elasticsearch(tls, schema) as es:
        yaml = name.endswith(".yaml")
        replace = {**_replacements(tmp_path, tls, es, yaml),
                   **_forward_ports(yaml, to_serve, back)}
        siblings = [] if yaml else ["forward-loop-parsers.conf"]
        conf = render(CONFIGS / name, tmp_path / "fb", replace, siblings)
        hop = serve(*loop_args(to_serve, back), "--schema", schema,
                    "--log-format", CUSTOM_FORMAT)
        proc = fluent_bit(conf)
        lines = corpus()
        try:
            got = _deliver(proc, es, tmp_path / "logs", lines)
        finally:
            proc.stop()
            hop.stop()
    check_arrivals(lines, got, tags={k: f"enriched.{v}" for k, v in TAGS.items()},
                   label=f"{name} ({schema}), es rejects {len(es.rejects)}")
    _check_es(es)
    assert all(index.startswith("nginx-2026.11.29") for index, _, _ in es.documents)


@pytest.mark.parametrize("name", ["exec-source.conf", "exec-source.yaml"])
def test_exec_source(name: str, tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    prepare_logs(tmp_path / "logs")
    yaml = name.endswith(".yaml")
    with elasticsearch(tls) as es:
        command = "exec ngx-enrich follow"
        replace = {**_replacements(tmp_path, tls, es, yaml),
                   "/var/lib/ngx-enrich/": f"{tmp_path}/state/",
                   # beyond paths: the custom access format, as a user with one would add it
                   command: f"{command} --log-format '{CUSTOM_FORMAT}'"}
        siblings = ["parsers-ngx-enrich.yaml" if yaml else "parsers-ngx-enrich.conf"]
        conf = render(CONFIGS / name, tmp_path / "fb", replace, siblings)
        proc = fluent_bit(conf)
        lines = corpus()
        try:
            got = _deliver(proc, es, tmp_path / "logs", lines)
        finally:
            proc.stop()
    check_arrivals(lines, got, tags={"error": "nginx.enriched", "access": "nginx.enriched"},
                   label=f"{name}, es rejects {len(es.rejects)}")
    _check_es(es)


# -- Kubernetes: container log files in the CRI and docker json-file formats -------------------


def _cri(lines: list[Line]) -> str:
    """CRI log lines: "<RFC 3339 nano> <stream> F <text>", one per physical line."""
    out = []
    for n, line in enumerate(lines):
        stream = "stderr" if line.stream == "error" else "stdout"
        stamp = dt.datetime.fromtimestamp(line.seconds + 0.25 + n / 1e6, dt.UTC)
        for part in line.text.split("\n"):
            out.append(f"{stamp.strftime('%Y-%m-%dT%H:%M:%S.%f')}123Z {stream} F {part}\n")
    return "".join(out)


def _docker(lines: list[Line]) -> str:
    out = []
    for line in lines:
        stream = "stderr" if line.stream == "error" else "stdout"
        stamp = dt.datetime.fromtimestamp(line.seconds + 0.5, dt.UTC)
        for part in line.text.split("\n"):
            out.append(json.dumps({"log": part + "\n", "stream": stream,
                                   "time": stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}) + "\n")
    return "".join(out)


def test_kubernetes_daemonset_config(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    containers = tmp_path / "containers"
    containers.mkdir()
    cri_file = containers / "web-7c9_shop_nginx-0a1b.log"
    docker_file = containers / "legacy-5d4_shop_nginx-9f8e.log"
    cri_file.touch()
    docker_file.touch()
    (tmp_path / "state" / "state").mkdir(parents=True)  # the DaemonSet's hostPath volume
    to_serve, back = free_port(), free_port()
    with elasticsearch(tls) as es:
        replace = {
            "/var/log/containers/": f"{containers}/",
            "/var/fluent-bit/": f"{tmp_path}/state/",
            "/etc/fluent-bit/elasticsearch-ca.crt": str(tls.ca),
            "host: elasticsearch.logging.svc": "host: 127.0.0.1",
            "port: 9200": f"port: {es.port}",
            **_forward_ports(True, to_serve, back),
        }
        conf = render(CONFIGS / "kubernetes.yaml", tmp_path / "fb", replace)
        hop = serve(*loop_args(to_serve, back))
        proc = fluent_bit(conf)
        lines = corpus(custom_format=False)
        try:
            wait_until(lambda: (opened_by_any(cri_file) and opened_by_any(docker_file))
                       or not proc.alive(), "the container logs to be followed")
            with open(cri_file, "a") as out:
                out.write(_cri(lines))
            with open(docker_file, "a") as out:
                out.write(_docker(lines))
            wait_until(lambda: len(es.documents) >= 2 * len(lines) or not proc.alive(),
                       "documents", 60)
            assert proc.alive(), proc.tail()
        finally:
            proc.stop()
            hop.stop()
    _check_es(es)
    for path in (cri_file, docker_file):
        tag = "enriched.kube." + str(path).strip("/").replace("/", ".")
        got = [a for a in es_arrivals(es) if a.tag == tag]
        check_arrivals(lines, got, tags={"error": tag, "access": tag},
                       label=f"kubernetes.yaml ({path.name}), es rejects {len(es.rejects)}")
        streams = {(raw_text(a.record) or "").rstrip("\n"): a.record.get("stream") for a in got}
        assert all(streams[line.text] == ("stderr" if line.stream == "error" else "stdout")
                   for line in lines)


# -- the secure forward loop --------------------------------------------------------------------


def _secure_setup(tmp: Path, es: ElasticStandIn, tls: Tls, to_serve: int, back: int) -> Path:
    fb_cert = make_tls(tmp / "fb-tls")  # Fluent Bit's own in_forward certificate
    replace = {
        **_replacements(tmp, tls, es, False),
        **_forward_ports(False, to_serve, back),
        "/etc/fluent-bit/tls/ca.crt": str(tls.ca),
        "/etc/fluent-bit/tls/fluent-bit.crt": str(fb_cert.cert),
        "/etc/fluent-bit/tls/fluent-bit.key": str(fb_cert.key),
    }
    (tmp / "fb-ca.crt").write_bytes(fb_cert.ca.read_bytes())
    return render(CONFIGS / "forward-loop-secure.conf", tmp / "fb", replace,
                  ["forward-loop-parsers.conf"])


def _bad_sender(tmp: Path, name: str, port: int, output: str) -> Proc:
    """A Fluent Bit sending numbered lines to `port` with a wrong setup."""
    conf = tmp / f"{name}.conf"
    conf.write_text(f"""[SERVICE]
    Flush      1
    Log_Level  info
[INPUT]
    Name   dummy
    Tag    bad.{name}
    Dummy  {{"log": "{name}: INTRUDER"}}
    Rate   5
[OUTPUT]
    Name                  forward
    Match                 *
    Host                  127.0.0.1
    Port                  {port}
    Require_ack_response  On
    Retry_Limit           no_limits
{output}
""")
    return fluent_bit(conf)


def test_secure_forward_loop_refuses_wrong_senders(tmp_path: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    prepare_logs(tmp_path / "logs")
    key = "s3cret-shared-key"
    to_serve, back = free_port(), free_port()
    with elasticsearch(tls) as es:
        conf = _secure_setup(tmp_path, es, tls, to_serve, back)
        hop = serve("--listen", f"127.0.0.1:{to_serve}", "--tls-cert", str(tls.cert),
                    "--tls-key", str(tls.key), "--to", f"forward+tls://127.0.0.1:{back}",
                    "--to-tls-ca", str(tmp_path / "fb-ca.crt"), "--tag-prefix", "enriched",
                    "--log-format", CUSTOM_FORMAT,
                    environ=env(NGX_ENRICH_SHARED_KEY=key, NGX_ENRICH_TO_SHARED_KEY=key))
        bad = [
            _bad_sender(tmp_path, "wrong-key", to_serve, "    Shared_Key  not-the-key\n"
                        "    Self_Hostname  intruder\n    tls  On\n    tls.verify  Off"),
            _bad_sender(tmp_path, "plain-text", to_serve, "    Shared_Key  " + key),
            _bad_sender(tmp_path, "no-key", to_serve, "    tls  On\n    tls.verify  Off"),
        ]
        proc = fluent_bit(conf, NGX_ENRICH_SHARED_KEY=key)
        lines = corpus()
        try:
            got = _deliver(proc, es, tmp_path / "logs", lines)
            append(tmp_path / "logs", list(numbered(100)))  # the good sender keeps going
            wait_until(lambda: len(es.documents) >= len(lines) + 100, "more documents")
        finally:
            for sender in bad:
                sender.stop()
            proc.stop()
            hop.stop()
    assert not [a for a in es_arrivals(es) if "INTRUDER" in (raw_text(a.record) or "")]
    check_arrivals(lines, [a for a in got if "/n/" not in (raw_text(a.record) or "")],
                   tags={k: f"enriched.{v}" for k, v in TAGS.items()},
                   label=f"forward-loop-secure.conf, es rejects {len(es.rejects)}")
    _check_es(es)
    refusals = hop.text()
    assert "shared key mismatch" in refusals
    assert "handshake" in refusals


# -- faults --------------------------------------------------------------------------------------


def _loop_with_two_processes(tmp: Path, es: ElasticStandIn, tls: Tls, to_serve: int,
                             back: int) -> tuple[Path, Path]:
    """forward-loop.conf split in two: the tailing sender and the receiving next hop."""
    # the sender's own in_forward (hop 2) is left idle on a port nobody uses
    conf = render(CONFIGS / "forward-loop.conf", tmp / "fb",
                  {**_replacements(tmp, tls, es, False),
                   **_forward_ports(False, to_serve, free_port())}, ["forward-loop-parsers.conf"])
    receiver = tmp / "receiver.conf"
    receiver.write_text(f"""[SERVICE]
    Flush  1
    storage.path  {tmp}/receiver-storage
[INPUT]
    Name  forward
    Listen  127.0.0.1
    Port  {back}
    storage.type  filesystem
[OUTPUT]
    Name  es
    Match  *
    Host  127.0.0.1
    Port  {es.port}
    tls  On
    tls.verify  On
    tls.ca_file  {tls.ca}
    HTTP_User  elastic
    HTTP_Passwd  {PASSWORD}
    Suppress_Type_Name  On
    Logstash_Format  On
    Logstash_Prefix  nginx
    Time_Key_Nanos  On
    Include_Tag_Key  On
    Tag_Key  fluent_tag
    Buffer_Size  False
    Retry_Limit  no_limits
""")
    return conf, receiver


def _numbers_in(es: ElasticStandIn) -> list[int]:
    return numbers(raw_text(source) or "" for _, _, source in list(es.documents))


def test_serve_killed_mid_stream_loses_nothing(tmp_path: Path) -> None:
    """Require_ack_response On: kill -9 serve in a 50,000-line stream; every line arrives."""
    tls = make_tls(tmp_path / "tls")
    prepare_logs(tmp_path / "logs")
    to_serve, back = free_port(), free_port()
    total = 50_000
    with elasticsearch(tls) as es:
        conf = render(CONFIGS / "forward-loop.conf", tmp_path / "fb",
                      {**_replacements(tmp_path, tls, es, False),
                       **_forward_ports(False, to_serve, back)}, ["forward-loop-parsers.conf"])
        args = loop_args(to_serve, back)
        hop = serve(*args)
        proc = fluent_bit(conf)
        logs = tmp_path / "logs"
        try:
            wait_until(lambda: opened_by_any(logs / "error.log"), "the log to be followed")
            lines = list(numbered(total))
            append(logs, lines[: total // 2])
            wait_until(lambda: len(es.documents) > 1000, "the first documents", 60)
            hop.kill()
            append(logs, lines[total // 2:])
            hop = serve(*args)
            try:
                wait_until(lambda: len(set(_numbers_in(es))) >= total, f"all {total} numbers",
                           300, 0.5)
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {len(set(_numbers_in(es)))} arrived, rejects "
                                     f"{es.rejects[:2]}\n{proc.tail(20)}\n{hop.tail(10)}") from None
        finally:
            proc.stop()
            hop.stop()
    got = _numbers_in(es)
    assert set(got) == set(range(total))
    assert not es.rejects
    print(f"\nFluent Bit -> serve (kill -9) -> Fluent Bit -> es: {total} lines, {len(got)} "
          f"documents, {len(got) - total} duplicates")


def test_next_hop_down_for_30s_serve_stays_flat(tmp_path: Path) -> None:
    """The next hop stops for 30 s while Fluent Bit keeps sending; serve's memory stays flat
    and every line arrives once the hop is back."""
    tls = make_tls(tmp_path / "tls")
    prepare_logs(tmp_path / "logs")
    to_serve, back = free_port(), free_port()
    with elasticsearch(tls) as es:
        sender_conf, receiver_conf = _loop_with_two_processes(tmp_path, es, tls, to_serve, back)
        hop = serve(*loop_args(to_serve, back), "--retry-timeout", "10")
        receiver = fluent_bit(receiver_conf)
        sender = fluent_bit(sender_conf)
        logs = tmp_path / "logs"
        total = 0
        try:
            wait_until(lambda: opened_by_any(logs / "error.log"), "the log to be followed")
            append(logs, list(numbered(5_000)))
            total = 5_000
            wait_until(lambda: len(set(_numbers_in(es))) >= 5_000, "the first lines", 60)
            before = peak_rss_kib(hop.pid)
            receiver.stop()
            for _ in range(30):  # Fluent Bit keeps sending while the next hop is away
                append(logs, list(numbered(1_000, total)))
                total += 1_000
                subprocess.run(["sleep", "1"], check=True)
                assert hop.alive(), hop.tail()
            during = peak_rss_kib(hop.pid)
            receiver = fluent_bit(receiver_conf)
            wait_until(lambda: len(set(_numbers_in(es))) >= total, f"all {total} lines", 240,
                       0.5)
        finally:
            sender.stop()
            receiver.stop()
            hop.stop(signal.SIGTERM)
    got = _numbers_in(es)
    assert not es.rejects
    assert set(got) == set(range(total))
    assert during - before < 30 * 1024, (before, during)
    print(f"\nnext hop down 30 s: {total} lines, {len(got) - total} duplicates; serve peak "
          f"RSS {before / 1024:.1f} MiB before, {during / 1024:.1f} MiB after the outage")
