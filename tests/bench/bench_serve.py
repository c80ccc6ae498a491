"""Throughput and memory of `ngx-enrich serve` fed PackedForward batches over loopback.

    python tests/bench/bench_serve.py [--records N] [--batch 1000] [--connections 1]
                                      [--to stdout|forward] [--no-enrich]

Each batch is sent with a `chunk` option and the sender waits for its ack before sending the
next, as Fluent Bit does with `Require_ack_response On`. `--to stdout` writes JSON lines to
/dev/null; `--to forward` sends to an acking receiver in this process. Prints records/s and the
server's peak RSS (VmHWM of the child, read before it stops) next to its RSS when idle.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack

ROOT = Path(__file__).resolve().parents[2]
SERVE = """
import argparse, sys
from ngx_enrich.forward import command
from ngx_enrich.pipeline import Enricher, Options

class PassThrough(Enricher):
    def enrich_record(self, record):
        return record

parser = argparse.ArgumentParser()
parser.add_argument("--no-enrich", action="store_true")
command.add_arguments(parser)
args = parser.parse_args(sys.argv[1:])
sys.exit(command.run(args, PassThrough() if args.no_enrich else Enricher(Options())))
"""
ERROR = (
    "2026/04/08 21:07:15 [error] 2211#2211: *{c} connect() failed (111: Connection refused) "
    'while connecting to upstream, client: 203.0.113.{n}, server: example.com, request: "GET '
    '/api/{c} HTTP/1.1", upstream: "http://10.0.0.{n}:8080/api/{c}", host: "example.com"'
)
TIMEOUT = (
    "2026/04/08 21:07:15 [error] 2211#2211: *{c} upstream timed out (110: Connection timed out) "
    "while reading response header from upstream, client: 198.51.100.{n}, server: example.com, "
    'request: "POST /checkout HTTP/1.1", upstream: "http://10.0.0.{n}:8080/checkout"'
)
ACCESS = (
    '203.0.113.{n} - - [08/Apr/2026:21:07:15 +0000] "GET /items/{c} HTTP/1.1" {status} {c} '
    '"https://example.com/" "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36"'
)


def batches(records: int, size: int) -> list[tuple[bytes, str]]:
    """Pre-built PackedForward frames with their chunk ids."""
    rnd = random.Random(7)
    frames = []
    for start in range(0, records, size):
        payload = bytearray()
        count = min(size, records - start)
        for i in range(start, start + count):
            n, c = rnd.randrange(1, 250), 1000 + i
            line = rnd.choice((ERROR, TIMEOUT, ACCESS, ACCESS)).format(
                c=c, n=n, status=rnd.choice((200, 200, 404, 499, 502))
            )
            when = msgpack.ExtType(0, struct.pack(">II", 1775682435, i % 1_000_000_000))
            payload += msgpack.packb([when, {"log": line}])
        chunk = f"bench-{start}"
        options = {"size": count, "chunk": chunk}
        frames.append((msgpack.packb(["nginx.bench", bytes(payload), options]), chunk))
    return frames


def send_all(port: int, frames: list[tuple[bytes, str]]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        unpacker = msgpack.Unpacker()
        for frame, chunk in frames:
            sock.sendall(frame)
            while True:
                reply = next(unpacker, None)
                if reply is not None:
                    break
                data = sock.recv(4096)
                if not data:
                    raise SystemExit("serve closed the connection")
                unpacker.feed(data)
            if reply != {"ack": chunk}:
                raise SystemExit(f"unexpected reply {reply!r}")


def acking_receiver() -> int:
    """A next hop that acks everything; returns its port."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        unpacker = msgpack.Unpacker()
        with conn:
            while data := conn.recv(1 << 20):
                unpacker.feed(data)
                for _tag, _entries, options in unpacker:
                    conn.sendall(msgpack.packb({"ack": options["chunk"]}))

    def accept() -> None:
        while True:
            conn, _ = server.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server.getsockname()[1]


def memory_kib(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--to", choices=("stdout", "forward"), default="stdout")
    parser.add_argument("--no-enrich", action="store_true", help="measure the protocol alone")
    opts = parser.parse_args()

    dest = "stdout" if opts.to == "stdout" else f"forward://127.0.0.1:{acking_receiver()}"
    cmd = [sys.executable, "-c", SERVE, "--listen", "127.0.0.1:0", "--to", dest]
    if opts.no_enrich:
        cmd.append("--no-enrich")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True
    )
    assert proc.stderr is not None
    port = 0
    for line in proc.stderr:
        if "listening on 127.0.0.1:" in line:
            port = int(line.split("listening on 127.0.0.1:")[1].split(",")[0])
            break
    if not port:
        raise SystemExit("serve did not start")
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    idle = memory_kib(proc.pid, "VmRSS")
    frames = batches(opts.records, opts.batch)

    # warm up (first-use caches, imports), then measure
    send_all(port, batches(opts.batch, opts.batch))
    shares = [frames[i :: opts.connections] for i in range(opts.connections)]
    workers = [threading.Thread(target=send_all, args=(port, share)) for share in shares]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start

    peak = memory_kib(proc.pid, "VmHWM")
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    mode = "pass-through" if opts.no_enrich else "enriched"
    print(
        f"serve --to {opts.to} ({mode}): {opts.records} records in batches of {opts.batch} "
        f"over {opts.connections} connection(s): {opts.records / elapsed:,.0f} records/s"
    )
    print(f"serve peak RSS {peak / 1024:.1f} MiB (idle {idle / 1024:.1f} MiB)")
    if proc.returncode != 0:
        raise SystemExit(f"serve exited with {proc.returncode}")


if __name__ == "__main__":
    main()
