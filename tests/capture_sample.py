"""Capture real nginx logs for the standard cases into a folder.

Usage: ``python tests/capture_sample.py examples/logs/``

Runs nginx on loopback in a temporary prefix, triggers the standard cases and copies
the resulting ``error.log`` and ``access.log`` (combined format) into the folder.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nginx_harness import nginx_available, running_nginx, trigger_standard_cases


def capture(dest: Path) -> list[tuple[str, int]]:
    """Run the standard cases and copy both logs into ``dest``; return the cases."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ngx-enrich-sample-") as tmp:
        with running_nginx(Path(tmp)) as run:
            cases = trigger_standard_cases(run)
        shutil.copyfile(run.error_log, dest / "error.log")
        shutil.copyfile(run.access_log, dest / "access.log")
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="folder that receives error.log and access.log")
    args = parser.parse_args(argv)
    if not nginx_available():
        print("nginx is not installed", file=sys.stderr)
        return 1
    cases = capture(args.dest)
    for path, status in cases:
        print(f"{status} {path}")
    print(f"wrote {args.dest / 'error.log'} and {args.dest / 'access.log'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
