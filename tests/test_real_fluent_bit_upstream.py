"""fluent-bit/forward-upstream.conf: the real Fluent Bit balancing over two `serve` nodes.

Fluent Bit's forward output sends each flush to the next node of `serve-nodes.conf` in turn.
Both `ngx-enrich serve` nodes send the enriched events back to the same Fluent Bit, whose es
output writes to the Elasticsearch stand-in (tests/es_standin.py). Numbered Nginx error and
access lines are appended in slices, as a busy server writes them; every number must arrive
enriched with its category. The nodes run with a tag prefix each (enriched.serve1,
enriched.serve2: the document's fluent_tag tells which node enriched it) or, as the config's
comment starts them, with one prefix for both.

The failover test kills a node with SIGKILL in the middle of the stream and leaves it dead. It
picks the worst moment: a relay between that node and the return input holds back the ack of
an enriched chunk and kills the node, so the return input has the events but Fluent Bit never
hears of it and sends the chunk again, through the other node.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
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
    category_of,
    check_arrivals,
    corpus,
    env,
    free_port,
    make_tls,
    numbered,
    numbered_access,
    numbers,
    opened_by_any,
    prepare_logs,
    raw_text,
    render,
    serve,
    wait_for_count,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    FLUENT_BIT is None, reason="no Fluent Bit: set FLUENT_BIT or put fluent-bit on PATH")

CONFIGS = ROOT / "fluent-bit"
PASSWORD = "es-test-password"
NODES = ("serve1", "serve2")
OWN_PREFIXES = ("enriched.serve1", "enriched.serve2")
ONE_PREFIX = ("enriched", "enriched")
# what the shipped files say, replaced by free ports
NODE_PORTS = ("port                  24225", "port                  24226")
BACK_PORT = "Port           24224"


@contextlib.contextmanager
def elasticsearch(tls: Tls) -> Iterator[ElasticStandIn]:
    out = subprocess.run([sys.executable, "-m", "ngx_enrich", "export", "es-template"],
                         capture_output=True, check=True, cwd=ROOT)
    with ElasticStandIn(json.loads(out.stdout), tls=(str(tls.cert), str(tls.key))) as es:
        yield es


def fluent_bit(conf: Path) -> Proc:
    assert FLUENT_BIT is not None
    return Proc([FLUENT_BIT, "-c", str(conf)], cwd=conf.parent,
                environ=env(ES_PASSWORD=PASSWORD), name="fluent-bit")


def render_upstream(tmp: Path, es_port: int, ca: Path, nodes: list[int], back: int) -> Path:
    """forward-upstream.conf and serve-nodes.conf with paths and ports changed."""
    folder = tmp / "fb"
    conf = render(CONFIGS / "forward-upstream.conf", folder, {
        "/var/log/nginx/": f"{tmp}/logs/",
        "/var/lib/fluent-bit/": f"{tmp}/state/",
        "/etc/fluent-bit/elasticsearch-ca.crt": str(ca),
        "Port                 9200": f"Port                 {es_port}",
        BACK_PORT: f"Port           {back}",
    }, ["forward-loop-parsers.conf"])
    render(CONFIGS / "serve-nodes.conf", folder,
           {old: f"port                  {port}"
            for old, port in zip(NODE_PORTS, nodes, strict=True)})
    return conf


def start_node(port: int, back: int, prefix: str) -> Proc:
    """`serve` as the config's comment starts a node (plus the corpus's custom format)."""
    return serve("--listen", f"127.0.0.1:{port}", "--to", f"forward://127.0.0.1:{back}",
                 "--tag-prefix", prefix, "--log-format", CUSTOM_FORMAT)


def mixed(count: int) -> list[Line]:
    """Numbered lines 0..count-1: even numbers error lines, odd ones access lines."""
    return [next(numbered(1, n)) if n % 2 == 0 else next(numbered_access(1, n))
            for n in range(count)]


def feed(logs: Path, lines: list[Line], slices: int, pause: float,
         between: Callable[[int], None] | None = None) -> None:
    """Append `lines` in `slices` parts, `pause` seconds apart, as a busy Nginx writes."""
    size = -(-len(lines) // slices)
    for k in range(slices):
        if between is not None:
            between(k)
        append(logs, lines[k * size:(k + 1) * size])
        time.sleep(pause)


def followed(proc: Proc, logs: Path) -> None:
    wait_until(lambda: (opened_by_any(logs / "error.log") and opened_by_any(logs / "access.log"))
               or not proc.alive(), "the logs to be followed")
    assert proc.alive(), proc.tail()


@dataclass(frozen=True)
class Doc:
    number: int
    tag: str
    doc_id: str
    source: dict[str, Any]

    @property
    def prefix(self) -> str:
        """enriched.serve1.nginx.error -> enriched.serve1."""
        return self.tag.rsplit(".", 2)[0]


def numbered_docs(es: ElasticStandIn) -> list[Doc]:
    """Every numbered document written, in order (a rewrite of an _id counts again)."""
    out = []
    for _index, doc_id, source in list(es.documents):
        found = numbers([raw_text(source) or ""])
        if found:
            out.append(Doc(found[0], source.get("fluent_tag", ""), doc_id, source))
    return out


def distinct(es: ElasticStandIn) -> int:
    return len({d.number for d in numbered_docs(es)})


def check_numbered(lines: list[Line], docs: list[Doc], prefixes: tuple[str, ...]) -> None:
    """Every numbered line arrived, enriched with its category, tagged by a node."""
    problems = []
    for doc in docs:
        line = lines[doc.number]
        if category_of(doc.source) != line.category:
            problems.append(f"{doc.number}: category {category_of(doc.source)} != "
                            f"{line.category}")
        if doc.prefix not in prefixes or doc.tag != f"{doc.prefix}.nginx.{line.stream}":
            problems.append(f"{doc.number}: tag {doc.tag}")
        if (raw_text(doc.source) or "").rstrip("\n") != line.text:
            problems.append(f"{doc.number}: text {raw_text(doc.source)!r}")
    missing = set(range(len(lines))) - {d.number for d in docs}
    assert not missing, f"{len(missing)} numbers missing, e.g. {sorted(missing)[:5]}"
    assert not problems, "\n".join(problems[:20])


def test_two_nodes_share_the_stream(tmp_path: Path) -> None:
    """Both nodes enrich a share; every record arrives exactly once."""
    tls = make_tls(tmp_path / "tls")
    prepare_logs(tmp_path / "logs")
    ports, back = [free_port(), free_port()], free_port()
    total = 20_000
    with elasticsearch(tls) as es:
        conf = render_upstream(tmp_path, es.port, tls.ca, ports, back)
        nodes = [start_node(port, back, prefix)
                 for port, prefix in zip(ports, OWN_PREFIXES, strict=True)]
        proc = fluent_bit(conf)
        logs = tmp_path / "logs"
        golden = corpus()
        lines = mixed(total)
        try:
            followed(proc, logs)
            started = time.monotonic()
            append(logs, golden)
            feed(logs, lines, 20, 0.25)
            try:
                wait_for_count(lambda: len(es.documents), total + len(golden),
                               f"{total + len(golden)} documents", stop=lambda: not proc.alive())
            except AssertionError:
                raise AssertionError(f"{len(es.documents)} documents, {distinct(es)} numbers; "
                                     f"rejects {es.rejects[:2]}\n{proc.tail(20)}") from None
            took = time.monotonic() - started
            time.sleep(2)  # a duplicate would come now
        finally:
            proc.stop()
            for node in nodes:
                node.stop()
    assert not es.rejects, es.rejects[:3]
    docs = numbered_docs(es)
    check_numbered(lines, docs, OWN_PREFIXES)
    assert len(docs) == total, f"{len(docs) - total} duplicates"
    # the corpus: categories, the line's own time, and the tag once the node is taken out
    others = [Arrival(source["fluent_tag"].replace(".serve1.", ".").replace(".serve2.", "."),
                      dt.datetime.fromisoformat(source["@timestamp"][:19] + "+00:00")
                      .timestamp(), source)
              for _, _, source in es.documents if not numbers([raw_text(source) or ""])]
    check_arrivals(golden, others, tags={"error": "enriched.nginx.error",
                                         "access": "enriched.nginx.access"})
    shares = Counter(d.prefix for d in docs)
    print(f"\ntwo serve nodes: {total} numbered lines + {len(golden)} corpus records in, "
          f"{len(docs)} numbered arrived, 0 duplicates, {took:.1f} s; share "
          + ", ".join(f"{p} {shares[p]}" for p in OWN_PREFIXES))
    for prefix in OWN_PREFIXES:
        assert shares[prefix] >= total // 5, shares  # round-robin: neither node starves


# -- a node killed in the middle of the stream ---------------------------------------------------


class AckTrap:
    """A relay between a node and its next hop; counts what the node delivered and, once
    armed, holds back the next ack and calls `on_ack` (which kills the node) instead."""

    def __init__(self, target: int, on_ack: Callable[[], None]) -> None:
        self.target = target
        self.on_ack = on_ack
        self.armed = threading.Event()
        self.fired = threading.Event()
        self.delivered = 0  # events the next hop acked
        self.held = 0  # events of the chunk whose ack was held back
        self._sizes: dict[str, int] = {}
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                node, _ = self._server.accept()
            except OSError:
                return
            hop = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._requests, args=(node, hop), daemon=True).start()
            threading.Thread(target=self._acks, args=(hop, node), daemon=True).start()

    def _requests(self, node: socket.socket, hop: socket.socket) -> None:
        unpacker = msgpack.Unpacker(raw=False)
        with contextlib.suppress(OSError):
            while data := node.recv(1 << 16):
                unpacker.feed(data)
                for message in unpacker:
                    options = message[-1] if isinstance(message[-1], dict) else {}
                    if "chunk" in options:
                        self._sizes[options["chunk"]] = int(options.get("size", 0))
                hop.sendall(data)
        with contextlib.suppress(OSError):
            hop.shutdown(socket.SHUT_WR)

    def _acks(self, hop: socket.socket, node: socket.socket) -> None:
        unpacker = msgpack.Unpacker(raw=False)
        with contextlib.suppress(OSError):
            while data := hop.recv(1 << 16):
                unpacker.feed(data)
                for message in unpacker:
                    ack = message.get("ack") if isinstance(message, dict) else None
                    size = self._sizes.get(ack, 0) if isinstance(ack, str) else 0
                    if self.armed.is_set() and not self.fired.is_set():
                        self.held = size
                        self.on_ack()
                        self.fired.set()
                        node.close()
                        hop.close()
                        return
                    self.delivered += size
                    node.sendall(msgpack.packb(message))


@pytest.mark.parametrize("prefixes", [OWN_PREFIXES, ONE_PREFIX], ids=["own-prefix", "one-prefix"])
def test_node_killed_mid_stream_the_other_takes_over(prefixes: tuple[str, str],
                                                     tmp_path: Path) -> None:
    """kill -9 one node in a 30,000-line stream (after the return input acked its chunk, before
    it acked Fluent Bit) and leave it dead: every line arrives, through the other node."""
    tls = make_tls(tmp_path / "tls")
    prepare_logs(tmp_path / "logs")
    ports, back = [free_port(), free_port()], free_port()
    total, slices = 30_000, 30
    nodes: list[Proc] = []
    traps = [AckTrap(back, lambda: None), AckTrap(back, lambda: nodes[1].kill())]
    with elasticsearch(tls) as es:
        conf = render_upstream(tmp_path, es.port, tls.ca, ports, back)
        nodes += [start_node(port, trap.port, prefix)
                  for port, trap, prefix in zip(ports, traps, prefixes, strict=True)]
        proc = fluent_bit(conf)
        logs = tmp_path / "logs"
        lines = mixed(total)
        halfway = threading.Event()

        def mark(k: int) -> None:
            if k == slices // 2:
                halfway.set()

        feeder = threading.Thread(target=feed, args=(logs, lines, slices, 0.2, mark),
                                  daemon=True)
        try:
            followed(proc, logs)
            started = time.monotonic()
            feeder.start()
            assert halfway.wait(30)
            wait_until(lambda: all(t.delivered for t in traps), "both nodes to deliver", 20)
            before = [t.delivered for t in traps]
            traps[1].armed.set()
            wait_until(traps[1].fired.is_set, "serve2's next ack", 20, 0.01)
            killed = time.monotonic()
            assert not nodes[1].alive()
            feeder.join(60)
            held = traps[1].held

            def indexed() -> bool:
                if prefixes == OWN_PREFIXES:  # the replay's tag names serve1: new _ids
                    return len(es.documents) >= total + held
                # the same tag, the same _id: Elasticsearch refuses the replay as existing
                return len(es.documents) >= total and len(es.conflicts) >= held

            try:
                # serve1 delivers the rest and the replay of the chunk serve2 died with (serve2's
                # delivered count excludes it); normally well within 60 s, but a chunk can be
                # retried on the dead node again and again, each time after a longer backoff
                wait_until(lambda: (sum(t.delivered for t in traps) >= total and indexed())
                           or not proc.alive(), f"all {total} lines and the replay", 120, 0.25)
            except AssertionError:
                raise AssertionError(f"{distinct(es)} of {total} numbers; delivered "
                                     f"{[t.delivered for t in traps]}, held {held}; rejects "
                                     f"{es.rejects[:2]}\n{proc.tail(20)}") from None
            took, after_kill = time.monotonic() - started, time.monotonic() - killed
            time.sleep(1)  # let the last documents in
        finally:
            proc.stop()
            for node in nodes:
                node.stop()
            for trap in traps:
                trap.close()
    assert not es.rejects, es.rejects[:3]
    docs = numbered_docs(es)
    check_numbered(lines, docs, prefixes)
    stored = len({d.doc_id for d in docs})  # what the index holds: one per _id
    log = proc.err + proc.out
    unacked = sum("cannot get ack" in line for line in log)
    refused = sum("no upstream connections available" in line for line in log)
    retried = sum("succeeded at retry" in line for line in log)
    delivered = [t.delivered for t in traps]
    print(f"\nserve2 killed with -9 ({', '.join(sorted(set(prefixes)))}): {total} lines in, "
          f"{len(docs)} documents stored ({len(docs) - total} duplicates), "
          f"{len(es.conflicts)} refused as existing (409); chunk replayed: {held} "
          f"events; delivered by serve1/serve2 before the kill {before[0]}/{before[1]}, in all "
          f"{delivered[0]}/{delivered[1]}; flushes to serve2: unacked {unacked}, refused "
          f"{refused}; {retried} chunks delivered on a retry; all in {took:.1f} s, "
          f"{after_kill:.1f} s after the kill")
    assert all(before) and delivered[0] > delivered[1]  # both took a share; serve1 took over
    assert unacked >= 1 and held > 0
    assert stored == len(docs)  # nothing written twice under one _id
    if prefixes == OWN_PREFIXES:
        assert len(docs) >= total + held
    else:
        assert len(docs) == total
        assert len(es.conflicts) >= held


# -- every node asks for acks --------------------------------------------------------------------


class _Probe(socketserver.ThreadingTCPServer):
    """A forward input that records the options of each request and acks it."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        self.options: list[dict[str, Any] | None] = []
        super().__init__(("127.0.0.1", port), _ProbeHandler)


