"""Fleet runs from two real vantage points: the netns lab's two client hosts, the same
servers behind the same router, one path tampering (issue 13).

redis-server runs in the router namespace on its LAN address, where both clients and
the coordinator reach it and nothing outside the lab does. One `prober agent` runs in
client1 (vantage point ``inside``) and one in client2 (``outside``), each under
``ip netns exec`` so the lab's hosts file names the servers; the coordinator runs in
the router namespace. What differs between the vantage points is the lab's doing, not
the inventory's: the router forges an RST for client2's ClientHellos to outside-reset
and sends client2's connections to intercepting-proxy through a TLS-intercepting proxy.
The outside agent's allowlist leaves out the healthy server, which it must refuse.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.harness import Agent, agents, env, fleet, redis_server, sql
from tests.lab import Lab
from tests.lab.fixtures import lab
from tests.lab.scenarios import CLIENT1, CLIENT2, ROUTER_LAN, SERVER_NET, SERVICE_PORT

__all__ = ["lab"]  # the fixture, imported for this module

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

INSIDE, OUTSIDE = "inside", "outside"
HOSTS = {INSIDE: "client1", OUTSIDE: "client2"}
SOURCES = {INSIDE: CLIENT1, OUTSIDE: CLIENT2}
RESET, INTERCEPT, FORBIDDEN = "outside-reset", "intercepting-proxy", "healthy"
PROFILE = "tls1.2-only"


@dataclass
class LabFleet:
    lab: Lab
    broker: str
    agents: dict[str, Agent]


@pytest.fixture(scope="module")
def lab_fleet(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabFleet]:
    tmp = tmp_path_factory.mktemp("fleet-lab")
    port = f":{SERVICE_PORT}"
    allow = {INSIDE: [SERVER_NET + port],
             OUTSIDE: [f"{lab.scenario(n).address}/32{port}" for n in (RESET, INTERCEPT)]}
    # off loopback redis wants a password (protected mode): the broker URL carries it
    with redis_server(tmp, host=ROUTER_LAN, netns=lab.ns("router"),
                      password=secrets.token_hex(16)) as broker, agents() as started:
        for vantage, host in HOSTS.items():
            started.append(Agent(tmp, broker, vantage, allow[vantage],
                                 name=f"{vantage}-{host}", netns=lab.ns(host)))
        for a in started:  # both start at once, then both are waited for
            a.ready()
        yield LabFleet(lab, broker, {a.name.split("-")[0]: a for a in started})


def write_inventory(path: Path, lab: Lab) -> Path:
    # targets by name: each agent resolves them from its own namespace's hosts file
    eps = "\n".join(f"      - {{target: '{lab.scenario(n).name_target}', name: {n}}}"
                    for n in (RESET, INTERCEPT, FORBIDDEN))
    path.write_text(f"schema: 1\ndefaults: {{profiles: [{PROFILE}], cap: 2}}\n"
                    f"groups:\n  - name: lab\n    endpoints:\n{eps}\n")
    return path


def run_fleet(lf: LabFleet, tmp: Path, *job: str) -> tuple[Path, subprocess.CompletedProcess[str]]:
    store = tmp / "fleet.sqlite"
    r = fleet("run", str(write_inventory(tmp / "inv.yaml", lf.lab)), "--store", str(store),
              "--broker", lf.broker, "--vantage", INSIDE, "--vantage", OUTSIDE, *job,
              "-t", "3", netns=lf.lab.ns("router"))
    return store, r


def diff_of_probes(lab: Lab, tmp: Path, name: str) -> dict[str, Any]:
    """`prober diff` of `prober probe` runs from the two clients, labelled as the fleet's
    vantage points: what the fleet report must agree with."""
    paths = []
    for vantage, host in HOSTS.items():
        run = lab.probe(lab.scenario(name).name_target, "-p", PROFILE, host=host)
        run.pop("_table")
        paths.append(tmp / f"{name}-{vantage}.json")
        paths[-1].write_text(json.dumps(run))
    r = subprocess.run([*lab.prober_argv("client1"), "diff", *map(str, paths), "--label-a",
                        INSIDE, "--label-b", OUTSIDE, "--json", "-"], env=env(),
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def test_probe_job_from_two_namespaces(lab_fleet: LabFleet, tmp_path: Path) -> None:
    lab = lab_fleet.lab
    store, r = run_fleet(lab_fleet, tmp_path, "--job", "probe")
    # the outside agent's refusal is a high finding: exit 1
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{OUTSIDE}: 2 done, 0 queued, 1 failed" in r.stderr, r.stderr
    assert f"{INSIDE}: 3 done, 0 queued, 0 failed" in r.stderr, r.stderr

    tasks = {(e, v): (s, agent, address, reason) for e, v, s, agent, address, reason in sql(
        store, "SELECT endpoint, vantage, status, agent, address, reason FROM tasks")}
    assert len(tasks) == 6
    for (e, v), (status, agent, address, reason) in tasks.items():
        # each vantage point's tasks ran on the agent in its own namespace, which resolved
        # the lab name to the scenario's address
        assert agent == lab_fleet.agents[v].name
        assert address == lab.scenario(e).address
        if (e, v) != (FORBIDDEN, OUTSIDE):
            assert status == "done", (e, v, reason)
    status, _, address, reason = tasks[(FORBIDDEN, OUTSIDE)]
    assert status == "refused" and "outside this agent's allowlist" in reason, reason
    assert f"{address}:{SERVICE_PORT}" in reason

    attempts = {(e, v): (outcome, src, issuer) for e, v, outcome, src, issuer in sql(
        store, "SELECT endpoint, vantage, outcome, json_extract(doc, '$.local_address'), "
               "json_extract(doc, '$.certificate.issuer') FROM attempts")}
    # every attempt left from its vantage point's client address
    assert {v: src for (_, v), (_, src, _) in attempts.items()} == SOURCES
    assert attempts[(RESET, INSIDE)][0] == "ok"
    assert attempts[(RESET, OUTSIDE)][0] == "reset"
    assert attempts[(FORBIDDEN, INSIDE)][0] == "ok"
    assert (FORBIDDEN, OUTSIDE) not in attempts  # refused without a connection
    assert attempts[(INTERCEPT, INSIDE)][0] == attempts[(INTERCEPT, OUTSIDE)][0] == "ok"
    assert attempts[(INTERCEPT, INSIDE)][2] == "CN=prober lab CA,O=prober lab"
    assert attempts[(INTERCEPT, OUTSIDE)][2] == ("CN=prober lab intercept CA,"
                                                 "O=prober lab intercept")
    # from outside every hello to outside-reset is reset: no TLS endpoint measured there
    assert sorted(sql(store, "SELECT endpoint, vantage, id, severity FROM findings")) == [
        (FORBIDDEN, OUTSIDE, "task-refused", "high"), (RESET, OUTSIDE, "no-tls-endpoint",
                                                       "high")]

    rep = fleet("report", "--store", str(store), "--json", str(tmp_path / "rep.json"))
    assert rep.returncode == 0, rep.stderr
    doc = json.loads((tmp_path / "rep.json").read_text())
    named = {f["endpoint"]: f for f in doc["between_findings"]}
    assert set(named) == {RESET, INTERCEPT}, doc["between_findings"]
    # the same names `prober diff` gives the same two cases probed from the two clients
    for name in (RESET, INTERCEPT):
        expected = [(f["id"], f["figures"].get("side"))
                    for f in diff_of_probes(lab, tmp_path, name)["findings"]]
        got = [(f["id"], f["side"]) for f in doc["between_findings"] if f["endpoint"] == name]
        assert got == expected, (name, got, expected)
    reset = named[RESET]
    assert (reset["id"], reset["side"]) == ("injected-reset", OUTSIDE)
    assert reset["cause"].startswith(f"{OUTSIDE} only: RST")
    assert named[INTERCEPT]["id"] == "tls-interception"
    assert "prober lab intercept CA" in named[INTERCEPT]["evidence"][0]
    between = {(d["endpoint"], d["what"]): (d["a"], d["b"]) for d in doc["between_vantages"]}
    assert between[(RESET, f"profile {PROFILE}")] == ("ok 1", "reset 1")
    assert between[(FORBIDDEN, "status")] == ("done", "refused")
    # the table says it in words
    assert (f"  {RESET}: {reset['confidence']} injected-reset: {OUTSIDE} only: RST"
            in rep.stdout), rep.stdout
    assert f"  {INTERCEPT}: high tls-interception: The certificate issuer differs" in rep.stdout
    assert f"{RESET}: profile {PROFILE}: ok 1 from {INSIDE}, reset 1 from {OUTSIDE}" in rep.stdout
    assert f"{FORBIDDEN}: status: done from {INSIDE}, refused from {OUTSIDE}; {OUTSIDE}: " \
        f"{reason}" in rep.stdout, rep.stdout
    # the refused side has nothing else to compare: one line, not one per profile
    assert [d["what"] for d in doc["between_vantages"] if d["endpoint"] == FORBIDDEN] == [
        "status"], doc["between_vantages"]
    (tmp_path / "report.txt").write_text(rep.stdout)



def test_policy_job_from_two_namespaces(lab_fleet: LabFleet, tmp_path: Path) -> None:
    store, r = run_fleet(lab_fleet, tmp_path, "--job", "policy")
    assert r.returncode == 1, r.stdout + r.stderr  # the refusal again
    pol = {(e, v): (json.loads(versions), reliable, text) for e, v, versions, reliable, text
           in sql(store, "SELECT endpoint, vantage, versions, reliable, text FROM policies")}
    assert (FORBIDDEN, OUTSIDE) not in pol
    assert sql(store, "SELECT status FROM tasks WHERE endpoint=? AND vantage=?",
               FORBIDDEN, OUTSIDE) == [("refused",)]
    # the lab's nginx as seen from inside; nothing gets through from outside
    versions, reliable, _ = pol[(RESET, INSIDE)]
    assert sorted(versions) == ["TLSv1.2", "TLSv1.3"] and reliable == 1, pol[(RESET, INSIDE)]
    assert pol[(RESET, OUTSIDE)][0] == [] and pol[(RESET, OUTSIDE)][2] == "no version accepted"
    rep = fleet("report", "--store", str(store), "--json", "-")
    assert rep.returncode == 0, rep.stderr
    named = json.loads(rep.stdout)["between_findings"]
    reset = [(f["id"], f["side"]) for f in named if f["endpoint"] == RESET]
    assert reset == [("injected-reset", OUTSIDE)], named
    assert "tls-interception" in {f["id"] for f in named if f["endpoint"] == INTERCEPT}, named
    # no catalog name on either side, yet not the same policy: what was measured differs
    between = [(d["what"], d["a"], d["b"]) for d in json.loads(rep.stdout)["between_vantages"]
               if d["endpoint"] == RESET and d["what"].startswith("policy")]
    assert between == [("policy versions", ", ".join(versions), "none")], between
    forbidden = [d["what"] for d in json.loads(rep.stdout)["between_vantages"]
                 if d["endpoint"] == FORBIDDEN]
    assert forbidden == ["status"], forbidden
    text = fleet("report", "--store", str(store))
    (tmp_path / "report.txt").write_text(text.stdout)
    assert (f"{RESET}: policy versions: {', '.join(versions)} from {INSIDE}, none from "
            f"{OUTSIDE}") in text.stdout, text.stdout
    # each side's scan chose its own hellos: a hello only one side sent is no difference
    one_sided = [d for d in json.loads(rep.stdout)["between_vantages"]
                 if d["what"].startswith("profile ") and None in (d["a"], d["b"])]
    assert one_sided == [], one_sided
