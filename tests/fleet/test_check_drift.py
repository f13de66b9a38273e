"""`fleet run --job check` (expectations files and inventory `policy:` names, the exit
status they give, the verdicts and findings stored and reported) and `fleet report
--since` when an endpoint changed: in-process, against nginx this test starts from two
ELB policies' published tables, restarted on the same port with the other policy and
another certificate of the same expiry."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from prober.cli.main import main
from tests.fleet.test_jobs import LEGACY, MODERN, sql, write
from tests.peers.factory import started_peers
from tests.peers.nginx_server import NginxServer
from tests.peers.pki import Pki, make_pki
from tests.peers.policy_configs import AWS_ELB, nginx_kwargs
from tests.peers.ports import free_port

pytestmark = pytest.mark.timeout(300)

# holds on MODERN (TLS 1.2-1.3), fails twice on LEGACY (TLS 1.0 answered, and negotiated)
GATE = """\
schema: 1
profiles:
  - profiles: [tls1.2-only]
    allow: ok
  - profiles: [tls1.0-only]
    allow: alert
min_version: TLSv1.2
"""
GATE_NAMES = ["profiles[0] tls1.2-only -> ok", "profiles[1] tls1.0-only -> alert",
              "min_version TLSv1.2"]


def leaf(pki: Pki) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pki.rsa_cert.read_bytes())


def fingerprint(pki: Pki) -> str:
    return leaf(pki).fingerprint(hashes.SHA256()).hex()


def report(store: Path, capsys: pytest.CaptureFixture[str], *argv: str
           ) -> tuple[dict[str, Any], str]:
    capsys.readouterr()
    assert main(["fleet", "report", "--store", str(store), *argv, "--json", "-"]) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def test_check_job_exit_verdicts_and_findings(tmp_path: Path, nginx_factory: Any,
                                              dhparam: Path, pki: Pki,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    legacy = nginx_factory(**nginx_kwargs(AWS_ELB[LEGACY], "rsa", dhparam)).port
    modern = nginx_factory(**nginx_kwargs(AWS_ELB[MODERN], "rsa", dhparam)).port
    write(tmp_path / "gate.yaml", GATE)
    gate_group = f"""\
  - name: gate
    expect: gate.yaml
    endpoints:
      - {{target: "127.0.0.1:{modern}", name: modern}}
      - {{target: "127.0.0.1:{legacy}", name: legacy}}
"""
    named_group = f"""\
  - name: named
    policy: {MODERN}
    endpoints:
      - {{target: "127.0.0.1:{modern}", name: modern-named}}
      - {{target: "127.0.0.1:{legacy}", name: legacy-named}}
