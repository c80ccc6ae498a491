"""The position state of `follow`: which file was read how far, kept across restarts.

The state file is JSON, `{"version": 1, "files": {ABSPATH: [ENTRY, ...]}}`; an entry names
a file by device, inode and a hash of its first bytes, with the committed offset. It is
written to a temporary file, synced and renamed, so a crash leaves the old or the new one.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

STATE_VERSION = 1
Entries = dict[str, list[dict[str, Any]]]
_ENTRY_TYPES = {"dev": int, "ino": int, "offset": int, "fp": str, "fp_len": int}


def load_state(path: str | None) -> Entries:
    """Saved entries by absolute path; a missing or unreadable state file gives none."""
    if not path:
        return {}
    try:
        with open(path, "rb") as fh:
            data = json.load(fh)
        return check_state(data)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring state file %s: %s", path, exc)
        return {}


def save_state(path: str | None, files: Entries) -> None:
    """Write the entries to the state file: temporary file, fsync, rename."""
    if not path:
        return
    body = json.dumps({"version": STATE_VERSION, "files": files}, indent=1).encode()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def check_state(data: object) -> dict[str, list[dict[str, Any]]]:
    """The `files` map of a decoded state file; ValueError when it is not one we wrote."""
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise ValueError("not a version-1 state file")
    files = data.get("files")
    if not isinstance(files, dict):
        raise ValueError("no 'files' map")
    for path, entries in files.items():
        for e in entries if isinstance(entries, list) else [None]:
            ok = (
                isinstance(e, dict)
                and all(type(e.get(k)) is t for k, t in _ENTRY_TYPES.items())
                and type(e.get("until", 0.0)) in (int, float)
            )
            if not ok:
                raise ValueError(f"bad entry for {path}")
    return files
