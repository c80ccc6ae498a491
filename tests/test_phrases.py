"""The words that belong to no rule live in catalog/phrases.toml, and every text reads whole.

Every rule's sample and every status is rendered in every language, as a record and as
`ngx-enrich explain` prints it: no placeholder left, no doubled or dangling separator, the
hint prefix exactly once, and explain's "what to check" is the hint without its prefix.
"""

from __future__ import annotations

import re

import pytest

from ngx_enrich import catalog, explain
from ngx_enrich.catalog import PHRASE_KEYS
from ngx_enrich.pipeline import Enricher, Options

CATALOG = catalog.builtin()
LINES = [line for rule in CATALOG.rules for line in rule.samples]
LINES += [f'10.0.0.1 - - [29/Nov/2026:18:24:26 +0000] "GET / HTTP/1.1" {code:03d} 5 "-" "curl"'
          for code in (c for c in CATALOG.statuses if isinstance(c, int))]
LINES.append("2026/11/29 18:24:26 [warn] 1#1: a message no rule has ever described")
BROKEN = re.compile(r"\{[a-z_]*(?:\?[^}]*)?\}|  |\s[,;，。；：、]|[,，、]\s*[,，、]|^[\s,，、：:]|"
                    r"[,，、：:]\s*$|(?<!\w)\(\s*\)|（\s*）")


def test_every_language_has_every_phrase() -> None:
    assert set(CATALOG.phrases) == set(catalog.LANGS)
    for words in CATALOG.phrases.values():
        assert set(words) == PHRASE_KEYS


@pytest.mark.parametrize("lang", catalog.LANGS)
def test_texts_and_hints_read_whole(lang: str) -> None:
    enricher = Enricher(Options(lang=lang))
    words = CATALOG.phrases[lang]
    seen = set()
    for line in LINES:
        ngx = enricher.enrich_line(line)["ngx"]
        assert ngx["kind"] in ("error", "access"), line
        seen.add(ngx["rule"])
        assert not BROKEN.search(ngx["explanation"]), (ngx["rule"], ngx["explanation"])
        hint = ngx["hint"]
        assert hint.startswith(words["hint_prefix"]), (ngx["rule"], hint)
        items = hint.removeprefix(words["hint_prefix"])
        assert words["hint_prefix"].strip() not in items, (ngx["rule"], hint)
        assert items and not BROKEN.search(items), (ngx["rule"], hint)
        shown = explain.render(ngx, lang, words)
        assert f"\n{words['explain_check']}\n  {items}\n" in shown, (ngx["rule"], shown)
    assert "fallback" in seen and len(seen) > 250


def test_explain_zh_of_an_ssl_rule_keeps_the_whole_check_list() -> None:
    """Splitting the hint on its first colon cut the translated `(SSL: ...)` item in two."""
    rule = next(r for r in CATALOG.rules if r.id == "tls_library_error")
    enricher = Enricher(Options(lang="zh"))
    ngx = explain.as_record(rule.samples[0], enricher)
    shown = explain.render(ngx, "zh", CATALOG.phrases["zh"])
    assert "\n  (SSL: ...) 中给出的原因、openssl version" in shown


def test_phrases_file_problems_are_reported(tmp_path, monkeypatch) -> None:
    bad = tmp_path / "catalog"
    bad.mkdir()
    for path in catalog.HERE.glob("*.toml"):
        (bad / path.name).write_text(path.read_text())
    text = (bad / "phrases.toml").read_text().replace('explain_rule = "规则"\n', "")
    (bad / "phrases.toml").write_text(text + '\n[fr]\nhint_prefix = "Vérifier : "\n')
    monkeypatch.setattr(catalog, "HERE", bad)
    with pytest.raises(catalog.CatalogError) as failed:
        catalog.load()
    problems = "\n".join(failed.value.problems)
    assert "[zh] explain_rule: missing key" in problems
    assert "language 'fr' is not one of en, zh" in problems
