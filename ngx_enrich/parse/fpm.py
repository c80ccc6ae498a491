"""php-fpm's own log lines: `[29-Nov-2026 18:20:26] WARNING: [pool www] message`."""

from __future__ import annotations

import re

from ngx_enrich.parse.errorlog import local_time
from ngx_enrich.parse.values import MONTHS
from ngx_enrich.record import ErrorFields

_FPM_RE = re.compile(
    r"\[(\d\d)-(\w{3})-(\d{4}) (\d\d:\d\d:\d\d)(?:\.\d+)?\] (ALERT|ERROR|WARNING|NOTICE|DEBUG): "
    r"(?:\[pool ([^\]]+)\] )?(.*)$", re.ASCII | re.DOTALL
)
_LEVELS = {"ALERT": "alert", "ERROR": "error", "WARNING": "warn", "NOTICE": "notice",
           "DEBUG": "debug"}


def parse_fpm_line(line: str) -> ErrorFields | None:
    """Parse a php-fpm master log line; None when it is not one."""
    m = _FPM_RE.match(line)
    if m is None or m.group(2) not in MONTHS:
        return None
    day, mon, year, hms, level, pool, message = m.groups()
    fields: ErrorFields = {
        "time": local_time(f"{year}-{MONTHS[mon]:02d}-{day}T{hms}"),
        "level": _LEVELS[level],
        "source": "php-fpm",
        "message": message,
        "head": message,
    }
    if pool:
        fields["pool"] = pool
    return fields
