"""Fleet runs end to end: a real redis-server, real `prober agent` processes, real TLS
peers on loopback. Two vantage points are two agents on loopback with different
allowlists; the endpoint `shop` differs between them by a per-vantage address override
(127.0.0.1 is a TLS server, 127.0.0.2 on the same port resets after the hello)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prober.cli.main import main
from prober.fleet.celeryapp import TASK_NAME, queue_of
from tests.fleet.harness import (
    Agent,
    agents,
    env,
    fleet,
    prober,
    redis_server,
    sql,
)
from tests.peers.lifecycle import poll_until
from tests.peers.misbehaving import CountingListener, ResetAfterHello, closed_port

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def two_faced(python_tls_server_factory: Any, peer_stack: Any) -> tuple[int, int]:
    """(port, other port): TLS on 127.0.0.1:port, a resetting front on 127.0.0.2:port, and
    a second TLS endpoint no agent may probe."""
    tls = python_tls_server_factory()
    peer_stack.enter_context(ResetAfterHello(host="127.0.0.2", port=tls.port))
    other = python_tls_server_factory()
    return tls.port, other.port


def write_inventory(path: Path, port: int, other: int) -> Path:
    path.write_text(f"""\
schema: 1
defaults: {{profiles: [tls1.2-only], cap: 2}}
groups:
  - name: shop
    labels: {{environment: prod, owner: team-shop}}
    endpoints:
      - target: 127.0.0.1:{port}
        name: shop
        vantages:
          outside: {{address: 127.0.0.2}}
      - {{target: "127.0.0.1:{other}", name: forbidden}}
