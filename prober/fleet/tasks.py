"""The one task function of a fleet run: one job against one endpoint from one vantage.

A task spec and its result are plain JSON (the broker carries nothing else), and the same
``execute`` runs in-process and inside a Celery agent: only the lease book and the
allowlist differ. A result is keyed by (run, endpoint, vantage, task); the store keeps
the first one that arrives for a key, so a task that ran twice is stored once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import functools
import time
import traceback
from typing import Any

from prober.check.evaluate import Verdict
from prober.check.expectations import parse as parse_expectations
from prober.check.run import CheckRun
from prober.core import engine, service
from prober.core.attempt import AttemptResult
from prober.core.engine import Endpoint
from prober.core.targets import Sni, Target
from prober.diagnose.findings import INFO, SERVER_POLICY
from prober.diagnose.run import diagnose
from prober.fleet.allowlist import Allowlist
from prober.fleet.leases import LeaseBook, LeaseTimeout
from prober.net.attempt import Deadlines
from prober.net.host import hostname
from prober.policy.enumerate.driver import enumerate_policy
from prober.policy.naming.match import match_catalog
from prober.profiles.loader import generation, resolve_all
from prober.profiles.model import Profile

JOBS = ("probe", "policy", "diagnose", "check")
# the two halves of the coordinator-agent contract, versioned apart from the prober that
# speaks them: a spec (what to run) and a result (what came of it). A spec without
# ``schema`` was planned before it had one, and is a spec/1.
SPEC_SCHEMA = "prober.fleet.spec/2"  # /1 plus `rate` and the target's `starttls`
# what this agent reads: an older coordinator's specs mean the same here, while an older
# agent refuses a /2 spec rather than run it unpaced or without its STARTTLS preamble
SPEC_SCHEMAS_READ = ("prober.fleet.spec/1", SPEC_SCHEMA)
TASK_SCHEMA = "prober.fleet.task/1"
CERT_WARN_DAYS = 21
# the fleet's own findings, beside the ones a diagnose task adds (diagnose.findings)
TASK_REFUSED, TASK_FAILED, UNREACHABLE = "task-refused", "task-failed", "unreachable"
NO_TLS_ENDPOINT = "no-tls-endpoint"
POLICY_MISMATCH, EXPECTATION_FAILED = "policy-mismatch", "expectation-failed"
CERT_EXPIRED, CERT_EXPIRING = "cert-expired", "cert-expiring"
FLEET_FINDING_IDS = (TASK_REFUSED, TASK_FAILED, UNREACHABLE, NO_TLS_ENDPOINT, POLICY_MISMATCH,
                     EXPECTATION_FAILED, CERT_EXPIRED, CERT_EXPIRING)
# the kinds of "no TLS endpoint measured" where no TCP connection was made
_UNREACHED = {service.PORT_CLOSED, service.UNREACHABLE, service.NO_NAME}
# a diagnosis holds a connect-and-wait control open beside at least one hello
DIAGNOSE_SLOTS = 2


def task_key(spec: dict[str, Any]) -> str:
    """The Celery task id, also the result's key: a re-sent task keeps its identity. The
    run's ``nonce`` keeps apart runs that share a number but not a store (each new store
    numbers its runs from 1, and the backend keeps results for days)."""
    return (f"prober-fleet:{spec['run']}:{spec.get('nonce', '')}:{spec['vantage']}:"
            f"{spec['task']}:{spec['endpoint']}")


def shard_key(spec: dict[str, Any]) -> str:
    """The Celery task id of the shard a spec was planned into: its number is stored in
    the spec, so a resumed run sends (and collects) the same shards under the same ids.
    A spec planned before shards existed is a shard of its own, under its task id."""
    if "shard" not in spec:
        return task_key(spec)
    return (f"prober-fleet:{spec['run']}:{spec.get('nonce', '')}:{spec['vantage']}:"
            f"{spec['task']}:shard-{spec['shard']}")


def target_json(t: Target) -> dict[str, Any]:
    return {"host": t.host, "port": t.port, "address": t.address,
            "sni": {"kind": t.sni_choice.kind, "name": t.sni_choice.name},
            "starttls": t.starttls, "starttls_inferred": t.starttls_inferred}


def target_of(d: dict[str, Any]) -> Target:
    s = d.get("sni") or {}
    # a spec planned before it carried ``starttls`` ran without a preamble, and still does:
    # the port is not read for one here, the coordinator already did (fleet.inventory)
    return Target(host=str(d["host"]), port=int(d["port"]), address=d.get("address"),
                  sni_choice=Sni(str(s.get("kind", "target")), s.get("name")),
                  starttls=d.get("starttls") or None,
                  starttls_inferred=bool(d.get("starttls_inferred")))


async def execute(spec: dict[str, Any], *, leases: LeaseBook, allow: Allowlist | None,
                  agent: str | None = None, timeout: float | None = None,
                  limit: float | None = None) -> dict[str, Any]:
    """Run one task; never raises for what the endpoint or the agent did: a refusal or a
    failure is a result like any other (``status``). ``limit``: the time limit in force
    (default: the spec's); ``timeout``: what is left of it when the task starts (default:
    all of it)."""
    out: dict[str, Any] = {
        "schema": TASK_SCHEMA, "run": spec["run"], "endpoint": spec["endpoint"],
        "vantage": spec["vantage"], "task": spec["task"], "status": "done", "reason": None,
        "agent": agent or hostname(), "address": None, "started_at": time.time(),
        "finished_at": None, "attempts": [], "policy": None, "verdicts": [], "findings": [],
        "diagnosis": None}
    if spec.get("schema", SPEC_SCHEMAS_READ[0]) not in SPEC_SCHEMAS_READ:
        # a coordinator newer (or older) than this agent: refused whole, before any
        # field but the result's key is read, rather than run on a guess of what the
        # fields mean
        out["status"], out["reason"] = "refused", (
            f"this agent reads task specs {', '.join(SPEC_SCHEMAS_READ)}, the coordinator sent "
            f"{spec['schema']}: run the same prober version on the coordinator and agents")
    else:
        await _within_limit(spec, out, leases, allow, timeout, limit)
    out["finished_at"] = time.time()
    try:
        out["findings"] += _findings(out, spec)
    except Exception as e:  # a bug here must not lose the task (or its whole shard)
        out["status"], out["reason"] = "failed", f"{type(e).__name__}: {e}"
        out["findings"].append(_finding(TASK_FAILED, "high", out["reason"]))
    return out


async def _within_limit(spec: dict[str, Any], out: dict[str, Any], leases: LeaseBook,
                        allow: Allowlist | None, timeout: float | None,
                        limit: float | None) -> None:
    limit = float(spec["time_limit"]) if limit is None else limit
    try:
        await asyncio.wait_for(_run(spec, out, leases, allow),
                               timeout=limit if timeout is None else timeout)
    except TimeoutError:
        own = ", this agent's --time-limit, shorter than the run's" if (
            limit < float(spec["time_limit"])) else ""
        out["status"], out["reason"] = "failed", (
            f"the task's time limit ({limit:g} s{own}) ran out")
    except LeaseTimeout as e:
        out["status"], out["reason"] = "failed", str(e)
    except Exception as e:  # a bug must come back as a failed task, not a lost one
        out["status"] = "failed"
        out["reason"] = f"{type(e).__name__}: {e}"
        out["traceback"] = traceback.format_exc(limit=8)


async def execute_shard(specs: list[dict[str, Any]], *, leases: LeaseBook,
                        allow: Allowlist | None, slots: asyncio.Semaphore,
                        agent: str | None = None, time_limit: float | None = None
                        ) -> list[dict[str, Any]]:
    """The tasks of one shard side by side, each as ``execute`` runs it, taking one of
    ``slots`` (the agent's, shared with its other shards) while it runs; their results in
    the shard's order. The time limit counts from the shard's start, for every one of its
    tasks: a task still waiting for a slot when it runs out comes back failed at once, so
    a shard never outlasts one time limit (what the broker's visibility timeout must
    exceed). ``time_limit``: the agent's own (`prober agent --time-limit`, checked
    against its visibility timeout), which caps the run's: the coordinator's checks its
    own visibility timeout, not the agents'."""
    loop = asyncio.get_running_loop()
    # over the specs this agent reads: the others are refused at once by ``execute``
    limit = min((float(s["time_limit"]) for s in specs
                 if s.get("schema", SPEC_SCHEMAS_READ[0]) in SPEC_SCHEMAS_READ),
                default=0.0)
    if time_limit is not None:
        limit = min(limit, time_limit)
    deadline = loop.time() + limit

    async def one(spec: dict[str, Any]) -> dict[str, Any]:
        async with slots:
            return await execute(spec, leases=leases, allow=allow, agent=agent,
                                 timeout=deadline - loop.time(), limit=limit)

    return list(await asyncio.gather(*(one(s) for s in specs)))


