"""`ngx-enrich follow`: follow Nginx log files like `tail -F` and emit enriched records.

`tailer` follows the files through rotation, `state` keeps the read positions across
restarts, and `command` is the command around them.
"""

from ngx_enrich.follow.command import add_arguments, follow_batches, run, shape_batch
from ngx_enrich.follow.tailer import ReadBatch, Tailer

__all__ = ["ReadBatch", "Tailer", "add_arguments", "follow_batches", "run", "shape_batch"]
