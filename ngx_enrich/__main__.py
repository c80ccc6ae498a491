"""`python -m ngx_enrich` runs the command line."""

from ngx_enrich.cli import entry

entry()