class _ProbeHandler(socketserver.BaseRequestHandler):
    server: _Probe

    def handle(self) -> None:
        unpacker = msgpack.Unpacker(raw=False)
        while data := self.request.recv(65536):
            unpacker.feed(data)
            for message in unpacker:
                options = message[-1] if isinstance(message[-1], dict) else None
                self.server.options.append(options)
                if options and "chunk" in options:
                    self.request.sendall(msgpack.packb({"ack": options["chunk"]}))


def test_every_node_asks_for_acks(tmp_path: Path) -> None:
    """With an Upstream file, Fluent Bit reads require_ack_response from each node only: the
    shipped serve-nodes.conf must ask every node for acks, or a killed node loses data."""
    tls = make_tls(tmp_path / "tls")
    prepare_logs(tmp_path / "logs")
    ports, back = [free_port(), free_port()], free_port()
    probes = [_Probe(port) for port in ports]
    for probe in probes:
        threading.Thread(target=probe.serve_forever, daemon=True).start()
    conf = render_upstream(tmp_path, free_port(), tls.ca, ports, back)
    proc = fluent_bit(conf)
    logs = tmp_path / "logs"
    try:
        followed(proc, logs)
        feed(logs, mixed(40), 4, 1.2)  # a few flushes: each node gets some
        wait_until(lambda: all(p.options for p in probes) or not proc.alive(),
                   "both nodes to get requests", 15)
    finally:
        proc.stop()
        for probe in probes:
            probe.shutdown()
            probe.server_close()
    for port, probe in zip(ports, probes, strict=True):
        assert probe.options, f"node {port} got nothing"
        assert all(o and "chunk" in o for o in probe.options), (port, probe.options)
