"""A request's events through the enricher into a batch: `serve`'s per-event loop, compiled
with the other per-record modules (the server around it stays asyncio Python)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ngx_enrich.forward.protocol import Record, Time

Enrich = Callable[[Record], Record]
OwnTime = Callable[[Record], "Time | None"]


def enrich_into(events: Iterator[tuple[Time, Record]], limit: int, enrich: Enrich,
                add: Callable[[Time, Record], None], own_time: OwnTime | None,
                failed: Callable[[Exception], None],
                view: Callable[[Record], Any] | None = None,
                views: list[Any] | None = None) -> int:
    """Enrich up to `limit` events from `events` and add them; the number added (fewer when
    the events ran out). Where `own_time` finds the record's own time, that becomes the
    event's time. A record whose enrichment fails is added as it came, and `failed` is told.
    With `view`, what it reads of each added record is appended to `views`."""
    added = 0
    for etime, record in events:
        try:
            record = enrich(record)
            if own_time is not None:
                stamp = own_time(record)
                if stamp is not None:
                    etime = stamp
        except Exception as exc:  # pass the record on unenriched rather than lose it
            failed(exc)
        add(etime, record)
        if view is not None and views is not None:
            views.append(view(record))
        added += 1
        if added == limit:
            break
    return added
