"""Seeded, realistic inputs for `compare.py`: Nginx error and access lines, their Fluent Bit
JSON, Fluentd exec_filter msgpack and PackedForward forms, and a 500-rule user rules file.

Every generator is deterministic for a given seed; lines are unique (connection ids, ids in
paths, sizes and times move), so bounded caches see a realistic share of misses.
"""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import msgpack
import orjson

START = datetime(2026, 4, 8, 21, 7, 15, tzinfo=UTC)
SERVERS = ("example.com", "www.example.com", "api.example.com", "shop.example.net",
           "static.example.org", "admin.example.com", "cdn.example.com", "_")
WORDS = ("cart", "shoes", "red", "invoice", "user", "report", "search", "blue", "linux",
         "nginx", "coffee", "sale", "summer", "tent", "laptop", "phone", "gift", "book")
HASHES = tuple(f"{random.Random(h).getrandbits(32):08x}" for h in range(40))
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "curl/8.5.0", "python-requests/2.31.0", "Go-http-client/1.1", "kube-probe/1.29",
    "Prometheus/2.51.0", "okhttp/4.12.0", "Wget/1.21.4",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0",
)
# (weight, status) of access lines: mostly 200/304, a realistic tail of errors
STATUSES = ((700, 200), (110, 304), (25, 301), (20, 302), (8, 206), (55, 404), (10, 401),
            (8, 403), (15, 499), (15, 502), (10, 504), (8, 503), (5, 500), (4, 400),
            (3, 413), (2, 429), (2, 201), (1, 204))

