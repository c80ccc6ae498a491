"""Shared test helpers: an in-process CLI runner and the location of ../shared."""

from __future__ import annotations

import io
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

# Error-log timestamps carry no zone: pin the zone so times are reproducible.
os.environ["TZ"] = "UTC"
time.tzset()
# A suite started in the background (`cmd &` in a script) has Ctrl-C ignored, and the programs
# it starts would inherit that: take it back, so they get Ctrl-C as from a terminal.
signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    """Stop at once when compiled modules are older than the sources beside them: the suite
    would test the code as it was at the last install."""
    package = ROOT / "ngx_enrich"
    sources = ((so.with_name(so.name.split(".")[0] + ".py"), so) for so in package.rglob("*.so"))
    stale = sorted(str(py.relative_to(ROOT)) for py, so in sources
                   if py.exists() and py.stat().st_mtime > so.stat().st_mtime)
    if stale:
        pytest.exit(f"compiled modules older than their sources ({', '.join(stale)}): run "
                    "`pip install -e '.[test]'` again, or reinstall with NGX_ENRICH_PURE=1",
                    returncode=2)


@dataclass
class CliResult:
    status: int
    stdout: bytes
    stderr: str

    @property
    def records(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.stdout.splitlines()]


class _Stdin(io.BytesIO):
    """Bytes stdin with a real file descriptor, as `os.read` needs one."""

    def __init__(self, data: bytes, tmp: Path) -> None:
        super().__init__(data)
        self._path = tmp / "stdin"
        self._path.write_bytes(data)
        self._fd = os.open(self._path, os.O_RDONLY)

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        os.close(self._fd)
        super().close()


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run `ngx-enrich` in process: run_cli(args, stdin=b"...") -> CliResult."""
    from ngx_enrich.cli import Env, main

    def run(args: list[str], stdin: bytes = b"") -> CliResult:
        out, err = io.BytesIO(), io.StringIO()
        inp = _Stdin(stdin, tmp_path)
        try:
            status = main(args, Env(stdin=inp, stdout=out, stderr=err))
        finally:
            inp.close()
        return CliResult(int(status), out.getvalue(), err.getvalue())

    return run


def shared_file(*parts: str) -> Path:
    """A file under ../shared, or skip the test when the folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not available (no ../shared beside this clone)")
    return path