async def _run(spec: dict[str, Any], out: dict[str, Any], leases: LeaseBook,
               allow: Allowlist | None) -> None:
    target = target_of(spec["target"])
    deadlines = Deadlines(connect=float(spec["deadlines"]["connect"]),
                          read=float(spec["deadlines"]["read"]))
    eps = await engine.resolve_targets([target], False)
    ep = eps[0]
    out["address"] = ep.address
    if allow is not None and ep.address is not None and not allow.permits(ep.address,
                                                                          target.port):
        out["status"] = "refused"
        out["reason"] = (f"{ep.address}:{target.port} is outside this agent's allowlist "
                         f"({allow})")
        return
    cap = int(spec["cap"])
    key = f"{ep.address or target.host}:{target.port}"
    job = spec["task"]
    # (`fleet run` refuses a diagnose job on an endpoint capped lower; min() keeps a task
    # planned otherwise from waiting for slots that cannot exist)
    least = min(DIAGNOSE_SLOTS, cap) if job == "diagnose" else 1
    rate = spec.get("rate")
    # every attempt of the task waits for its start on the fleet-wide book; set for this
    # task only, and always (None without a rate): a worker that runs tasks one after
    # another in one context must not carry one task's rate to the next
    pacer = engine.PACER.set((lambda address, port: leases.pace(f"{address}:{port}",
                                                                float(rate))) if rate else None)
    try:
        async with leases.hold(key, cap, cap, wait_s=float(spec["time_limit"]),
                               least=least) as slots:
            if job == "probe":
                await _probe(spec, ep, deadlines, slots, out)
            elif job == "policy":
                await _policy(spec, ep, deadlines, slots, out)
            elif job == "diagnose":
                await _diagnose(ep, deadlines, slots, out)
            else:
                await _check(spec, ep, deadlines, slots, out)
    finally:
        engine.PACER.reset(pacer)