""")
    return path


def names_of_one_listener(path: Path, port: int, n: int, *group: str) -> Path:
    """An inventory of ``n`` names (e0, e1 …) of 127.0.0.1:``port`` in one group with the
    ``group`` fields given (YAML lines): every task lands on the same listener."""
    eps = "".join(f"      - {{target: '127.0.0.1:{port}', name: e{i}}}\n" for i in range(n))
    fields = "".join(f"    {f}\n" for f in group)
    path.write_text(f"schema: 1\ngroups:\n  - name: g\n{fields}    endpoints:\n{eps}")
    return path


def run_on_two_agents(tmp_path: Path, broker: str, port: int, other: int, store: Path,
                      *options: str) -> subprocess.CompletedProcess[str]:
    """`fleet run` of write_inventory's endpoints on one agent per vantage point, each
    allowed only its own loopback address."""
    inv = write_inventory(tmp_path / "inv.yaml", port, other)
    with agents() as started:
        started.append(Agent(tmp_path, broker, "inside", [f"127.0.0.1/32:{port}"],
                             name="in1").ready())
        started.append(Agent(tmp_path, broker, "outside", [f"127.0.0.2/32:{port}"],
                             name="out1").ready())
        return fleet("run", str(inv), "--store", str(store), "--broker", broker,
                     "--vantage", "inside", "--vantage", "outside", *options)


def test_two_vantages_store_report_and_refusal(tmp_path: Path, broker: str,
                                               two_faced: tuple[int, int]) -> None:
    port, other = two_faced
    store = tmp_path / "fleet.sqlite"
    r = run_on_two_agents(tmp_path, broker, port, other, store, "-t", "2")
    # the refusals are high findings: exit 1, and the table names them
    assert r.returncode == 1, r.stderr
    assert "inside: 1 done, 0 queued, 1 failed" in r.stderr
    tasks = {(e, v): (s, reason) for e, v, s, reason in sql(
        store, "SELECT endpoint, vantage, status, reason FROM tasks WHERE run_id=1")}
    assert tasks[("shop", "inside")][0] == "done"
    assert tasks[("shop", "outside")][0] == "done"
    for v in ("inside", "outside"):
        status, reason = tasks[("forbidden", v)]
        assert status == "refused" and "allowlist" in reason and str(other) in reason
    outcomes = dict(sql(store, "SELECT vantage, outcome FROM attempts WHERE endpoint='shop'"))
    assert outcomes == {"inside": "ok", "outside": "reset"}
    # nothing was sent to the refused endpoint from either side
    assert sql(store, "SELECT count(*) FROM attempts WHERE endpoint='forbidden'") == [(0,)]
    assert ("forbidden", "inside", "task-refused", "high") in sql(
        store, "SELECT endpoint, vantage, id, severity FROM findings")

    rep = fleet("report", "--store", str(store), "--json", str(tmp_path / "rep.json"))
    assert rep.returncode == 0, rep.stderr
    doc = json.loads((tmp_path / "rep.json").read_text())
    diff = [d for d in doc["between_vantages"]
            if d["endpoint"] == "shop" and d["what"] == "profile tls1.2-only"]
    assert diff == [{"endpoint": "shop", "vantage_a": "inside", "vantage_b": "outside",
                     "what": "profile tls1.2-only", "a": "ok 1", "b": "reset 1"}]
    assert "shop: profile tls1.2-only: ok 1 from inside, reset 1 from outside" in rep.stdout
    # and names it as `prober diff` does a reset on one side only
    named = [(f["endpoint"], f["id"], f["side"]) for f in doc["between_findings"]]
    assert named == [("shop", "injected-reset", "outside")], doc["between_findings"]
    assert "shop: medium injected-reset: outside only: RST" in rep.stdout

    ex = fleet("export", "--store", str(store))
    tables = {json.loads(ln)["table"] for ln in ex.stdout.splitlines()}
    assert {"runs", "targets", "tasks", "attempts", "findings"} <= tables


def test_in_process_default_same_results_without_broker(tmp_path: Path,
                                                         two_faced: tuple[int, int]) -> None:
    port, other = two_faced
    inv = write_inventory(tmp_path / "inv.yaml", port, other)
    store = tmp_path / "fleet.sqlite"
    # the embedded engine is one vantage point; naming it applies its overrides
    assert main(["fleet", "run", str(inv), "--store", str(store), "-t", "2", "-q"]) == 0
    # from outside every hello to `shop` is reset: no TLS endpoint measured, as `prober
    # probe` would say ("NO TLS ENDPOINT MEASURED"), so the run fails on it
    assert main(["fleet", "run", str(inv), "--store", str(store), "-t", "2", "-q",
                 "--vantage", "outside"]) == 1
    rows = sql(store, "SELECT run_id, endpoint, vantage, outcome FROM attempts "
                      "ORDER BY run_id, endpoint")
    assert rows == [(1, "forbidden", "local", "ok"), (1, "shop", "local", "ok"),
                    (2, "forbidden", "outside", "ok"), (2, "shop", "outside", "reset")]
    assert sql(store, "SELECT run_id, endpoint, id FROM findings") == [
        (2, "shop", "no-tls-endpoint")]
    assert sql(store, "SELECT DISTINCT status FROM tasks") == [("done",)]
    assert sql(store, "SELECT mode FROM runs") == [("embedded",), ("embedded",)]
    doc_path = tmp_path / "rep.json"
    assert main(["fleet", "report", "--store", str(store), "--since", "1",
                 "--json", str(doc_path)]) == 0
    drift = json.loads(doc_path.read_text())["drift"]
    # the vantage names differ, so each side is reported present on one side only
    assert {d["what"] for d in drift} == {"presence"}
    # --retention keeps the newest runs only, and all they hold goes with the old ones
    assert main(["fleet", "run", str(inv), "--store", str(store), "-t", "2", "-q",
                 "--retention", "1"]) == 0
    assert sql(store, "SELECT id FROM runs") == [(3,)]
    assert sql(store, "SELECT DISTINCT run_id FROM attempts") == [(3,)]


def test_vantage_without_consumer_is_a_clear_error(tmp_path: Path, broker: str,
                                                   two_faced: tuple[int, int]) -> None:
    inv = write_inventory(tmp_path / "inv.yaml", *two_faced)
    r = fleet("run", str(inv), "--store", str(tmp_path / "s.sqlite"), "--broker", broker,
              "--vantage", "nobody-here")
    assert r.returncode == 2
    assert "no agent consumes the queue of vantage point(s) nobody-here" in r.stderr
    assert "Traceback" not in r.stderr


class Planted:
    """Unpickling this creates a file: what a pickle-accepting worker would run."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def test_pickled_message_is_rejected(tmp_path: Path, broker: str) -> None:
    from kombu.connection import Connection
    from redis import Redis

    marker = tmp_path / "pwned"
    queue = queue_of("pickle-test")
    with agents() as started:
        agent = Agent(tmp_path, broker, "pickle-test", ["127.0.0.1/32:1"], name="pk1").ready()
        started.append(agent)
        with Connection(broker) as conn:  # type: ignore[no-untyped-call]
            conn.Producer().publish(
                Planted(str(marker)), routing_key=queue, serializer="pickle",
                headers={"task": TASK_NAME, "id": "planted-1", "lang": "py"})
        r = Redis.from_url(broker)
        poll_until(lambda: not r.llen(queue), 20, step=0.1)
        assert r.llen(queue) == 0, "the agent never took the planted message"
        poll_until(lambda: "pickle" in agent.log(), 10, step=0.1)
        assert agent.proc.poll() is None
        assert "pickle" in agent.log()  # refused as untrusted content, and logged
    assert not marker.exists()


