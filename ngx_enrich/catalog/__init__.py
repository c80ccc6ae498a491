"""The catalogue: rules, statuses and actions as TOML data, loaded once and validated.

Each `*.toml` file here holds `[[rule]]` tables; `statuses.toml` holds `[[status]]` and
`actions.toml` holds `[[subject]]` and `[[action]]`. Problems are collected for every entry
and reported together, each with the id of the entry it belongs to.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ngx_enrich.fields import FIELDS, TEMPLATE_ONLY

HERE = Path(__file__).parent
_TEMPLATE_NAMES = frozenset({f.name for f in FIELDS} | set(TEMPLATE_ONLY))
AREAS = frozenset((
    "upstream", "client", "tls", "access", "filesystem", "limits", "resources", "config",
    "lifecycle", "dns", "app", "http2", "cache", "server", "other",
))
SEVERITIES = ("critical", "error", "warning", "info")
LEVELS = frozenset(("emerg", "alert", "crit", "error", "warn", "notice", "info", "debug",
                    "stderr"))
SIDES = frozenset(("client", "upstream", "none"))
LANGS = ("en", "zh")
_ID_RE = re.compile(r"[a-z][a-z0-9_]*\Z")
_CLASS_RE = re.compile(r"[1-5]xx\Z")
_PLACEHOLDER_RE = re.compile(r"\{(\w+)(?:\?([^}]*))?\}")

RULE_KEYS = frozenset((
    "id", "category", "area", "severity", "en", "zh", "check", "samples", "match", "extract",
    "status",
))
MATCH_KEYS = frozenset(("head", "contains", "syscall", "errno", "action", "side", "level", "ssl"))
STATUS_KEYS = frozenset(("code", "category", "area", "severity", "en", "zh", "check"))
ACTION_KEYS = frozenset(("prefix", "side"))


class CatalogError(ValueError):
    """The catalogue (or a user rules file) has problems; `problems` lists them all."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_EMPTY_PARENS = re.compile(r" ?(\(\s*\)|（\s*）)")
_SPACE_BEFORE = re.compile(r" +(?=[,.;:)，。；：）]| |$)")


def _tidy(text: str) -> str:
    """Mend what an empty placeholder leaves behind: `()`, double spaces, ` ,`."""
    return _SPACE_BEFORE.sub("", _EMPTY_PARENS.sub("", text))


@dataclass(frozen=True, slots=True)
class Template:
    """A sentence with `{field}` / `{field?fallback}` placeholders, split once."""

    parts: tuple[str | tuple[str, str], ...]
    names: tuple[str, ...] = ()  # the fields it names, in order of first use

    @classmethod
    def compile(cls, text: str) -> Template:
        parts: list[str | tuple[str, str]] = []
        pos = 0
        for m in _PLACEHOLDER_RE.finditer(text):
            if m.start() > pos:
                parts.append(text[pos:m.start()])
            parts.append((m.group(1), m.group(2) or ""))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        names = dict.fromkeys(p[0] for p in parts if not isinstance(p, str))
        return cls(tuple(parts), tuple(names))

    @property
    def static(self) -> str | None:
        """The text when it has no placeholders."""
        if all(isinstance(p, str) for p in self.parts):
            return "".join(p for p in self.parts if isinstance(p, str))
        return None

    def render(self, values: Mapping[str, Any]) -> str:
        out = []
        gap = False
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                v = values.get(p[0])
                text = p[1] if v is None or v == "" else str(v)
                gap = gap or not text
                out.append(text)
        text = "".join(out)
        return _tidy(text) if gap else text


@dataclass(frozen=True, slots=True)
class Match:
    """Structural conditions; all given ones must hold."""

    head: tuple[str, ...] = ()
    contains: tuple[str, ...] = ()
    syscall: tuple[str, ...] = ()
    errno: frozenset[int] = frozenset()
    action: tuple[str, ...] = ()
    side: frozenset[str] = frozenset()
    level: frozenset[str] = frozenset()
    ssl: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    """One catalogue entry: what a message means and where to look."""

    id: str
    category: str
    area: str
    severity: str
    text: dict[str, Template]
    check: tuple[str, ...]
    samples: tuple[str, ...]
    match: Match
    extract: re.Pattern[str] | None = None
    status: int | None = None
    origin: str = ""


