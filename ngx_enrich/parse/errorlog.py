"""Split an Nginx error-log line into its structural parts.

    YYYY/MM/DD HH:MM:SS [level] PID#TID: *CID MESSAGE[ (SSL: ...)][ (ERRNO: TEXT)][ while ACTION]
        [, client: ..., server: ..., request: "...", upstream: "...", host: "...", referrer: "..."]

The context tail is read from the right by its labels, because request lines and referrers
may hold commas and quotes. Also handled: the `nginx: [level] ...` stderr form, stream
`bytes from/to ...` tails, resolver and OCSP tails, and config `in FILE:LINE` suffixes.
"""

from __future__ import annotations

import errno as _errno
import re
from datetime import datetime
from functools import lru_cache
from typing import Final, get_args

from ngx_enrich.record import ErrorFields, TailKey

PREFIX_RE: Final = re.compile(
    r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[([a-z]+)\] (\d{1,18})#(\d{1,18}): "
    r"(?:\*(\d{1,18}) )?", re.ASCII)
STDERR_RE: Final = re.compile(r"nginx: \[([a-z]+)\] ", re.ASCII)
# A record pasted in part: any of the prefix's pieces may be missing (from `[level]` on, from
# `pid#tid:` on, from `*cid` on, or a whole line without `pid#tid`).
_PARTIAL_RE: Final = re.compile(
    r"(?:(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) )?(?:\[([a-z]+)\] )?"
    r"(?:(\d{1,18})#(\d{1,18}): )?(?:\*(\d{1,18}) )?", re.ASCII)
_LEVELS: Final = frozenset(("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"))
_SYSCALL_RE: Final = re.compile(
    r'([A-Za-z_]\w*\([^()\s]*\))(?: to (\S+)| "([^"]*)"(?: to "[^"]*")?)? failed')
_CONF_RE: Final = re.compile(r" in (/\S+|[\w.\-/]+\.conf):(\d{1,9})$", re.ASCII)
_BYTES_RE: Final = re.compile(
    r", bytes from/to client:(\d{1,18})/(\d{1,18}), "
    r"bytes from/to upstream:(\d{1,18})/(\d{1,18})$", re.ASCII
)

# Quoted labels of the HTTP/mail/OCSP tails, rightmost first.
_QUOTED: Final[tuple[tuple[str, TailKey], ...]] = (
    (', referrer: "', "referrer"),
    (', certificate: "', "certificate"),
    (', host: "', "host"),
    (', login: "', "login"),
    (', upstream: "', "upstream"),
    (', subrequest: "', "subrequest"),
    (', request: "', "request"),
)
# Unquoted labels, rightmost first.
_PLAIN: Final[tuple[tuple[str, TailKey], ...]] = (
    (", peer: ", "peer_address"),
    (", responder: ", "responder"),
    (", resolver: ", "resolver"),
    (", upstream: ", "upstream"),
    (", server: ", "server"),
    (", client: ", "client"),
)
# The usual HTTP tail: `, client: C, server: S` and then the quoted labels in this order, each
# optional, with no quote or comma in C, no quote in S. Read with `find` (a regex costs more
# on the long quoted values); any other tail (quotes inside a request, stream,
# mail, OCSP, resolver tails, cut lines) is read label by label from the right.
_HTTP_QUOTED: Final[tuple[tuple[str, TailKey], ...]] = (
    (', request: "', "request"),
    (', subrequest: "', "subrequest"),
    (', upstream: "', "upstream"),
    (', host: "', "host"),
    (', referrer: "', "referrer"),
)
_STARTTLS: Final = " using starttls"  # mail: said after the client address
# The keys a line's prefix and context tail may set: whatever else an error record holds is
# decided by its level and message alone.
LINE_KEYS: Final = frozenset(("time", "level", "source", "pid", "tid", "cid", *get_args(TailKey),
                       "bytes_from_client", "bytes_to_client", "bytes_from_upstream",
                       "bytes_to_upstream"))
_CUT_AT: Final = 1900  # a message part this long may have been cut at the 2048-byte line limit
_RESOLVER_HEADS: Final = ("could not be resolved", "DNS error")