# (weight, level, message, context) of the common error messages. Context: "up" full tail
# with upstream, "fcgi" the same to php-fpm, "req" client/server/request/host, "conn"
# client and listen address, "none" a process-level line without connection id.
COMMON: tuple[tuple[int, str, str, str], ...] = (
    (90, "error", "connect() failed (111: Connection refused) while connecting to upstream",
     "up"),
    (70, "error", "upstream timed out (110: Connection timed out) while reading response "
     "header from upstream", "up"),
    (30, "error", "upstream timed out (110: Connection timed out) while connecting to upstream",
     "up"),
    (35, "error", "recv() failed (104: Connection reset by peer) while reading response header "
     "from upstream", "up"),
    (110, "error", 'open() "{root}{file}" failed (2: No such file or directory)', "req"),
    (15, "crit", 'open() "{root}{file}" failed (13: Permission denied)', "req"),
    (25, "error", "access forbidden by rule", "req"),
    (12, "error", "client intended to send too large body: {big} bytes", "req"),
    (40, "error", 'limiting requests, excess: {excess} by zone "{zone}"', "req"),
    (15, "warn", 'delaying request, excess: {excess} by zone "{zone}"', "req"),
    (12, "error", 'limiting connections by zone "{zone}"', "req"),
    (45, "info", "SSL_do_handshake() failed (SSL: error:0A00010B:SSL routines::wrong version "
     "number) while SSL handshaking", "tls"),
    (20, "info", "SSL_do_handshake() failed (SSL: error:0A000102:SSL routines::unsupported "
     "protocol) while SSL handshaking", "tls"),
    (10, "info", "SSL_do_handshake() failed (SSL: error:0A0000C1:SSL routines::no shared "
     "cipher) while SSL handshaking", "tls"),
    (20, "info", "peer closed connection in SSL handshake while SSL handshaking", "tls"),
    (30, "error", "upstream prematurely closed connection while reading response header from "
     "upstream", "up"),
    (10, "error", "upstream prematurely closed connection while reading upstream", "up"),
    (15, "error", "no live upstreams while connecting to upstream", "pool"),
    (40, "error", 'FastCGI sent in stderr: "PHP message: PHP {php}" while reading response '
     "header from upstream", "fcgi"),
    (15, "error", 'FastCGI sent in stderr: "Primary script unknown" while reading response '
     "header from upstream", "fcgi"),
    (6, "error", "upstream prematurely closed FastCGI stdout while reading response header "
     "from upstream", "fcgi"),
    (4, "crit", "connect() to unix:/run/php/php8.2-fpm.sock failed (2: No such file or "
     "directory) while connecting to upstream", "fcgi"),
    (60, "info", "client prematurely closed connection while sending to client", "up"),
    (20, "info", "epoll_wait() reported that client prematurely closed connection, so upstream "
     "connection is closed too while sending request to upstream", "up"),
    (30, "info", "client timed out (110: Connection timed out) while waiting for request",
     "conn"),
    (10, "info", "client timed out (110: Connection timed out) while reading client request "
     "headers", "conn"),
    (25, "info", "client closed connection while waiting for request", "conn"),
    (20, "info", "writev() failed (104: Connection reset by peer) while sending to client",
     "req"),
    (12, "info", "writev() failed (32: Broken pipe) while sending to client", "req"),
    (10, "info", "sendfile() failed (32: Broken pipe) while sending response to client", "req"),
    (8, "info", "SSL_write() failed (32: Broken pipe) while sending to client", "req"),
    (12, "error", "upstream sent too big header while reading response header from upstream",
     "up"),
    (14, "warn", "a client request body is buffered to a temporary file "
     "/var/cache/nginx/client_temp/{tmp:010d}", "req"),
    (10, "warn", "an upstream response is buffered to a temporary file "
     "/var/cache/nginx/proxy_temp/{d1}/{d2:02d}/{tmp:010d} while reading upstream", "up"),
    (8, "error", "{name} could not be resolved (3: Host not found)", "req"),
    (15, "error", 'directory index of "{root}/{word}/" is forbidden', "req"),
    (10, "error", '"{root}/{word}/index.html" is not found (2: No such file or directory)',
     "req"),
    (6, "warn", "1024 worker_connections are not enough, reusing connections", "none"),
    (3, "alert", "1024 worker_connections are not enough", "none"),
    (3, "crit", "accept4() failed (24: Too many open files)", "none"),
    (3, "crit", 'pwrite() "/var/cache/nginx/proxy_temp/{d1}/{d2:02d}/{tmp:010d}" failed '
     "(28: No space left on device) while reading upstream", "up"),
    (8, "error", "connect() failed (113: No route to host) while connecting to upstream", "up"),
    (10, "warn", "upstream server temporarily disabled while connecting to upstream", "up"),
    (10, "info", "client sent invalid method while reading client request line", "conn"),
    (5, "error", 'upstream sent invalid header: "{word}\\x0D..." while reading response header '
     "from upstream", "up"),
    (8, "error", "readv() failed (104: Connection reset by peer) while reading upstream", "up"),
)
PHP = (
    'Warning:  Undefined array key \\"{word}\\" in /var/www/app/src/{Word}.php on line {line}',
    "Fatal error:  Uncaught TypeError: {Word}::get(): Argument #1 ($id) must be of type int, "
    "string given in /var/www/app/src/{Word}.php:{line}",
    "Notice:  Trying to access array offset on value of type null in "
    "/var/www/app/lib/{word}.php on line {line}",
    "Fatal error:  Allowed memory size of 134217728 bytes exhausted (tried to allocate {big} "
    "bytes) in /var/www/app/vendor/{word}/src/Cache.php on line {line}",
)
TAIL_SYSCALLS = ("recv()", "send()", "readv()", "writev()", "sendfile()", "SSL_read()",
                 "SSL_write()", "connect()", "setsockopt(TCP_NODELAY)", "close()", "shutdown()",
                 "pread()", "pwrite()")
TAIL_ERRNOS = ("104: Connection reset by peer", "32: Broken pipe",
               "110: Connection timed out", "111: Connection refused",
               "113: No route to host", "101: Network is unreachable",
               "12: Cannot allocate memory", "9: Bad file descriptor",
               "22: Invalid argument", "5: Input/output error", "107: Transport endpoint "
               "is not connected", "11: Resource temporarily unavailable")
