"""Catalogue checks that need the whole pipeline: every sample must classify as its rule."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ngx_enrich import catalog
from ngx_enrich.catalog import Catalog, CatalogError
from ngx_enrich.pipeline import Enricher


def sample_problems(cat: Catalog, only: Iterable[str] | None = None) -> list[str]:
    """One line per sample that does not classify as the rule that carries it."""
    enricher = Enricher(cat=cat)
    wanted = set(only) if only is not None else None
    problems = []
    for rule in cat.rules:
        if wanted is not None and rule.id not in wanted:
            continue
        for sample in rule.samples:
            got = enricher.enrich_line(sample)[enricher.options.key]
            if got.get("rule") != rule.id:
                problems.append(f"{rule.origin}: rule {rule.id!r}: sample classifies as "
                                f"{got.get('rule')!r}: {sample[:120]}")
    return problems


def load_checked(user_rules: Iterable[Path]) -> Catalog:
    """Load the catalogue with user rules and check the user rules' samples too."""
    paths = list(user_rules)
    cat = catalog.load(paths)
    user_ids = {r.id for r in cat.rules if r.origin in {p.name for p in paths}}
    problems = sample_problems(cat, user_ids)
    if problems:
        raise CatalogError(problems)
    return cat
