"""Prometheus metrics of `serve` and `follow`, kept in a registry of their own.

Every label value comes from a small fixed set, so the number of series stays bounded:
kind, area and severity from the catalogue's vocabularies, category from the loaded catalogue
(anything else counts as `other`), and for `follow` the file paths it was configured with.
Addresses, tags, paths seen at run time and messages are never labels.

Use from a command::

    metrics = Metrics.for_enricher(enricher, files=args.files)   # follow; serve: no files
    exposer = metrics.serve(*args.metrics)                        # HTTP /metrics, a thread
    ...
    view = metrics.view(record)          # kind, area, category, severity, parse_error
    metrics.record_in()
    metrics.record_out(view)
    if view.parse_error:
        metrics.parse_error()
    metrics.file_followed(path, True)
    metrics.file_lag(path, size - offset)
    ...
    exposer.close()

Label values: a missing value is `none`; one outside its known set is `other`.
`prometheus_client` is imported only when a `Metrics` is made, so a command that leaves
`--metrics` off does not load it.
"""

from __future__ import annotations

import argparse
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ngx_enrich import catalog

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client import CollectorRegistry

    from ngx_enrich.pipeline import Enricher

log = logging.getLogger("ngx_enrich.metrics")

NAMESPACE = "ngx_enrich"
NONE = "none"
"""Label value of a field the record does not have."""
OTHER = "other"
"""Label value of a field whose value is outside its known set."""
KINDS = frozenset(("error", "access", "other"))
FALLBACK_CATEGORY = "unknown"
"""What the classifier answers for an error line no rule describes."""
MAX_EXTRA_CATEGORIES = 100
"""Categories that user rules may add to the built-in ones; the rest count as `other`."""
RECENT_CHUNKS = 4096
"""Chunk ids remembered to recognise a sender's resend."""
ENRICH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                  0.25, 0.5, 1.0)
"""Seconds: enrichment of one request or batch, from a single line to a large chunk."""


class NgxView(NamedTuple):
    """What the metrics read of an enriched record, in any schema (None where absent)."""

    kind: Any
    area: Any
    category: Any
    severity: Any
    parse_error: Any


ViewReader = Callable[[Mapping[str, Any]], NgxView]


def view_reader(schema: str = "default", key: str = "ngx") -> ViewReader:
    """A function reading an `NgxView` from records enriched with `--schema` and `--key`.

    `default`: `record[key]` holds the facts; `flat`: `{key}_kind`, `{key}_area`, ...;
    `ecs`: the category is `error.type`, the rest stays under `record[key]`.
    """
    if schema == "flat":
        names = tuple(f"{key}_{name}" for name in NgxView._fields)

        def flat(record: Mapping[str, Any]) -> NgxView:
            get = record.get
            return NgxView(*(get(name) for name in names))

        return flat
    if schema not in ("default", "ecs"):
        raise ValueError(f"unknown schema {schema!r}")
    ecs = schema == "ecs"

    def nested(record: Mapping[str, Any]) -> NgxView:
        ngx = record.get(key)
        if not isinstance(ngx, dict):
            ngx = {}
        if ecs:
            error = record.get("error")
            category = error.get("type") if isinstance(error, dict) else None
        else:
            category = ngx.get("category")
        return NgxView(ngx.get("kind"), ngx.get("area"), category, ngx.get("severity"),
                       ngx.get("parse_error"))

    return nested


def ngx_view(record: Mapping[str, Any], schema: str = "default", key: str = "ngx") -> NgxView:
    """The `NgxView` of one record (for many records, make one `view_reader` and reuse it)."""
    return view_reader(schema, key)(record)


def catalogue_categories(cat: catalog.Catalog) -> frozenset[str]:
    """The categories records enriched with `cat` can carry: built-in ones, then at most
    `MAX_EXTRA_CATEGORIES` added by user rules, in precedence order."""
    builtin = catalog.builtin()
    known = {r.category for r in builtin.rules} | {s.category for s in builtin.statuses.values()}
    known.add(FALLBACK_CATEGORY)
    extra = [c for c in dict.fromkeys(r.category for r in cat.rules) if c not in known]
    extra += [c for c in dict.fromkeys(s.category for s in cat.statuses.values())
              if c not in known and c not in extra]
    if len(extra) > MAX_EXTRA_CATEGORIES:
        log.warning("metrics: %d categories beyond the built-in ones; counting all but the "
                    "first %d as %r", len(extra), MAX_EXTRA_CATEGORIES, OTHER)
    return frozenset(known | set(extra[:MAX_EXTRA_CATEGORIES]))