TAIL_ACTIONS = ("", " while reading upstream", " while sending to client",
                " while reading response header from upstream",
                " while sending request to upstream", " while proxying upgraded connection",
                " while SSL handshaking to upstream", " while reading client request body",
                " while sending response to client", " while closing request")
RARE = (
    ("error", "upstream sent duplicate header line: \"Content-Length: {big}\", previous value: "
     "\"Content-Length: {tmp}\" while reading response header from upstream", "up"),
    ("error", "upstream sent invalid chunked response while reading upstream", "up"),
    ("info", "client sent plain HTTP request to HTTPS port while reading client request "
     "headers", "req"),
    ("alert", "zero size buf in output t:0 r:0 f:0 0000000000000000 {tmp:016x}-{tmp:016x} "
     "0000000000000000 0-0", "req"),
    ("info", "http2 flood detected", "conn"),
    ("alert", "ignoring stale global SSL error (SSL: error:0A000126:SSL routines::unexpected "
     "eof while reading)", "req"),
    ("crit", 'cache file "/var/cache/nginx/{d1}/{d2:02d}/{tmp:032x}" has too long header',
     "up"),
    ("emerg", "malloc({big}) failed (12: Cannot allocate memory)", "none"),
    ("info", 'client prematurely closed stream: only {tmp} out of {big} bytes of request body '
     "received", "req"),
    ("error", "upstream sent no valid HTTP/1.0 header while reading response header from "
     "upstream", "up"),
    ("warn", '"ssl_stapling" ignored, issuer certificate not found for certificate '
     '"/etc/ssl/{word}.example.com.pem"', "none"),
    ("error", "could not add new SSL session to the session cache while SSL handshaking",
     "tls"),
    ("info", "client {client} closed keepalive connection (104: Connection reset by peer)",
     "none"),
    ("error", '"{root}/{word}.php" is not a regular file', "req"),
    ("crit", "SSL_shutdown() failed (SSL: error:0A000126:SSL routines::unexpected eof while "
     "reading) while closing request", "req"),
    ("error", 'auth request unexpected status: {line} while sending to client', "req"),
    ("error", 'user "{word}": password mismatch', "req"),
    ("error", "upstream sent too big trailers while reading upstream", "up"),
    ("warn", 'an unknown "{word}" module message, {line} items skipped', "none"),
    ("notice", "signal {d1} (SIGHUP) received from {tmp}, reconfiguring", "none"),
)
INVENTED = ("frobnicator", "spline", "widget", "flux", "quota", "ledger", "shard", "beacon")