@dataclass(frozen=True, slots=True)
class Status:
    """What an HTTP status in an access log means."""

    code: int | str
    category: str
    area: str
    severity: str
    text: dict[str, Template]
    check: tuple[str, ...]


@dataclass(slots=True)
class Catalog:
    """Everything loaded: rules in precedence order, statuses by code, action sides."""

    rules: list[Rule] = field(default_factory=list)
    statuses: dict[int | str, Status] = field(default_factory=dict)
    actions: list[tuple[str, str]] = field(default_factory=list)
    subjects: list[tuple[str, str]] = field(default_factory=list)
    check_zh: dict[str, str] = field(default_factory=dict)
    phrases: dict[str, dict[str, str]] = field(default_factory=dict)
    """Words that belong to no rule (hint prefix, fallback, explain's labels), per language."""


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _check_texts(entry: dict[str, Any], where: str, problems: list[str]) -> dict[str, Template]:
    texts = {}
    for lang in LANGS:
        text = entry.get(lang)
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where}: missing {lang!r} explanation")
        else:
            texts[lang] = Template.compile(text)
    return texts


def _check_names(texts: dict[str, Template], extracted: set[str], where: str,
                 problems: list[str]) -> None:
    """A text may name only what a record carries: a declared field, a parser value kept for
    the texts, or a group of the rule's own `extract`."""
    named = {p[0] for t in texts.values() for p in t.parts if isinstance(p, tuple)}
    for name in sorted(named - _TEMPLATE_NAMES - extracted):
        problems.append(f"{where}: the text names {{{name}}}, which no record carries "
                        "(see ngx_enrich/fields.py, or name it in `extract`)")


def _check_common(entry: dict[str, Any], where: str, problems: list[str]) -> None:
    if entry.get("area") not in AREAS:
        problems.append(f"{where}: unknown area {entry.get('area')!r}")
    if entry.get("severity") not in SEVERITIES:
        problems.append(f"{where}: unknown severity {entry.get('severity')!r}")
    category = entry.get("category", entry.get("id"))
    if not isinstance(category, str) or not _ID_RE.match(category):
        problems.append(f"{where}: category must be a snake_case id, got {category!r}")
    check = entry.get("check")
    if not isinstance(check, list) or not check or not all(isinstance(c, str) for c in check):
        problems.append(f"{where}: 'check' must list the directives or components to look at")


def _build_match(raw: Any, where: str, problems: list[str]) -> Match:
    if not isinstance(raw, dict) or not raw:
        problems.append(f"{where}: 'match' must be a table with at least one condition")
        return Match()
    for key in sorted(set(raw) - MATCH_KEYS):
        problems.append(f"{where}: unknown match key {key!r}")
    level = frozenset(_strings(raw.get("level", ())))
    for bad in sorted(level - LEVELS):
        problems.append(f"{where}: unknown level {bad!r}")
    side = frozenset(_strings(raw.get("side", ())))
    for bad in sorted(side - SIDES):
        problems.append(f"{where}: unknown side {bad!r}")
    errno = raw.get("errno", ())
    if isinstance(errno, int):
        errno = (errno,)
    try:
        return Match(
            head=_strings(raw.get("head", ())),
            contains=_strings(raw.get("contains", ())),
            syscall=_strings(raw.get("syscall", ())),
            errno=frozenset(int(e) for e in errno),
            action=_strings(raw.get("action", ())),
            side=side,
            level=level,
            ssl=_strings(raw.get("ssl", ())),
        )
    except (TypeError, ValueError) as exc:
        problems.append(f"{where}: bad match value ({exc})")
        return Match()


