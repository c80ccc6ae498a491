"""Fields in, verdict out: find the catalogue rule that explains a parsed record.

Rules are indexed by the first word of the message head (`connect()`, `upstream`,
`client`, `open()`...). A record is checked against the rules of its word, in catalogue
order, then against the family rules (those without a head or syscall), so the cost of a
lookup does not grow with the size of the catalogue. The rules whose other conditions hold
(errno, level, side, syscall, action, SSL reason) are an AND of bit masks, one per condition
value, each computed once; only their heads are then tested. Rules in a row that test only
`contains` strings are one step (the strings of every rule are in one Aho-Corasick automaton,
so a head is scanned once for all of them), and so are rules in a row that test only head
prefixes (one `startswith` for all), however many rules a user adds.
Verdicts are cached on the parts that decide them in a bounded LRU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, NamedTuple, cast

import ahocorasick

from ngx_enrich.catalog import Catalog, Match, Rule, Status, Template
from ngx_enrich.record import ErrorFields

_MAX_CANDIDATE_SETS: Final = 4096
RUN_MIN: Final = 4  # this many rules of one kind in a row are tested as one step
LEVEL_SEVERITY: Final = {
    "emerg": "critical", "alert": "critical", "crit": "critical", "error": "error",
    "warn": "warning", "notice": "info", "info": "info", "debug": "info",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the catalogue says about one record, before shaping."""

    category: str
    area: str
    severity: str
    rule: str
    text: dict[str, Template]
    check: tuple[str, ...]
    extract: Any = None


def _verdict(rule: Rule) -> Verdict:
    return Verdict(rule.category, rule.area, rule.severity, rule.id, rule.text, rule.check,
                   rule.extract)


def _status_verdict(status: Status) -> Verdict:
    return Verdict(status.category, status.area, status.severity, f"status_{status.code}",
                   status.text, status.check)


def _first_word(head: str) -> str:
    return head.split(" ", 1)[0]