@functools.lru_cache(maxsize=64)
def _profiles(names: tuple[str, ...], loaded: int) -> tuple[Profile, ...]:
    """Compiled once per process, not once per task: the tasks of a run (and an agent's
    runs) ask for the same few lists, and compiling them was a fifth of a probe task's
    CPU (bench/fleet.py). The engine only reads a profile; the files are read once per
    process anyway, until the loader is reset (``loaded``: its generation)."""
    return tuple(resolve_all(list(names)))


async def _probe(spec: dict[str, Any], ep: Endpoint, deadlines: Deadlines, slots: int,
                 out: dict[str, Any]) -> None:
    results: list[AttemptResult] = []
    opts = engine.EngineOptions(repeat=int(spec.get("repeat", 1)), concurrency=slots,
                                per_target=slots, deadlines=deadlines)
    try:
        await engine.run([ep], _profiles(tuple(spec["profiles"]), generation()), opts,
                         results.append)
    finally:
        out["attempts"] = [r.to_json() for r in sorted(results, key=lambda r: r.id)]


async def _policy(spec: dict[str, Any], ep: Endpoint, deadlines: Deadlines, slots: int,
                  out: dict[str, Any]) -> None:
    if ep.address is None:
        out["reason"] = ep.error
        return
    results: list[AttemptResult] = []
    try:
        scan = await enumerate_policy(ep, concurrency=slots, deadlines=deadlines,
                                      budget_s=float(spec["time_limit"]),
                                      on_result=results.append)
    finally:
        # the scan's budget is the task's time limit, which usually fires first: what was
        # sent is stored all the same, as a probe task does
        out["attempts"] = [r.to_json() for r in sorted(results, key=lambda r: r.id)]
    out["attempts"] = [a.to_json() for a in scan.attempts]
    verdict = match_catalog(scan.policy) if scan.reliable and scan.policy.versions else None
    names = [m.policy.name for m in verdict.matches] if verdict is not None else []
    out["policy"] = {
        "versions": list(scan.policy.versions), "reliable": scan.reliable,
        "complete": scan.complete, "name": names[0] if names else None, "equals": names,
        "text": verdict.text() if verdict is not None else (
            "not named: the scan is not reliable" if not scan.reliable else
            "no version accepted"),
        # what `fleet report`'s table shows; the text above stays whole in the JSON
        "brief": verdict.brief() if verdict is not None else (
            "not reliable" if not scan.reliable else "no version accepted"),
        "policy": scan.policy.to_json(), "certificates": scan.certificates}
    expected = spec.get("policy")
    if expected:
        ok = expected in names
        out["verdicts"].append(Verdict(
            spec["endpoint"], f"policy equals {expected}", ok,
            "equal" if ok else out["policy"]["text"]).to_json())