"""
    inv = write(tmp_path / "inv.yaml", f"schema: 1\ngroups:\n{gate_group}{named_group}")
    store = tmp_path / "fleet.sqlite"
    run = ["fleet", "run", "--job", "check", "--store", str(store), "-t", "2", "-q"]
    # run 1: a failed expectation and a policy mismatch, both high
    assert main([*run, str(inv)]) == 1
    captured = capsys.readouterr()
    assert "run 1: complete; 3 finding(s) counted by --fail-on high" in captured.err

    verdicts = {(e, x): p for e, x, p in sql(
        store, "SELECT endpoint, expectation, passed FROM verdicts WHERE run_id=1")}
    assert verdicts == {
        **{("modern", x): 1 for x in GATE_NAMES},
        ("legacy", GATE_NAMES[0]): 1, ("legacy", GATE_NAMES[1]): 0,
        ("legacy", GATE_NAMES[2]): 0,
        ("modern-named", f"policy equals {MODERN}"): 1,
        ("legacy-named", f"policy equals {MODERN}"): 0}
    findings = sql(store, "SELECT endpoint, id, severity, cause FROM findings WHERE run_id=1 "
                          "ORDER BY endpoint, cause")
    assert [(e, i, s) for e, i, s, _ in findings] == [
        ("legacy", "expectation-failed", "high"), ("legacy", "expectation-failed", "high"),
        ("legacy-named", "policy-mismatch", "high")]
    # each names the expectation and why it failed, as `prober check` words it
    causes = [c for *_, c in findings]
    # min_version sends its own hellos below TLS 1.2: LEGACY answers 1.0 and 1.1
    low = sql(store, "SELECT DISTINCT version FROM attempts WHERE run_id=1 AND "
                     "endpoint='legacy' AND outcome='ok' AND version IN ('TLSv1.0', 'TLSv1.1')")
    assert sorted(v for (v,) in low) == ["TLSv1.0", "TLSv1.1"]
    (n_low,) = sql(store, "SELECT count(*) FROM attempts WHERE run_id=1 AND endpoint='legacy' "
                          "AND outcome='ok' AND version IN ('TLSv1.0', 'TLSv1.1')")[0]
    assert causes[0] == f"min_version TLSv1.2: {n_low} attempts negotiated below TLSv1.2"
    assert causes[1] == "profiles[1] tls1.0-only -> alert: 1/1 attempts outside alert"
    assert causes[2].startswith(f"policy equals {MODERN}: ")
    (message,) = sql(store, "SELECT message FROM verdicts WHERE endpoint='legacy-named'")[0]
    assert causes[2] == f"policy equals {MODERN}: {message}" and message != "equal"
    # the failing profile's evidence is the attempt that TLS 1.0 answered
    (evidence,) = sql(store, "SELECT evidence FROM verdicts WHERE endpoint='legacy' AND "
                             "expectation=?", GATE_NAMES[1])[0]
    assert "TLSv1.0" in json.loads(evidence)[0]

    # the report: the verdicts column, the findings lines, the expiry of the certificate
    doc, text = report(store, capsys)
    by = {e["endpoint"]: e for e in doc["endpoints"]}
    assert {e: by[e]["verdicts"] for e in by} == {
        "modern": {"passed": 3, "failed": []},
        "legacy": {"passed": 1, "failed": GATE_NAMES[1:]},
        "modern-named": {"passed": 1, "failed": []},
        "legacy-named": {"passed": 0, "failed": [f"policy equals {MODERN}"]}}
    expires = leaf(pki).not_valid_after_utc
    for e in by.values():
        assert dt.datetime.fromisoformat(e["cert_not_after"]) == expires, e
        assert e["cert_sha256"] == [fingerprint(pki)], e
    # the table, its columns' spacing aside: no policy scanned (a check run), the expiry
    rows = {line.split()[0]: " ".join(line.split()) for line in text.splitlines()[2:7]}
    day = expires.date().isoformat()
    assert rows == {
        "endpoint": "endpoint vantage task policy cert expires findings verdicts",
        "modern": f"modern local done {day} 3 passed, 0 failed",
        "legacy": f"legacy local done {day} high expectation-failed, high expectation-failed "
                  "1 passed, 2 failed",
        "modern-named": f"modern-named local done {day} 1 passed, 0 failed",
        "legacy-named": f"legacy-named local done {day} high policy-mismatch 0 passed, 1 failed",
    }, rows
    assert (f"  legacy from local: high expectation-failed: {causes[0]}") in text
    assert (f"  legacy-named from local: high policy-mismatch: {causes[2][:60]}") in text

    # what counts: a severity or an id, or nothing
    gate = write(tmp_path / "gate-only.yaml", f"schema: 1\ngroups:\n{gate_group}")
    for fail_on, rc in (("none", 0), ("medium", 0), ("policy-mismatch", 0),
                        ("expectation-failed", 1), ("high", 1)):
        assert main([*run, str(gate), "--fail-on", fail_on]) == rc, fail_on
    named = write(tmp_path / "named-only.yaml", f"schema: 1\ngroups:\n{named_group}")
    assert main([*run, str(named), "--fail-on", "expectation-failed"]) == 0
    assert main([*run, str(named), "--fail-on", "policy-mismatch"]) == 1
    # the same verdicts, run after run: a gate, not a coin
    for r in range(2, 9):
        got = {(e, x): p for e, x, p in sql(
            store, "SELECT endpoint, expectation, passed FROM verdicts WHERE run_id=?", r)}
        assert got == {k: v for k, v in verdicts.items() if k[0] in {e for e, _ in got}}, r
        assert len(got) == (6 if r <= 6 else 2), r


@pytest.fixture
def two_certificates(tmp_path: Path) -> tuple[Pki, Pki]:
    """Two PKIs whose leaves expire at the same second: a rotation no date shows."""
    now = dt.datetime.now(dt.UTC)
    a, b = make_pki(tmp_path / "pki-a", now=now), make_pki(tmp_path / "pki-b", now=now)
    assert leaf(a).not_valid_after_utc == leaf(b).not_valid_after_utc
    assert fingerprint(a) != fingerprint(b)
    return a, b


def test_drift_after_a_policy_change_and_a_certificate_rotation(
        tmp_path: Path, dhparam: Path, two_certificates: tuple[Pki, Pki],
        capsys: pytest.CaptureFixture[str]) -> None:
    pki_a, pki_b = two_certificates
    port = free_port()
    write(tmp_path / "gate.yaml", GATE)
    inv = write(tmp_path / "inv.yaml", f"""\
