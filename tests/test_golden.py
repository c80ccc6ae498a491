"""Golden pairs: tests/fixtures/<source>--<case>.log beside the expected .jsonl output.

Regenerate after a deliberate change with NGX_ENRICH_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(FIXTURES.glob("*--*.log"))


@pytest.mark.parametrize("log", CASES, ids=[p.stem for p in CASES])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_golden(run_cli, log: Path, lang: str) -> None:
    expected_path = log.with_name(f"{log.stem}.{lang}.jsonl")
    result = run_cli(["--lang", lang, str(log)])
    assert result.status == 0
    if os.environ.get("NGX_ENRICH_UPDATE_GOLDEN"):
        expected_path.write_bytes(result.stdout)
    expected = [orjson.loads(line) for line in expected_path.read_bytes().splitlines()]
    assert result.records == expected
    physical = sum(r.get("log", "").count("\n") + 1 for r in expected)
    assert physical == len(log.read_bytes().splitlines())
