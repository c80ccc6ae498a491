"""Every field ngx-enrich emits, in one place.

Each entry: name inside the `ngx` object, Elasticsearch type, ECS path (or None when the
fact has no ECS home and stays under the `ngx` namespace), and a short description.
The output JSON Schema and the Elasticsearch index template are generated from this list.
"""

from __future__ import annotations

from typing import NamedTuple


class Field(NamedTuple):
    name: str
    es_type: str
    ecs: str | None
    doc: str


FIELDS: tuple[Field, ...] = (
    # verdict
    Field("kind", "keyword", None, "error | access | other"),
    Field("category", "keyword", "error.type", "stable category id"),
    Field("area", "keyword", None, "where to look: upstream, client, tls, ..."),
    Field("severity", "keyword", None, "critical | error | warning | info"),
    Field("explanation", "text", None, "what the record means, in the chosen language"),
    Field("hint", "text", None, "directives or components to check"),
    Field("rule", "keyword", None, "id of the catalogue rule that matched"),
    Field("parse_error", "keyword", None, "why the input could not be (fully) parsed"),
    Field("source", "keyword", None, "stderr | php-fpm | partial when not a whole Nginx line"),
    # error log
    Field("time", "date", None, "event time, ISO 8601"),
    Field("stage", "keyword", None, "startup (reading or testing the configuration) | runtime"),
    Field("level", "keyword", "log.level", "Nginx level: emerg ... info"),
    Field("pid", "long", "process.pid", "process id"),
    Field("tid", "long", "process.thread.id", "thread id"),
    Field("cid", "long", "nginx.error.connection_id", "connection serial number"),
    Field("message", "text", "error.message", "the message without the context tail"),
    Field("syscall", "keyword", None, "the failing call, e.g. connect()"),
    Field("peer", "keyword", None, "the address a connect() went to"),
    Field("file_path", "keyword", "file.path", "the file an open()/stat() named"),
    Field("errno", "integer", "error.code", "errno number"),
    Field("errno_name", "keyword", None, "errno symbol, e.g. ECONNREFUSED"),
    Field("ssl_error", "keyword", None, "the OpenSSL error queue text"),
    Field("tls_alert", "integer", None, "TLS alert number the peer sent (46: certificate unknown)"),
    Field("action", "keyword", None, "what Nginx was doing (the `while` part)"),
    Field("client", "keyword", "source.address", "client address"),
    Field("server", "keyword", "server.address", "server name or listen address"),
    Field("request", "keyword", None, "request line"),
    Field("subrequest", "keyword", None, "subrequest URI"),
    Field("upstream", "keyword", None, "upstream URL"),
    Field("host", "keyword", "url.domain", "Host header"),
    Field("referrer", "keyword", "http.request.referrer", "Referer header (error log)"),
    Field("resolver", "keyword", None, "DNS resolver address (resolver tail)"),
    Field("responder", "keyword", None, "OCSP responder (OCSP tail)"),
    Field("peer_address", "keyword", None, "OCSP peer address (OCSP tail)"),
    Field("certificate", "keyword", None, "certificate file (OCSP tail)"),
    Field("login", "keyword", None, "mail login (mail tail)"),
    Field("conf_file", "keyword", None, "configuration file of a config error"),
    Field("conf_line", "integer", None, "line in that file"),
    Field("directive", "keyword", None, "the directive a config error names"),
    Field("rcode", "integer", None, "DNS response code of a resolver error"),
    Field("hostname", "keyword", None, "the name a resolver error is about"),
    Field("signal", "integer", None, "signal a process exited on"),
    Field("body_bytes", "long", None, "request body size a client announced"),
    Field("zone", "keyword", None, "limit_req / limit_conn / cache zone"),
    Field("excess", "float", None, "limit_req excess over the rate"),
    Field("pool", "keyword", None, "php-fpm pool"),
    Field("bytes_from_client", "long", None, "stream bytes from the client"),
    Field("bytes_to_client", "long", None, "stream bytes to the client"),
    Field("bytes_from_upstream", "long", None, "stream bytes from the upstream"),
    Field("bytes_to_upstream", "long", None, "stream bytes to the upstream"),
    # access log
    Field("remote_addr", "keyword", "source.address", "client address"),
    Field("remote_user", "keyword", "user.name", "basic-auth user"),
    Field("ident", "keyword", None, "second address column of some formats"),
    Field("vhost", "keyword", None, "virtual host in front of the line"),
    Field("x_forwarded_for", "keyword", None, "X-Forwarded-For list"),
    Field("method", "keyword", "http.request.method", "request method"),
    Field("path", "keyword", "url.original", "request target"),
    Field("protocol", "keyword", None, "HTTP version, e.g. HTTP/1.1"),
    Field("status", "integer", "http.response.status_code", "response status"),
    Field("bytes", "long", "http.response.body.bytes", "body bytes sent"),
    Field("referer", "keyword", "http.request.referrer", "Referer header"),
    Field("user_agent", "keyword", "user_agent.original", "User-Agent header"),
    Field("request_length", "long", "http.request.bytes", "request length"),
    Field("request_time", "float", None, "request time, seconds"),
    Field("upstream_addr", "keyword", None, "upstream addresses tried"),
    Field("upstream_status", "integer", None, "status per upstream tried"),
    Field("upstream_response_time", "float", None, "seconds per upstream tried"),
    Field("upstream_response_length", "long", None, "bytes per upstream tried"),
    Field("upstream_connect_time", "float", None, "connect seconds per upstream tried"),
    Field("upstream_header_time", "float", None, "header seconds per upstream tried"),
    Field("proxy_upstream_name", "keyword", None, "ingress-nginx upstream name"),
    Field("proxy_alternative_upstream_name", "keyword", None, "ingress-nginx canary upstream"),
    Field("request_id", "keyword", None, "request id"),
    Field("extra", "keyword", None, "unparsed remainder of a longer access format"),
    Field("format", "keyword", None, "guessed: an access line in a format nobody declared"),
    # what the record arrived wrapped in (see WRAPPER_FIELDS)
    Field("wrapper", "object", None, "what wrapped the record: docker compose, syslog, ..."),
)

# Values the parser hands to the explanations that are not emitted themselves: a template may
# name them, and they are dropped before the record is shaped.
TEMPLATE_ONLY: dict[str, str] = {
    "head": "the message without its variable parts, the key of rule lookup",
    "errno_text": "the errno's text as Nginx logged it (glibc or musl wording)",
    "rcode_text": "the DNS response code's text of a resolver error",
    "ssl_reason": "the OpenSSL reason of the last error in the SSL queue",
}

WRAPPER_FIELDS: tuple[Field, ...] = (
    Field("kind", "keyword", None, "docker_compose | timestamp | cri | syslog | init_script | "
          "log_stream, outermost first"),
    Field("time", "keyword", None, "the wrapper's own time, as it wrote it"),
    Field("host", "keyword", None, "syslog host"),
    Field("service", "keyword", None, "compose service, syslog tag or app name"),
    Field("stream", "keyword", None, "stdout | stderr (container runtimes)"),
    Field("partial", "boolean", None, "a CRI partial line (P)"),
    Field("facility", "integer", None, "syslog facility"),
    Field("severity", "integer", None, "syslog severity"),
    Field("pid", "long", None, "syslog or journald process id"),
    Field("log_stream", "keyword", None, "a cloud console's log stream (group/stream) name"),
)