def build_rule(entry: dict[str, Any], origin: str, problems: list[str]) -> Rule | None:
    """Validate one `[[rule]]` table and build it; problems are appended, not raised."""
    rid = entry.get("id")
    where = f"{origin}: rule {rid!r}"
    if not isinstance(rid, str) or not _ID_RE.match(rid):
        problems.append(f"{where}: id must be a snake_case id")
    for key in sorted(set(entry) - RULE_KEYS):
        problems.append(f"{where}: unknown key {key!r}")
    _check_common(entry, where, problems)
    texts = _check_texts(entry, where, problems)
    samples = entry.get("samples")
    if not isinstance(samples, list) or not samples:
        problems.append(f"{where}: needs at least one sample line")
        samples = []
    match = _build_match(entry.get("match"), where, problems)
    extract = None
    if "extract" in entry:
        try:
            extract = re.compile(entry["extract"])
        except (re.error, TypeError) as exc:
            problems.append(f"{where}: bad extract pattern ({exc})")
    _check_names(texts, set(extract.groupindex) if extract is not None else set(), where,
                 problems)
    if len(texts) != len(LANGS) or not isinstance(rid, str):
        return None
    return Rule(
        id=rid,
        category=entry.get("category", rid),
        area=entry.get("area", "other"),
        severity=entry.get("severity", "error"),
        text=texts,
        check=tuple(entry.get("check") or ()),
        samples=tuple(samples),
        match=match,
        extract=extract,
        status=entry.get("status"),
        origin=origin,
    )


def _read(path: Path, problems: list[str]) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        problems.append(f"{path}: cannot read ({exc.strerror})")
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path}: not valid TOML ({exc})")
    return {}


def read_rules(paths: Iterable[Path], problems: list[str]) -> list[Rule]:
    """Rules from TOML files, in file order; duplicate ids are problems."""
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in paths:
        data = _read(path, problems)
        allowed = {"rule"} if path.parent != HERE else {"rule", "status", "action"}
        for key in sorted(set(data) - allowed):
            problems.append(f"{path.name}: unknown top-level table {key!r} (a rules file "
                            "holds [[rule]] tables)")
        for entry in data.get("rule", []):
            rid = entry.get("id")
            if isinstance(rid, str) and rid in seen:
                problems.append(
                    f"{path.name}: rule {rid!r}: duplicate id (also in {seen[rid]})")
                continue
            if isinstance(rid, str):
                seen[rid] = path.name
            rule = build_rule(entry, path.name, problems)
            if rule is not None:
                rules.append(rule)
    return rules


def _read_statuses(problems: list[str]) -> dict[int | str, Status]:
    statuses: dict[int | str, Status] = {}
    for entry in _read(HERE / "statuses.toml", problems).get("status", []):
        code = entry.get("code")
        where = f"statuses.toml: status {code!r}"
        for key in sorted(set(entry) - STATUS_KEYS):
            problems.append(f"{where}: unknown key {key!r}")
        _check_common(entry, where, problems)
        texts = _check_texts(entry, where, problems)
        _check_names(texts, set(), where, problems)
        valid = isinstance(code, int) or (isinstance(code, str) and _CLASS_RE.match(code))
        if not valid or code in statuses:
            problems.append(f"{where}: code must be a unique status or class (\"4xx\")")
            continue
        statuses[code] = Status(code, entry.get("category", ""), entry.get("area", "other"),
                                entry.get("severity", "info"), texts, tuple(entry.get("check", ())))
    return statuses


