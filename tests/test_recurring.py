"""Error lines whose message recurs are shaped from what their message decided the first time:
the record must be the one the stages give one by one, byte for byte, key order included."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngx_enrich import catalog, encode
from ngx_enrich.catalog import builtin
from ngx_enrich.parse.dispatch import parse_text
from ngx_enrich.parse.errorlog import read_line
from ngx_enrich.parse.wrappers import unwrap
from ngx_enrich.pipeline import Enricher, Options
from ngx_enrich.record import ParsedError
from ngx_enrich.recurring import MAX_KNOWN

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "tests" / "bench"))
from inputs import Lines  # noqa: E402


def by_stages(e: Enricher, line: str, parse_error: str | None = None) -> dict[str, Any]:
    """The record as parse -> classify -> shape make it, with nothing remembered."""
    inner, wrapper = unwrap(line)
    parsed = parse_text(inner)
    assert isinstance(parsed, ParsedError), line
    fields = parsed.fields
    verdict = e.classifier.error(fields)
    if parse_error:
        fields["parse_error"] = parse_error
    if wrapper is not None:
        fields["wrapper"] = wrapper
    return e.shaper.record({"log": line}, e.shaper.facts("error", fields, verdict))


def _recurring(line: str) -> bool:
    inner, _ = unwrap(line)
    return inner[4:5] == "/" and read_line(inner) is not None


def _corpus() -> list[str]:
    lines = [s for r in builtin().rules for s in r.samples]
    logs = [*(ROOT / "tests" / "fixtures").glob("*.log"), *(ROOT / "examples").glob("**/*.log")]
    if SHARED.is_dir():
        logs += [p for p in (SHARED / "peer-fixtures").glob("*") if p.is_file()]
        logs += [p for p in (SHARED / "seed").glob("*") if p.is_file()]
    for log in logs:
        lines += log.read_text(encoding="utf-8", errors="replace").splitlines()
    lines += Lines("error").take(3000)
    return [line for line in lines if _recurring(line)]


CORPUS = _corpus()


def _same(e: Enricher, line: str, parse_error: str | None = None) -> None:
    expected = orjson.dumps(by_stages(e, line, parse_error))
    for _ in range(2):  # learnt, then remembered
        assert orjson.dumps(e.enrich_line(line, parse_error)) == expected, line


@pytest.mark.parametrize(("schema", "encoded"),
                         [("default", False), ("default", True), ("flat", False), ("ecs", False)])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_error_line_is_shaped_as_the_stages_shape_it(schema: str, encoded: bool,
                                                          lang: str) -> None:
    assert len(CORPUS) > 3000
    e = Enricher(Options(schema=schema, lang=lang, encoded=encoded))
    for line in CORPUS:
        _same(e, line)
    if encoded:  # and the encoded object is what most of them got
        got = [type(e.enrich_line(line)["ngx"]) is orjson.Fragment for line in CORPUS]
        assert sum(got) > 0.9 * len(got)


def test_what_the_pipeline_adds_comes_last_on_both_paths() -> None:
    e = Enricher()
    line = ("web_1  | 2026/04/08 21:07:15 [error] 31#31: *9 limiting requests, excess: 5.120 by "
            'zone "api", client: 203.0.113.9, server: api.example.com, request: "GET / HTTP/1.1"')
    _same(e, line, "invalid UTF-8 (bytes shown as \\xNN)")
    ngx = e.enrich_line(line, "invalid UTF-8 (bytes shown as \\xNN)")["ngx"]
    keys = list(ngx)
    assert keys[-2:] == ["parse_error", "wrapper"]
    assert keys.index("stage") < keys.index("excess") < keys.index("parse_error")
    assert ngx["zone"] == "api" and ngx["wrapper"]["service"] == "web_1"
    flat = Enricher(Options(schema="flat", key="nginx"))  # laid out from what the message decided
    for _ in range(2):
        _same(flat, line, "invalid UTF-8 (bytes shown as \\xNN)")
    keys = list(flat.enrich_line(line, "invalid UTF-8 (bytes shown as \\xNN)"))
    assert keys[0] == "log" and keys[-2:] == ["nginx_parse_error", "nginx_wrapper"]


USER_RULE = '''
[[rule]]
id = "my_rule"
area = "upstream"
severity = "error"
match = { head = "my message" }
extract = "code (?P<client>\\\\d+) (?P<head>\\\\w+)"
en = "Seen by {client?nobody} via {upstream?no upstream}, {zone?no zone}."
zh = "{client?无} 经 {upstream?无}。"
check = ["proxy_pass"]
samples = ["2026/04/08 21:07:15 [error] 1#1: *2 my message code 42 x, client: 192.0.2.1, server: s"]
'''


@pytest.mark.parametrize("encoded", [False, True])
def test_a_user_rule_may_extract_line_and_internal_names(tmp_path: Path, encoded: bool) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(USER_RULE, encoding="utf-8")
    e = Enricher(Options(rules=(rules,), encoded=encoded), catalog.load([rules]))
    first = ('2026/04/08 21:07:15 [error] 1#1: *2 my message code 42 x, client: 192.0.2.1, '
             'server: s, upstream: "http://10.0.0.1:80/"')
    second = first.replace("10.0.0.1", "10.0.0.2")
    for line in (first, second, first):
        _same(e, line)
    if encoded:  # a rule's value named like the tail's: built, not encoded
        assert type(e.enrich_line(first)["ngx"]) is dict
        return
    a, b = (e.enrich_line(x)["ngx"] for x in (first, second))
    assert a["rule"] == "my_rule" and a["client"] == 42 and "head" not in a
    assert list(a).index("client") < list(a).index("message")  # the tail's place, the rule's value
    assert "10.0.0.1" in a["explanation"] and "10.0.0.2" in b["explanation"]


def test_what_is_remembered_is_bounded() -> None:
    e = Enricher()
    for n in range(MAX_KNOWN + 50):
        e.enrich_line(f"2026/04/08 21:07:15 [error] 1#1: *{n} open() \"/srv/{n}\" failed "
                      "(2: No such file or directory), client: 192.0.2.1, server: s")
    assert 0 < len(e.recurring._known) <= MAX_KNOWN and len(e.recurring._old) == MAX_KNOWN


LEVELS = st.sampled_from(["emerg", "alert", "crit", "error", "warn", "notice", "info"])
MESSAGES = st.sampled_from(sorted({line.split(": ", 1)[1].split(", client: ")[0]
                                   for line in CORPUS if ": " in line}))
VALUE = st.text(st.characters(codec="utf-8", exclude_characters='"\n\r'), max_size=12)
TAIL = st.fixed_dictionaries({}, optional={
    "client": st.sampled_from(["192.0.2.1", "2001:db8::1", "unix:"]),
    "server": st.sampled_from(["example.com", "0.0.0.0:443", ""]),
    "request": VALUE.map(lambda v: f'"GET /{v} HTTP/1.1"'),
    "upstream": st.sampled_from(['"http://10.0.0.1:80/"', '"fastcgi://unix:/run/php.sock:"']),
    "host": VALUE.map(lambda v: f'"{v}"'),
})


@settings(max_examples=300, deadline=None)
@given(level=LEVELS, message=MESSAGES, tail=TAIL, wrapped=st.booleans(),
       noise=st.sampled_from(["", " 17", ' "x"', ", zone", " (SSL: error:0A000102::x)"]))
def test_any_line_of_the_usual_shape_is_shaped_the_same(
        level: str, message: str, tail: dict[str, str], wrapped: bool, noise: str) -> None:
    e = Enricher(Options(encoded=wrapped))
    context = "".join(f", {k}: {v}" for k, v in tail.items())
    line = f"2026/04/08 21:07:15 [{level}] 7#7: *3 {message}{noise}{context}"
    if wrapped:
        line = "2026-04-08T21:07:15.123Z stderr F " + line
    if _recurring(line):
        _same(e, line)


# An explanation that names one field is kept per value of it (most access lines are 200s).

@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.one_of(st.integers(-3, 600), st.booleans(), st.none(),
                                 st.sampled_from(["", "1", "200", "x"]), st.floats(0, 3)),
                       min_size=1, max_size=12))
def test_an_explanation_kept_per_value_is_the_one_rendered(values: list[Any]) -> None:
    e = Enricher()
    one_name = [v for v in e.classifier._verdicts.values()
                if len(v.text["en"].names) == 1 and v.text["en"].names[0] == "status"]
    assert one_name
    for verdict in one_name[:3]:
        template = verdict.text["en"]
        for value in [*values, *values]:  # the second time from what was kept
            fields = {"status": value}
            assert e.shaper.facts("access", fields, verdict)["explanation"] == \
                template.render(fields)


def _access_corpus() -> list[str]:
    logs = [*(ROOT / "tests" / "fixtures").glob("*access*.log"),
            *(ROOT / "examples").glob("**/access*.log")]
    if SHARED.is_dir():
        logs += [p for p in (SHARED / "peer-fixtures").glob("*access*") if p.is_file()]
    lines = [x for log in logs
             for x in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    return lines + Lines("access").take(3000)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_encoded_access_records_are_the_built_ones(lang: str) -> None:
    # A custom format's variable may share a name with a part of the verdict (`$kind`): that
    # record is built, not encoded; every record is the same bytes either way.
    fmt = ('$remote_addr $status $kind "$request"', "default")
    built = Enricher(Options(lang=lang, access_format=fmt))
    encoded = Enricher(Options(lang=lang, access_format=fmt, encoded=True))
    kinds = set()
    for line in [*_access_corpus(), '192.0.2.1 404 mine "GET /x HTTP/1.1"']:
        for _ in range(2):
            got = encoded.enrich_line(line)
            kinds.add(type(got["ngx"]))
            assert encode.encode_json(got) == encode.encode_json(built.enrich_line(line)), line
    assert kinds == {dict, orjson.Fragment}


def test_an_encoded_record_is_restamped_from_its_own_time() -> None:
    built = Enricher(Options(time_key="time"))
    e = Enricher(Options(encoded=True, time_key="time"))
    line = "2026/04/08 21:07:15 [error] 7#7: *3 access forbidden by rule, client: 192.0.2.1, " \
        "server: s"
    access = '192.0.2.1 - - [08/Apr/2026:21:07:15 +0800] "GET / HTTP/1.1" 200 5 "-" "curl/8"'
    for text in (line, access, "not a line"):
        for when in (1, 1.5, "2026-04-08T00:00:00.000000000+0000"):
            stamped = e.enrich_record({"log": text, "time": when})
            want = built.enrich_record({"log": text, "time": when})
            assert (type(stamped["ngx"]) is orjson.Fragment) == (text != "not a line")
            assert stamped["time"] == want["time"]
            assert (want["time"] != when) == (text != "not a line")
            assert encode.encode_json(stamped) == encode.encode_json(want)