def test_a_spec_from_another_prober_version_is_refused_by_the_agent(tmp_path: Path,
                                                                     broker: str) -> None:
    from prober.fleet import inventory
    from prober.fleet.runner import FleetOptions, plan
    from prober.fleet.store import Store

    inv = tmp_path / "inv.txt"
    store = tmp_path / "s.sqlite"
    with CountingListener() as listener, agents() as started:
        inv.write_text(f"127.0.0.1:{listener.port}\n")
        st = Store(store)
        run = plan(inventory.load(inv), st, FleetOptions(vantages=["older"]), "celery")
        st.close()
        # what a newer coordinator would send this agent: another schema, and a field
        # this agent needs gone
        sql(store, "UPDATE tasks SET spec=json_remove(json_set(spec, '$.schema', "
            "'prober.fleet.spec/3'), '$.time_limit')")
        started.append(Agent(tmp_path, broker, "older", ["127.0.0.1/32:1-65535"],
                             name="old1").ready())
        r = fleet("run", "--resume", str(run), "--store", str(store), "--broker", broker)
        assert r.returncode == 1, r.stderr
        assert listener.accepted == 0  # refused before any field was read
    ((status, agent, reason),) = sql(store, "SELECT status, agent, reason FROM tasks")
    assert (status, agent) == ("refused", "old1")
    assert reason == ("this agent reads task specs prober.fleet.spec/1, prober.fleet.spec/2, "
                      "the coordinator sent prober.fleet.spec/3: run the same prober version "
                      "on the coordinator and agents")
    assert sql(store, "SELECT id, severity FROM findings") == [("task-refused", "high")]


def test_two_agents_never_exceed_an_endpoint_cap(tmp_path: Path, broker: str) -> None:
    with CountingListener() as listener, agents() as started:
        # four names, one address: every task lands on the same listener, cap 2 fleet-wide
        inv = names_of_one_listener(tmp_path / "inv.yaml", listener.port, 4,
                                    "cap: 2", "profiles: [tls1.2-only, tls1.3-only, tls1.1-only]")
        for i in range(2):
            # one task at a time each, so that both agents take some of the four
            started.append(Agent(tmp_path, broker, "capped", ["127.0.0.1/32:1-65535"],
                                 name=f"cap{i}", concurrency=1).ready())
        store = tmp_path / "s.sqlite"
        # two shards of two: one for each agent
        r = fleet("run", str(inv), "--store", str(store), "--fail-on", "none", "--broker", broker,
                  "--vantage", "capped", "-t", "0.4", "-n", "2", "--shard-size", "2")
        assert r.returncode == 0, r.stderr
    assert listener.accepted == 4 * 3 * 2
    assert 1 <= listener.most <= 2, listener.most
    # both agents worked at once: without the fleet-wide lease they would have held 4
    assert len(sql(store, "SELECT DISTINCT agent FROM tasks")) == 2
    assert sql(store, "SELECT count(*) FROM attempts") == [(24,)]


