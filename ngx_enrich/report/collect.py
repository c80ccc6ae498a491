"""Enriched records in, counts out, in constant memory; then one summary dict.

`Collector.add` takes the records the filter would write (the default schema, `ngx` key)
and keeps, per (area, category): the count by kind, severities, first and last time, a time
series and bounded top lists of upstreams, clients, servers, hosts and URIs. Access records
add status classes over time, top 4xx/5xx paths, upstream statuses and response times;
records of kind `other` are counted by their `parse_error`. `Collector.summary` turns all
of it into the dict every renderer draws from (`--format json` prints it as it is).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

from ngx_enrich import __version__
from ngx_enrich.catalog import SEVERITIES, Catalog, Template
from ngx_enrich.report.histogram import Histogram
from ngx_enrich.report.timeline import Clock, Frame
from ngx_enrich.report.topn import CAP, TopCounter
from ngx_enrich.report.window import epoch_of

DIMENSIONS = ("upstream", "client", "server", "host", "uri")
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}
_TIME_CACHE = 4096


def upstream_of(url: str) -> str:
    """The upstream without the request's path: `http://10.0.0.5:8080/api` -> `http://10.0.0.5:8080`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    if rest.startswith("unix:"):  # unix:/run/app.sock:/uri -> up to the socket's colon
        cut = rest.find(":", 5)
        return f"{scheme}://{rest[:cut + 1]}" if cut > 0 else url
    cut = rest.find("/")
    return url if cut < 0 else f"{scheme}://{rest[:cut]}"


def uri_of(target: str) -> str:
    """A request target without its query string."""
    cut = target.find("?")
    return target if cut < 0 else target[:cut]


def _numbers(value: Any) -> list[float]:
    items = value if isinstance(value, list) else [value]
    return [v for v in items if isinstance(v, int | float) and not isinstance(v, bool)]


@dataclass(slots=True)
class Row:
    """What is known of one (area, category)."""

    area: str
    category: str
    rule: str
    explanation: str
    hint: str
    series: list[int]
    problem: bool = False
    count: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    severities: dict[str, int] = field(default_factory=dict)
    first: float = float("inf")
    last: float = float("-inf")
    first_text: str | None = None
    last_text: str | None = None
    tops: dict[str, TopCounter] = field(default_factory=dict)

    @property
    def severity(self) -> str:
        """The worst severity seen."""
        return min(self.severities, key=_RANK.__getitem__)


@dataclass(slots=True)
class AccessStats:
    """What only access records tell."""

    classes: dict[str, list[int]]
    class_counts: dict[str, int]
    paths_4xx: TopCounter
    paths_5xx: TopCounter
    upstream_statuses: TopCounter
    upstream_time: Histogram = field(default_factory=Histogram)
    request_time: Histogram = field(default_factory=Histogram)