class Lines:
    """An endless, seeded stream of unique Nginx lines of one kind ("error" or "access")."""

    def __init__(self, kind: str, seed: int = 7) -> None:
        self.kind = kind
        self.rnd = random.Random(f"{kind}-{seed}")
        self.i = 0
        self._second = -1
        self._stamp = ""
        self.pids = [2211, 2212, 2213, 2214]
        self.cids = dict.fromkeys(self.pids, 1000)
        self._common_cum = list(itertools.accumulate(w for w, *_ in COMMON))
        self._status_cum = list(itertools.accumulate(w for w, _ in STATUSES))
        self.next_line: Callable[[], str] = self._error if kind == "error" else self._access

    def __iter__(self) -> Iterator[str]:
        while True:
            yield self.next_line()

    def take(self, count: int) -> list[str]:
        """The next `count` lines."""
        return [self.next_line() for _ in range(count)]

    # shared parts

    def _time(self, per_second: int, fmt: str) -> str:
        second = self.i // per_second
        if second != self._second:
            self._second = second
            self._stamp = (START + timedelta(seconds=second)).strftime(fmt)
        return self._stamp

    def _client(self) -> str:
        r = self.rnd.random()
        if r < 0.45:
            return f"203.0.113.{self.rnd.randrange(1, 255)}"
        if r < 0.75:
            return f"198.51.{self.rnd.randrange(0, 100)}.{self.rnd.randrange(1, 255)}"
        if r < 0.9:
            return f"192.0.2.{self.rnd.randrange(1, 255)}"
        return f"2001:db8:{self.rnd.randrange(1, 0xffff):x}::{self.rnd.randrange(1, 0xffff):x}"

    def _path(self) -> tuple[str, str]:
        """A request path and the file it maps to."""
        rnd = self.rnd
        r = rnd.random()
        if r < 0.30:
            n = rnd.randrange(1, 9_999_999)
            return rnd.choice((f"/api/v1/orders/{n}", f"/api/v1/users/{n}/profile",
                               f"/api/v2/items?page={n % 500}&limit=50",
                               f"/api/v1/carts/{n}/items")), "/index.php"
        if r < 0.55:
            name = rnd.choice(HASHES)
            path = rnd.choice((f"/static/js/app.{name}.js", f"/static/css/main.{name}.css",
                               f"/static/fonts/inter-{name}.woff2"))
            return path, path
        if r < 0.70:
            path = f"/images/products/{rnd.randrange(1, 400_000)}.{rnd.choice(('jpg', 'webp'))}"
            return path, path
        if r < 0.80:
            q = rnd.choice(WORDS)
            return f"/search?q={q}+{rnd.choice(WORDS)}&page={rnd.randrange(1, 20)}", "/index.php"
        path = rnd.choice(("/", "/login", "/checkout", "/cart", "/health", "/favicon.ico",
                           "/robots.txt", "/wp-login.php", "/.env", "/graphql", "/ws/chat",
                           "/index.php?page=about", "/sitemap.xml", "/admin/", "/xmlrpc.php"))
        return path, "/index.html" if path == "/" else path.split("?")[0]

    def _method(self, path: str) -> str:
        r = self.rnd.random()
        if path.startswith(("/static/", "/images/")):
            return "GET" if r < 0.97 else "HEAD"
        return "GET" if r < 0.75 else "POST" if r < 0.94 else "HEAD" if r < 0.97 else \
            self.rnd.choice(("PUT", "DELETE", "OPTIONS", "PATCH"))

    # error lines

    def _values(self) -> dict[str, object]:
        rnd = self.rnd
        word = rnd.choice(WORDS)
        path, file = self._path()
        return {
            "path": path, "file": file,
            "root": rnd.choice(("/var/www/html", "/srv/www/shop/public", "/usr/share/nginx/html")),
            "big": rnd.randrange(1_100_000, 90_000_000), "excess": f"{rnd.random() * 20:.3f}",
            "zone": rnd.choice(("perip", "login", "api_limit", "per_server", "addr")),
            "tmp": self.i * 7 + rnd.randrange(7), "d1": rnd.randrange(10),
            "d2": rnd.randrange(100), "word": word, "Word": word.title(),
            "line": rnd.randrange(12, 2400), "client": self._client(),
            "name": rnd.choice(("backend.internal", "auth.svc.cluster.local",
                                f"{word}.example.com", "payments.internal")),
        }

    def _error(self) -> str:
        rnd = self.rnd
        self.i += 1
        if self.i % 50_000 == 0:  # a reload: new worker pids
            self.pids = [p + 10 for p in self.pids]
            self.cids.update(dict.fromkeys(self.pids, 1))
        stamp = self._time(20, "%Y/%m/%d %H:%M:%S")
        values = self._values()
        if rnd.random() < 0.10:
            level, message, context = self._long_tail(values)
        else:
            _, level, message, context = rnd.choices(COMMON, cum_weights=self._common_cum)[0]
            if "{php}" in message:
                values["php"] = rnd.choice(PHP).format(**values)
            message = message.format(**values) if "{" in message else message
        pid = rnd.choice(self.pids)
        if context == "none":
            return f"{stamp} [{level}] {pid}#{pid}: {message}"
        self.cids[pid] += rnd.randrange(1, 40)
        return f"{stamp} [{level}] {pid}#{pid}: *{self.cids[pid]} {message}" + \
            self._context(context, str(values["client"]), str(values["path"]))

    def _long_tail(self, values: dict[str, object]) -> tuple[str, str, str]:
        rnd = self.rnd
        r = rnd.random()
        if r < 0.5:
            syscall = rnd.choice(TAIL_SYSCALLS)
            level = rnd.choice(("error", "crit", "info", "alert"))
            message = (f"{syscall} failed ({rnd.choice(TAIL_ERRNOS)})"
                       f"{rnd.choice(TAIL_ACTIONS)}")
            return level, message, "up" if "upstream" in message else "req"
        if r < 0.8:
            level, message, context = rnd.choice(RARE)
            return level, message.format(**values), context
        a, b = rnd.choice(INVENTED), rnd.choice(WORDS)
        return (rnd.choice(("warn", "error", "notice")),
                f"{a} {b} check returned {rnd.randrange(1, 999)} after {rnd.randrange(1, 60)} "
                f"retries", rnd.choice(("req", "none")))

    def _context(self, kind: str, client: str, path: str) -> str:
        rnd = self.rnd
        if kind in ("conn", "tls"):
            port = 443 if kind == "tls" or rnd.random() < 0.5 else 80
            return f", client: {client}, server: 0.0.0.0:{port}"
        server = rnd.choice(SERVERS)
        host = server if server != "_" else rnd.choice(("203.0.113.10", "example.com:8443"))
        method = self._method(path)
        proto = "HTTP/2.0" if rnd.random() < 0.25 else "HTTP/1.1"
        out = f', client: {client}, server: {server}, request: "{method} {path} {proto}"'
        if kind == "up":
            backend = f"10.0.{rnd.randrange(4)}.{rnd.randrange(10, 40)}:" \
                      f"{rnd.choice((8080, 8000, 3000))}"
            out += f', upstream: "http://{backend}{path}"'
        elif kind == "pool":
            out += f', upstream: "http://{rnd.choice(("backend", "app_pool", "api"))}{path}"'
        elif kind == "fcgi":
            sock = rnd.choice(("unix:/run/php/php8.2-fpm.sock:", "127.0.0.1:9000"))
            out += f', upstream: "fastcgi://{sock}"'
        out += f', host: "{host}"'
        if rnd.random() < 0.2:
            out += f', referrer: "https://{host}/{rnd.choice(WORDS)}"'
        return out

    # access lines

    def _access(self) -> str:
        rnd = self.rnd
        self.i += 1
        stamp = self._time(200, "%d/%b/%Y:%H:%M:%S +0000")
        status = rnd.choices(STATUSES, cum_weights=self._status_cum)[0][1]
        path, _ = self._path()
        method = self._method(path)
        proto = "HTTP/2.0" if rnd.random() < 0.3 else "HTTP/1.1"
        if status in (304, 204, 499) or method == "HEAD":
            size = 0
        elif status >= 400:
            size = rnd.choice((153, 157, 162, 167, 555, 4096 + rnd.randrange(200)))
        else:
            size = int(rnd.lognormvariate(8.5, 1.6))
        ref = "-" if rnd.random() < 0.45 else f"https://{rnd.choice(SERVERS[:5])}/" + \
            rnd.choice(("", "cart", "search?q=" + rnd.choice(WORDS), "products"))
        user = "-" if rnd.random() < 0.97 else rnd.choice(WORDS)
        return (f'{self._client()} - {user} [{stamp}] "{method} {path} {proto}" {status} {size} '
                f'"{ref}" "{rnd.choice(AGENTS)}"')


