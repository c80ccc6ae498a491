"""Every catalogue rule explains its own samples, and the loader rejects bad rule files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ngx_enrich import catalog
from ngx_enrich.catalog import CatalogError
from ngx_enrich.pipeline import Enricher, Options

RULES = catalog.builtin().rules
SAMPLES = [(rule.id, i, line) for rule in RULES for i, line in enumerate(rule.samples)]
ENRICHERS = {lang: Enricher(Options(lang=lang)) for lang in ("en", "zh")}
PLACEHOLDER = re.compile(r"\{\w+(?:\?[^}]*)?\}")


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.mark.parametrize(("rule_id", "index", "line"), SAMPLES,
                         ids=[f"{rid}-{i}" for rid, i, _ in SAMPLES])
def test_sample_classifies_to_its_rule(rule_id: str, index: int, line: str) -> None:
    ngx = ENRICHERS["en"].enrich_line(line)["ngx"]
    assert ngx["kind"] == "error", line
    assert ngx["rule"] == rule_id, f"{line}\n-> {ngx['rule']} ({ngx['category']})"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_sample_explanations_render(lang: str) -> None:
    """Every sample gets a sentence in the language asked for, with no placeholder left."""
    for rule_id, _, line in SAMPLES:
        ngx = ENRICHERS[lang].enrich_line(line)["ngx"]
        text = ngx["explanation"]
        assert text and not PLACEHOLDER.search(text), (rule_id, text)
        assert _has_cjk(text) is (lang == "zh"), (rule_id, text)
        assert ngx["hint"], rule_id


def test_rules_are_complete() -> None:
    assert len(RULES) >= 200
    for rule in RULES:
        assert rule.samples and rule.check, rule.id
        assert not _has_cjk(rule.text["en"].render({})), rule.id
        assert _has_cjk(rule.text["zh"].render({})), rule.id


def test_rule_areas_and_severities() -> None:
    for rule in RULES:
        assert rule.area in catalog.AREAS, rule.id
        assert rule.severity in catalog.SEVERITIES, rule.id


def test_stable_categories_kept() -> None:
    categories = {rule.category for rule in RULES}
    for stable in ("client_reset", "upstream_reset", "upstream_refused",
                   "upstream_connect_timeout", "upstream_timeout", "upstream_unavailable",
                   "upstream_closed", "upstream_invalid_response", "client_body_too_large",
                   "fpm_max_children", "no_resolver", "logs_reopened", "graceful_shutdown",
                   "tls_handshake_failed", "tls_certificate_rejected", "tls_no_shared_cipher",
                   "tls_write_failed", "upstream_tls_failed", "client_closed_request",
                   "config_error", "unknown_directive", "not_found", "forbidden"):
        assert stable in categories, stable


def test_match_keys_stay_literal() -> None:
    """Heads, substrings and actions are plain text (matched as prefixes and substrings)."""
    for rule in RULES:
        m = rule.match
        for text in (*m.head, *m.contains, *m.action, *m.ssl, *m.syscall):
            assert text and "\n" not in text, rule.id


# --- loader validation -------------------------------------------------------------------

GOOD = '''
[[rule]]
id = "my_rule"
area = "upstream"
severity = "error"
match = { head = "my message" }
en = "English text."
zh = "中文说明。"
check = ["proxy_pass"]
samples = ["2026/04/08 21:07:15 [error] 1#1: my message"]
'''


def _write(tmp_path: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _problems(*paths: Path) -> list[str]:
    with pytest.raises(CatalogError) as info:
        catalog.load(list(paths))
    return info.value.problems


def test_good_user_rules_load_first(tmp_path: Path) -> None:
    cat = catalog.load([_write(tmp_path, GOOD)])
    assert cat.rules[0].id == "my_rule"


def test_user_rule_overrides_builtin(tmp_path: Path) -> None:
    override = GOOD.replace('id = "my_rule"', 'id = "upstream_refused"')
    cat = catalog.load([_write(tmp_path, override)])
    assert [r.id for r in cat.rules].count("upstream_refused") == 1
    assert cat.rules[0].match.head == ("my message",)


def test_loader_lists_every_problem_with_rule_id(tmp_path: Path) -> None:
    bad = '''
[[rule]]
id = "typo_key"
area = "upstream"
severity = "error"
match = { head = "a", hed = "b" }
en = "x"
zh = "中文"
check = ["x"]
samples = ["s"]
colour = "red"

[[rule]]
id = "no_zh"
area = "upstream"
severity = "error"
match = { head = "a" }
en = "x"
check = ["x"]
samples = ["s"]

[[rule]]
id = "bad_area"
area = "galaxy"
severity = "fatal"
match = { head = "a" }
en = "x"
zh = "中文"
check = ["x"]
samples = ["s"]

[[rule]]
id = "no_samples"
area = "upstream"
severity = "error"
match = { head = "a" }
en = "x"
zh = "中文"
check = ["x"]
samples = []
'''
    problems = _problems(_write(tmp_path, bad))
    text = "\n".join(problems)
    assert "'typo_key': unknown key 'colour'" in text
    assert "'typo_key': unknown match key 'hed'" in text
    assert "'no_zh': missing 'zh' explanation" in text
    assert "'bad_area': unknown area 'galaxy'" in text
    assert "'bad_area': unknown severity 'fatal'" in text
    assert "'no_samples': needs at least one sample line" in text
    assert len(problems) == 6


def test_loader_reports_duplicate_ids(tmp_path: Path) -> None:
    problems = _problems(_write(tmp_path, GOOD + GOOD))
    assert any("'my_rule': duplicate id" in p for p in problems)


def test_loader_reports_duplicates_across_files(tmp_path: Path) -> None:
    a = _write(tmp_path, GOOD, "a.toml")
    b = _write(tmp_path, GOOD, "b.toml")
    problems = _problems(a, b)
    assert any("b.toml: rule 'my_rule': duplicate id (also in a.toml)" in p for p in problems)


def test_loader_reports_missing_en_and_bad_level(tmp_path: Path) -> None:
    bad = GOOD.replace('en = "English text."\n', "").replace(
        'match = { head = "my message" }', 'match = { head = "m", level = "loud" }')
    problems = _problems(_write(tmp_path, bad))
    assert any("'my_rule': missing 'en' explanation" in p for p in problems)
    assert any("'my_rule': unknown level 'loud'" in p for p in problems)


def test_loader_reports_invalid_toml(tmp_path: Path) -> None:
    problems = _problems(_write(tmp_path, "[[rule]\nid = "))
    assert any("not valid TOML" in p for p in problems)


def test_loader_rejects_a_text_naming_an_undeclared_field(tmp_path: Path) -> None:
    bad = GOOD.replace('en = "English text."', 'en = "Backend {upstrem?} and {zone} failed."')
    problems = _problems(_write(tmp_path, bad))
    assert any("'my_rule': the text names {upstrem}" in p for p in problems)
    assert not any("{zone}" in p for p in problems)  # zone is a declared field
    with_extract = GOOD.replace('en = "English text."', 'en = "Pool {pool_name} is full."') \
        + 'extract = "pool (?P<pool_name>\\\\w+)"\n'
    assert catalog.load([_write(tmp_path, with_extract, "ok.toml")]).rules[0].id == "my_rule"