def parse_error_line(line: str) -> ErrorFields | None:
    """Parse a raw error-log line (or its stderr form); None if it is neither."""
    read = read_line(line)
    if read is not None:
        fields, message = read
        _add_message(fields, message)
        return fields
    m = STDERR_RE.match(line)
    if m is not None:
        fields = {"level": m.group(1), "source": "stderr"}
        split_message(line[m.end():], fields)
        return fields
    if line.startswith(("nginx: ", "nginx version: ")):  # ngx_log_stderr: no level
        fields = {"level": "stderr", "source": "stderr"}
        split_message(line[7:] if line[5] == ":" else line, fields)
        return fields
    return None


def read_line(line: str) -> tuple[ErrorFields, str] | None:
    """What a `YYYY/MM/DD ...` error line says besides its message (the prefix and the
    context tail), and the message; None when the line has no such prefix.

    The rest of the record, the message's parts, is `message_parts(message)`.
    """
    read = _read_prefix(line)
    if read is None:
        m = PREFIX_RE.match(line)  # the prefix in a shape `_read_prefix` leaves to the regex
        if m is None:
            return None
        stamp, level, pid, tid, cid = m.groups()
        process = int(pid)
        fields: ErrorFields = {
            "time": stamp_time(stamp),
            "level": level,
            "pid": process,
            "tid": process if tid == pid else int(tid),
        }
        if cid is not None:
            fields["cid"] = int(cid)
        end = m.end()
    else:
        fields, end = read
    rest = line[end:]
    return fields, rest[:_split_tail(rest, fields)]


def _read_prefix(line: str) -> tuple[ErrorFields, int] | None:
    """`PREFIX_RE` read by position, for the usual prefix (a known level, a second met
    before): the fields and where the message begins; None to leave the line to the regex."""
    if len(line) < 32 or ord(line[19]) != 32 or ord(line[20]) != 91:  # `... [`
        return None
    time = _TIMES.get(line[:19])
    close = line.find("] ", 21, 30)
    if time is None or close < 0:
        return None
    level = line[21:close]
    if level not in _LEVELS:
        return None
    start = close + 2
    sharp = line.find("#", start, start + 19)
    pid = _number_at(line, start, sharp)
    if pid < 0:
        return None
    colon = line.find(": ", sharp, sharp + 21)
    tid = _number_at(line, sharp + 1, colon)
    if tid < 0:
        return None
    fields: ErrorFields = {"time": time, "level": level, "pid": pid, "tid": tid}
    end = colon + 2
    if line[end:end + 1] == "*":
        space = line.find(" ", end + 1, end + 20)
        cid = _number_at(line, end + 1, space)
        if cid >= 0:
            fields["cid"] = cid
            end = space + 1
    return fields, end


def _number_at(text: str, start: int, end: int) -> int:
    """The number `text[start:end]` when it is 1 to 18 ASCII digits (`\\d{1,18}`), else -1."""
    if not 0 < end - start <= 18:
        return -1
    value = 0
    for i in range(start, end):
        digit = ord(text[i]) - 48
        if not 0 <= digit <= 9:
            return -1
        value = value * 10 + digit
    return value


def parse_partial_line(line: str) -> ErrorFields | None:
    """Parse what is there of an error record pasted in part; None if too little is.

    Something of the prefix (a level, `pid#tid:` or `*cid`) must be there, or else the
    message must carry the context tail (`, client: ...`).
    """
    m = _PARTIAL_RE.match(line)  # every part is optional, so this always matches
    assert m is not None
    stamp, level, pid, tid, cid = m.groups()
    if level is not None and level not in _LEVELS:
        return None
    if level is None and pid is None and cid is None and ", client: " not in line:
        return None
    fields: ErrorFields = {"source": "partial"}
    if stamp is not None:
        fields["time"] = stamp_time(stamp)
    if level is not None:
        fields["level"] = level
    if pid is not None and tid is not None:
        fields["pid"], fields["tid"] = int(pid), int(tid)
    if cid is not None:
        fields["cid"] = int(cid)
    split_message(line[m.end():], fields)
    return fields if fields.get("message") else None


def split_message(rest: str, fields: ErrorFields) -> None:
    """Fill message, context tail and message parts from the text after the prefix."""
    _add_message(fields, rest[:_split_tail(rest, fields)])


def _add_message(fields: ErrorFields, message: str) -> None:
    fields["message"] = message
    fields.update(message_parts(message))


