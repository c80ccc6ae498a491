"""The classifier's rule index (one bit mask per condition value) admits exactly the rules whose
conditions hold, in catalogue order, keyed rules before the family; and a lookup (with runs of
`contains` rules scanned at once) finds the first rule in that order whose head test holds."""

from __future__ import annotations

import contextlib
import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from ngx_enrich import classify
from ngx_enrich.catalog import Match, builtin
from ngx_enrich.classify import RUN_MIN, Classifier, Prefixes, Run, Step

CLASSIFIER = Classifier(builtin())
RULES = CLASSIFIER.catalog.rules


def _holds(m: Match, errno: int | None, level: str, side: str, syscall: str | None,
           action: str | None, ssl: str | None) -> bool:
    """A rule's conditions other than the head, read straight from the catalogue's terms."""
    return ((not m.syscall or syscall in m.syscall) and (not m.errno or errno in m.errno)
            and (not m.level or level in m.level) and (not m.side or side in m.side)
            and (not m.action or (action is not None and action.startswith(m.action)))
            and (not m.ssl or (ssl is not None and any(s in ssl for s in m.ssl))))


def _rule_ids(c: Classifier, steps: tuple[Step, ...]) -> list[str]:
    """The rules of a candidate list in order, a run's rules lowest bit first."""
    ids = []
    for step in steps:
        if isinstance(step, Run):
            ids += [c._rules[n].id for n in range(step.rules.bit_length()) if step.rules >> n & 1]
        elif isinstance(step, Prefixes):
            ids += [verdict.rule for _, verdict in step.tests]
        else:
            ids.append(step[2].rule)
    return ids


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
    assert _rule_ids(c, found) == expected
    assert expected == sorted(expected, key=lambda rid: (
        rid in {r.id for r in c._family}, [r.id for r in RULES].index(rid)))


# Many rules of `contains` only, as a large user rules file has: lookups go through runs.
def _user_catalog() -> Classifier:
    base = builtin()
    sample = next(r for r in base.rules if not r.match.head and r.match.contains)
    strings = ["backend lost", "quota", "quota exceeded", "shard 7", "lost", "é unicode",
               "timed out", "pool"]
    rules = [dataclasses.replace(sample, id=f"user_{n}", category=f"user_{n}",
                                 match=Match(contains=(strings[n % len(strings)],
                                                       f"only{n}x")))
             for n in range(24)]
    prefixes = ["upstream timed", "upstream timed out (110", "upstream sent", "upstream x",
                "upstream sent no"]
    rules += [dataclasses.replace(sample, id=f"user_head_{n}", category=f"user_head_{n}",
                                  match=Match(head=(f"{prefixes[n % len(prefixes)]}{n % 3}",
                                                    f"upstream only{n}x")))
              for n in range(16)]
    return Classifier(dataclasses.replace(base, rules=[*rules, *base.rules]))


USER_CLASSIFIER = _user_catalog()
HEAD_WORDS = sorted({w for r in USER_CLASSIFIER.catalog.rules for t in (*r.match.head,
                                                                      *r.match.contains)
                     for w in (t, *t.split(" "))} | {"", " ", "x"}, key=repr)


def _first_rule(c: Classifier, head: str, errno: int | None, level: str,
                syscall: str | None, action: str | None, ssl: str | None) -> str:
    """The reference: the first rule, keyed then family, whose every condition holds."""
    side = c.side(head, action)
    word = head.split(" ", 1)[0]
    for r in (*c._by_word.get(word, ()), *c._family):
        m = r.match
        if (_holds(m, errno, level, side, syscall, action, ssl)
                and (not m.head or head.startswith(m.head))
                and (not m.contains or any(t in head for t in m.contains))):
            return r.id
    return "fallback"


@settings(max_examples=500, deadline=None)
@given(words=st.lists(st.sampled_from(HEAD_WORDS), max_size=6), errno=ERRNOS, level=LEVELS,
       syscall=SYSCALLS, action=ACTIONS, ssl=SSLS)
def test_a_lookup_finds_the_first_rule_that_holds(
        words: list[str], errno: int | None, level: str, syscall: str | None,
        action: str | None, ssl: str | None) -> None:
    for c in (CLASSIFIER, USER_CLASSIFIER):
        head = " ".join(words)
        got = c._find(level, head, syscall, errno, action, ssl).rule
        assert got == _first_rule(c, head, errno, level, syscall, action, ssl)


def test_long_runs_of_contains_rules_are_one_step() -> None:
    c = USER_CLASSIFIER
    steps = c._candidates_for("nothing", None, "error", "none", None, None, None)
    runs = [s for s in steps if isinstance(s, Run)]
    assert runs and all(s.rules.bit_count() >= RUN_MIN for s in runs)
    assert runs[0].rules.bit_count() >= 24 >= RUN_MIN
    assert c._find("error", "the quota exceeded now", None, None, None, None).rule == "user_1"
    assert c._find("error", "shard 7 of pool", None, None, None, None).rule == "user_3"
    assert c._find("error", "x only23x", None, None, None, None).rule == "user_23"
    steps = c._candidates_for("upstream", None, "error", "upstream", None, None, None)
    prefixes = [s for s in steps if isinstance(s, Prefixes)]
    assert prefixes and len(prefixes[0].tests) >= 16 >= RUN_MIN
    assert c._find("error", "upstream sent2 way", None, None, None, None).rule == "user_head_2"
    assert c._find("error", "upstream sent no2 way", None, None, None, None).rule \
        == "user_head_14"
    assert c._find("error", "upstream only9x", None, None, None, None).rule == "user_head_9"


def _number_reference(text: str) -> object:
    """The first of int(), float() that takes the text, else the text (no shortcut)."""
    for convert in (int, float):
        with contextlib.suppress(ValueError):
            return convert(text)
    return text


@settings(max_examples=1000)
@given(text=st.one_of(
    st.text(max_size=8),
    st.text(alphabet=st.sampled_from("0123456789+-._eEiInNaf \t\x1c/x\u0663\u2003"), max_size=8),
    st.sampled_from(["nan", "-inf", "Infinity", " 12 ", "1_000", "\u0663", "\x1f7", ".5"])))
def test_extracted_numbers_read_as_int_then_float_then_text(text: str) -> None:
    got, want = classify._number(text), _number_reference(text)
    assert type(got) is type(want)
    assert got == want or (got != got and want != want)  # NaN
