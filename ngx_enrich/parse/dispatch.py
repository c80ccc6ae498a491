"""What a raw line is, decided in one place for every reader.

The filter, the multiline joiner and `follow` all ask this module: `parse_text` parses a line
as the first shape that fits; `starts_record`, `opens_record` and `continues` tell the joiner
where records begin, which of them may go on over more lines, and which lines do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from ngx_enrich.parse.accesslog import parse_access_line
from ngx_enrich.parse.errorlog import (
    PREFIX_RE,
    parse_error_line,
    parse_partial_line,
)
from ngx_enrich.parse.fpm import parse_fpm_line
from ngx_enrich.parse.logformat import LogFormatParser
from ngx_enrich.record import ErrorFields, Parsed, ParsedAccess, ParsedError


def stage(fields: ErrorFields) -> str:
    """`startup` for what Nginx wrote while reading or testing its configuration: `[emerg]`,
    a ` in FILE:LINE` suffix, or its stderr (`nginx -t`); else `runtime`."""
    if fields.get("level") == "emerg" or "conf_file" in fields or fields.get("source") == "stderr":
        return "startup"
    return "runtime"


def parse_text(text: str, access: LogFormatParser | None = None) -> Parsed | None:
    """Recognise one raw line as the first shape that fits; None when none does.

    `access` is a custom `log_format`, tried before the built-in access shapes. Error records
    get their `stage`.
    """
    first = text[:1]
    if (first.isdigit() and text[4:5] == "/") or first == "n":  # `YYYY/...` or `nginx: `
        error = parse_error_line(text)
        if error is not None:
            return _error(error)
    elif first == "[":
        error = parse_fpm_line(text)
        if error is not None:
            return _error(error)
    if access is not None:
        fields = access.parse(text)
        if fields is not None:
            return ParsedAccess(fields)
    fields = parse_access_line(text)
    if fields is not None:
        return ParsedAccess(fields)
    error = parse_partial_line(text)
    return None if error is None else _error(error)


def _error(fields: ErrorFields) -> ParsedError:
    fields["stage"] = stage(fields)
    return ParsedError(fields)


def starts_record(line: str, access: LogFormatParser | None = None) -> bool:
    """Whether a line that follows an error record begins a record of its own."""
    if PREFIX_RE.match(line) or line.startswith(("nginx: ", "{")):
        return True
    if access is not None and access.parse(line) is not None:
        return True
    return parse_access_line(line) is not None or parse_fpm_line(line) is not None


# Where an error record can go on over more lines: inside the quoted stderr of a FastCGI
# backend (PHP stack traces) until the quote closes before the action or the context tail, and
# in a record without its context tail yet (OpenResty's Lua `stack traceback:`), where only a
# line that looks like a continuation is taken.
_STDERR: Final = 'sent in stderr: "'
_QUOTE_CLOSED: Final = re.compile(r'" while |", client: ')
_CLIENT: Final = ", client: "
_CONTINUATION: Final = re.compile(
    r"\s|#\d+ |PHP message: |Stack trace:|stack traceback:|coroutine \d+:|\[C\]: ")


def _has_tail(line: str) -> bool:
    """Whether `line` holds a context tail: `, client: ` and then something (not a space)."""
    at = line.find(_CLIENT)
    while at >= 0:
        after = line[at + 10:at + 11]
        if after and not after.isspace():
            return True
        at = line.find(_CLIENT, at + 1)
    return False


def opens_record(line: str) -> bool:
    """Whether `line` starts an error-log record that the next lines may continue."""
    if line[4:5] != "/":  # not `YYYY/`: no error-log prefix
        return False
    at = line.find(_STDERR)
    if at >= 0:
        if _QUOTE_CLOSED.search(line, at) is not None:
            return False
    elif _has_tail(line):  # most lines: complete, so checked first
        return False
    return PREFIX_RE.match(line) is not None


def _still_open(lines: list[str]) -> bool:
    first, last = lines[0], lines[-1]
    at = first.find(_STDERR)
    if at >= 0:
        return _QUOTE_CLOSED.search(last, at if len(lines) == 1 else 0) is None
    return not _has_tail(last)


def continues(lines: list[str], line: str,
              starts: Callable[[str], bool] = starts_record) -> bool:
    """Whether `line` goes on with the open record `lines` (begun by an `opens_record` line).

    A complete record is never extended, and a line that starts a record never continues one.
    """
    if not _still_open(lines) or starts(line):
        return False
    if _STDERR in lines[0]:
        return True  # anything inside the quoted stderr
    return _CONTINUATION.match(line) is not None or _has_tail(line)
