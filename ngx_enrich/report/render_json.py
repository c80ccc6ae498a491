"""The report's data as it is: the dict every other format is drawn from."""

from __future__ import annotations

from typing import Any

import orjson


def render(report: dict[str, Any]) -> str:
    """Indented JSON with a trailing newline."""
    return orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode()
