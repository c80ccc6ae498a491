"""Records as they arrive wrapped: the Nginx record is found inside, and the wrapper reported."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ngx_enrich import catalog
from ngx_enrich.parse.wrappers import unwrap
from ngx_enrich.pipeline import Enricher

ERROR = ('2023/11/03 08:12:44 [error] 29#29: *1 connect() failed (111: Connection refused) '
         'while connecting to upstream, client: 172.18.0.1, server: _, request: "GET / HTTP/1.1", '
         'upstream: "http://172.18.0.3:8000/", host: "localhost"')
EMERG = 'nginx: [emerg] host not found in upstream "app:8000" in /etc/nginx/conf.d/app.conf:3'
ACCESS = '172.18.0.1 - - [03/Nov/2023:08:12:44 +0000] "GET / HTTP/1.1" 502 157 "-" "curl/8.4.0"'

CASES = [
    # (wrapped line, inner record, kind, what the wrapper told)
    (f"web_1  | {ERROR}", ERROR, ["docker_compose"], {"service": "web_1"}),
    (f"proxy-1  | {ACCESS}", ACCESS, ["docker_compose"], {"service": "proxy-1"}),
    (f"2020-04-26T04:21:34.717765840Z {ERROR}", ERROR, ["timestamp"],
     {"time": "2020-04-26T04:21:34.717765840Z"}),
    (f"2023-11-03T08:12:44.123+01:00\t{ACCESS}", ACCESS, ["timestamp"],
     {"time": "2023-11-03T08:12:44.123+01:00"}),
    (f"2026-11-29T18:24:26.123456789Z stderr F {ERROR}", ERROR, ["cri"],
     {"time": "2026-11-29T18:24:26.123456789Z", "stream": "stderr"}),
    (f"2026-11-29T18:24:26.1Z stdout P {ACCESS}", ACCESS, ["cri"],
     {"stream": "stdout", "partial": True}),
    (f"Jan 11 16:37:20 web1 nginx[3026]: {EMERG}", EMERG, ["syslog"],
     {"time": "Jan 11 16:37:20", "host": "web1", "service": "nginx", "pid": 3026}),
    (f"<187>Nov  3 08:12:44 web1 nginx: {ERROR}", ERROR, ["syslog"],
     {"facility": 23, "severity": 3, "host": "web1", "service": "nginx"}),
    (f"<190>Nov  3 08:12:44 web1 nginx_access: {ACCESS}", ACCESS, ["syslog"],
     {"facility": 23, "severity": 6, "service": "nginx_access"}),
    (f"<190>1 2023-11-03T08:12:44.000Z web1 nginx 29 - - {ACCESS}", ACCESS, ["syslog"],
     {"time": "2023-11-03T08:12:44.000Z", "host": "web1", "service": "nginx", "pid": 29}),
    (f"Restarting nginx: {EMERG}", EMERG, ["init_script"], {}),
    (f"2023-11-03T08:12:44.123000+00:00 web/nginx/1a2b3c4d {ERROR}", ERROR,
     ["timestamp", "log_stream"], {"log_stream": "web/nginx/1a2b3c4d"}),
    (f"web_1  | 2023-11-03T08:12:44.717765840Z {ERROR}", ERROR, ["docker_compose", "timestamp"],
     {"service": "web_1", "time": "2023-11-03T08:12:44.717765840Z"}),
    (f"Jan 11 16:37:20 web1 nginx[3026]: Restarting nginx: {EMERG}", EMERG,
     ["syslog", "init_script"], {"host": "web1"}),
]


@pytest.mark.parametrize(("line", "inner", "kinds", "told"), CASES)
def test_unwrap(line: str, inner: str, kinds: list[str], told: dict) -> None:
    text, wrapper = unwrap(line)
    assert text == inner
    assert wrapper is not None and wrapper["kind"] == kinds
    assert {k: wrapper.get(k) for k in told} == told


@pytest.mark.parametrize("line", [ERROR, EMERG, ACCESS, "", "a|b", "2023-11-03 x",
                                  "Jan 11 nothing here", "<999>Nov  3 08:12:44 h n: x"])
def test_bare_or_unknown_lines_are_left_alone(line: str) -> None:
    assert unwrap(line) == (line, None)


@pytest.mark.parametrize(("line", "inner", "kinds", "told"), CASES)
def test_wrapped_records_are_enriched_as_bare_ones(line: str, inner: str, kinds: list[str],
                                                   told: dict) -> None:
    enricher = Enricher()
    wrapped = enricher.enrich_line(line)["ngx"]
    bare = enricher.enrich_line(inner)["ngx"]
    assert wrapped.pop("wrapper")["kind"] == kinds
    assert wrapped == bare and bare["kind"] in ("error", "access")


@given(st.text(max_size=200))
def test_unwrap_returns_a_suffix_and_never_raises(text: str) -> None:
    inner, wrapper = unwrap(text)
    assert text.endswith(inner)
    assert (wrapper is None) == (inner == text)


# -- any known line in any wrapper, and nested pairs -------------------------------------------


KNOWN = [*(s for r in catalog.builtin().rules for s in r.samples if "\n" not in s), ACCESS]
_name = st.text(st.sampled_from("abcdefghij0123456789_-"), min_size=1, max_size=12).filter(
    lambda s: s[0].isalnum())
_stamp = st.builds(lambda d, ns: f"2026-11-{d:02d}T08:12:44.{ns:09d}Z",
                   st.integers(1, 28), st.integers(0, 999_999_999))
_host = st.text(st.sampled_from("abcdefghijklmnop.-0123"), min_size=1, max_size=20).filter(
    lambda s: s[0].isalnum())
WRAPPERS = {
    "docker_compose": st.builds(lambda n, pad: f"{n}{' ' * pad}| ", _name, st.integers(1, 6)),
    "timestamp": st.builds(lambda t, sep: f"{t}{sep}", _stamp, st.sampled_from([" ", "\t"])),
    "cri": st.builds(lambda t, s, p: f"{t} {s} {p} ", _stamp, st.sampled_from(["stdout", "stderr"]),
                     st.sampled_from(["F", "P"])),
    "syslog": st.builds(lambda pri, h, pid: f"<{pri}>Nov  3 08:12:44 {h} nginx[{pid}]: ",
                        st.integers(0, 191), _host, st.integers(1, 99999)),
    "init_script": st.sampled_from(["Starting nginx: ", "Restarting nginx: ",
                                    "Reloading nginx: "]),
}
_layer = st.sampled_from(sorted(WRAPPERS)).flatmap(
    lambda kind: WRAPPERS[kind].map(lambda text: (kind, text)))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(KNOWN), st.lists(_layer, min_size=1, max_size=2))
def test_any_known_line_in_any_wrapper_gets_the_same_facts(line: str, layers: list) -> None:
    enricher = Enricher()
    wrapped_text = "".join(text for _, text in layers) + line
    wrapped = enricher.enrich_line(wrapped_text)["ngx"]
    bare = enricher.enrich_line(line)["ngx"]
    assert wrapped.pop("wrapper")["kind"] == [kind for kind, _ in layers]
    assert wrapped == bare


def test_docker_json_file_and_cri_records_report_their_wrapper() -> None:
    enricher = Enricher()
    docker = enricher.enrich_record({"log": ERROR + "\n", "stream": "stderr",
                                     "time": "2023-11-03T08:12:44.1Z"})["ngx"]
    assert docker["wrapper"] == {"kind": ["docker_json"], "stream": "stderr",
                                 "time": "2023-11-03T08:12:44.1Z"}
    assert docker["category"] == "upstream_refused"
    # Fluent Bit's cri parser: a partial line; and a docker record around a compose prefix
    cri = enricher.enrich_record({"log": ACCESS, "stream": "stdout", "time": "t", "_p": "P"})
    assert cri["ngx"]["wrapper"]["kind"] == ["cri"] and cri["ngx"]["wrapper"]["partial"]
    nested = enricher.enrich_record({"log": f"web_1  | {ERROR}", "stream": "stdout",
                                     "time": "t"})["ngx"]
    assert nested["wrapper"]["kind"] == ["docker_json", "docker_compose"]
    assert nested["wrapper"]["service"] == "web_1"
    # any other record is not a wrapper
    assert "wrapper" not in enricher.enrich_record({"log": ERROR, "host": "h"})["ngx"]
