"""Every command's --help ends with runnable examples, and the self-contained ones run."""

from __future__ import annotations

import subprocess
import sysconfig
from pathlib import Path

import pytest

from ngx_enrich.cli import COMMANDS, EXAMPLES, PROG, main

ROOT = Path(__file__).resolve().parents[1]
# Examples that need a live log, a server or a file of the user's are shown, not run here.
_NEEDS_MORE = ("tail -F", " serve ", "/var/", "my-rules.toml")


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_ends_with_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = [command, "--help"] if command else ["--help"]
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 0
    text = capsys.readouterr().out.rstrip("\n")
    shown = text.split("\nexamples:\n", 1)[1].splitlines()
    prog = f"{PROG} {command}".strip()
    assert shown == [f"  {line}" for line in EXAMPLES[prog]] and len(shown) >= 2


RUNNABLE = [line for lines in EXAMPLES.values() for line in lines
            if not any(part in f" {line} " for part in _NEEDS_MORE)]


@pytest.mark.parametrize("line", RUNNABLE)
def test_example_runs(line: str) -> None:
    path = f"{sysconfig.get_path('scripts')}:/usr/bin:/bin"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=ROOT, capture_output=True,
                          timeout=60, env={"PATH": path, "TZ": "UTC", "HOME": str(ROOT)})
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.strip(), line
