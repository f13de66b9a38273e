"""STARTTLS in fleet runs: the inventory's ``starttls`` field (and the port inference of a
plain targets file) reaches the task spec, and the agent speaks the preamble as `prober
probe --starttls` does, against the real Exim of tests/peers/starttls_servers (SMTP
speaks first: a bare ClientHello there gets a banner, not a handshake)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from prober.cli.main import main
from prober.core.outcome import Outcome
from prober.core.targets import SNI_NONE, Sni, Target
from prober.fleet import inventory
from prober.fleet.runner import FleetOptions, plan
from prober.fleet.store import Store
from prober.fleet.tasks import target_json, target_of
from tests.peers.starttls_servers import SERVER_NAME, SMTP_POLICY

pytestmark = pytest.mark.timeout(300)

Get = Callable[[str], tuple[Any, int]]
# a suite the restricted SMTP server accepts, and the TLS 1.2 profile of the catalog
PROFILES = ["cipher:ECDHE-RSA-AES128-GCM-SHA256", "tls1.2-only"]


def sql(store: Path, q: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(store) as db:
        return list(db.execute(q, params))


# -- the spec and the inventory, no network --------------------------------------------

@pytest.mark.parametrize("t", [
    Target("mail.test", 25, starttls="smtp", starttls_inferred=True),
    Target("mail.test", 2525, "192.0.2.5", Sni.named("mx.test"), starttls="smtp"),
    Target("db.test", 5432, sni_choice=SNI_NONE, starttls="postgres"),
    Target("web.test", 25),  # `starttls: none` on a plaintext port
])
def test_spec_round_trips_starttls(t: Target) -> None:
    d = json.loads(json.dumps(target_json(t)))  # as the broker carries it
    assert target_of(d) == t


def test_spec_of_an_older_coordinator_has_no_preamble() -> None:
    # planned before specs carried it: a bare hello, as that coordinator meant, even on 25
    old = {"host": "mail.test", "port": 25, "address": None,
           "sni": {"kind": "target", "name": None}}
    t = target_of(old)
    assert t.starttls is None and not t.starttls_inferred and t.sni == "mail.test"


def test_inventory_starttls_fields(tmp_path: Path) -> None:
    p = tmp_path / "inv.yaml"
    p.write_text("""\
schema: 1
defaults: {starttls: imap}
groups:
  - name: mail
    starttls: smtp
    endpoints:
      - mx.test:2525
      - {target: "pop.test:1110", starttls: pop3}
      - {target: "web.test:25", starttls: none, vantages: {lan: {address: 10.0.0.9}}}
      - {target: "mx2.test:2526", vantages: {lan: {address: 10.0.0.8}}}
  - name: imap
    endpoints: [imap.test:1143, {target: "tls.test:143", starttls: false}]
  - name: ports
    starttls: none
    endpoints: [submission.test:587]
""")
    by = {e.name: e for e in inventory.load(p).entries}
    got = {n: (e.target.starttls, e.target.starttls_inferred) for n, e in by.items()}
    assert got == {"mx.test:2525": ("smtp", False), "pop.test:1110": ("pop3", False),
                   "web.test:25": (None, False), "mx2.test:2526": ("smtp", False),
                   "imap.test:1143": ("imap", False), "tls.test:143": (None, False),
                   "submission.test:587": (None, False)}
    # a vantage point's override changes where it connects, not the preamble: neither a
    # named one is lost nor a "none" inferred again from port 25
    assert by["mx2.test:2526"].target_for("lan").starttls == "smtp"
    lan = by["web.test:25"].target_for("lan")
    assert lan.address == "10.0.0.9" and lan.starttls is None


def test_targets_file_infers_from_the_port_and_plan_carries_it(tmp_path: Path) -> None:
    p = tmp_path / "targets.txt"
    p.write_text("mail.test:25\nmail.test:587\nimap.test:143\nweb.test\n")
    inv = inventory.load(p)
    assert [(e.target.starttls, e.target.starttls_inferred) for e in inv.entries] == [
        ("smtp", True), ("smtp", True), ("imap", True), (None, False)]
    store = Store(tmp_path / "s.sqlite")
    run = plan(inv, store, FleetOptions(vantages=["a", "b"]), "embedded")
    specs = [json.loads(s) for (s,) in store.db.execute(
        "SELECT spec FROM tasks WHERE run_id = ? ORDER BY endpoint, vantage", (run,))]
    assert [(s["endpoint"], target_of(s["target"]).starttls) for s in specs] == [
        ("imap.test:143", "imap"), ("imap.test:143", "imap"),
        ("mail.test:25", "smtp"), ("mail.test:25", "smtp"),
        ("mail.test:587", "smtp"), ("mail.test:587", "smtp"),
        ("web.test:443", None), ("web.test:443", None)]
    store.close()


@pytest.mark.parametrize("field,at", [
    ("groups: [{endpoints: [{target: a.test, starttls: smtps}]}]",
     "groups[0].endpoints[0].starttls: 'smtps'"),
    ("groups: [{starttls: 25, endpoints: [a.test]}]", "groups[0].starttls: 25"),
    ("defaults: {starttls: http}\ngroups: [{endpoints: [a.test]}]", "groups[0].starttls: 'http'"),
    ("groups: [{endpoints: [{target: a.test, starttls: true}]}]",
     "groups[0].endpoints[0].starttls: True"),
])
def test_inventory_refuses_an_unknown_protocol(tmp_path: Path, field: str, at: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text(f"schema: 1\n{field}\n")
    with pytest.raises(inventory.InventoryError) as e:
        inventory.load(p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{p}: {at} is not a STARTTLS protocol")
    assert "smtp, imap, pop3, ftp, ldap, xmpp, postgres, or none" in msg
    # and the command line says it in one line, exit 2
    assert main(["fleet", "run", str(p), "--store", str(tmp_path / "s.sqlite"), "-q"]) == 2
    err = capsys.readouterr().err
    assert at in err and "Traceback" not in err


# -- against Exim ------------------------------------------------------------------------

def fleet_run(tmp_path: Path, store: Path, name: str, port: int, job: str,
              starttls: str | None, *args: str, group: str = "") -> tuple[int, int]:
    """One in-process `fleet run` of one endpoint on the SMTP server's port: its exit
    status and run id. ``group``: more fields of its group."""
    field = f", starttls: {starttls}" if starttls else ""
    inv = tmp_path / f"{name}.yaml"
    inv.write_text(f"""\
