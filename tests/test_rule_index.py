"""The classifier's rule index (one bit mask per condition value) admits exactly the rules whose
conditions hold, in catalogue order, keyed rules before the family."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ngx_enrich.catalog import Match, builtin
from ngx_enrich.classify import Classifier

CLASSIFIER = Classifier(builtin())
RULES = CLASSIFIER.catalog.rules


def _holds(m: Match, errno: int | None, level: str, side: str, syscall: str | None,
           action: str | None, ssl: str | None) -> bool:
    """A rule's conditions other than the head, read straight from the catalogue's terms."""
    return ((not m.syscall or syscall in m.syscall) and (not m.errno or errno in m.errno)
            and (not m.level or level in m.level) and (not m.side or side in m.side)
            and (not m.action or (action is not None and action.startswith(m.action)))
            and (not m.ssl or (ssl is not None and any(s in ssl for s in m.ssl))))


def _seen(values: set) -> st.SearchStrategy:
    return st.sampled_from(sorted(values, key=repr))


WORDS = _seen({h.split(" ", 1)[0] for r in RULES for h in r.match.head} | {"nothing"})
ERRNOS = st.none() | _seen({e for r in RULES for e in r.match.errno}) | st.integers(0, 200)
LEVELS = st.sampled_from(["emerg", "alert", "crit", "error", "warn", "notice", "info", "stderr"])
SIDES = st.sampled_from(["client", "upstream", "none"])
SYSCALLS = st.none() | _seen({s for r in RULES for s in r.match.syscall} | {"mmap()"})
ACTIONS = st.none() | _seen({a + tail for r in RULES for a in r.match.action
                             for tail in ("", " from upstream")} | {"doing nothing"})
SSLS = st.none() | _seen({"error:0A00010B:SSL routines::" + s for r in RULES for s in r.match.ssl}
                         | {"error:0A000000:SSL routines::other"})


@settings(max_examples=500, deadline=None)
@given(word=WORDS, errno=ERRNOS, level=LEVELS, side=SIDES, syscall=SYSCALLS, action=ACTIONS,
       ssl=SSLS)
def test_the_index_admits_the_rules_whose_conditions_hold(
        word: str, errno: int | None, level: str, side: str, syscall: str | None,
        action: str | None, ssl: str | None) -> None:
    c = CLASSIFIER
    keyed = [r for r in c._by_word.get(word, ())]
    expected = [r.id for r in (*keyed, *c._family)
                if _holds(r.match, errno, level, side, syscall, action, ssl)]
    found = c._candidates_for(word, errno, level, side, syscall, action, ssl)
    assert [verdict.rule for _, _, verdict in found] == expected
    assert expected == sorted(expected, key=lambda rid: (
        rid in {r.id for r in c._family}, [r.id for r in RULES].index(rid)))