class Collector:
    """Counts enriched records; `summary` gives the report's data."""

    def __init__(self, cat: Catalog, lang: str = "en", since: float | None = None,
                 until: float | None = None, cap: int = CAP) -> None:
        self.lang = lang
        self.since = since
        self.until = until
        self.windowed = since is not None or until is not None
        self.cap = cap
        self.clock = Clock()
        self.rows: dict[tuple[str, str], Row] = {}
        self.kinds: dict[str, int] = {}
        self.other = TopCounter(cap)
        self.uncategorised = 0
        self.outside = 0
        self.without_time = 0
        self.earliest, self.earliest_text = float("inf"), ""
        self.latest, self.latest_text = float("-inf"), ""
        self.zone: tzinfo | None = None
        self._times: dict[str, float | None] = {}
        self._texts: dict[str, Template] = {}
        for rule in cat.rules:
            self._texts[rule.id] = rule.text[lang]
        for status in cat.statuses.values():
            self._texts[f"status_{status.code}"] = status.text[lang]
        self._fallback = Template.compile(cat.phrases[lang]["fallback"]).render({})
        self.access = AccessStats(
            classes={c: self.clock.series() for c in STATUS_CLASSES},
            class_counts=dict.fromkeys(STATUS_CLASSES, 0),
            paths_4xx=TopCounter(cap), paths_5xx=TopCounter(cap),
            upstream_statuses=TopCounter(cap))

    # counting

    def add(self, records: list[dict[str, Any]]) -> None:
        """Count a batch of enriched records."""
        times, rows, kinds, clock = self._times, self.rows, self.kinds, self.clock
        for record in records:
            ngx = record["ngx"]
            text = ngx.get("time")
            epoch = None
            if isinstance(text, str):
                epoch = times[text] if text in times else self._epoch(text)
            if self.windowed and not self._inside(epoch):
                continue
            kind = ngx["kind"]
            kinds[kind] = kinds.get(kind, 0) + 1
            slot = -1
            if epoch is not None:
                slot = clock.slot(epoch)
                if epoch < self.earliest:
                    self.earliest, self.earliest_text = epoch, text
                if epoch > self.latest:
                    self.latest, self.latest_text = epoch, text
            if kind == "other":
                self.other.add(str(ngx.get("parse_error", "")))
                continue
            category = ngx.get("category")
            if category is None:  # an access record without a status
                self.uncategorised += 1
                continue
            key = (ngx["area"], category)
            row = rows.get(key)
            if row is None:
                row = rows[key] = self._row(key, ngx)
            row.count += 1
            row.kinds[kind] = row.kinds.get(kind, 0) + 1
            if not row.problem:
                status = ngx.get("status")
                row.problem = kind != "access" or not (isinstance(status, int) and status < 400)
            severity = ngx["severity"]
            row.severities[severity] = row.severities.get(severity, 0) + 1
            if epoch is not None:
                row.series[slot] += 1
                if epoch < row.first:
                    row.first, row.first_text = epoch, text
                if epoch > row.last:
                    row.last, row.last_text = epoch, text
            self._tops(row, ngx, kind)
            if kind == "access":
                self._access(ngx, slot)

    def _inside(self, epoch: float | None) -> bool:
        """Whether a record at `epoch` is in the window (counting the ones that are not)."""
        if epoch is None:
            self.without_time += 1
            return False
        if (self.since is not None and epoch < self.since) or (
                self.until is not None and epoch >= self.until):
            self.outside += 1
            return False
        return True

    def _epoch(self, text: str) -> float | None:
        times = self._times
        if len(times) > _TIME_CACHE:
            times.clear()
        epoch = times[text] = epoch_of(text)
        if epoch is not None and self.zone is None:
            self.zone = datetime.fromisoformat(text).tzinfo
        return epoch

    def _row(self, key: tuple[str, str], ngx: dict[str, Any]) -> Row:
        rule = str(ngx.get("rule", ""))
        template = self._texts.get(rule)
        general = self._fallback if rule == "fallback" else _general(template)
        return Row(*key, rule=rule, explanation=general or str(ngx.get("explanation", "")),
                   hint=str(ngx.get("hint", "")), series=self.clock.series(),
                   tops={d: TopCounter(self.cap) for d in DIMENSIONS})

    @staticmethod
    def _tops(row: Row, ngx: dict[str, Any], kind: str) -> None:
        tops, get = row.tops, ngx.get
        if kind == "access":
            for addr in get("upstream_addr") or ():
                if isinstance(addr, str):
                    tops["upstream"][addr] += 1
            client, server, path = get("remote_addr"), get("vhost"), get("path")
            uri = uri_of(path) if isinstance(path, str) else None
        else:
            upstream = get("upstream")
            if isinstance(upstream, str):
                tops["upstream"][upstream_of(upstream)] += 1
            client, server, request = get("client"), get("server"), get("request")
            parts = request.split(" ", 2) if isinstance(request, str) else ()
            uri = uri_of(parts[1]) if len(parts) > 1 else None
        if isinstance(client, str):
            tops["client"][client] += 1
        if isinstance(server, str):
            tops["server"][server] += 1
        host = get("host")
        if isinstance(host, str):
            tops["host"][host] += 1
        if uri:
            tops["uri"][uri] += 1

    def _access(self, ngx: dict[str, Any], slot: int) -> None:
        access = self.access
        status = ngx.get("status")
        if isinstance(status, int) and 100 <= status <= 599:
            cls = f"{status // 100}xx"
            access.class_counts[cls] += 1
            if slot >= 0:
                access.classes[cls][slot] += 1
            path = ngx.get("path")
            if status >= 400 and isinstance(path, str):
                (access.paths_5xx if status >= 500 else access.paths_4xx).add(uri_of(path))
        for code in ngx.get("upstream_status") or ():
            access.upstream_statuses.add(str(code))
        for seconds in _numbers(ngx.get("upstream_response_time")):
            access.upstream_time.add(seconds)
        for seconds in _numbers(ngx.get("request_time")):
            access.request_time.add(seconds)

    # merging (the parts of one input counted in parallel)

    def merge(self, other: Collector) -> None:
        """Add what `other` counted (another part of the same input, same options)."""
        move = self.clock.absorb(other.clock)
        for key, theirs in other.rows.items():
            row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = Row(theirs.area, theirs.category, theirs.rule,
                                           theirs.explanation, theirs.hint,
                                           self.clock.series(), tops=theirs.tops)
                theirs.tops = {}
            row.count += theirs.count
            row.problem = row.problem or theirs.problem
            _add(row.kinds, theirs.kinds)
            _add(row.severities, theirs.severities)
            row.series[:] = [a + b for a, b in zip(row.series, move(theirs.series), strict=True)]
            if theirs.first < row.first:
                row.first, row.first_text = theirs.first, theirs.first_text
            if theirs.last > row.last:
                row.last, row.last_text = theirs.last, theirs.last_text
            for dimension, counter in theirs.tops.items():
                row.tops[dimension].merge(counter)
        mine, theirs_access = self.access, other.access
        for cls, counts in theirs_access.classes.items():
            mine.classes[cls][:] = [a + b for a, b in zip(mine.classes[cls], move(counts),
                                                          strict=True)]
        _add(mine.class_counts, theirs_access.class_counts)
        mine.paths_4xx.merge(theirs_access.paths_4xx)
        mine.paths_5xx.merge(theirs_access.paths_5xx)
        mine.upstream_statuses.merge(theirs_access.upstream_statuses)
        mine.upstream_time.merge(theirs_access.upstream_time)
        mine.request_time.merge(theirs_access.request_time)
        _add(self.kinds, other.kinds)
        self.other.merge(other.other)
        self.uncategorised += other.uncategorised
        self.outside += other.outside
        self.without_time += other.without_time
        if other.earliest < self.earliest:
            self.earliest, self.earliest_text = other.earliest, other.earliest_text
        if other.latest > self.latest:
            self.latest, self.latest_text = other.latest, other.latest_text
        self.zone = self.zone or other.zone

    def portable(self) -> Collector:
        """This collector without its caches, to be sent to another process."""
        self._times.clear()
        self._texts = {}
        return self

    # the summary

    def summary(self, top: int = 10, inputs: list[str] | None = None) -> dict[str, Any]:
        """Everything counted, as plain data: the report every format renders."""
        frame = self.clock.frame()
        rows = sorted(self.rows.values(),
                      key=lambda r: (-r.count, _RANK[r.severity], r.category, r.area))
        # the most critical records first, then the most errors, warnings, infos
        problems = sorted((r for r in rows if r.problem), key=lambda r: (
            *(-r.severities.get(s, 0) for s in SEVERITIES), r.category, r.area))[:top]
        shown = [self._row_summary(r, frame, top) for r in rows]
        other = self.other.top(top)
        report = {
            "report": "ngx-enrich", "version": __version__, "lang": self.lang,
            "inputs": list(inputs or []),
            "window": {"since": self._iso(self.since), "until": self._iso(self.until),
                       "outside": self.outside, "without_time": self.without_time},
            "records": sum(self.kinds.values()),
            "kinds": {k: self.kinds.get(k, 0) for k in ("error", "access", "other")},
            "span": self._span(),
            "timeline": None if frame is None else {
                "start": self._iso(frame.start), "bucket_seconds": frame.width,
                "buckets": frame.buckets},
            "severities": {s: sum(r.severities.get(s, 0) for r in rows) for s in SEVERITIES},
            "areas": self._areas(rows, frame),
            "categories": shown,
            "top_problems": [_row_id(r) for r in problems],
            "access": self._access_summary(frame, top),
            "other": {"count": self.kinds.get("other", 0),
                      "reasons": [_item(v, c, e) for v, c, e in other]},
            "uncategorised": self.uncategorised,
        }
        report["estimated"] = _estimated(report)
        return report

    def _iso(self, epoch: float | None) -> str | None:
        if epoch is None:
            return None
        zone = self.zone or timezone(timedelta(0))
        return datetime.fromtimestamp(epoch, zone).isoformat()

    def _span(self) -> dict[str, Any] | None:
        if not self.earliest_text:
            return None
        return {"first": self.earliest_text, "last": self.latest_text,
                "seconds": round(self.latest - self.earliest, 3)}

    def _areas(self, rows: list[Row], frame: Frame | None) -> list[dict[str, Any]]:
        areas: dict[str, list[Row]] = {}
        for row in rows:
            areas.setdefault(row.area, []).append(row)
        out: list[dict[str, Any]] = []
        for area, members in areas.items():
            series = [sum(counts) for counts in zip(*(r.series for r in members), strict=True)]
            out.append({
                "area": area, "count": sum(r.count for r in members),
                "severity": min((r.severity for r in members), key=_RANK.__getitem__),
                "timeline": frame.view(series) if frame is not None else []})
        out.sort(key=lambda a: (-a["count"], a["area"]))
        return out

    def _row_summary(self, row: Row, frame: Frame | None, top: int) -> dict[str, Any]:
        return {
            "id": _row_id(row), "area": row.area, "category": row.category,
            "severity": row.severity, "kinds": dict(sorted(row.kinds.items())),
            "severities": {s: row.severities[s] for s in SEVERITIES if s in row.severities},
            "count": row.count, "first_seen": row.first_text, "last_seen": row.last_text,
            "rule": row.rule, "explanation": row.explanation, "hint": row.hint,
            "problem": row.problem,
            "timeline": frame.view(row.series) if frame is not None else [],
            "top": {d: [_item(v, c, e) for v, c, e in row.tops[d].top(top)]
                    for d in DIMENSIONS if row.tops[d]},
        }

    def _access_summary(self, frame: Frame | None, top: int) -> dict[str, Any] | None:
        if not self.kinds.get("access"):
            return None
        access = self.access
        return {
            "records": self.kinds["access"],
            "status_classes": [
                {"class": c, "count": access.class_counts[c],
                 "timeline": frame.view(access.classes[c]) if frame is not None else []}
                for c in STATUS_CLASSES if access.class_counts[c]],
            "top_4xx_paths": [_item(*t) for t in access.paths_4xx.top(top)],
            "top_5xx_paths": [_item(*t) for t in access.paths_5xx.top(top)],
            "upstream_statuses": [_item(*t) for t in access.upstream_statuses.top(top)],
            "upstream_response_time": access.upstream_time.summary(),
            "request_time": access.request_time.summary(),
        }


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for key, n in more.items():
        into[key] = into.get(key, 0) + n


def _row_id(row: Row) -> str:
    return f"{row.area}/{row.category}"


def _item(value: str, count: int, error: int) -> dict[str, Any]:
    return {"value": value, "count": count, "error": error}


def _estimated(value: Any) -> bool:
    """Whether any counted list in the report holds an estimate (an item with an error)."""
    if isinstance(value, dict):
        if "error" in value and "value" in value:
            return bool(value["error"])
        return any(_estimated(v) for v in value.values())
    if isinstance(value, list):
        return any(_estimated(v) for v in value)
    return False


def _general(template: Template | None) -> str | None:
    """The rule's text for all its records: static, or with every placeholder at its
    fallback; None when a placeholder has none (then an example record's text is used)."""
    if template is None:
        return None
    if all(isinstance(p, str) or p[1] for p in template.parts):
        return template.render({})
    return None
