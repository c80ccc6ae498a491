"""What a raw line is, decided in one place for every reader.

The filter, the multiline joiner and `follow` all ask this module: `parse_text` parses a line
as the first shape that fits; `starts_record` and `opens_record` tell the joiner where records
begin and which of them (error-log records) may continue on the lines after them.
"""

from __future__ import annotations

from typing import Any

from ngx_enrich.parse.accesslog import parse_access_line
from ngx_enrich.parse.errorlog import PREFIX_RE, parse_error_line
from ngx_enrich.parse.fpm import parse_fpm_line
from ngx_enrich.parse.logformat import LogFormatParser


def parse_text(text: str, access: LogFormatParser | None = None
               ) -> tuple[str, dict[str, Any] | None]:
    """Recognise one raw line: ('error'|'access', fields) or ('other', None).

    `access` is a custom `log_format`, tried before the built-in access shapes.
    """
    first = text[:1]
    if first.isdigit() or first == "n":
        fields = parse_error_line(text)
        if fields is not None:
            return "error", fields
    elif first == "[":
        fields = parse_fpm_line(text)
        if fields is not None:
            return "error", fields
    if access is not None:
        fields = access.parse(text)
        if fields is not None:
            return "access", fields
    fields = parse_access_line(text)
    if fields is not None:
        return "access", fields
    return "other", None


def opens_record(line: str) -> bool:
    """Whether `line` starts an error-log record, the kind that may span several lines."""
    return PREFIX_RE.match(line) is not None


def starts_record(line: str, access: LogFormatParser | None = None) -> bool:
    """Whether a line that follows an error record begins a record of its own."""
    if PREFIX_RE.match(line) or line.startswith(("nginx: ", "{")):
        return True
    if access is not None and access.parse(line) is not None:
        return True
    return parse_access_line(line) is not None or parse_fpm_line(line) is not None