def text_block(lines: list[str]) -> bytes:
    """Raw lines, newline-terminated."""
    return ("\n".join(lines) + "\n").encode()


def json_block(lines: list[str]) -> bytes:
    """Fluent Bit's JSON lines: {"log": "<raw line>"}."""
    dump, nl = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    return b"".join(dump({"log": line}, option=nl) for line in lines)


def msgpack_block(lines: list[str], tag: str) -> bytes:
    """Fluentd exec_filter's msgpack stream: maps whose keys and strings are bin."""
    pack = msgpack.Packer(use_bin_type=True).pack
    btag, when = tag.encode(), b"2026-04-08T21:07:15.123456789+0000"
    return b"".join(pack({b"message": line.encode(), b"fluentd_tag": btag,
                          b"fluentd_time": when}) for line in lines)


def forward_frames(lines: list[str], tag: str, batch: int = 1000) -> list[tuple[bytes, str]]:
    """PackedForward frames (EventTime, {"log": line}) with `chunk` options, as bench_serve."""
    frames = []
    for start in range(0, len(lines), batch):
        part = lines[start:start + batch]
        payload = b"".join(
            msgpack.packb([msgpack.ExtType(0, struct.pack(">II", 1775682435 + (start + i) // 20,
                                                          (start + i) * 1009 % 1_000_000_000)),
                           {"log": line}]) for i, line in enumerate(part))
        chunk = f"bench-{tag}-{start}"
        frames.append((msgpack.packb([tag, payload, {"size": len(part), "chunk": chunk}]),
                       chunk))
    return frames


