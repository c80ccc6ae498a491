"""The per-record modules run compiled (setup.py), and the compiled build is what was tested."""

from __future__ import annotations

import ast
import importlib
import os
from pathlib import Path

import pytest

from ngx_enrich import build

ROOT = Path(__file__).resolve().parents[1]


def compiled_sources() -> list[str]:
    """The `COMPILED` list of setup.py, read without running it."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.List)
                and getattr(node.targets[0], "id", "") == "COMPILED"):
            return [ast.literal_eval(item) for item in node.value.elts]
    raise AssertionError("setup.py has no COMPILED list")


def module_name(source: str) -> str:
    return source.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def test_every_listed_module_exists() -> None:
    sources = compiled_sources()
    assert sources and sources == sorted(set(sources))
    for source in sources:
        assert (ROOT / source).is_file(), source


@pytest.mark.skipif(os.environ.get("NGX_ENRICH_PURE") == "1",
                    reason="NGX_ENRICH_PURE=1: installed as plain Python")
def test_per_record_modules_run_compiled() -> None:
    loaded = {module_name(s): importlib.import_module(module_name(s)).__file__
              for s in compiled_sources()}
    plain = sorted(name for name, path in loaded.items() if str(path).endswith(".py"))
    assert plain == [], "not compiled (no C compiler at install?)"
    assert build() == "compiled"
