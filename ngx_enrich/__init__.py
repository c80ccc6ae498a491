"""ngx-enrich: explain Nginx log records for the people on call."""

__version__ = "0.1.0"