def split_parts(message: str) -> ErrorFields:
    """The parts of a message, worked out afresh (`message_parts` keeps them)."""
    parts: ErrorFields = {}
    _split_parts(message, parts)
    return parts


@lru_cache(maxsize=16384)
def message_parts(message: str) -> ErrorFields:
    """The parts of a message; cached (do not change the result), since the same message
    recurs with other tails."""
    return split_parts(message)


def _split_tail(rest: str, fields: ErrorFields) -> int:
    """Read the labelled context tail from the right; return where the message ends."""
    start = rest.find(", client: ")
    if start >= 0 and len(rest) <= _CUT_AT and _http_tail(rest, start, fields):
        return start
    return _tail_by_labels(rest, start, fields)


def _http_tail(rest: str, start: int, fields: ErrorFields) -> bool:
    """Read the usual HTTP tail that begins at `start`, if that is what the tail is; the keys
    are set in the order `_tail_by_labels` sets them (from the right)."""
    at = rest.find(", server: ", start + 10)
    if at <= start + 10:
        return False
    client = rest[start + 10:at]
    if "," in client or '"' in client or client.endswith(_STARTTLS):
        return False
    stop = rest.find(",", at + 10)
    if stop < 0:
        stop = len(rest)
    server = rest[at + 10:stop]
    if '"' in server:
        return False
    found: list[tuple[TailKey, str]] = []
    pos = stop
    for label, key in _HTTP_QUOTED:
        value_at = pos + len(label)
        if rest.find(label, pos, value_at) == pos:  # startswith(label, pos), cheaper compiled
            pos = rest.find('"', value_at)
            if pos < 0:
                return False
            found.append((key, rest[value_at:pos]))
            pos += 1
    if pos != len(rest):
        return False
    for key, value in reversed(found):
        fields[key] = value
    fields["server"] = server
    fields["client"] = client
    return True


def _tail_by_labels(rest: str, start: int, fields: ErrorFields) -> int:
    """`_split_tail` for any tail: label by label from the right (`start`: the first
    `, client: `, or -1)."""
    end = len(rest)
    if start < 0:
        start = min((i for i in (rest.find(", resolver: "), rest.find(", responder: "))
                     if i >= 0), default=-1)
        if start < 0:
            if ", server: " in rest:  # syslog tail
                i = rest.rfind(", server: ")
                fields["server"] = rest[i + 10:]
                return i
            return end
    m = _BYTES_RE.search(rest, start) if ", bytes from/to client:" in rest else None
    if m is not None:
        a, b, c, d = (int(x) for x in m.groups())
        fields.update({"bytes_from_client": a, "bytes_to_client": b,
                       "bytes_from_upstream": c, "bytes_to_upstream": d})
        end = m.start()
    if end > _CUT_AT and rest[end - 1] != '"':
        # Cut at Nginx's 2048-byte line limit: the last quoted value has no closing quote.
        pos, label, key = max((rest.rfind(label, start, end), label, key)
                              for label, key in _QUOTED)
        if pos >= 0:
            fields[key] = rest[pos + len(label):end]
            end = pos
    for label, key in _QUOTED:
        if rest[end - 1] == '"':
            i = rest.rfind(label, start, end)
            if i >= 0:
                fields[key] = rest[i + len(label):end - 1]
                end = i
    for label, key in _PLAIN:
        i = rest.rfind(label, start, end)
        if i >= 0 and key not in fields:
            value = rest[i + len(label):end]
            if key == "client" and value.endswith(" using starttls"):
                value = value[:-15]
            fields[key] = value
            end = i
    return end


def _split_parts(message: str, fields: ErrorFields) -> None:
    """Split the message into head, SSL part, errno and action."""
    msg = _cut_ssl(message, fields)
    # The errno usually precedes the action, but follows it when the format itself
    # contains "while" (`fork() failed while spawning "worker process" (12: ...)`).
    msg = _take_errno(msg, fields)
    i = msg.rfind(" while ")
    while i >= 0 and msg.count('"', 0, i) % 2:  # inside a quoted payload: not the action
        i = msg.rfind(" while ", 0, i)
    if i >= 0:
        fields["action"] = msg[i + 7:]
        msg = msg[:i]
    m = _CONF_RE.search(msg)
    if m is not None:
        fields["conf_file"] = m.group(1)
        fields["conf_line"] = int(m.group(2))
        msg = msg[:m.start()]
    elif msg.endswith(" in command line"):
        fields["conf_file"] = "command line"
        msg = msg[:-16]
    if "errno" not in fields and "rcode" not in fields:
        msg = _take_errno(msg, fields)
    fields["head"] = msg
    m2 = _SYSCALL_RE.match(msg)
    if m2 is not None:
        fields["syscall"] = m2.group(1)
        if m2.group(2):
            fields["peer"] = m2.group(2)
        elif m2.group(3) is not None:
            fields["file_path"] = m2.group(3)