class Classifier:
    """Indexes a catalogue once and answers verdicts for parsed records."""

    def __init__(self, catalog: Catalog, cache_size: int = 8192) -> None:
        self.catalog = catalog
        self._by_word: dict[str, list[Rule]] = {}
        self._family: list[Rule] = []
        self._verdicts = {rule.id: _verdict(rule) for rule in catalog.rules}
        for rule in catalog.rules:
            m = rule.match
            # A head without a space may be a prefix of the line's first word
            # ("nginx/" of "nginx/1.27.0"), so it cannot be keyed by that word.
            if m.head:
                words = {_first_word(h) for h in m.head} if all(" " in h for h in m.head) else set()
            else:
                words = set(m.syscall)
            if not words:
                self._family.append(rule)
            for word in words:
                self._by_word.setdefault(word, []).append(rule)
        self._candidates: dict[tuple[Any, ...], tuple[Step, ...]] = {}
        # Rules as bits of an int, the keyed ones first and the family last, each in catalogue
        # order: the rules that may match are an AND of one mask per condition, each mask
        # computed once per value (an errno, an action...).
        in_family = {rule.id for rule in self._family}
        ordered = [r for r in catalog.rules if r.id not in in_family] + self._family
        self._tests = [_head_test(rule, self._verdicts[rule.id]) for rule in ordered]
        self._rules = ordered
        bit = {rule.id: 1 << n for n, rule in enumerate(ordered)}
        self._strings = _Strings((text, bit[rule.id]) for rule in ordered
                                 for text in rule.match.contains)
        family = sum(bit[r.id] for r in self._family)
        self._word_masks = {word: family | sum(bit[r.id] for r in rules)
                            for word, rules in self._by_word.items()}
        self._family_mask = family
        self._masks: dict[tuple[str, Any], int] = {}
        # Per condition: the rules without it (it holds for them whatever the value), and the
        # rules with it as (bit, match); for the conditions a value meets by being listed, the
        # bits of the rules listing each value.
        self._free = {c: sum(bit[r.id] for r in ordered if not getattr(r.match, c))
                      for c in _CONDITIONS}
        self._conditioned = {c: [(bit[r.id], r.match) for r in ordered if getattr(r.match, c)]
                             for c in _CONDITIONS}
        self._listed: dict[str, dict[Any, int]] = {c: {} for c in _LISTED}
        for c, listed in self._listed.items():
            for rule_bit, m in self._conditioned[c]:
                for value in getattr(m, c):
                    listed[value] = listed.get(value, 0) | rule_bit
        self._by_mask: dict[int, tuple[Step, ...]] = {}
        self._statuses = {code: _status_verdict(s) for code, s in catalog.statuses.items()}
        self._lookup: Callable[..., Verdict] = lru_cache(maxsize=cache_size)(self._find)
        self._fallback_text = {lang: Template.compile(words["fallback"])
                               for lang, words in catalog.phrases.items()}
        self._fallbacks: dict[str, Verdict] = {}
        self._subjects = tuple(prefix for prefix, _ in catalog.subjects)
        self._action_sides: dict[str, str] = {}

    def fallback(self, level: str) -> Verdict:
        """The verdict for a record no rule describes: area and severity from its level."""
        verdict = self._fallbacks.get(level)
        if verdict is None:
            area = "other"  # the level says how bad, not where to look
            verdict = Verdict("unknown", area, LEVEL_SEVERITY.get(level, "info"), "fallback",
                              self._fallback_text, ("error_log",))
            self._fallbacks[level] = verdict
        return verdict

    def side(self, head: str, action: str | None) -> str:
        """Which end of the connection failed: the message's subject, else its action."""
        if head.startswith(self._subjects):
            for prefix, side in self.catalog.subjects:
                if head.startswith(prefix):
                    return side
        if not action:
            return "none"
        known = self._action_sides.get(action)
        if known is None:  # the first action prefix it starts with, once per action
            known = next((side for prefix, side in self.catalog.actions
                          if action.startswith(prefix)), "none")
            if len(self._action_sides) >= _MAX_CANDIDATE_SETS:
                self._action_sides.clear()
            self._action_sides[action] = known
        return known

    def error(self, fields: ErrorFields) -> Verdict:
        """The verdict for a parsed error-log (or php-fpm) record; the values its rule's
        `extract` pattern finds in the message are added to `fields`."""
        verdict = self.verdict(fields)
        found = self.extracted(verdict, fields.get("message", ""))
        if found:
            fields.update(found)
        return verdict

    def verdict(self, fields: ErrorFields) -> Verdict:
        """The verdict for a parsed error-log (or php-fpm) record."""
        verdict: Verdict = self._lookup(
            fields.get("level", ""), fields.get("head", ""), fields.get("syscall"),
            fields.get("errno"), fields.get("action"), fields.get("ssl_reason"),
        )
        return verdict

    def fresh_verdict(self, fields: ErrorFields) -> Verdict:
        """`verdict` without its cache, for a caller that keeps what it learns (a head met
        once would only push out one that recurs)."""
        return self._find(
            fields.get("level", ""), fields.get("head", ""), fields.get("syscall"),
            fields.get("errno"), fields.get("action"), fields.get("ssl_reason"),
        )

    @staticmethod
    def extracted(verdict: Verdict, message: str) -> ErrorFields:
        """The values the verdict's `extract` pattern finds in `message`."""
        if verdict.extract is None:
            return {}
        m = verdict.extract.search(message)
        if m is None:
            return {}
        # built-in rules extract declared fields; a user's rule may add its own
        return cast(ErrorFields, {k: _number(v) for k, v in m.groupdict().items() if v})

    def status(self, code: int) -> Verdict:
        """The verdict for an access-log status code (by exact code, then by class)."""
        verdict = self._statuses.get(code) or self._statuses.get(f"{code // 100}xx")
        return verdict or self.fallback("info")

    def _find(self, level: str, head: str, syscall: str | None, errno: int | None,
              action: str | None, ssl: str | None) -> Verdict:
        side = self.side(head, action)
        present = -1  # the rules whose `contains` strings the head holds: scanned on first need
        for step in self._candidates_for(
                _first_word(head), errno, level, side, syscall, action, ssl):
            if isinstance(step, Run):
                if present < 0:
                    present = self._strings.present(head)
                hit = step.rules & present
                if hit:
                    return self._tests[(hit & -hit).bit_length() - 1][2]
            elif isinstance(step, Prefixes):
                if head.startswith(step.heads):
                    for prefixes, verdict in step.tests:
                        if head.startswith(prefixes):
                            return verdict
            else:
                heads, contains, verdict = step
                if heads is not None and not head.startswith(heads):
                    continue
                if contains is not None:
                    for text in contains:  # a substring test each: far cheaper than a regex
                        if text in head:
                            break
                    else:
                        continue
                return verdict
        return self.fallback(level)

    def _candidates_for(self, word: str, errno: int | None, level: str, side: str,
                        syscall: str | None, action: str | None,
                        ssl: str | None) -> tuple[Step, ...]:
        """The head tests of the rules that may match, in order, after checking everything
        but the head once per combination (the head varies most: paths, sizes, names)."""
        keyed = word in self._by_word
        key = (word if keyed else None, errno, level, side, syscall, action, ssl)
        found = self._candidates.get(key)
        if found is None:
            if len(self._candidates) >= _MAX_CANDIDATE_SETS:
                self._candidates.clear()
            mask = (self._word_masks[word] if keyed else self._family_mask) \
                & self._mask("errno", errno) & self._mask("level", level) \
                & self._mask("side", side) & self._mask("syscall", syscall) \
                & self._mask("action", action) & self._mask("ssl", ssl)
            found = self._by_mask.get(mask)
            if found is None:
                if len(self._by_mask) >= _MAX_CANDIDATE_SETS:
                    self._by_mask.clear()
                found = self._by_mask[mask] = self._tests_of(mask)
            self._candidates[key] = found
        return found

    def _tests_of(self, mask: int) -> tuple[Step, ...]:
        """The head tests of the rules in `mask`, lowest bit first; `RUN_MIN` or more in a
        row that test only `contains` become one `Run`, and only heads one `Prefixes`."""
        steps: list[Step] = []
        run: list[int] = []  # bits of the rules in a row of the same kind
        kind = ""

        def end_run() -> None:
            tests = [self._tests[low.bit_length() - 1] for low in run]
            if len(run) < RUN_MIN:
                steps.extend(tests)
            elif kind == "contains":
                steps.append(Run(sum(run)))
            else:
                pairs = tuple((t[0] or (), t[2]) for t in tests)
                steps.append(Prefixes(tuple(dict.fromkeys(h for p, _ in pairs for h in p)),
                                      pairs))
            run.clear()

        while mask:
            low = mask & -mask
            this = _kind(self._tests[low.bit_length() - 1])
            if this != kind or not this:
                end_run()
                kind = this
            run.append(low)
            mask ^= low
        end_run()
        return tuple(steps)

    def _mask(self, condition: str, value: Any) -> int:
        """The rules whose `condition` holds for `value`, as bits."""
        mask = self._masks.get((condition, value))
        if mask is None:
            if len(self._masks) >= _MAX_CANDIDATE_SETS:
                self._masks.clear()
            listed = self._listed.get(condition)
            if listed is not None:
                mask = self._free[condition] | listed.get(value, 0)
            else:
                holds = _TESTED[condition]
                mask = self._free[condition] | sum(
                    rule_bit for rule_bit, m in self._conditioned[condition] if holds(m, value))
            self._masks[(condition, value)] = mask
        return mask


