"""explain, rules and user rule files."""

from __future__ import annotations

from pathlib import Path

ERR = ('2026/04/08 21:07:15 [error] 2211#2211: *1 connect() failed (111: Connection refused) '
       'while connecting to upstream, client: 1.2.3.4, server: x, request: "GET / HTTP/1.1", '
       'upstream: "http://127.0.0.1:8080/", host: "x"')
USER_RULE = '''
[[rule]]
id = "billing_backend_down"
category = "billing_down"
area = "upstream"
severity = "critical"
match = { syscall = ["connect()"], errno = [111], contains = "failed" }
en = "The billing backend {upstream?} is down: page the payments team."
zh = "计费后端 {upstream?} 已宕机：请通知支付团队。"
check = ["billing service"]
samples = [\'\'\'ERR\'\'\']
'''.replace("ERR", ERR)


def test_explain_line_status_and_bare_message(run_cli) -> None:
    line = run_cli(["explain", ERR])
    assert line.status == 0
    text = line.stdout.decode()
    assert text.startswith("upstream_refused")
    assert "What to check" in text and "errno_name: ECONNREFUSED" in text
    status = run_cli(["explain", "504"]).stdout.decode()
    assert status.startswith("gateway_timeout") and "status: 504" in status
    assert "method" not in status
    bare = run_cli(["explain", "--lang", "zh", "no", "live", "upstreams"]).stdout.decode()
    assert bare.startswith("upstream_unavailable") and "发生了什么" in bare
    other = run_cli(["explain", "hello world"])
    assert other.status == 0 and b"unknown" in other.stdout


def test_rules_lists_every_rule(run_cli) -> None:
    from ngx_enrich.catalog import builtin

    out = run_cli(["rules"]).stdout.decode().splitlines()
    assert out[0] == "id\tcategory\tarea\tseverity"
    assert len(out) - 1 == len(builtin().rules)
    assert "upstream_refused\tupstream_refused\tupstream\terror" in out


def test_user_rules_take_precedence(run_cli, tmp_path: Path) -> None:
    rules = tmp_path / "mine.toml"
    rules.write_text(USER_RULE)
    rec = run_cli(["--rules", str(rules)], stdin=ERR.encode()).records[0]["ngx"]
    assert (rec["category"], rec["severity"]) == ("billing_down", "critical")
    assert "http://127.0.0.1:8080/" in rec["explanation"]
    check = run_cli(["rules", "--check", str(rules)])
    assert check.status == 0 and b"1 rules, no problems" in check.stdout


def test_rules_check_reports_every_problem(run_cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(USER_RULE.replace('zh = ', 'zz = ').replace('"upstream"', '"nowhere"')
                   + USER_RULE.replace("billing_down", "dup"))
    result = run_cli(["rules", "--check", str(bad)])
    assert result.status == 1
    err = result.stderr
    for needle in ("unknown key 'zz'", "missing 'zh'", "unknown area 'nowhere'",
                   "duplicate id"):
        assert needle in err, err
    assert err.count("billing_backend_down") >= 3
    filter_run = run_cli(["--rules", str(bad)], stdin=ERR.encode())
    assert filter_run.status == 2 and filter_run.stdout == b""


def test_sample_that_does_not_classify_is_a_problem(run_cli, tmp_path: Path) -> None:
    rules = tmp_path / "wrong.toml"
    rules.write_text(USER_RULE.replace('errno = [111]', 'errno = [110]'))
    result = run_cli(["rules", "--check", str(rules)])
    assert result.status == 1 and "sample classifies as 'upstream_refused'" in result.stderr


FMT = ('$remote_addr [$time_local] "$request" $status rt=$request_time ua="$upstream_addr" '
       'us="$upstream_status"')
CUSTOM = ('203.0.113.9 [29/Nov/2026:18:33:21 +0000] "GET /api HTTP/1.1" 502 rt=0.003 '
          'ua="10.0.0.9:8080, 10.0.0.10:8080" us="502, 502"')


def test_log_format_option_and_nginx_conf(run_cli, tmp_path: Path) -> None:
    rec = run_cli(["--log-format", FMT], stdin=CUSTOM.encode()).records[0]["ngx"]
    assert (rec["kind"], rec["category"], rec["request_time"]) == ("access", "bad_gateway",
                                                                   0.003)
    assert rec["upstream_status"] == [502, 502]
    conf = tmp_path / "nginx.conf"
    conf.write_text("http {\n  log_format timed '" + FMT + "';\n}\n")
    same = run_cli(["--nginx-conf", str(conf), "--format-name", "timed"],
                   stdin=CUSTOM.encode()).records[0]["ngx"]
    assert same == rec
    # a custom access line after an error line is not glued onto it
    err = ("2026/04/08 21:07:15 [error] 2211#2211: *1 upstream timed out (110: Connection "
           "timed out) while reading upstream, client: 1.2.3.4, server: x")
    both = run_cli(["--log-format", FMT], stdin=f"{err}\n{CUSTOM}\n".encode()).records
    assert [r["ngx"]["kind"] for r in both] == ["error", "access"]


def test_log_format_errors_are_one_line(run_cli, tmp_path: Path) -> None:
    missing = run_cli(["--nginx-conf", str(tmp_path / "no.conf"), "--format-name", "main"])
    assert missing.status == 2 and missing.stderr.count("\n") == 1
    conf = tmp_path / "nginx.conf"
    conf.write_text("http { log_format main '$remote_addr $status'; }\n")
    unknown = run_cli(["--nginx-conf", str(conf), "--format-name", "nope"])
    assert unknown.status == 2 and "main" in unknown.stderr and unknown.stderr.count("\n") == 1
    half = run_cli(["--nginx-conf", str(conf)])
    assert half.status == 2 and half.stderr.count("\n") == 1


def test_json_access_log_lines_are_recognised(run_cli) -> None:
    line = ('{"time_local":"29/Nov/2026:18:33:21 +0000","remote_addr":"203.0.113.9",'
            '"request":"GET /api HTTP/1.1","status":"504","upstream_status":"504"}')
    rec = run_cli([], stdin=line.encode()).records[0]
    assert rec["remote_addr"] == "203.0.113.9"
    assert (rec["ngx"]["kind"], rec["ngx"]["category"]) == ("access", "gateway_timeout")


def test_user_files_hold_only_rules(run_cli, tmp_path: Path) -> None:
    rules = tmp_path / "statuses.toml"
    rules.write_text('[[status]]\ncode = 418\ncategory = "teapot"\n')
    result = run_cli(["rules", "--check", str(rules)])
    assert result.status == 1 and "unknown top-level table 'status'" in result.stderr
