"""`fleet run --job diagnose` and `fleet whatif`, in-process, against real servers this test
starts: nginx configured from two ELB policies' published tables, and a listener that
resets after the ClientHello. The client populations are ALB connection-log lines built
from the log format's field table (tests/logs)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from prober.cli.main import main
from tests.logs.test_logs import conn_line
from tests.peers.misbehaving import (
    BannerListener,
    ResetAfterHello,
    SilentReader,
    SshBanner,
    closed_port,
)
from tests.peers.policy_configs import AWS_ELB, nginx_kwargs

pytestmark = pytest.mark.timeout(300)

LEGACY = "ELBSecurityPolicy-2016-08"  # TLS 1.0-1.2
MODERN = "ELBSecurityPolicy-TLS13-1-2-2021-06"  # TLS 1.2-1.3, no plain-RSA suites


def sql(store: Path, q: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store) as db:
        return list(db.execute(q, params))


def lines(*groups: tuple[int, str, str, str]) -> list[str]:
    """ALB connection-log lines: (count, client IP prefix, protocol, OpenSSL suite); the
    count is spread over IPs prefix.1, prefix.2 … one connection each, round robin over
    two IPs at most."""
    out = []
    for n, prefix, protocol, suite in groups:
        out += [conn_line(f"{prefix}.{i % 2 + 1}", protocol, suite) for i in range(n)]
    return out


# per endpoint: 5 TLS 1.0, 3 TLS 1.1, 2 TLS 1.2 plain-RSA GCM, 10 TLS 1.2 ECDHE connections
SHOP_LOG = lines((5, "10.0.1", "TLSv1", "ECDHE-RSA-AES128-SHA"),
                 (3, "10.0.2", "TLSv1.1", "ECDHE-RSA-AES256-SHA"),
                 (2, "10.0.3", "TLSv1.2", "AES128-GCM-SHA256"),
                 (10, "10.0.4", "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"))
# the command line's population: 4 TLS 1.1 and 6 TLS 1.2 connections
GLOBAL_LOG = lines((4, "10.9.1", "TLSv1.1", "ECDHE-RSA-AES128-SHA"),
                   (6, "10.9.2", "TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384"))


def write(path: Path, text: str | list[str]) -> Path:
    path.write_text(text if isinstance(text, str) else "\n".join(text) + "\n")
    return path


@pytest.fixture
def two_policies(nginx_factory: Any, dhparam: Path) -> tuple[int, int]:
    legacy = nginx_factory(**nginx_kwargs(AWS_ELB[LEGACY], "rsa", dhparam))
    modern = nginx_factory(**nginx_kwargs(AWS_ELB[MODERN], "rsa", dhparam))
    return legacy.port, modern.port


def test_fleet_whatif_with_log_populations(tmp_path: Path, two_policies: tuple[int, int],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    legacy, modern = two_policies
    (tmp_path / "logs").mkdir()
    write(tmp_path / "logs" / "shop.log", SHOP_LOG)
    write(tmp_path / "global.log", GLOBAL_LOG)
    inv = write(tmp_path / "inv.yaml", f"""\