schema: 1
groups:
  - name: shop
    expect: gate.yaml
    endpoints:
      - {{target: "127.0.0.1:{port}", name: shop}}
""")
    store = tmp_path / "fleet.sqlite"

    def runs(rc_check: int) -> None:
        base = ["fleet", "run", str(inv), "--store", str(store), "-t", "2", "-q"]
        assert main([*base, "-p", "tls1.0-only", "-p", "tls1.2-only"]) == 0
        assert main([*base, "--job", "check"]) == rc_check
        assert main([*base, "--job", "policy"]) == 0

    # runs 1-3 (probe, check, policy): the modern policy and certificate A
    with started_peers(lambda **kw: NginxServer(pki_a, **kw)) as start:
        start(port=port, **nginx_kwargs(AWS_ELB[MODERN], "rsa", dhparam))
        runs(0)
    # runs 4-6 on the same port: TLS 1.0 and 1.1 enabled, more suites, certificate B
    with started_peers(lambda **kw: NginxServer(pki_b, **kw)) as start:
        start(port=port, **nginx_kwargs(AWS_ELB[LEGACY], "rsa", dhparam))
        runs(1)
        # run 7: the same server again, for the drift that is not there
        assert main(["fleet", "run", str(inv), "--store", str(store), "-t", "2", "-q",
                     "-p", "tls1.0-only", "-p", "tls1.2-only"]) == 0
    short_a, short_b = fingerprint(pki_a)[:16], fingerprint(pki_b)[:16]
    rotated = {"endpoint": "shop", "vantage": "local", "what": "certificate",
               "a": short_a, "b": short_b}

    # the probe runs: TLS 1.0 now answered, another certificate, the same expiry (no
    # cert_not_after line: the fingerprint is what shows the rotation)
    doc, text = report(store, capsys, "--run", "4", "--since", "1")
    assert doc["drift"] == [
        {"endpoint": "shop", "vantage": "local", "what": "profile tls1.0-only",
         "a": "alert 1", "b": "ok 1"}, rotated], doc["drift"]
    assert doc["endpoints"][0]["cert_sha256"] == [fingerprint(pki_b)]
    assert "DRIFT SINCE RUN 1" in text
    assert "  shop from local: profile tls1.0-only: alert 1 -> ok 1" in text
    assert f"  shop from local: certificate: {short_a} -> {short_b}" in text

    # the check runs: the same, and the expectations that fail now with their finding
    # (min_version sends a TLS 1.1 hello of its own)
    doc, text = report(store, capsys, "--run", "5", "--since", "2")
    assert doc["drift"] == [
        *({"endpoint": "shop", "vantage": "local", "what": f"profile {p}",
           "a": "alert 1", "b": "ok 1"} for p in ("tls1.0-only", "tls1.1-only")),
        rotated,
        {"endpoint": "shop", "vantage": "local", "what": "findings", "a": [],
         "b": ["expectation-failed"]},
        {"endpoint": "shop", "vantage": "local", "what": "failed expectations", "a": [],
         "b": sorted(GATE_NAMES[1:])}], doc["drift"]
    assert "  shop from local: findings: [] -> ['expectation-failed']" in text
    assert doc["endpoints"][0]["verdicts"] == {"passed": 1, "failed": GATE_NAMES[1:]}

    # the policy runs: another catalog policy, the same rotation
    names = dict(sql(store, "SELECT run_id, name FROM policies"))
    equals = {r: json.loads(e) for r, e in sql(store, "SELECT run_id, equals FROM policies")}
    assert MODERN in equals[3] and LEGACY in equals[6] and MODERN not in equals[6]
    doc, text = report(store, capsys, "--run", "6", "--since", "3")
    drift = doc["drift"]
    assert drift[0] == {"endpoint": "shop", "vantage": "local", "what": "policy",
                        "a": names[3], "b": names[6]}, drift
    assert drift[-1] == rotated, drift
    # and the hellos both scans sent, answered otherwise: versions enabled and dropped
    # (a scan's hello is named by its version and what it offers)
    answers = {d["what"]: (d["a"], d["b"]) for d in drift[1:-1]}
    assert all(w.startswith("profile TLSv1.") for w in answers), answers
    by_version = {w.split("/")[0]: ab for w, ab in answers.items()}
    assert by_version["profile TLSv1.0"] == by_version["profile TLSv1.1"] == (
        "alert 1", "ok 1"), answers
    assert by_version["profile TLSv1.3"] == ("ok 1", "alert 1"), answers
    assert f"  shop from local: policy: {names[3]} -> {names[6]}" in text
    versions = {r: json.loads(v) for r, v in sql(store, "SELECT run_id, versions FROM policies")}
    assert "TLSv1.0" not in versions[3] and "TLSv1.0" in versions[6]

    # the same server twice: nothing changed
    doc, text = report(store, capsys, "--run", "7", "--since", "4")
    assert doc["drift"] == [] and "  nothing changed" in text


def test_a_check_tasks_retries_keep_naming_their_attempt() -> None:
    """A check task stores every attempt of the gate, renumbered after the gate's own (the
    policy scan and the diagnosis number theirs from 1 each): a retry of a hello turned
    away for load must still name that hello, not the gate's attempt of the same number,
    or the report counts the refusal and drops a gate answer."""
    from prober.check.expectations import Expectations
    from prober.check.run import CheckRun
    from prober.core.attempt import RETRY_OF, AttemptResult, last_tries
    from prober.core.outcome import Outcome
    from prober.net.attempt import Deadlines

    def a(i: int, profile: str, outcome: Outcome, retry_of: int | None = None
          ) -> AttemptResult:
        return AttemptResult(i, "t", "127.0.0.1", 443, "127.0.0.1", None, profile, 0, outcome,
                             "", 0.0, data={} if retry_of is None else {RETRY_OF: retry_of})

    run = CheckRun(Expectations("x"), [], Deadlines(connect=1, read=1), 1)
    run.results = [a(1, "gate-1", Outcome.OK), a(2, "gate-2", Outcome.OK)]
    run.other_results = [a(1, "scan-1", Outcome.OK), a(2, "scan-2", Outcome.REFUSED),
                         a(3, "scan-2", Outcome.OK, retry_of=2),
                         a(1, "diag-1", Outcome.REFUSED), a(2, "diag-1", Outcome.OK, retry_of=1)]
    every = run.every_attempt()
    assert [(r.id, r.profile, r.data.get(RETRY_OF)) for r in every] == [
        (1, "gate-1", None), (2, "gate-2", None), (3, "scan-1", None), (4, "scan-2", None),
        (5, "scan-2", 4), (6, "diag-1", None), (7, "diag-1", 6)]
    assert [(r.profile, r.outcome) for r in last_tries(every)] == [
        ("gate-1", "ok"), ("gate-2", "ok"), ("scan-1", "ok"), ("scan-2", "ok"),
        ("diag-1", "ok")]
    # the documents are left as they were: the originals still number from 1
    assert run.other_results[2].data == {RETRY_OF: 2}