def _label(value: Any, known: frozenset[str]) -> str:
    if not isinstance(value, str) or not value:
        return NONE
    return value if value in known else OTHER


def address(text: str) -> tuple[str, int]:
    """argparse type of `--metrics`: `HOST:PORT` (or `[v6]:PORT`); port 0 picks a free one."""
    from ngx_enrich.forward.sinks import host_port

    try:
        return host_port(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add `--metrics HOST:PORT` (off by default) to a command's parser."""
    parser.add_argument(
        "--metrics",
        type=address,
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (default: off)",
    )


class MetricsServer:
    """The HTTP endpoint serving a registry, running in a daemon thread."""

    def __init__(self, httpd: WSGIServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread

    @property
    def address(self) -> str:
        """HOST:PORT it is bound to."""
        bound, port = self._httpd.server_address[:2]
        host = bound.decode() if isinstance(bound, bytes) else str(bound)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5.0)


class Metrics:
    """The metrics of one process, in a private `CollectorRegistry`.

    All methods are cheap and thread-safe; each counter or gauge is reached through a cached
    child, so calls per record cost a dict lookup and a locked add.
    """

    def __init__(
        self,
        *,
        categories: Iterable[str] = (),
        files: Iterable[str] = (),
        schema: str = "default",
        key: str = "ngx",
        registry: CollectorRegistry | None = None,
    ) -> None:
        """`categories`: the category label values kept (others become `other`); `files`:
        the paths `follow` was given (its gauges exist only then); `schema` and `key`: how
        records were enriched, for `view()`."""
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        self.categories = frozenset(categories) | {FALLBACK_CATEGORY}
        self.view: ViewReader = view_reader(schema, key)
        self._areas = catalog.AREAS
        self._severities = frozenset(catalog.SEVERITIES)
        reg, ns = self.registry, NAMESPACE
        self._in = Counter("records_in", "Records received", namespace=ns, registry=reg)
        self._out = Counter(
            "records_out", "Enriched records handed on (written or acknowledged)",
            ["kind", "area", "category", "severity"], namespace=ns, registry=reg)
        self._parse_errors = Counter(
            "parse_errors", "Records handed on with a parse_error", namespace=ns, registry=reg)
        self._acked = Counter("chunks_acked", "Chunks acknowledged to the sender",
                              namespace=ns, registry=reg)
        self._pending = Gauge("chunks_pending", "Requests received and not yet handed on",
                              namespace=ns, registry=reg)
        self._resent = Counter("chunks_resent", "Chunks a sender sent again (a chunk id seen "
                               "before)", namespace=ns, registry=reg)
        self._failures = Counter("next_hop_failures", "Failed attempts to deliver to the next "
                                 "hop", namespace=ns, registry=reg)
        self._retries = Counter("next_hop_retries", "Attempts to deliver to the next hop made "
                                "again after a failure", namespace=ns, registry=reg)
        self._enrich = Histogram("enrich_seconds", "Time to enrich one request or batch",
                                 namespace=ns, registry=reg, buckets=ENRICH_BUCKETS)
        self._children: dict[tuple[str, str, str, str], Any] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._recent_lock = threading.Lock()
        self.files = tuple(dict.fromkeys(files))
        self._followed: dict[str, Any] = {}
        self._lag: dict[str, Any] = {}
        if self.files:
            followed = Gauge("files_followed", "1 while the file is open and followed, else 0",
                             ["file"], namespace=ns, registry=reg)
            lag = Gauge("lag_bytes", "Bytes written to the file and not read yet", ["file"],
                        namespace=ns, registry=reg)
            for path in self.files:
                self._followed[path] = followed.labels(path)
                self._lag[path] = lag.labels(path)
                self._followed[path].set(0)
                self._lag[path].set(0)

    @classmethod
    def for_enricher(cls, enricher: Enricher, files: Iterable[str] = (),
                     registry: CollectorRegistry | None = None) -> Metrics:
        """Metrics for records made by `enricher` (its catalogue, schema and key)."""
        return cls(categories=catalogue_categories(enricher.classifier.catalog), files=files,
                   schema=enricher.options.schema, key=enricher.options.key, registry=registry)

    def serve(self, host: str, port: int) -> MetricsServer:
        """Serve the registry at http://HOST:PORT/metrics from a daemon thread; raises
        OSError when the address cannot be bound."""
        from prometheus_client import start_http_server

        httpd, thread = start_http_server(port, host, registry=self.registry)
        return MetricsServer(httpd, thread)

    # -- records ---------------------------------------------------------------------------------

    def labels(self, view: NgxView) -> tuple[str, str, str, str]:
        """The bounded label values (kind, area, category, severity) of a view."""
        return (_label(view.kind, KINDS), _label(view.area, self._areas),
                _label(view.category, self.categories), _label(view.severity, self._severities))

    def record_in(self, n: int = 1) -> None:
        """`n` records received (before enrichment)."""
        self._in.inc(n)

    def record_out(self, view: NgxView, n: int = 1) -> None:
        """`n` enriched records like `view` handed on; parse errors are counted apart, with
        `parse_error()`."""
        labels = self.labels(view)
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._out.labels(*labels)
        child.inc(n)

    def parse_error(self, n: int = 1) -> None:
        """`n` records handed on with a `parse_error`."""
        self._parse_errors.inc(n)

    def records_out(self, views: Iterable[NgxView]) -> None:
        """A batch handed on: `record_out()` for each view and `parse_error()` for those
        with one, added up first."""
        counts: dict[tuple[Any, Any, Any, Any], int] = {}
        errors = 0
        for view in views:
            key = view[:4]
            counts[key] = counts.get(key, 0) + 1
            if view.parse_error:
                errors += 1
        for (kind, area, category, severity), n in counts.items():
            self.record_out(NgxView(kind, area, category, severity, None), n)
        if errors:
            self._parse_errors.inc(errors)

    def enrich_time(self, seconds: float) -> None:
        """Seconds spent enriching one request (serve) or batch of lines (follow)."""
        self._enrich.observe(seconds)

    # -- chunks and the next hop -----------------------------------------------------------------

    def chunk_started(self, chunk: str | bytes | None = None) -> None:
        """A request is being enriched and handed on; `chunk`: its chunk id, if any, to
        recognise a resend. Pair with `chunk_finished()`."""
        self._pending.inc()
        if chunk is None:
            return
        key = chunk if isinstance(chunk, str) else chunk.hex()
        with self._recent_lock:
            if key in self._recent:
                self._resent.inc()
                self._recent.move_to_end(key)
                return
            self._recent[key] = None
            if len(self._recent) > RECENT_CHUNKS:
                self._recent.popitem(last=False)

    def chunk_finished(self, acked: bool) -> None:
        """The request of the last `chunk_started()` is done; `acked`: the sender got its
        ack."""
        self._pending.dec()
        if acked:
            self._acked.inc()

    def next_hop_failure(self) -> None:
        """An attempt to deliver to the next hop failed (refused, reset, no ack...)."""
        self._failures.inc()

    def next_hop_retry(self) -> None:
        """A new attempt to deliver to the next hop after a failure."""
        self._retries.inc()

    # -- follow ----------------------------------------------------------------------------------

    def file_followed(self, path: str, followed: bool) -> bool:
        """Whether configured `path` is open and followed; False (and nothing recorded) for a
        path `follow` was not given."""
        gauge = self._followed.get(path)
        if gauge is None:
            return False
        gauge.set(1 if followed else 0)
        return True

    def file_lag(self, path: str, lag_bytes: int) -> bool:
        """Bytes of configured `path` not read yet; False for a path `follow` was not given."""
        gauge = self._lag.get(path)
        if gauge is None:
            return False
        gauge.set(max(lag_bytes, 0))
        return True
