"""The record between the stages, declared: what the parsers hand to the classifier and shape.

`ErrorFields` is what an error-log (or php-fpm, or partial) line is parsed into: every key a
parser or a built-in rule's `extract` may set (a user's rule may extract names of its own).
`AccessFields` stays an open dict, because a custom `log_format` keeps the names of
variables nobody declared (`$ssl_cipher` -> `ssl_cipher`). `Parsed` is one recognised line.
`fields.FIELDS` says how each key is emitted; the keys in `fields.TEMPLATE_ONLY` reach the
explanations and are never emitted. The verdict the classifier adds is `classify.Verdict`.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, TypedDict


class ErrorFields(TypedDict, total=False):
    """A parsed error record; a key is there only when the line said it."""

    # the prefix
    time: str
    stage: str
    level: str
    source: str
    pid: int
    tid: int
    cid: int
    # the message and its parts
    message: str
    head: str
    syscall: str
    peer: str
    file_path: str
    errno: int
    errno_name: str
    errno_text: str
    ssl_error: str
    ssl_reason: str
    tls_alert: int
    action: str
    conf_file: str
    conf_line: int
    rcode: int
    rcode_text: str
    # the context tail
    client: str
    server: str
    request: str
    subrequest: str
    upstream: str
    host: str
    referrer: str
    resolver: str
    responder: str
    peer_address: str
    certificate: str
    login: str
    bytes_from_client: int
    bytes_to_client: int
    bytes_from_upstream: int
    bytes_to_upstream: int
    # php-fpm
    pool: str
    # what a rule's `extract` pattern finds in the message
    directive: str
    hostname: str
    signal: int
    body_bytes: int
    zone: str
    excess: float
    status: int
    # what the pipeline adds
    parse_error: str
    wrapper: dict[str, Any]


AccessFields = dict[str, Any]

# A label of the context tail and the key its value goes to.
TailKey = Literal["referrer", "certificate", "host", "login", "upstream", "subrequest",
                  "request", "peer_address", "responder", "resolver", "server", "client"]


class ParsedError(NamedTuple):
    """A line recognised as an error record (error log, stderr form, php-fpm, partial)."""

    fields: ErrorFields


class ParsedAccess(NamedTuple):
    """A line recognised as an access record."""

    fields: AccessFields


Parsed = ParsedError | ParsedAccess