async def _diagnose(ep: Endpoint, deadlines: Deadlines, slots: int, out: dict[str, Any]
                    ) -> None:
    if ep.address is None:
        out["reason"] = ep.error
        return
    # the same plan and rules as `prober diagnose`, so a finding id means the same here;
    # its connect-and-wait control runs alongside the hellos and takes one of the slots
    results: list[AttemptResult] = []
    try:
        doc = await diagnose(ep, deadlines, per_target=max(1, slots - 1), results=results)
    finally:
        # a task cut by its time limit still stores what it sent, as a probe task does
        out["attempts"] = [r.to_json() for r in sorted(results, key=lambda r: r.id)]
    out["attempts"] = doc.pop("attempts")
    out["diagnosis"] = doc
    # a diagnose finding's severity is its confidence, except for what describes the
    # server's own policy (`info`: counted only by `--fail-on info` or by id)
    out["findings"] += [_finding(f["id"], INFO if f["id"] in SERVER_POLICY else
                                 f["confidence"], f["cause"]) for f in doc["findings"]]


async def _check(spec: dict[str, Any], ep: Endpoint, deadlines: Deadlines, slots: int,
                 out: dict[str, Any]) -> None:
    if ep.address is None:
        out["reason"] = ep.error
        return
    # pinned to the address the allowlist passed and the lease is held on: resolved
    # again, a name that answers otherwise the second time would lead the check's
    # connections elsewhere
    target = dataclasses.replace(ep.target, address=ep.address)
    doc = spec.get("expect") or {"schema": 1}
    exp = parse_expectations(doc, spec.get("expect_path") or "(inventory)")
    if spec.get("policy") and not exp.policy_equals:
        exp.policy_equals = spec["policy"]
    run = CheckRun.prepare(exp, [target], deadlines, slots)
    run.per_target = slots
    try:
        await run.execute()
    finally:
        # the policy scan's and diagnosis's hellos too: a gate of `policy:` alone sends no
        # profile of its own, and its task would keep no certificate (no expiry finding)
        out["attempts"] = [r.to_json() for r in run.every_attempt()]
        out["verdicts"] = [v.to_json() for v in run.verdicts]


def _findings(out: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    """What a fleet operator acts on, each with a severity that ``--fail-on`` selects."""
    f: list[dict[str, Any]] = []
    if out["status"] == "refused":
        f.append(_finding(TASK_REFUSED, "high", out["reason"]))
    elif out["status"] == "failed":
        f.append(_finding(TASK_FAILED, "high", out["reason"]))
    for v in out["verdicts"]:
        if not v["passed"]:
            fid = POLICY_MISMATCH if v["expectation"].startswith("policy") else (
                EXPECTATION_FAILED)
            f.append(_finding(fid, "high", f"{v['expectation']}: {v['message']}"))
    attempts = out["attempts"]
    # policy and diagnose tasks make no attempt at a name that did not resolve: without
    # this the task is `done` with no finding, and `--fail-on high` passes it
    if out["status"] == "done" and out["address"] is None and not attempts:
        f.append(_finding(UNREACHABLE, "high",
                          f"did not resolve: {out['reason'] or 'no address'}"))
    # no TLS endpoint measured, judged as `prober probe` and `policy` judge it (their "NO
    # TLS ENDPOINT MEASURED"): a port that refuses, a silent peer, another protocol... A
    # diagnosis names
    # it itself (port-closed, silent-peer, wrong-service...)
    # (a check task has it already: its `TLS endpoint` verdict fails, expectation-failed)
    verdict = service.no_tls_of_docs(attempts)
    if verdict is not None and out.get("diagnosis") is None and spec.get("task") != "check":
        f.append(_finding(UNREACHABLE if verdict.kind in _UNREACHED else NO_TLS_ENDPOINT,
                          "high", verdict.text()))
    soonest = cert_expiry(out)
    if soonest is not None:
        days = (dt.datetime.fromisoformat(soonest) - dt.datetime.now(dt.UTC)).days
        if days < 0:
            f.append(_finding(CERT_EXPIRED, "high", f"certificate expired on {soonest}"))
        elif days < CERT_WARN_DAYS:
            f.append(_finding(CERT_EXPIRING, "medium",
                              f"certificate expires on {soonest} (in {days} days)"))
    return f


def _finding(fid: str, severity: str, cause: str | None) -> dict[str, Any]:
    return {"id": fid, "severity": severity, "cause": cause or ""}


def cert_expiry(out: dict[str, Any]) -> str | None:
    """The soonest ``not_after`` of every certificate the task saw."""
    seen = [a["certificate"]["not_after"] for a in out["attempts"]
            if isinstance(a.get("certificate"), dict) and a["certificate"].get("not_after")]
    pol = out.get("policy") or {}
    seen += [c["not_after"] for c in pol.get("certificates") or [] if c.get("not_after")]
    return min(seen, key=dt.datetime.fromisoformat) if seen else None