schema: 1
groups:
  - name: mail
    profiles: {json.dumps(PROFILES)}{group}
    endpoints:
      - {{target: "{SERVER_NAME}:{port}", address: 127.0.0.1, name: {name}{field}}}
""")
    rc = main(["fleet", "run", str(inv), "--job", job, "--store", str(store), "-t", "5",
               "-q", *args])
    return rc, int(sql(store, "SELECT max(id) FROM runs")[0][0])


def test_fleet_jobs_over_smtp(starttls_server: Get, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    _, port = starttls_server("smtp")
    store = tmp_path / "fleet.sqlite"

    rc, run = fleet_run(tmp_path, store, "mx", port, "probe", "smtp", "-n", "2")
    assert rc == 0
    rows = sql(store, "SELECT outcome, version, suite, doc FROM attempts WHERE run_id = ?",
               run)
    assert len(rows) == 2 * len(PROFILES)
    for outcome, version, suite, doc in rows:
        assert outcome == Outcome.OK.value, doc
        assert version in SMTP_POLICY.versions and suite in SMTP_POLICY.suites
        assert json.loads(doc)["starttls"]["ready"] is True
    assert sql(store, "SELECT status FROM tasks WHERE run_id = ?", run) == [("done",)]

    # the same inventory without the field: a bare hello, answered by the SMTP banner
    _, run = fleet_run(tmp_path, store, "bare", port, "probe", None)
    rows = sql(store, "SELECT outcome, doc FROM attempts WHERE run_id = ?", run)
    assert len(rows) == len(PROFILES)
    assert {o for o, _ in rows} == {Outcome.NOT_TLS.value}, rows
    assert all("starttls" not in json.loads(d) for _, d in rows)

    # a policy task over the same preamble finds the server's restricted policy
    rc, run = fleet_run(tmp_path, store, "mx-policy", port, "policy", "smtp")
    assert rc == 0
    [(versions, reliable, doc)] = sql(
        store, "SELECT versions, reliable, doc FROM policies WHERE run_id = ?", run)
    assert json.loads(versions) == list(SMTP_POLICY.versions) and reliable == 1, doc
    attempts = [json.loads(d) for (d,) in sql(
        store, "SELECT doc FROM attempts WHERE run_id = ?", run)]
    assert attempts and all(a["starttls"]["ready"] for a in attempts)

    # a check task, its expectation met behind the preamble (and failed without it)
    (tmp_path / "expect.yaml").write_text("schema: 1\nmin_version: TLSv1.2\n")
    for starttls, passed in (("smtp", 1), (None, 0)):
        _, run = fleet_run(tmp_path, store, f"mx-check-{starttls}", port, "check", starttls,
                           group="\n    expect: expect.yaml")
        verdicts = dict(sql(store, "SELECT expectation, passed FROM verdicts "
                                   "WHERE run_id = ?", run))
        assert verdicts["min_version TLSv1.2"] == passed, verdicts
        assert min(verdicts.values()) == passed  # without it, no TLS endpoint either
        docs = [json.loads(d) for (d,) in sql(
            store, "SELECT doc FROM attempts WHERE run_id = ?", run)]
        assert docs and all(("starttls" in a) == bool(starttls) for a in docs)
    capsys.readouterr()