def _read_sides(problems: list[str]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(subjects, actions) of actions.toml as (prefix, side), each longest prefix first."""
    data = _read(HERE / "actions.toml", problems)
    tables: dict[str, list[tuple[str, str]]] = {"subject": [], "action": []}
    for kind, found in tables.items():
        for entry in data.get(kind, []):
            if set(entry) != ACTION_KEYS or entry["side"] not in SIDES:
                problems.append(f"actions.toml: bad {kind} entry {entry!r}")
                continue
            found.append((entry["prefix"], entry["side"]))
        # Longest prefix first so "SSL handshaking to upstream" wins over "SSL handshaking".
        found.sort(key=lambda a: -len(a[0]))
    return tables["subject"], tables["action"]


_WORD_RE = re.compile(r"[A-Za-z]{3,}\Z")


def language_neutral(item: str) -> bool:
    """Whether a `check` item reads the same in any language: one directive name, or
    directives with values and no plain words (`error_page 497 =301 https://$host`)."""
    tokens = item.split()
    return len(tokens) == 1 or not any(_WORD_RE.match(t.strip("()[],.;:")) for t in tokens)


def _read_check_zh(problems: list[str]) -> dict[str, str]:
    table = _read(HERE / "check_zh.toml", problems).get("check", {})
    bad = [k for k, v in table.items() if not isinstance(v, str) or not v.strip()]
    problems.extend(f"check_zh.toml: {k!r}: empty translation" for k in bad)
    return {k: v for k, v in table.items() if k not in bad}


PHRASE_KEYS = frozenset((
    "hint_prefix", "list_separator", "fallback", "explain_what", "explain_check",
    "explain_parsed", "explain_area", "explain_severity", "explain_rule", "explain_other",
))


def _read_phrases(problems: list[str]) -> dict[str, dict[str, str]]:
    data = _read(HERE / "phrases.toml", problems)
    for lang in sorted(set(data) ^ set(LANGS)):
        problems.append(f"phrases.toml: language {lang!r} is "
                        + ("not one of " + ", ".join(LANGS) if lang in data else "missing"))
    phrases = {}
    for lang in LANGS:
        table = data.get(lang, {})
        for key in sorted(set(table) ^ PHRASE_KEYS):
            state = "unknown" if key in table else "missing"
            problems.append(f"phrases.toml: [{lang}] {key}: {state} key")
        phrases[lang] = {k: v for k, v in table.items() if isinstance(v, str)}
    return phrases


def read_report_words(path: Path | None = None) -> dict[str, dict[str, str]]:
    """The headings and labels of `ngx-enrich report` per language (`report.toml`).

    Every language must have the same keys, each a non-empty string.
    """
    problems: list[str] = []
    path = path or HERE / "report.toml"
    data = _read(path, problems)
    for lang in sorted(set(data) ^ set(LANGS)):
        problems.append(f"{path.name}: language {lang!r} is "
                        + ("not one of " + ", ".join(LANGS) if lang in data else "missing"))
    keys = set().union(*(data.get(lang, {}) for lang in LANGS))
    words: dict[str, dict[str, str]] = {}
    for lang in LANGS:
        table = data.get(lang, {})
        for key in sorted(keys):
            value = table.get(key)
            if not isinstance(value, str) or not value.strip():
                problems.append(f"{path.name}: [{lang}] {key}: missing or empty")
        words[lang] = {k: v for k, v in table.items() if isinstance(v, str)}
    if problems:
        raise CatalogError(problems)
    return words


@cache
def report_words(lang: str) -> dict[str, str]:
    """`report.toml`'s words for one language, loaded once per process."""
    return _report_tables()[lang]


@cache
def _report_tables() -> dict[str, dict[str, str]]:
    return read_report_words()


def rule_files() -> list[Path]:
    """Built-in rule files: area files by name, then the structural families last."""
    files = sorted(p for p in HERE.glob("*.toml") if p.name not in (
        "statuses.toml", "actions.toml", "families.toml", "check_zh.toml", "phrases.toml",
        "report.toml"))
    return [*files, HERE / "families.toml"]


def load(user_rules: Iterable[Path] = ()) -> Catalog:
    """Load and validate the catalogue; user rules come first and so take precedence."""
    problems: list[str] = []
    user = read_rules(user_rules, problems)
    builtin = read_rules(rule_files(), problems)
    user_ids = {r.id for r in user}
    subjects, actions = _read_sides(problems)
    catalog = Catalog(
        rules=[*user, *(r for r in builtin if r.id not in user_ids)],
        statuses=_read_statuses(problems),
        actions=actions,
        subjects=subjects,
        check_zh=_read_check_zh(problems),
        phrases=_read_phrases(problems),
    )
    if problems:
        raise CatalogError(problems)
    return catalog


@cache
def builtin() -> Catalog:
    """The built-in catalogue, loaded once per process."""
    return load()
