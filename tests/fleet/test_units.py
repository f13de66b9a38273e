"""Inventory, allowlist and store on their own (no network)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from prober.core.errors import InputError
from prober.fleet import inventory
from prober.fleet.allowlist import Allowlist, AllowlistError
from prober.fleet.runner import FleetOptions, plan
from prober.fleet.store import Store


def test_inventory_groups_labels_overrides(tmp_path: Path) -> None:
    (tmp_path / "expect.yaml").write_text("schema: 1\nmin_version: TLSv1.2\n")
    p = tmp_path / "inv.yaml"
    p.write_text("""\
schema: 1
defaults: {cap: 3, labels: {owner: net}}
groups:
  - name: prod
    labels: {environment: prod}
    policy: ELBSecurityPolicy-TLS13-1-2-2021-06
    expect: expect.yaml
    endpoints:
      - shop.example.com
      - target: api.example.com:8443
        sni: internal.example.com
        address: 192.0.2.7
        cap: 1
        vantages: {office-lan: {address: 10.0.0.7, sni: false}}
""")
    inv = inventory.load(p)
    shop, api = inv.entries
    assert shop.name == "shop.example.com:443" and shop.cap == 3
    assert shop.labels == {"owner": "net", "environment": "prod"}
    assert shop.expect_doc == {"schema": 1, "min_version": "TLSv1.2"}
    assert api.target.address == "192.0.2.7" and api.target.sni == "internal.example.com"
    lan = api.target_for("office-lan")
    assert lan.address == "10.0.0.7" and lan.sni is None
    assert api.target_for("outside") == api.target


@pytest.mark.parametrize("text,needle", [
    ("schema: 1\ngroups: [{endpoints: [a.test], colour: red}]\n", "colour"),
    ("schema: 1\ngroups: [{endpoints: ['a.test:99999']}]\n", "99999"),
    ("schema: 1\ngroups: [{endpoints: [a.test], policy: NoSuchPolicy}]\n", "NoSuchPolicy"),
    ("schema: 1\ngroups: [{endpoints: [a.test], expect: missing.yaml}]\n", "missing.yaml"),
    ("schema: 1\ngroups: [{endpoints: [a.test, a.test]}]\n", "listed twice"),
    ("schema: 1\ngroups: [{endpoints: [{target: a.test, address: nope}]}]\n", "nope"),
    ("schema: 2\ngroups: []\n", "schema"),
    ("{unclosed", "YAML"),
    ("schema: 1\ngroups: [{endpoints: [a.test], logs: {files: a.log, format: apache}}]\n",
     "'apache' is not a log format"),
    ("schema: 1\ngroups: [{endpoints: [{target: a.test, logs: {file: a.log}}]}]\n", "file"),
    ("schema: 1\ngroups: [{endpoints: [a.test], logs: [a.log, 3]}]\n", "logs.files"),
])
def test_inventory_errors_are_one_line_input_errors(tmp_path: Path, text: str,
                                                    needle: str) -> None:
    p = tmp_path / "inv.yaml"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        inventory.load(p)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_inventory_logs_relative_to_it_endpoint_over_group(tmp_path: Path) -> None:
    p = tmp_path / "inv.yaml"
    p.write_text("""\
