"""`ngx-enrich follow`: follow Nginx log files like `tail -F` and emit enriched records.

`tailer` follows the files through rotation, `state` keeps the read positions across
restarts, and `command` is the command around them.
"""

from ngx_enrich.follow.command import add_arguments, pump, run, shape_batch
from ngx_enrich.follow.tailer import Batch, Tailer

__all__ = ["Batch", "Tailer", "add_arguments", "pump", "run", "shape_batch"]
