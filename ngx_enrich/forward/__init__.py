"""Forward protocol hop: `ngx-enrich serve` receives events, enriches them, hands them on.

Modules: `protocol` (pure encode/decode and handshake), `server` (asyncio listener),
`client` (acked forward client), `sinks` (where enriched events go), `command` (CLI glue).
"""
