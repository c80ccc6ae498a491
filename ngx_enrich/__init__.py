"""ngx-enrich: explain Nginx log records for the people on call."""

from importlib.util import find_spec

__version__ = "0.1.0"


def build() -> str:
    """`compiled` when the per-record modules run as C (built by mypyc, see setup.py), else
    `python`."""
    spec = find_spec("ngx_enrich.pipeline")
    origin = spec.origin if spec is not None else None
    return "python" if origin is None or origin.endswith(".py") else "compiled"