schema: 1
defaults: {logs: {files: [all/*.log.gz], format: alb-conn}}
groups:
  - name: g
    endpoints:
      - a.test
      - {target: b.test, logs: /var/log/b.log}
""")
    a, b = inventory.load(p).entries
    assert a.logs is not None and b.logs is not None
    assert a.logs.files == (str(tmp_path / "all/*.log.gz"),) and a.logs.format == "alb-conn"
    assert b.logs.files == ("/var/log/b.log",) and b.logs.format == "auto"


def test_store_of_an_older_prober_gains_the_diagnoses_table(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as db:  # a schema-1 store written before diagnose jobs
        db.execute("DROP TABLE diagnoses")
    store = Store(path)
    assert store.rows("SELECT count(*) AS n FROM diagnoses") == [{"n": 0}]
    assert store.rows("SELECT value FROM meta WHERE key='schema'") == [{"value": "1"}]


def test_plain_targets_file(tmp_path: Path) -> None:
    p = tmp_path / "targets.txt"
    p.write_text("# fleet\na.test\n[2001:db8::1]:8443  # v6\n")
    inv = inventory.load(p)
    assert [e.name for e in inv.entries] == ["a.test:443", "[2001:db8::1]:8443"]


def test_allowlist() -> None:
    a = Allowlist.parse(["10.0.0.0/8:443,8000-8100", "::1/128:*"])
    assert a.permits("10.1.2.3", 8050) and not a.permits("10.1.2.3", 22)
    assert a.permits("::1", 5) and not a.permits("11.0.0.1", 443)
    for bad in ("10.0.0.0/8", "10.0.0.0/33:443", "10.0.0.0/8:0", "10.0.0.0/8:a"):
        with pytest.raises(AllowlistError):
            Allowlist.parse([bad])


def test_store_keeps_the_first_result_of_a_key(tmp_path: Path) -> None:
    p = tmp_path / "inv.txt"
    p.write_text("a.test\n")
    store = Store(tmp_path / "s.sqlite")
    run = plan(inventory.load(p), store, FleetOptions(), "embedded")
    result = {"run": run, "endpoint": "a.test:443", "vantage": "local", "task": "probe",
              "status": "done", "reason": None, "agent": "x", "address": "192.0.2.1",
              "started_at": time.time(), "finished_at": time.time(), "policy": None,
              "attempts": [{"id": 1, "profile": "p", "repeat": 0, "outcome": "ok"}],
              "verdicts": [], "findings": [{"id": "f", "severity": "low", "cause": ""}]}
    assert store.record(result) is True
    assert store.record(result) is False  # the same task delivered twice
    counts = [store.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("tasks", "attempts", "findings")]
    assert counts == [1, 1, 1]
    assert store.finish_run(run) == "complete"


def test_shards_are_planned_per_vantage_and_kept_by_the_store(tmp_path: Path) -> None:
    from prober.fleet.runner import Progress, shards_of

    p = tmp_path / "inv.txt"
    p.write_text("".join(f"e{i}.test\n" for i in range(5)))
    store = Store(tmp_path / "s.sqlite")
    run = plan(inventory.load(p), store, FleetOptions(vantages=["a", "b"], shard_size=2),
               "celery")
    shards = {sh.sid: sh.specs(store, run) for sh in shards_of(store.queued(run))}
    # five endpoints, two at a time, for each vantage point: 2 + 2 + 1 twice
    assert sorted(len(v) for v in shards.values()) == [1, 1, 2, 2, 2, 2]
    assert sorted(sid.split(":", 3)[3] for sid in shards) == [
        f"{v}:probe:shard-{k}" for v in "ab" for k in range(3)]
    assert all(len({s["vantage"] for s in v}) == 1 for v in shards.values())
    # read back in the inventory's order, a page at a time
    assert [s["endpoint"] for _, s in store.queued(run, page=3)] == [
        f"e{i}.test:443" for i in range(5)] * 2
    assert Progress(run, store.queued_counts(run), None).counts["a"]["queued"] == 5
    # a resumed run regroups what is still queued into the same shards, under the same ids
    first = next(iter(shards.values()))[0]
    store.record({**first, "status": "done", "reason": None, "agent": "x", "address": None,
                  "started_at": time.time(), "finished_at": time.time(), "attempts": [],
                  "policy": None, "verdicts": [], "findings": []})
    again = {sh.sid: sh.specs(store, run) for sh in shards_of(store.queued(run))}
    assert set(again) == set(shards)
    assert sum(len(v) for v in again.values()) == 9
    assert [s["endpoint"] for s in again[next(iter(shards))]] == [
        s["endpoint"] for s in next(iter(shards.values()))[1:]]
    assert store.queued_counts(run) == {"a": 4, "b": 5}


def test_a_shard_in_pieces_is_refused_not_split(tmp_path: Path) -> None:
    from prober.fleet.runner import shards_of

    spec = {"run": 1, "nonce": "n", "vantage": "a", "task": "probe", "shard": 0}
    rows = [(1, {**spec, "endpoint": "x"}), (2, {**spec, "endpoint": "y", "shard": 1}),
            (3, {**spec, "endpoint": "z"})]
    with pytest.raises(InputError, match="in pieces"):
        list(shards_of(rows))


def test_measured_policy_as_a_simulator_candidate() -> None:
    from prober.policy.whatif.simulate import CandidateError, measured
    from prober.wire import registry as reg

    doc: dict[str, Any] = {"versions": ["TLSv1.3", "TLSv1.2", "TLSv1.0"],
           "suites": {"TLSv1.3": ["TLS_AES_256_GCM_SHA384"],
                      "TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                                  "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"],
                      "TLSv1.0": ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
                                  "TLS_RSA_WITH_AES_128_CBC_SHA"]},
           "server_order": {"TLSv1.2": False, "TLSv1.0": None}, "chacha_priority": {},
           "groups_tls13": ["x25519"], "groups_tls12": None,
           "certificates": ["RSA 2048", "ECDSA P-256"]}
    c = measured(doc, "shop")
    assert [reg.version_name(v) for v in c.protocols] == ["TLSv1.3", "TLSv1.2", "TLSv1.0"]
    assert [reg.suite_name(s) for s in c.tls13_suites] == ["TLS_AES_256_GCM_SHA384"]
    # one list below 1.3: the newest version's order, then what only older ones accept
    assert [reg.suite_name(s) for s in c.suites] == [
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA"]
    assert c.cert == "both" and not c.server_order and c.sha1_signatures
    assert c.assumptions == ()
    bare = measured({**doc, "groups_tls13": None, "certificates": None}, "shop")
    assert bare.cert == "rsa" and len(bare.assumptions) == 2
    with pytest.raises(CandidateError, match="shop: the measured policy accepts no version"):
        measured({**doc, "versions": []}, "shop")
    # an endpoint that still takes SSLv2 is assessed on the rest, not skipped; a blank
    # certificate entry is no key type
    suites = {**doc["suites"], "SSLv2": ["SSL_CK_RC4_128_WITH_MD5"]}
    old = measured({**doc, "versions": ["TLSv1.3", "TLSv1.2", "TLSv1.0", "SSLv2"],
                    "certificates": [""], "suites": suites}, "shop")
    assert old.protocols == c.protocols and old.suites == c.suites and old.cert == "rsa"
    assert "SSLv2 accepted: not simulated" in old.assumptions


def test_report_counts_a_retried_attempt_once(tmp_path: Path) -> None:
    """A refusal retried after a back-off (``retry_of``) is kept in the store, and the
    report's outcomes count the attempt's last try: a rate limit met in one run and not
    in the next is no drift."""
    from prober.fleet import report

    p = tmp_path / "inv.txt"
    p.write_text("a.test\n")
    store = Store(tmp_path / "s.sqlite")

    def run_with(attempts: list[dict[str, object]]) -> int:
        run = plan(inventory.load(p), store, FleetOptions(), "embedded")
        assert store.record({
            "run": run, "endpoint": "a.test:443", "vantage": "local", "task": "probe",
            "status": "done", "reason": None, "agent": "x", "address": "192.0.2.1",
            "started_at": time.time(), "finished_at": time.time(), "policy": None,
            "attempts": attempts, "verdicts": [], "findings": []})
        store.finish_run(run)
        return run

    calm = run_with([{"id": 1, "profile": "p", "repeat": 0, "outcome": "ok"}])
    busy = run_with([{"id": 1, "profile": "p", "repeat": 0, "outcome": "refused"},
                     {"id": 2, "profile": "p", "repeat": 0, "outcome": "ok", "retry_of": 1}])
    assert store.db.execute("SELECT count(*) FROM attempts WHERE run_id=?",
                            (busy,)).fetchone()[0] == 2
    doc = report.build(store, busy, calm)
    assert doc["endpoints"][0]["outcomes"] == {"p": "ok 1"}, doc["endpoints"]
    assert doc["drift"] == [], doc["drift"]


def _two_sided(tmp_path: Path, job: str = "policy") -> tuple[Store, int]:
    tmp_path.mkdir(exist_ok=True)
    p = tmp_path / "inv.txt"
    p.write_text("a.test\n")
    store = Store(tmp_path / "s.sqlite")
    run = plan(inventory.load(p), store, FleetOptions(job=job, vantages=["inside", "outside"]),
               "celery")
    return store, run


def _result(run: int, vantage: str, task: str, **kw: object) -> dict[str, object]:
    return {"run": run, "endpoint": "a.test:443", "vantage": vantage, "task": task,
            "status": "done", "reason": None, "agent": "x", "address": "192.0.2.1",
            "started_at": time.time(), "finished_at": time.time(), "policy": None,
            "attempts": [], "verdicts": [], "findings": [], **kw}


def _policy(versions: list[str], suites: dict[str, list[str]], **kw: object
            ) -> dict[str, object]:
    return {"versions": versions, "reliable": True, "complete": True, "name": None,
            "equals": [], "text": "no version accepted", "certificates": [],
            "policy": {"versions": versions, "suites": suites}, **kw}


_SUITES = {"TLSv1.3": ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"],
           "TLSv1.2": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                       "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"]}


def test_report_says_a_refused_side_once(tmp_path: Path) -> None:
    """A vantage point whose task was refused has no attempts: the report says the status
    and why, once, not a line per profile the other side answered."""
    from prober.fleet import report

    store, run = _two_sided(tmp_path)
    why = "192.0.2.1:443 is outside this agent's allowlist (198.51.100.0/24:443)"
    assert store.record(_result(run, "inside", "policy", attempts=[
        {"id": i, "profile": f"suite-{i}", "repeat": 0, "outcome": "ok"} for i in range(1, 9)],
        policy=_policy(["TLSv1.3", "TLSv1.2"], _SUITES)))
    assert store.record(_result(run, "outside", "policy", status="refused", reason=why,
                                findings=[{"id": "task-refused", "severity": "high",
                                           "cause": why}]))
    doc = report.build(store, run, None)
    assert doc["between_vantages"] == [
        {"endpoint": "a.test:443", "vantage_a": "inside", "vantage_b": "outside",
         "what": "status", "a": "done", "b": "refused", "a_reason": None, "b_reason": why}]
    between = report.text(doc).split("BETWEEN VANTAGE POINTS\n")[1].splitlines()
    assert between == [f"  a.test:443: status: done from inside, refused from outside; "
                       f"outside: {why}"]


def test_report_compares_the_measured_policy(tmp_path: Path) -> None:
    """Neither side equals a catalog policy (no name on either): what was measured still
    differs, and the report says what (versions; suites of a version both accept)."""
    from prober.fleet import report

    store, run = _two_sided(tmp_path)
    assert store.record(_result(run, "inside", "policy", policy=_policy(
        ["TLSv1.3", "TLSv1.2"], _SUITES,
        text="no catalog policy equals it; nearest: X plus A, B; minus C | Y minus D",
        brief="nearest X (+2 −1)")))
    assert store.record(_result(run, "outside", "policy", policy=_policy([], {})))
    doc = report.build(store, run, None)
    assert [(d["what"], d["a"], d["b"]) for d in doc["between_vantages"]] == [
        ("policy versions", "TLSv1.3, TLSv1.2", "none")]
    text = report.text(doc)
    assert ("a.test:443: policy versions: TLSv1.3, TLSv1.2 from inside, none from outside"
            in text), text

    # the same versions, one suite fewer outside
    store, run = _two_sided(tmp_path / "suites")
    fewer = {**_SUITES, "TLSv1.2": _SUITES["TLSv1.2"][:1]}
    assert store.record(_result(run, "inside", "policy", policy=_policy(
        ["TLSv1.3", "TLSv1.2"], _SUITES)))
    assert store.record(_result(run, "outside", "policy", policy=_policy(
        ["TLSv1.3", "TLSv1.2"], fewer)))
    doc = report.build(store, run, None)
    assert [(d["what"], d["a"], d["b"]) for d in doc["between_vantages"]] == [
        ("policy TLSv1.2 suites", "2, 1 only here (TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)",
         "1")]


def test_report_table_shows_the_policy_briefly(tmp_path: Path) -> None:
    """The table's policy column holds the catalog verdict's brief form; the JSON keeps
    the whole text. A diagnose run's column is its diagnosis's policy summary."""
    from prober.fleet import report

    store, run = _two_sided(tmp_path)
    full = ("no catalog policy equals it; nearest: ELBSecurityPolicy-TLS13-1-2-2021-06 plus "
            "AES128-SHA; minus TLS 1.3 | ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06 minus TLS 1.3")
    assert store.record(_result(run, "inside", "policy", policy=_policy(
        ["TLSv1.2"], _SUITES, text=full,
        brief="nearest ELBSecurityPolicy-TLS13-1-2-2021-06 (+1 −1)")))
    # a store written before the brief form: the catalog name
    assert store.record(_result(run, "outside", "policy", policy=_policy(
        ["TLSv1.2"], _SUITES, name="ELBSecurityPolicy-2016-08", text="equals it")))
    doc = report.build(store, run, None)
    rows = {e["vantage"]: e for e in doc["endpoints"]}
    assert rows["inside"]["policy_text"] == full
    table = report.text(doc).splitlines()
    inside = next(x for x in table if x.startswith("a.test:443  inside"))
    assert "nearest ELBSecurityPolicy-TLS13-1-2-2021-06 (+1 −1)" in inside
    assert "nearest:" not in inside and "Ext1" not in inside
    assert "ELBSecurityPolicy-2016-08" in next(x for x in table
                                               if x.startswith("a.test:443  outside"))

    store, run = _two_sided(tmp_path / "diagnose", job="diagnose")
    cause = "accepts TLSv1.3, TLSv1.2; refuses TLSv1.1, TLSv1.0 (alert protocol_version)."
    for v in ("inside", "outside"):
        assert store.record(_result(run, v, "diagnose", diagnosis={
            "schema": "prober.diagnose/2", "findings": [
                {"id": "policy", "confidence": "info", "cause": cause,
                 "figures": {"accepted": ["TLSv1.3", "TLSv1.2"]}}]}))
    doc = report.build(store, run, None)
    assert {e["policy_brief"] for e in doc["endpoints"]} == {"accepts TLSv1.3, TLSv1.2"}
    assert {e["policy_text"] for e in doc["endpoints"]} == {cause}
    assert "accepts TLSv1.3, TLSv1.2" in report.text(doc)


@pytest.mark.parametrize("args, named", [
    (["-c", "0"], "--concurrency"), (["--concurrency", "5000"], "--concurrency"),
    (["--lease-ttl", "0.5"], "--lease-ttl"), (["--vantage", "a b"], "--vantage")])
def test_agent_bad_options_are_one_line_errors(args: list[str], named: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from prober.cli.main import main

    base = {"--broker": "redis://127.0.0.1:1/0", "--vantage": "v",
            "--allow": "127.0.0.1/32:443"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = ["agent", *[x for kv in base.items() for x in kv]]
    assert main(argv) == 2  # refused before any broker connection is tried
    err = capsys.readouterr().err.strip()
    assert named in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("job", ["policy", "diagnose"])
def test_a_name_that_does_not_resolve_is_a_finding(job: str) -> None:
    import asyncio

    from prober.core.targets import parse_target
    from prober.fleet.leases import LocalLeases
    from prober.fleet.tasks import execute, target_json

    target = target_json(parse_target("x.test:443"))
    # a label over 63 bytes fails IDNA encoding on this host: no lookup goes out
    target["host"] = "a" * 64 + ".test"
    spec = {"run": 1, "endpoint": "e", "vantage": "v", "task": job, "target": target,
            "profiles": ["tls1.2-only"], "cap": 2, "repeat": 1, "time_limit": 10,
            "deadlines": {"connect": 1, "read": 1}}
    out = asyncio.run(execute(spec, leases=LocalLeases(), allow=None))
    # these jobs make no attempt at an unresolved name: the task must not pass silently
    assert out["attempts"] == []
    assert [(f["id"], f["severity"]) for f in out["findings"]] == [("unreachable", "high")]
    assert "did not resolve" in out["findings"][0]["cause"]


def test_report_says_which_endpoint_could_not_be_compared(tmp_path: Path) -> None:
    """An attempt document `prober diff` cannot read costs that endpoint its comparison,
    said on its own line, not the whole fleet its report."""
    from prober.fleet import report

    store, run = _two_sided(tmp_path, job="probe")
    ok = {"id": 1, "target": "a.test:443", "profile": "p", "repeat": 0, "outcome": "ok",
          "detail": "TLSv1.3"}
    assert store.record(_result(run, "inside", "probe", attempts=[ok]))
    assert store.record(_result(run, "outside", "probe", attempts=[
        {k: v for k, v in ok.items() if k != "detail"}]))
    doc = report.build(store, run, None)
    odd = [d for d in doc["between_vantages"] if d["what"] == report.NOT_COMPARED]
    assert len(odd) == 1 and "lacks" in odd[0]["a"], doc["between_vantages"]
    assert "  a.test:443: not compared (inside vs outside): DiffInputError" in report.text(doc)


def test_fail_on_refuses_an_unknown_word(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from prober.cli.main import main

    inv = tmp_path / "inv.txt"
    inv.write_text("127.0.0.1:9\n")
    assert main(["fleet", "run", str(inv), "--store", str(tmp_path / "s.sqlite"),
                 "--fail-on", "hihg,policy-reset"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown 'hihg'" in err[0], err
    assert not (tmp_path / "s.sqlite").exists()


@pytest.mark.parametrize("value", ["0", "1001", "-3", "many"])
def test_fleet_shard_size_bad_values_are_one_line_errors(
        tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    from prober.cli.main import main

    inv = tmp_path / "inv.txt"
    inv.write_text("127.0.0.1:1\n")
    store = tmp_path / "s.sqlite"
    assert main(["fleet", "run", str(inv), "--store", str(store),
                 "--shard-size", value]) == 2
    err = capsys.readouterr().err.strip()
    assert "--shard-size" in err and len(err.splitlines()) == 1, err
    assert not store.exists()  # refused before the store is opened


def test_an_answer_of_another_result_schema_is_a_failed_task() -> None:
    from prober.fleet.runner import _answers, failed_result
    from prober.fleet.tasks import TASK_SCHEMA

    spec = {"run": 1, "endpoint": "e", "vantage": "v", "task": "probe"}
    good = failed_result(spec, "x")  # the coordinator's own: of this schema
    assert good["schema"] == TASK_SCHEMA
    newer = {**good, "schema": "prober.fleet.task/2", "status": "done"}
    (r,) = _answers([spec], {"status": "SUCCESS", "result": [newer]})
    assert r["status"] == "failed"
    assert "'prober.fleet.task/2' result, this coordinator reads prober.fleet.task/1" in (
        r["reason"])
    (r,) = _answers([spec], {"status": "SUCCESS", "result": [good]})
    assert r is good


def test_a_shard_with_a_spec_of_another_schema_refuses_it_and_runs_the_rest() -> None:
    import asyncio

    from prober.fleet.leases import LocalLeases
    from prober.fleet.tasks import execute_shard
    from prober.net.loop import new_event_loop

    newer = {"schema": "prober.fleet.spec/3", "run": 1, "endpoint": "n", "vantage": "v",
             "task": "probe"}  # no time_limit, no target: nothing else is read
    ours = {"run": 1, "endpoint": "o", "vantage": "v", "task": "probe", "time_limit": 5,
            "target": {"host": "o.test", "port": 443, "address": "192.0.2.1"},
            "deadlines": {"connect": 1, "read": 1}, "cap": 1, "profiles": ["tls1.2-only"]}

    async def shard() -> list[dict[str, Any]]:
        # 192.0.2.1 is outside the allowlist: refused without a connection
        return await execute_shard([newer, ours], leases=LocalLeases(),
                                   allow=Allowlist.parse(["127.0.0.1/32:1"]),
                                   slots=asyncio.Semaphore(2), agent="a1")

    loop = new_event_loop()
    try:
        a, b = loop.run_until_complete(shard())
    finally:
        loop.close()
    assert (a["endpoint"], a["status"]) == ("n", "refused")
    assert ("reads task specs prober.fleet.spec/1, prober.fleet.spec/2, the coordinator sent "
            "prober.fleet.spec/3") in (
        a["reason"])
    assert (b["endpoint"], b["status"]) == ("o", "refused")
    assert "outside this agent's allowlist" in b["reason"]


@pytest.mark.parametrize("query, reqs", [
    ("", "required"), ("?ssl_cert_reqs=required", "required"),
    ("?ssl_cert_reqs=CERT_REQUIRED", "required"), ("?ssl_cert_reqs=optional", "optional"),
    ("?ssl_cert_reqs=CERT_NONE", "none")])
def test_broker_tls_options_in_either_spelling_verify_by_default(query: str,
                                                                 reqs: str) -> None:
    from prober.fleet.celeryapp import broker_tls

    url, tls = broker_tls(f"rediss://:pw@broker.example:6380/0{query}")
    assert url == "rediss://:pw@broker.example:6380/0"
    # a verified certificate is verified for its name too
    assert tls == ({"ssl_cert_reqs": reqs, "ssl_check_hostname": True} if reqs == "required"
                   else {"ssl_cert_reqs": reqs})


def test_broker_tls_keeps_other_options_and_files(tmp_path: Path) -> None:
    from prober.fleet.celeryapp import broker_tls

    ca = tmp_path / "ca.pem"
    ca.write_text("")
    url, tls = broker_tls(f"rediss://b:6380/1?ssl_ca_certs={ca}&health_check_interval=5")
    assert url == "rediss://b:6380/1?health_check_interval=5"
    assert tls == {"ssl_cert_reqs": "required", "ssl_check_hostname": True,
                   "ssl_ca_certs": str(ca)}
    assert broker_tls("redis://b:6379/0?x=1") == ("redis://b:6379/0?x=1", {})


@pytest.mark.parametrize("url, named", [
    ("rediss://b:6380/0?ssl_cert_reqs=CERT_MAYBE", "ssl_cert_reqs"),
    ("rediss://b:6380/0?ssl_ca_certs=/nonexistent/ca.pem", "ssl_ca_certs"),
    ("rediss://b:6380/0?ssl_check=1", "ssl_check"),
    ("redis://b:6379/0?ssl_cert_reqs=none", "rediss://")])
def test_bad_broker_tls_options_are_one_line_errors(url: str, named: str,
                                                    capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    from prober.cli.main import main

    argv = ["agent", "--broker", url, "--vantage", "v", "--allow", "127.0.0.1/32:443"]
    assert main(argv) == 2  # refused before any broker connection is tried
    err = capsys.readouterr().err.strip()
    assert named in err and len(err.splitlines()) == 1, err


def test_report_certificates_by_fingerprint(tmp_path: Path) -> None:
    """Leaf fingerprints compared as sets: a side that saw none is the expiry's line only;
    in a policy run (each scan chose its own hellos) one set holding the other is no
    difference, two sets that each hold a certificate the other lacks are."""
    from prober.fleet import report

    day = "2030-01-01T00:00:00+00:00"
    rsa, ecdsa, other = "a" * 64, "b" * 64, "c" * 64

    def attempts(*shas: str) -> list[dict[str, object]]:
        return [{"id": i, "profile": "p", "repeat": 0, "outcome": "ok",
                 "certificate": {"sha256": s, "not_after": day}}
                for i, s in enumerate(shas, start=1)]

    def between(job: str, inside: list[str], outside: list[str], sub: str
                ) -> list[tuple[str, object, object]]:
        store, run = _two_sided(tmp_path / sub, job)
        for vantage, shas in (("inside", inside), ("outside", outside)):
            assert store.record(_result(run, vantage, job, attempts=attempts(*shas)))
        doc = report.build(store, run, None)
        assert {e["vantage"]: e["cert_sha256"] for e in doc["endpoints"]} == {
            "inside": sorted(set(inside)), "outside": sorted(set(outside))}
        # (the attempt counts, and `prober diff` on these bare attempts, aside)
        return [(d["what"], d["a"], d["b"]) for d in doc["between_vantages"]
                if d["what"] in ("certificate", "cert_not_after")]

    assert between("probe", [rsa, rsa], [rsa], "same") == []
    assert between("probe", [rsa], [other], "other") == [
        ("certificate", "a" * 16, "c" * 16)]
    assert between("probe", [rsa, ecdsa], [rsa], "subset-probe") == [
        ("certificate", f"{'a' * 16}, {'b' * 16}", "a" * 16)]
    assert between("policy", [rsa, ecdsa], [rsa], "subset-policy") == []
    assert between("policy", [rsa, ecdsa], [rsa, other], "swapped") == [
        ("certificate", f"{'a' * 16}, {'b' * 16}", f"{'a' * 16}, {'c' * 16}")]
    # no certificate on one side: the expiry says it, not a second line
    assert between("probe", [rsa], [], "none") == [("cert_not_after", day, None)]

    # drift between runs of two jobs (other hellos): a part of the certificates is none
    store, probe_run = _two_sided(tmp_path / "jobs", "probe")
    policy_run = plan(inventory.load(tmp_path / "jobs" / "inv.txt"), store,
                      FleetOptions(job="policy", vantages=["inside", "outside"]), "celery")
    for run, job, shas in ((probe_run, "probe", [rsa, ecdsa]), (policy_run, "policy", [rsa])):
        for vantage in ("inside", "outside"):
            assert store.record(_result(run, vantage, job, attempts=attempts(*shas)))
    assert report.build(store, policy_run, probe_run)["drift"] == []
    assert [d["what"] for d in report.build(store, probe_run, policy_run)["drift"]] == []


def test_inventory_rate_is_inherited_and_checked(tmp_path: Path) -> None:
    p = tmp_path / "inv.yaml"
    p.write_text("schema: 1\ndefaults: {rate: 2.5}\ngroups:\n  - name: g\n    endpoints:\n"
                 "      - a.test:443\n      - {target: b.test:443, rate: 10}\n"
                 "  - name: h\n    rate: 1\n    endpoints: [c.test:443]\n")
    assert [e.rate for e in inventory.load(p).entries] == [2.5, 10.0, 1.0]
    for bad in ("0", "-1", "'fast'", "true", "5000"):
        p.write_text(f"schema: 1\ngroups:\n  - name: g\n    rate: {bad}\n"
                     "    endpoints: [a.test:443]\n")
        with pytest.raises(InputError, match=r"groups\[0\]\.rate: connections per second"):
            inventory.load(p)