def rules_toml(count: int = 500) -> str:
    """`count` valid user rules that match no generated line (each matches its own sample).

    They are spread the way a real rules file would be: heads under words the input uses
    (`upstream`, `connect()`, `client`...), which lengthen those words' candidate lists;
    syscall + errno + action rules; and head-less `contains` families, which every line
    whose verdict is not cached is checked against.
    """
    words = ("upstream", "client", "connect()", "recv()", "open()", "limiting", "FastCGI",
             "SSL_do_handshake()", "writev()", "no", "access", "directory", "a", "an")
    syscalls = (("connect()", 111), ("recv()", 104), ("writev()", 32), ("open()", 2),
                ("SSL_do_handshake()", None))
    prefix = "2026/04/08 21:07:15 [error] 2211#2211: *1833 "
    tail = ', client: 203.0.113.9, server: example.com, request: "GET / HTTP/1.1", ' \
           'host: "example.com"'
    out = ["# 500 generated rules for tests/bench/compare.py; none matches the benchmark input\n"]
    for i in range(count):
        marker = f"benchzz{i:03d}"
        kind = i % 5
        if kind in (0, 1):
            word = words[i % len(words)]
            match = f'{{ head = ["{word} {marker} "] }}'
            sample = f"{word} {marker} happened"
        elif kind == 2:
            syscall, errno = syscalls[i % len(syscalls)]
            if errno is None:
                match = f'{{ syscall = ["{syscall}"], ssl = ["{marker}"] }}'
                sample = (f"{syscall} failed (SSL: error:0A000999:SSL routines::{marker}) "
                          "while SSL handshaking")
            else:
                match = f'{{ syscall = ["{syscall}"], errno = [{errno}], action = ["{marker}"] }}'
                sample = f"{syscall} failed ({errno}: Some error) while {marker} the thing"
        elif kind == 3:
            match = f'{{ contains = ["{marker}"] }}'
            sample = f"something {marker} went wrong"
        else:
            match = f'{{ contains = ["{marker}"], level = ["error", "crit"], side = ["none"] }}'
            sample = f"checker {marker} failed"
        out.append(
            f'[[rule]]\nid = "bench_rule_{i:03d}"\narea = "other"\nseverity = "warning"\n'
            f"match = {match}\n"
            f'en = "Generated benchmark rule {i}: {{client?a client}} hit {marker}."\n'
            f'zh = "生成的基准规则 {i}：{{client?客户端}} 触发 {marker}。"\n'
            f'check = ["error_log"]\n'
            f"samples = [{_toml_literal(prefix + sample + tail)}]\n\n")
    return "".join(out)


def _toml_literal(text: str) -> str:
    return f"'{text}'" if "'" not in text else orjson.dumps(text).decode()
