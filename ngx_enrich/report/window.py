"""`--since` / `--until`: moments on the records' own clock."""

from __future__ import annotations

import argparse

from ngx_enrich import eventtime


def epoch_of(text: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 time; no zone means the local zone."""
    ns = eventtime.iso_ns(text)
    return None if ns is None else ns / eventtime.NS


def moment(text: str) -> float:
    """argparse type: ISO 8601 (`2026-11-29T18:24:26+00:00`, `2026-11-29`) or
    `YYYY-MM-DD HH:MM[:SS]`, read in the local zone when it names none."""
    epoch = epoch_of(text.strip())
    if epoch is None:
        raise argparse.ArgumentTypeError(
            f"expected a time like 2026-11-29T18:24:26+00:00 or '2026-11-29 18:24', got {text!r}")
    return epoch