schema: 1
groups:
  - name: shop
    logs: {{files: [logs/*.log], format: alb-conn}}
    endpoints:
      - {{target: "127.0.0.1:{legacy}", name: legacy}}
  - name: api
    endpoints:
      - {{target: "127.0.0.1:{modern}", name: modern, logs: logs/shop.log}}
""")
    store = tmp_path / "fleet.sqlite"
    assert main(["fleet", "run", str(inv), "--job", "policy", "--store", str(store), "-t", "2",
                 "-q"]) == 0
    # the measured policies equal the ones configured (2016-08 equals an older name too)
    equals = {e: json.loads(q) for e, q in sql(store, "SELECT endpoint, equals FROM policies")}
    assert LEGACY in equals["legacy"] and MODERN in equals["modern"]
    capsys.readouterr()

    out = tmp_path / "whatif.json"
    rc = main(["fleet", "whatif", "--policy", MODERN, "--store", str(store), "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 1, text  # someone breaks
    doc = json.loads(out.read_text())
    assert doc["schema"] == "prober.fleet.whatif/1" and doc["run"]["id"] == 1
    assert doc["summary"] == {"assessed": 2, "breaking": 1, "skipped": 0}
    by = {e["endpoint"]: e for e in doc["endpoints"]}
    # legacy (TLS 1.0-1.2 today): the TLS 1.0, 1.1 and plain-RSA clients break, 10 of 20
    s = by["legacy"]["summary"]
    assert (s["connections"], s["connections_breaking"], s["breaks"]) == (20, 10, 3)
    assert s["share_breaking"] == 0.5 and s["client_ips_breaking"] == 6
    assert {c["client"]: c["connections"] for c in by["legacy"]["breaking"]} == {
        "TLSv1.0 / ECDHE-RSA-AES128-SHA": 5, "TLSv1.1 / ECDHE-RSA-AES256-SHA": 3,
        "TLSv1.2 / AES128-GCM-SHA256": 2}
    assert by["legacy"]["today"] == equals["legacy"][0]
    assert by["legacy"]["clients_source"] == "logs: shop.log"
    # modern already refuses them: nobody breaks there, 10 connections already fail
    s = by["modern"]["summary"]
    assert (s["connections_breaking"], s["breaks"], s["still_fails"]) == (0, 0, 3)
    assert ("legacy from local: TLSv1.0 / ECDHE-RSA-AES128-SHA (5 connections, 2 IPs): "
            "no common protocol: client max TLSv1.0, policy TLSv1.2–1.3") in text
    assert "10 of 20 connections (50.0%)" in text

    # today's side is a simulation of the measured policy: check it against the servers
    # (the breaking clients work on legacy today, and fail on modern)
    profiles = [f"cipher:{c}" for c in (
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA@TLSv1.0", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA@TLSv1.1",
        "TLS_RSA_WITH_AES_128_GCM_SHA256@TLSv1.2")]
    for port, want in ((legacy, "ok"), (modern, "alert")):
        probe = tmp_path / f"probe-{port}.json"
        assert main(["probe", f"127.0.0.1:{port}", *(x for p in profiles for x in ("-p", p)),
                     "-t", "2", "-q", "--json", str(probe)]) == 0
        outcomes = {a["outcome"] for a in json.loads(probe.read_text())["attempts"]}
        assert outcomes == {want}, (port, outcomes)
    capsys.readouterr()

    # nobody breaks under the policy legacy holds today: exit 0
    assert main(["fleet", "whatif", "--policy", LEGACY, "--store", str(store)]) == 0
    assert "WHO BREAKS (works today, fails under the candidate)\n  nobody" in (
        capsys.readouterr().out)

    # a global population for every endpoint the inventory gives no logs
    bare = write(tmp_path / "bare.yaml", inv.read_text().replace(
        "    logs: {files: [logs/*.log], format: alb-conn}\n", "").replace(
        ", logs: logs/shop.log", ""))
    rc = main(["fleet", "whatif", "--policy", MODERN, "--store", str(store), "--inventory",
               str(bare), "--clients", str(tmp_path / "global.log"), "--json", "-"])
    captured = capsys.readouterr()
    assert rc == 1
    by = {e["endpoint"]: e for e in json.loads(captured.out)["endpoints"]}
    assert (by["legacy"]["summary"]["connections_breaking"],
            by["legacy"]["summary"]["connections"]) == (4, 10)
    assert by["modern"]["summary"]["connections_breaking"] == 0
    assert by["modern"]["clients_source"] == f"--clients {tmp_path / 'global.log'}"
    assert "4 of 10 connections (40.0%)" in captured.err


def test_fleet_whatif_skips_and_input_errors(tmp_path: Path, two_policies: tuple[int, int],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    legacy, _ = two_policies
    write(tmp_path / "pop.log", GLOBAL_LOG)
    store = tmp_path / "fleet.sqlite"
    inv = write(tmp_path / "inv.yaml", f"""\
schema: 1
groups:
  - name: g
    logs: pop.log
    endpoints:
      - {{target: "127.0.0.1:{legacy}", name: legacy}}
      - {{target: "127.0.0.1:{closed_port()}", name: gone}}
""")
    assert main(["fleet", "whatif", "--policy", MODERN, "--store", str(store)]) == 2
    assert "no policy run yet" in capsys.readouterr().err
    assert main(["fleet", "run", str(inv), "--store", str(store), "-p", "tls1.2-only",
                 "-t", "1", "-q"]) == 1  # a probe run: `gone` is unreachable
    assert main(["fleet", "run", str(inv), "--job", "policy", "--store", str(store),
                 "-t", "1", "-q"]) == 1
    capsys.readouterr()
    rc = main(["fleet", "whatif", "--policy", MODERN, "--store", str(store), "--json",
               str(tmp_path / "w.json")])
    text = capsys.readouterr().out
    doc = json.loads((tmp_path / "w.json").read_text())
    # nobody that works today is left out silently: the skip is counted and named
    assert rc == 1
    assert doc["summary"] == {"assessed": 1, "breaking": 1, "skipped": 1}
    assert [s["endpoint"] for s in doc["skipped"]] == ["gone"]
    assert "SKIPPED (1: no usable policy result in run 2)" in text
    assert "gone from local: the policy scan is not reliable" in text

    # a task that left no policy at all (its time limit ran out on a silent listener)
    with SilentReader() as silent:
        quiet = write(tmp_path / "quiet.yaml", "schema: 1\ngroups:\n  - endpoints:\n"
                      f"      - {{target: '127.0.0.1:{silent.port}', name: quiet}}\n")
        assert main(["fleet", "run", str(quiet), "--job", "policy", "--store", str(store),
                     "-t", "1", "--time-limit", "1", "-q"]) == 1
    capsys.readouterr()
    assert main(["fleet", "whatif", "--policy", MODERN, "--store", str(store), "--clients",
                 "tls1.2-only"]) == 1
    text = capsys.readouterr().out
    assert "0 endpoint x vantage assessed, 0 with clients that break, 1 skipped" in text
    assert "quiet from local: task failed: the task's time limit (1 s) ran out" in text

    for argv, needle in (
            (["--run", "1"], "run 1 is a probe run, it holds no policy results"),
            (["--run", "9"], "no run 9"),
            (["--policy", "NoSuchPolicy"], "--policy: unknown policy 'NoSuchPolicy'"),
            (["--inventory", str(tmp_path / "nope.yaml")], "nope.yaml"),
            (["--clients", str(tmp_path / "empty.log")], "empty.log")):
        write(tmp_path / "empty.log", "\n")
        args = ["fleet", "whatif", "--policy", MODERN, "--store", str(store), *argv]
        if argv[0] == "--policy":
            args = ["fleet", "whatif", *argv, "--store", str(store)]
        assert main(args) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err
    (tmp_path / "pop.log").unlink()
    assert main(["fleet", "whatif", "--policy", MODERN, "--store", str(store), "--run",
                 "2"]) == 2
    assert "inv.yaml: groups[0].logs" in capsys.readouterr().err


def diagnose_ids(target: str, tmp: Path) -> set[str]:
    """The finding ids `prober diagnose` itself gives the target."""
    out = tmp / f"diagnose-{target.replace(':', '_')}.json"
    assert main(["diagnose", target, "-t", "1", "-q", "--json", str(out)]) == 0
    return {f["id"] for f in json.loads(out.read_text())["findings"]}


def test_diagnose_job_in_process(tmp_path: Path, nginx_factory: Any,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    healthy = nginx_factory()
    with ResetAfterHello() as front:
        inv = write(tmp_path / "inv.yaml", f"""\
schema: 1
groups:
  - name: g
    cap: 2
    endpoints:
      - {{target: "127.0.0.1:{healthy.port}", name: healthy}}
      - {{target: "127.0.0.1:{front.port}", name: front}}
""")
        store = tmp_path / "fleet.sqlite"
        run = ["fleet", "run", str(inv), "--job", "diagnose", "--store", str(store), "-t", "1",
               "-q"]
        # the reset is the front's policy (info): not counted by the default --fail-on high
        assert main(run) == 0
        text = capsys.readouterr().out
        expected = {"healthy": diagnose_ids(f"127.0.0.1:{healthy.port}", tmp_path),
                    "front": diagnose_ids(f"127.0.0.1:{front.port}", tmp_path)}
        assert main([*run, "--fail-on", "high,medium,low"]) == 0
        assert main([*run, "--fail-on", "info"]) == 1
        assert main([*run, "--fail-on", "policy-reset"]) == 1
    # a healthy nginx gets its policy summary only; the resetting front what
    # `prober diagnose` names it
    assert expected["healthy"] == {"policy"}
    assert "policy-reset" in expected["front"]
    for run_id in (1, 2, 3, 4):
        got: dict[str, set[str]] = {"healthy": set(), "front": set()}
        for e, fid in sql(store, "SELECT endpoint, id FROM findings WHERE run_id=?", run_id):
            got[e].add(fid)
        assert got == expected, run_id
    assert sql(store, "SELECT DISTINCT severity FROM findings WHERE id='policy'") == [("info",)]
    assert sql(store, "SELECT severity FROM findings WHERE id='policy-reset' AND run_id=1"
               ) == [("info",)]
    # the stored diagnosis is the document `prober diagnose --json` writes
    docs = sql(store, "SELECT endpoint, doc FROM diagnoses WHERE run_id=1 ORDER BY endpoint")
    assert [e for e, _ in docs] == ["front", "healthy"]
    n_attempts = dict(sql(store, "SELECT endpoint, count(*) FROM attempts WHERE run_id=1 "
                                 "GROUP BY endpoint"))
    assert n_attempts["healthy"] >= 20 and n_attempts["front"] >= 20
    for _, d in docs:
        assert json.loads(d)["schema"] == "prober.diagnose/2"
    assert "front from local: info policy-reset" in text

    # the stored diagnosis is read by `prober diff` as a saved run
    rep = tmp_path / "rep.json"
    assert main(["fleet", "report", "--store", str(store), "--run", "2", "--since", "1",
                 "--json", str(rep)]) == 0
    drift = json.loads(rep.read_text())["drift"]
    assert not [d for d in drift if d.get("finding") not in (None, "policy")]


def test_diagnose_tasks_share_the_endpoint_cap(tmp_path: Path) -> None:
    from tests.peers.misbehaving import CountingListener

    with CountingListener() as listener:
        # two names, one address: both diagnoses land on the same listener, cap 4 in all
        # (each alone would open its hellos' slots plus its connect-and-wait control)
        inv = write(tmp_path / "inv.yaml", "schema: 1\ngroups:\n  - cap: 4\n    endpoints:\n"
                    + "".join(f"      - {{target: '127.0.0.1:{listener.port}', name: e{i}}}\n"
                              for i in range(2)))
        store = tmp_path / "s.sqlite"
        assert main(["fleet", "run", str(inv), "--job", "diagnose", "--store", str(store),
                     "-t", "0.3", "-q", "--fail-on", "none"]) == 0
    per_task = dict(sql(store, "SELECT endpoint, count(*) FROM attempts GROUP BY endpoint"))
    assert listener.accepted >= per_task["e0"] + per_task["e1"] >= 2 * 20
    assert 2 <= listener.most <= 4, listener.most
    # a listener that never answers: each diagnosis names it, the same way
    ids = {e: {f for (f,) in sql(store, "SELECT id FROM findings WHERE endpoint=?", e)}
           for e in ("e0", "e1")}
    assert ids["e0"] == ids["e1"] and ids["e0"]


def test_diagnose_job_refuses_a_cap_below_two(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    inv = write(tmp_path / "inv.yaml", "schema: 1\ngroups:\n  - cap: 1\n    endpoints: "
                f"['127.0.0.1:{closed_port()}']\n")
    assert main(["fleet", "run", str(inv), "--job", "diagnose", "--store",
                 str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "--job diagnose needs a cap of at least 2" in err and "Traceback" not in err


@pytest.mark.parametrize("job", ["policy", "diagnose"])
def test_a_task_cut_by_its_time_limit_keeps_its_attempts(tmp_path: Path, job: str) -> None:
    """As a probe task does: what went on the wire is in the store, though the task
    failed."""
    with SilentReader() as silent:
        inv = write(tmp_path / "inv.yaml", "schema: 1\ngroups:\n  - endpoints:\n"
                    f"      - {{target: '127.0.0.1:{silent.port}', name: quiet}}\n")
        store = tmp_path / "fleet.sqlite"
        assert main(["fleet", "run", str(inv), "--job", job, "--store", str(store),
                     "-t", "0.5", "--time-limit", "2", "-q"]) == 1
    ((status, reason),) = sql(store, "SELECT status, reason FROM tasks")
    assert status == "failed" and "time limit" in reason
    (n,) = sql(store, "SELECT count(*) FROM attempts")[0]
    assert n > 0


@pytest.mark.parametrize("job", ["probe", "policy"])
def test_no_tls_endpoint_is_a_finding_not_a_calm_run(tmp_path: Path, job: str,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """A port that takes TCP and never answers a hello, and one that speaks SSH: `prober
    probe` and `policy` say "NO TLS ENDPOINT MEASURED" (policy: exit 3); a fleet run too,
    as a finding that fails the run, not as a task done with nothing to report."""
    store = tmp_path / "fleet.sqlite"
    with SilentReader() as silent, SshBanner() as ssh, \
            BannerListener(banner=b"\xff\xfe\x00binary\x81\r\n") as binary:
        peers = {"silent": silent.port, "ssh": ssh.port, "closed": closed_port(),
                 **({"binary": binary.port} if job == "probe" else {})}
        inv = write(tmp_path / "inv.yaml", "schema: 1\ngroups:\n  - name: g\n    endpoints:\n"
                    + "".join(f"      - {{target: '127.0.0.1:{port}', name: {name}}}\n"
                              for name, port in peers.items()))
        rc = main(["fleet", "run", str(inv), "--job", job, "--store", str(store),
                   "-p", "tls1.2-only", "-t", "0.5", "-q"] if job == "probe" else
                  ["fleet", "run", str(inv), "--job", job, "--store", str(store), "-t", "0.5",
                   "-q"])
    out = capsys.readouterr().out
    assert rc == 1
    found = sql(store, "SELECT endpoint, id, severity, cause FROM findings ORDER BY 1")
    # a banner that is not UTF-8 is stored as hex, and read back as the same bytes (a
    # policy scan's own hellos get a `partial` out of that peer: TLS-like, as `prober
    # policy` says too, so only the probe job has it)
    assert [(e, i, s) for e, i, s, _ in found] == [
        *([("binary", "no-tls-endpoint", "high")] if job == "probe" else []),
        ("closed", "unreachable", "high"), ("silent", "no-tls-endpoint", "high"),
        ("ssh", "no-tls-endpoint", "high")]
    causes = {e: c for e, _, _, c in found}
    assert causes["closed"].startswith("Nothing listens on the port")
    assert causes["silent"].startswith("The peer accepts TCP connections and never answers")
    assert "speaks SSH" in causes["ssh"]
    if job == "probe":
        assert causes["binary"].startswith("The port answers with bytes that are not TLS")
    assert sql(store, "SELECT DISTINCT status FROM tasks") == [("done",)]
    assert "high no-tls-endpoint" in out


def test_a_check_task_connects_only_where_the_allowlist_looked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that answers otherwise the second time it is resolved (DNS rebinding, or
    plain round robin) must not lead a check task past the agent's allowlist: its
    connections go to the address the allowlist passed and the lease was taken on."""
    import asyncio
    import socket

    from prober.core.targets import parse_target
    from prober.fleet.allowlist import Allowlist
    from prober.fleet.leases import LocalLeases
    from prober.fleet.tasks import execute, target_json

    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def rebinding(host: Any, port: Any, *a: Any, **k: Any) -> Any:
        if host != "rebind.test":
            return real(host, port, *a, **k)
        # the system's resolver, answering as a rebinding name server would: no query
        # leaves the machine
        addr = next(answers, "127.0.0.9")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, int(port)))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with SilentReader() as allowed, SilentReader(host="127.0.0.9",
                                               port=allowed.port) as other:
        target = target_json(parse_target(f"rebind.test:{allowed.port}"))
        spec = {"run": 1, "endpoint": "e", "vantage": "v", "task": "check",
                "target": target, "cap": 2, "repeat": 1, "time_limit": 20,
                "deadlines": {"connect": 1, "read": 0.3},
                "expect": {"schema": 1, "profiles": [{"profiles": ["tls1.2-only"],
                                                      "allow": "ok"}]}}
        allow = Allowlist.parse([f"127.0.0.1/32:{allowed.port}"])
        out = asyncio.run(execute(spec, leases=LocalLeases(), allow=allow))
        assert out["address"] == "127.0.0.1"
        assert out["attempts"] and all(a["address"] == "127.0.0.1" for a in out["attempts"])
        assert allowed.accepted == len(out["attempts"])
        assert other.accepted == 0