def test_sigkill_of_agent_mid_task_leaves_store_complete(tmp_path: Path, broker: str) -> None:
    with CountingListener() as listener, agents() as started:
        inv = tmp_path / "inv.yaml"
        inv.write_text("schema: 1\ngroups:\n  - name: g\n    cap: 1\n"
                       "    profiles: [tls1.2-only, tls1.3-only, tls1.1-only, tls1.0-only]\n"
                       f"    endpoints: ['127.0.0.1:{listener.port}']\n")
        # a short visibility timeout so the broker hands the lost task on within the test,
        # and short leases so the dead agent's hold on the endpoint lapses as soon
        limits: dict[str, Any] = {"time_limit": 4.0, "visibility": 5.0, "lease_ttl": 1.5}
        first = Agent(tmp_path, broker, "killed", ["127.0.0.1/32:1-65535"], name="k1",
                      **limits).ready()
        started.append(first)
        store = tmp_path / "s.sqlite"
        coord = subprocess.Popen(
            prober("fleet", "run", str(inv), "--store", str(store), "--fail-on", "none",
                   "--broker", broker,
                   "--vantage", "killed", "-t", "0.5", "--time-limit", "4",
                   "--visibility-timeout", "5", "--stall", "60"),
            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            poll_until(lambda: listener.accepted >= 2, 20, step=0.05)
            assert listener.accepted >= 2, "the task never started"
            first.kill()  # mid-task: its message stays unacknowledged on the broker
            started.append(Agent(tmp_path, broker, "killed", ["127.0.0.1/32:1-65535"],
                                 name="k2", **limits).ready())
            _out, err = coord.communicate(timeout=90)
        finally:
            if coord.poll() is None:
                coord.kill()
                coord.wait(5)
        assert coord.returncode == 0, err
    assert sql(store, "SELECT status, agent FROM tasks") == [("done", "k2")]
    assert sql(store, "SELECT count(*), count(DISTINCT attempt) FROM attempts") == [(4, 4)]
    assert sql(store, "SELECT status FROM runs") == [("complete",)]
    # the first agent's attempts happened, but only one result was ever stored
    assert listener.accepted >= 4 + 2


def test_sigkill_mid_shard_redelivers_it_and_stores_each_endpoint_once(
        tmp_path: Path, broker: str) -> None:
    with CountingListener() as listener, agents() as started:
        # three names of one silent listener in one shard; the agent runs one task at a
        # time, so it dies with the first endpoint finished and the second under way
        inv = names_of_one_listener(tmp_path / "inv.yaml", listener.port, 3,
                                    "cap: 1", "profiles: [tls1.2-only, tls1.3-only]")
        limits: dict[str, Any] = {"time_limit": 8.0, "visibility": 9.0, "lease_ttl": 1.5,
                                  "concurrency": 1}
        first = Agent(tmp_path, broker, "shard", ["127.0.0.1/32:1-65535"], name="s1",
                      **limits).ready()
        started.append(first)
        store = tmp_path / "s.sqlite"
        coord = subprocess.Popen(
            prober("fleet", "run", str(inv), "--store", str(store), "--fail-on", "none",
                   "--broker", broker,
                   "--vantage", "shard", "-t", "0.5", "--time-limit", "8",
                   "--visibility-timeout", "9", "--stall", "60", "--shard-size", "3"),
            env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            poll_until(lambda: listener.accepted >= 3, 20, step=0.05)
            assert listener.accepted >= 3, "the shard's second task never started"
            first.kill()  # mid-shard: one result made, none sent, the message unacked
            started.append(Agent(tmp_path, broker, "shard", ["127.0.0.1/32:1-65535"],
                                 name="s2", **limits).ready())
            _out, err = coord.communicate(timeout=120)
        finally:
            if coord.poll() is None:
                coord.kill()
                coord.wait(5)
        assert coord.returncode == 0, err
    assert sql(store, "SELECT endpoint, status, agent FROM tasks ORDER BY 1") == [
        ("e0", "done", "s2"), ("e1", "done", "s2"), ("e2", "done", "s2")]
    assert sql(store, "SELECT endpoint, count(*), count(DISTINCT attempt) FROM attempts "
                      "GROUP BY endpoint ORDER BY 1") == [("e0", 2, 2), ("e1", 2, 2),
                                                         ("e2", 2, 2)]
    assert sql(store, "SELECT count(*) FROM findings WHERE id='task-failed'") == [(0,)]
    assert sql(store, "SELECT status FROM runs") == [("complete",)]
    # the whole shard ran again on the second agent; each endpoint was stored once
    assert listener.accepted >= 3 + 3 * 2
    assert json.loads(sql(store, "SELECT options FROM runs")[0][0])["shard_size"] == 3


def test_killed_coordinator_resumes_without_rerunning(tmp_path: Path, broker: str) -> None:
    with CountingListener() as listener, agents() as started:
        inv = tmp_path / "inv.yaml"
        inv.write_text("schema: 1\ngroups:\n  - name: g\n    cap: 1\n"
                       "    profiles: [tls1.2-only, tls1.3-only]\n"
                       f"    endpoints: ['127.0.0.1:{listener.port}']\n")
        started.append(Agent(tmp_path, broker, "resume", ["127.0.0.1/32:1-65535"],
                             name="r1").ready())
        store = tmp_path / "s.sqlite"
        coord = subprocess.Popen(
            prober("fleet", "run", str(inv), "--store", str(store), "--fail-on", "none",
                   "--broker", broker,
                   "--vantage", "resume", "-t", "1", "-q"),
            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            poll_until(lambda: listener.accepted >= 1, 20)
        finally:
            coord.kill()  # the coordinator dies while its one task runs on the agent
            coord.wait(5)
        assert sql(store, "SELECT status FROM runs") == [("running",)]
        poll_until(lambda: listener.accepted >= 2 and not listener.open, 20, step=0.05)
        time.sleep(0.5)  # the agent stores its result in the backend after the last close
        r = fleet("run", "--resume", "1", "--store", str(store), "--fail-on", "none",
                  "--broker", broker)
        assert r.returncode == 0, r.stderr
    assert sql(store, "SELECT status FROM runs") == [("complete",)]
    assert sql(store, "SELECT status, agent FROM tasks") == [("done", "r1")]
    assert sql(store, "SELECT count(*) FROM attempts") == [(2,)]
    # the finished task's result was collected, not run again
    assert listener.accepted == 2


def test_resume_collects_a_finished_shard_of_several_endpoints(tmp_path: Path,
                                                               broker: str) -> None:
    with CountingListener() as listener, agents() as started:
        inv = names_of_one_listener(tmp_path / "inv.yaml", listener.port, 3,
                                    "cap: 1", "profiles: [tls1.2-only]")
        started.append(Agent(tmp_path, broker, "resume-shard", ["127.0.0.1/32:1-65535"],
                             name="rs1").ready())
        store = tmp_path / "s.sqlite"
        coord = subprocess.Popen(
            prober("fleet", "run", str(inv), "--store", str(store), "--fail-on", "none",
                   "--broker", broker,
                   "--vantage", "resume-shard", "-t", "1", "-q", "--shard-size", "3"),
            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            poll_until(lambda: listener.accepted >= 1, 20)
        finally:
            coord.kill()  # the coordinator dies while the one shard runs on the agent
            coord.wait(5)
        assert sql(store, "SELECT count(*) FROM tasks WHERE status='queued'") == [(3,)]
        poll_until(lambda: listener.accepted >= 3 and not listener.open, 20, step=0.05)
        time.sleep(0.5)  # the agent stores the shard's answer after the last close
        r = fleet("run", "--resume", "1", "--store", str(store), "--fail-on", "none",
                  "--broker", broker)
        assert r.returncode == 0, r.stderr
    assert sql(store, "SELECT endpoint, status, agent FROM tasks ORDER BY 1") == [
        ("e0", "done", "rs1"), ("e1", "done", "rs1"), ("e2", "done", "rs1")]
    assert sql(store, "SELECT count(*) FROM attempts") == [(3,)]
    # the shard's three results were collected under its id, not run again
    assert listener.accepted == 3


def test_diagnose_job_on_agents_names_differences_as_prober_diff(
        tmp_path: Path, broker: str, two_faced: tuple[int, int]) -> None:
    port, other = two_faced
    store = tmp_path / "fleet.sqlite"
    r = run_on_two_agents(tmp_path, broker, port, other, store, "--job", "diagnose", "-t", "1")
    assert r.returncode == 1, r.stderr  # the refusals
    assert sql(store, "SELECT endpoint, vantage, status FROM tasks ORDER BY 1, 2") == [
        ("forbidden", "inside", "refused"), ("forbidden", "outside", "refused"),
        ("shop", "inside", "done"), ("shop", "outside", "done")]
    assert sql(store, "SELECT count(*) FROM attempts WHERE endpoint='forbidden'") == [(0,)]
    assert sql(store, "SELECT endpoint, vantage FROM diagnoses ORDER BY 2") == [
        ("shop", "inside"), ("shop", "outside")]

    # the same endpoint diagnosed by `prober diagnose` from each side, and `prober diff`
    docs = {}
    for side, host in (("inside", "127.0.0.1"), ("outside", "127.0.0.2")):
        out = tmp_path / f"{side}.json"
        d = subprocess.run(prober("diagnose", f"{host}:{port}", "-t", "1", "-q", "--json",
                                  str(out)), env=env(), capture_output=True, text=True,
                           timeout=120, check=False)
        assert d.returncode == 0, d.stderr
        docs[side] = json.loads(out.read_text())
        own = {fid for (fid,) in sql(store, "SELECT id FROM findings WHERE endpoint='shop' "
                                            "AND vantage=?", side)}
        assert own == {f["id"] for f in docs[side]["findings"]}, side
    d = subprocess.run(prober("diff", str(tmp_path / "inside.json"),
                              str(tmp_path / "outside.json"), "--json",
                              str(tmp_path / "diff.json")),
                       env=env(), capture_output=True, text=True, timeout=60, check=False)
    assert d.returncode == 0, d.stderr
    expected = [(f["id"], f["confidence"]) for f in
                json.loads((tmp_path / "diff.json").read_text())["findings"]]
    assert expected, "prober diff names the outside-only reset"

    rep = fleet("report", "--store", str(store), "--json", str(tmp_path / "rep.json"))
    assert rep.returncode == 0, rep.stderr
    doc = json.loads((tmp_path / "rep.json").read_text())
    between = doc["between_vantages"]
    got = [(b["id"], b["confidence"]) for b in doc["between_findings"]
           if b["endpoint"] == "shop"]
    assert got == expected
    # no per-variant rows: the diagnosis' differences are the diff's findings
    assert not [b for b in between if b["what"].startswith("profile ")]
    fid, conf = expected[0]
    assert f"shop: {conf} {fid}: outside only:" in rep.stdout


def test_new_store_on_the_same_broker_runs_its_tasks(tmp_path: Path, broker: str) -> None:
    # Each new store numbers its runs from 1 and the backend keeps results for days: the
    # second store's run 1 must run its task, not collect the first store's result.
    with CountingListener() as listener, agents() as started:
        inv = tmp_path / "inv.txt"
        inv.write_text(f"127.0.0.1:{listener.port}\n")
        started.append(Agent(tmp_path, broker, "twice", ["127.0.0.1/32:1-65535"],
                             name="t1").ready())
        for i, store in enumerate((tmp_path / "a.sqlite", tmp_path / "b.sqlite"), 1):
            r = fleet("run", str(inv), "--store", str(store), "--fail-on", "none",
                      "--broker", broker, "--vantage", "twice", "-p", "tls1.2-only", "-t",
                      "0.3", "-q")
            assert sql(store, "SELECT id, status FROM runs") == [(1, "complete")], r.stderr
            assert listener.accepted == i


def test_redis_leases_renew_while_held_and_free_on_release(broker: str) -> None:
    """A lease held past its TTL is renewed (a second holder is still refused), and its
    slots are gone from Redis as soon as it is released."""
    import asyncio

    from redis import Redis

    from prober.fleet.leases import LeaseTimeout, RedisLeases
    from prober.net.loop import new_event_loop

    key, rkey = "198.51.100.7:443", "prober:lease:198.51.100.7:443"
    r = Redis.from_url(broker)

    async def scenario() -> list[int]:
        first, second = RedisLeases(broker, ttl_s=0.6), RedisLeases(broker, ttl_s=0.6)
        seen = []
        try:
            async with first.hold(key, 2, 2, wait_s=1) as n:
                seen.append(n)
                await asyncio.sleep(2.0)  # over three TTLs: only renewals keep it
                seen.append(int(r.zcard(rkey)))
                with pytest.raises(LeaseTimeout):
                    async with second.hold(key, 1, 2, wait_s=0.3):
                        pass
            seen.append(int(r.zcard(rkey)))
            async with second.hold(key, 1, 2, wait_s=0.3) as m:
                seen.append(m)
        finally:
            await first.close()
            await second.close()
        return seen

    loop = new_event_loop()
    try:
        assert loop.run_until_complete(scenario()) == [2, 2, 0, 1]
    finally:
        loop.close()


def test_the_agent_caps_a_task_at_its_own_time_limit(tmp_path: Path, broker: str) -> None:
    """A coordinator asking for a longer time limit than an agent's own cannot make a task
    outlive that agent's visibility timeout (Celery's threads pool does not enforce
    task_time_limit: the agent does)."""
    with CountingListener() as listener, agents() as started:
        inv = tmp_path / "inv.txt"
        inv.write_text(f"127.0.0.1:{listener.port}\n")
        started.append(Agent(tmp_path, broker, "short", ["127.0.0.1/32:1-65535"],
                             name="short1", time_limit=2, visibility=5).ready())
        store = tmp_path / "s.sqlite"
        # the hello is never answered: the read deadline (10 s) would outlast 5 s
        r = fleet("run", str(inv), "--store", str(store), "--broker", broker,
                  "--vantage", "short", "-p", "tls1.2-only", "-t", "10",
                  "--time-limit", "60", "--visibility-timeout", "120", "-q")
        assert r.returncode == 1, r.stderr
    ((status, reason, took),) = sql(store, "SELECT status, reason, finished_at - started_at "
                                           "FROM tasks")
    assert status == "failed"
    assert reason == ("the task's time limit (2 s, this agent's --time-limit, shorter than "
                      "the run's) ran out")
    assert took < 5  # inside the agent's visibility timeout


def test_a_broker_that_does_not_answer_is_one_line(tmp_path: Path) -> None:
    inv = tmp_path / "inv.txt"
    inv.write_text("127.0.0.1:443\n")
    store = tmp_path / "s.sqlite"
    r = fleet("run", str(inv), "--store", str(store), "--broker",
              f"redis://127.0.0.1:{closed_port()}/0", "--vantage", "x")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0, r.stderr
    assert "cannot reach the broker" in r.stderr and "Traceback" not in r.stderr
    assert sql(store, "SELECT count(*) FROM runs") == [(0,)]  # nothing planned


def test_a_broker_lost_mid_run_leaves_the_run_resumable(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url, CountingListener() as listener, agents() as started:
        inv = tmp_path / "inv.txt"
        inv.write_text(f"127.0.0.1:{listener.port}\n")
        started.append(Agent(tmp_path, url, "lost", ["127.0.0.1/32:1-65535"],
                             name="l1").ready())
        store = tmp_path / "s.sqlite"
        coord = subprocess.Popen(
            prober("fleet", "run", str(inv), "--store", str(store), "--broker", url,
                   "--vantage", "lost", "-p", "tls1.2-only", "-t", "10", "-q"),
            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            poll_until(lambda: listener.accepted >= 1, 20, step=0.05)
            assert listener.accepted == 1, "the task never started"
            port = url.rsplit(":", 1)[1].split("/")[0]
            # the broker goes away while the task runs (redis-cli: our own server)
            subprocess.run(["redis-cli", "-p", port, "shutdown", "nosave"], timeout=10,
                           capture_output=True, check=False)
            _, err = coord.communicate(timeout=30)
        finally:
            if coord.poll() is None:
                coord.kill()
                coord.wait(5)
    assert coord.returncode == 1, err
    assert "the broker stopped answering" in err and "--resume 1" in err, err
    assert "Traceback" not in err
    assert sql(store, "SELECT status FROM runs") == [("incomplete",)]
    assert sql(store, "SELECT status FROM tasks") == [("queued",)]


def _densest_second(times: list[float]) -> int:
    """The most connections the listener accepted within any 1-second window."""
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u - t < 1.0) for i, t in enumerate(times)),
               default=0)


@pytest.mark.parametrize("mode", ["in-process", "two agents"])
def test_an_endpoint_rate_holds_fleet_wide(tmp_path: Path, broker: str, mode: str) -> None:
    """`rate: 5` on four names of one address: at most 5 connections start in any second,
    whether one process or two agents run the tasks (their book is shared in Redis)."""
    with CountingListener() as listener, agents() as started:
        inv = names_of_one_listener(tmp_path / "inv.yaml", listener.port, 4,
                                    "cap: 4", "rate: 5", "profiles: [tls1.2-only]")
        store = tmp_path / "s.sqlite"
        args = ["run", str(inv), "--store", str(store), "--fail-on", "none", "-n", "5",
                "-t", "0.2", "-q"]
        if mode == "two agents":
            for name in ("p1", "p2"):
                started.append(Agent(tmp_path, broker, "paced", ["127.0.0.1/32:1-65535"],
                                     name=name).ready())
            args += ["--broker", broker, "--vantage", "paced", "--shard-size", "1"]
        r = fleet(*args)
        assert r.returncode == 0, r.stderr
        assert listener.accepted == 4 * 5
        # starts 0.2 s apart on one clock: 20 take at least 3.8 s (a busy machine makes
        # them later, never sooner), and no second holds many more than 5 (late starts can
        # bunch a little); unpaced, at cap 4 and 0.2 s each, the 20 take ~1 s
        times = sorted(listener.accepted_at)
        assert times[-1] - times[0] >= 3.5, times
        assert _densest_second(times) <= 8, times
    if mode == "two agents":
        assert {a for (a,) in sql(store, "SELECT DISTINCT agent FROM tasks")} == {"p1", "p2"}


def test_in_process_tasks_never_exceed_an_endpoint_cap(tmp_path: Path) -> None:
    """The in-process default under the same assertion as two agents: four names of one
    address, run at once, share one cap."""
    with CountingListener() as listener:
        inv = names_of_one_listener(tmp_path / "inv.yaml", listener.port, 4,
                                    "cap: 2", "profiles: [tls1.2-only, tls1.3-only, tls1.1-only]")
        store = tmp_path / "s.sqlite"
        r = fleet("run", str(inv), "--store", str(store), "--fail-on", "none", "-c", "16",
                  "-t", "0.4", "-n", "2")
        assert r.returncode == 0, r.stderr
    assert listener.accepted == 4 * 3 * 2
    assert 1 <= listener.most <= 2, listener.most
    assert sql(store, "SELECT count(*) FROM attempts") == [(24,)]


def test_a_vantage_left_without_agents_mid_run_is_said(tmp_path: Path, broker: str,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """Agents that all go away during a run: the coordinator says which vantage point has
    none left, long before it gives up at --stall."""
    from prober.fleet import inventory
    from prober.fleet.celeryapp import make_app
    from prober.fleet.runner import FleetOptions, Progress, plan, run_distributed
    from prober.fleet.store import Store

    inv = tmp_path / "inv.txt"
    inv.write_text("127.0.0.1:443\n")
    store = Store(tmp_path / "s.sqlite")
    run = plan(inventory.load(inv), store, FleetOptions(vantages=["deserted"]), "celery")
    app = make_app(broker)
    run_distributed(app, run, store, Progress(run, store.queued_counts(run), None),
                    stall_s=2.0, consumer_check_s=0.5)
    err = capsys.readouterr().err
    assert f"fleet run {run}: no agent consumes vantage point(s) deserted now" in err, err
    assert "no answer for 2 s; 1 task(s) left queued" in err, err
    assert store.queued_counts(run) == {"deserted": 1}