# What is left to check of a rule once only the head may differ: its head prefixes, its
# `contains` strings (any of them), and the verdict when both hold.
HeadTest = tuple[tuple[str, ...] | None, tuple[str, ...] | None, Verdict]


class Run(NamedTuple):
    """Rules in a row that test only `contains`: the first whose bit the head's scan sets."""

    rules: int  # their bits


class Prefixes(NamedTuple):
    """Rules in a row that test only head prefixes: all their prefixes, then each rule."""

    heads: tuple[str, ...]
    tests: tuple[tuple[tuple[str, ...], Verdict], ...]  # each rule's prefixes and verdict


Step = HeadTest | Run | Prefixes


class _Strings:
    """Every `contains` string of the catalogue in one automaton: which rules a head holds a
    string of, in one pass over the head."""

    def __init__(self, strings: Iterable[tuple[str, int]]) -> None:
        self._always = 0  # rules with an empty string, which every head holds
        bits: dict[str, int] = {}
        for text, bit in strings:
            if text:
                bits[text] = bits.get(text, 0) | bit
            else:
                self._always |= bit
        self._automaton: Any = None
        if bits:
            self._automaton = ahocorasick.Automaton()
            for text, rules in bits.items():
                self._automaton.add_word(text, rules)
            self._automaton.make_automaton()

    def present(self, head: str) -> int:
        """The bits of the rules with a string that `head` holds."""
        found = self._always
        if self._automaton is not None:
            for _, rules in self._automaton.iter(head):
                found |= rules
        return found


def _kind(test: HeadTest) -> str:
    """What a test checks when it is only one thing (`contains`, `heads`), else ""."""
    heads, contains, _ = test
    if heads is None:
        return "contains" if contains is not None else ""
    return "heads" if contains is None else ""


def _head_test(rule: Rule, verdict: Verdict) -> HeadTest:
    m = rule.match
    return (m.head or None, m.contains or None, verdict)


# The conditions a value meets by being listed in the rule, and those tested per rule (an
# absent condition always holds).
_LISTED: Final = ("errno", "level", "side", "syscall")
_TESTED: Final[dict[str, Callable[[Match, Any], bool]]] = {
    "action": lambda m, action: action is not None and action.startswith(m.action),
    "ssl": lambda m, ssl: ssl is not None and any(s in ssl for s in m.ssl),
}
_CONDITIONS: Final = (*_LISTED, *_TESTED)


# What `int()` or `float()` accepts may start with (besides non-ASCII digits and spaces).
_NUMBER_STARTS: Final = frozenset("0123456789+-.iInN \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f")


def _number(text: str) -> Any:
    """An extracted value: an integer or a float where it is one, else the text."""
    first = text[:1]
    if first < "\x80" and first not in _NUMBER_STARTS:  # ASCII, not a number: a path, a name
        return text
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
