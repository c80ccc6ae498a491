"""Small helpers shared by tests."""

from __future__ import annotations

import re

_START = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[")


def join_multiline(lines: list[str]) -> list[str]:
    """Join physical lines into records: a line without a timestamp continues the last."""
    records: list[str] = []
    for line in lines:
        if records and not _START.match(line):
            records[-1] += "\n" + line
        else:
            records.append(line)
    return records