def _cut_ssl(msg: str, fields: ErrorFields) -> str:
    """Take out the `(SSL: ...)` part (its text may hold parentheses and "while")."""
    start = msg.find(" (SSL: ")
    if start < 0:
        return msg
    depth, end = 0, len(msg)
    for pos in range(start + 1, len(msg)):
        ch = msg[pos]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                end = pos
                break
    ssl = fields["ssl_error"] = msg[start + 7:end]
    fields["ssl_reason"] = ssl_reason(ssl)
    alert = ssl.rfind("SSL alert number ")
    if alert >= 0:
        number = ssl[alert + 17:alert + 20].rstrip(") ")
        if number.isascii() and number.isdigit():
            fields["tls_alert"] = int(number)
    return msg[:start] + msg[end + 1:]


def _take_errno(msg: str, fields: ErrorFields) -> str:
    """Remove a trailing ` (N: text)`; resolver messages carry a DNS rcode there."""
    if not msg.endswith(")"):
        return msg
    j = msg.rfind(" (")
    if j < 0:
        return msg
    num, sep, text = msg[j + 2:-1].partition(": ")
    if not sep or not (num.isascii() and num.isdigit()) or len(num) > 9:
        return msg
    head = msg[:j]
    if head.startswith(_RESOLVER_HEADS) or head.endswith(_RESOLVER_HEADS):
        fields["rcode"] = int(num)
        fields["rcode_text"] = text
    else:
        number = fields["errno"] = int(num)
        name = _errno.errorcode.get(number)
        if name is not None:
            fields["errno_name"] = name
        fields["errno_text"] = text
    return head


_TIMES: Final[dict[str, str]] = {}  # error-log time -> ISO 8601, for the seconds met lately


_OFFSETS: Final[dict[str, str | None]] = {}  # `YYYY-MM-DDTHH` -> its local offset, if one


def stamp_time(stamp: str) -> str:
    """An error-log time (`2026/04/08 21:07:15`, local, no zone) as ISO 8601 with the local
    offset; kept, since the lines of one second share it."""
    time = _TIMES.get(stamp)
    if time is None:
        hour = f"{stamp[:4]}-{stamp[5:7]}-{stamp[8:10]}T{stamp[11:13]}"
        offset = _hour_offset(hour) if stamp[14:16] < "60" and stamp[17:19] < "60" else None
        naive = f"{hour}:{stamp[14:]}"
        time = local_time(naive) if offset is None else naive + offset
        if len(_TIMES) >= 4096:
            _TIMES.clear()
        _TIMES[stamp] = time
    return time


def _hour_offset(hour: str) -> str | None:
    """The local offset of every second of `hour`, when it has one (None for an hour a
    change of offset falls in, or that clocks skip); found once per hour."""
    if hour in _OFFSETS:
        return _OFFSETS[hour]
    first, last = hour + ":00:00", hour + ":59:59"
    start, end = local_time(first), local_time(last)
    same = start[19:] == end[19:] and start[:19] == first and end[:19] == last
    offset = start[19:] if same else None
    if len(_OFFSETS) >= 4096:
        _OFFSETS.clear()
    _OFFSETS[hour] = offset
    return offset


def local_time(naive: str) -> str:
    """A local time without a zone (ISO 8601) with the local offset."""
    try:
        return datetime.fromisoformat(naive).astimezone().isoformat()
    except ValueError:
        return naive


def ssl_reason(ssl_error: str) -> str:
    """The OpenSSL reason text of the last queue entry, in 1.1 or 3 form."""
    last = ssl_error.rsplit(" error:", 1)[-1]
    parts = last.split(":")
    # error:CODE:LIB:FUNC:REASON[:extra]  (FUNC empty in OpenSSL 3)
    if len(parts) >= 5:
        return ":".join(parts[4:]).strip()
    return last.strip()
