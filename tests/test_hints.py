"""Hints in Chinese: every prose `check` item has a translation, and none is left unused."""

from __future__ import annotations

from ngx_enrich.catalog import builtin, language_neutral
from ngx_enrich.pipeline import Enricher, Options


def _items() -> set[str]:
    cat = builtin()
    return ({i for r in cat.rules for i in r.check}
            | {i for s in cat.statuses.values() for i in s.check})


def test_every_prose_check_item_has_chinese() -> None:
    missing = sorted(i for i in _items() if not language_neutral(i)
                     and i not in builtin().check_zh)
    assert not missing, f"{len(missing)} check items need Chinese: {missing[:10]}"


def test_no_unused_translations() -> None:
    unused = sorted(set(builtin().check_zh) - _items())
    assert not unused, unused


def test_zh_hint_is_chinese_and_en_hint_is_not() -> None:
    line = ("2026/04/08 21:07:15 [error] 1#1: *1 connect() failed (111: Connection refused) "
            "while connecting to upstream, client: 1.2.3.4, server: x")
    zh = Enricher(Options(lang="zh")).enrich_line(line)["ngx"]["hint"]
    en = Enricher(Options(lang="en")).enrich_line(line)["ngx"]["hint"]
    assert zh.startswith("检查：") and "proxy_pass" in zh
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh.removeprefix("检查："))
    assert en.startswith("Check: ") and not any("\u4e00" <= ch <= "\u9fff" for ch in en)
