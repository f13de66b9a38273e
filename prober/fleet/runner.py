"""The coordinator: turn an inventory into tasks (one per endpoint and vantage), run them
in-process or on the agents, and write every result into the store as it arrives.

On agents, the tasks of a vantage point travel in shards of up to ``shard_size``: one
message each, answered with the list of its tasks' results. The coordinator is the only
writer of the store; agents only answer. A run's tasks, each with its shard's number, are
written to the store before any is sent, so a killed coordinator's run is resumed from
the store alone (``fleet run --resume RUN``): tasks with a result are kept, results the
agents finished meanwhile are collected from the result backend, the rest are re-sent in
their shards under the same ids.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from prober.core.errors import InputError
from prober.fleet.inventory import Inventory
from prober.fleet.leases import LocalLeases
from prober.fleet.store import Store
from prober.fleet.tasks import DIAGNOSE_SLOTS, TASK_FAILED, execute, shard_key, target_json
from prober.net.attempt import Deadlines
from prober.report.output import say

EMBEDDED_VANTAGE = "local"
# endpoints per message to an agent: a probe task is a few ms of work and Celery costs
# ~2 ms per message; a few dozen make that a few per cent (bench/fleet.py), while a shard
# still ends in seconds and a lost agent costs its redelivery only that much work again
DEFAULT_SHARD_SIZE = 32
MAX_SHARD_SIZE = 1000


class NoConsumerError(InputError):
    """A vantage point whose queue no agent consumes."""


@dataclass
class FleetOptions:
    job: str = "probe"
    vantages: list[str] = field(default_factory=lambda: [EMBEDDED_VANTAGE])
    profiles: list[str] | None = None  # replaces every group's profiles
    deadlines: Deadlines = field(default_factory=Deadlines)
    repeat: int = 1
    time_limit: float = 1800.0
    concurrency: int = 16  # in-process: tasks at once
    shard_size: int = DEFAULT_SHARD_SIZE  # on agents: tasks per message

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job, "vantages": self.vantages, "profiles": self.profiles,
                "connect_timeout_s": self.deadlines.connect,
                "read_timeout_s": self.deadlines.read, "repeat": self.repeat,
                "time_limit_s": self.time_limit, "concurrency": self.concurrency,
                "shard_size": self.shard_size}


def plan(inv: Inventory, store: Store, opts: FleetOptions, mode: str) -> int:
    """Write the run, its targets and its tasks to the store; the run's id."""
    if opts.job == "diagnose":
        small = [e.name for e in inv.entries if e.cap < DIAGNOSE_SLOTS]
        if small:
            raise InputError(f"{inv.path}: --job diagnose needs a cap of at least "
                             f"{DIAGNOSE_SLOTS} (a connect-and-wait control stays open beside "
                             f"the hellos); cap below that: {', '.join(small[:5])}")
    run = store.begin_run(inv.path, opts.job, mode, opts.to_json(), opts.vantages)
    store.add_targets(run, ({
        "endpoint": e.name, "grp": e.group, "host": e.target.host, "port": e.target.port,
        "address": e.target.address, "sni": e.target.sni, "labels": json.dumps(e.labels),
        "expected_policy": e.policy, "expect_file": e.expect,
        "overrides": json.dumps({v: o.to_json() for v, o in e.overrides.items()}),
    } for e in inv.entries))
    nonce = uuid.uuid4().hex[:16]  # stored with each spec: a resumed run keeps its ids
    store.plan_tasks({
        "run": run, "nonce": nonce, "endpoint": e.name, "vantage": v, "task": opts.job,
        "target": target_json(e.target_for(v)), "profiles": opts.profiles or e.profiles,
        "policy": e.policy, "expect": e.expect_doc, "expect_path": e.expect, "cap": e.cap,
        "repeat": opts.repeat, "time_limit": opts.time_limit,
        "deadlines": {"connect": opts.deadlines.connect, "read": opts.deadlines.read},
        "shard": i // max(1, opts.shard_size),
    } for v in opts.vantages for i, e in enumerate(inv.entries))
    return run


class Progress:
    """done/queued/failed per vantage on stderr, when it changes (at most once a second)."""

    def __init__(self, run: int, specs: list[dict[str, Any]], out: IO[str] | None) -> None:
        self.run, self.out = run, out
        self.counts: dict[str, dict[str, int]] = {}
        for s in specs:
            c = self.counts.setdefault(s["vantage"], {"done": 0, "queued": 0, "failed": 0})
            c["queued"] += 1
        self._last = 0.0

    def result(self, r: dict[str, Any]) -> None:
        c = self.counts[r["vantage"]]
        c["queued"] -= 1
        c["done" if r["status"] == "done" else "failed"] += 1
        self.show()

    def line(self) -> str:
        parts = [f"{v}: {c['done']} done, {c['queued']} queued, {c['failed']} failed"
                 for v, c in sorted(self.counts.items())]
        return f"fleet run {self.run}: " + " | ".join(parts)

    def show(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.out is not None and (force or now - self._last >= 1.0):
            self._last = now
            say(self.line(), file=self.out, flush=True)


def _checked(spec: dict[str, Any], r: Any) -> dict[str, Any]:
    """An agent's answer, accepted only for the key it was asked about."""
    keys = ("run", "endpoint", "vantage", "task")
    if not isinstance(r, dict) or any(r.get(k) != spec[k] for k in keys):
        return failed_result(spec, "the agent's answer is not a result for this task")
    return r


def failed_result(spec: dict[str, Any], reason: str) -> dict[str, Any]:
    now = time.time()
    return {"run": spec["run"], "endpoint": spec["endpoint"], "vantage": spec["vantage"],
            "task": spec["task"], "status": "failed", "reason": reason, "agent": None,
            "address": None, "started_at": now, "finished_at": now, "attempts": [],
            "policy": None, "verdicts": [],
            "findings": [{"id": TASK_FAILED, "severity": "high", "cause": reason}]}


async def run_embedded(specs: list[dict[str, Any]], store: Store, progress: Progress,
                       concurrency: int) -> None:
    """Every task in this process on the asyncio engine: the default, no broker."""
    leases = LocalLeases()
    slots = asyncio.Semaphore(max(1, concurrency))

    async def one(spec: dict[str, Any]) -> None:
        async with slots:
            r = await execute(spec, leases=leases, allow=None)
        store.record(r)
        progress.result(r)

    await asyncio.gather(*(one(s) for s in specs))


def check_consumers(app: Any, vantages: list[str], timeout: float = 2.0,
                    step: float = 0.05, most: float = 0.4) -> None:
    from prober.fleet.celeryapp import queue_of

    # A broadcast waits its whole timeout (it cannot know how many agents will answer):
    # ask in short rounds, each twice as long as the last (a far agent answers a later
    # one), and stop at the first that finds every queue served, so a run with its agents
    # up starts at once and only a missing one costs ``timeout``.
    deadline = time.monotonic() + timeout
    replies: dict[str, Any] = {}
    while True:
        replies.update(app.control.inspect(timeout=step).active_queues() or {})
        step = min(most, step * 2)
        served = {q.get("name") for qs in replies.values() for q in (qs or [])}
        missing = [v for v in vantages if queue_of(v) not in served]
        if not missing or time.monotonic() >= deadline:
            break
    if missing:
        raise NoConsumerError(
            f"no agent consumes the queue of vantage point(s) {', '.join(missing)} (asked "
            f"{len(replies)} agent(s), waited {timeout:g} s): start `prober agent --broker "
            f"URL --vantage {missing[0]} --allow CIDR:PORTS` there")


def shards_of(specs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The specs grouped by the shard they were planned into, under the shard's id."""
    out: dict[str, list[dict[str, Any]]] = {}
    for s in specs:
        out.setdefault(shard_key(s), []).append(s)
    return out


def run_distributed(app: Any, specs: list[dict[str, Any]], store: Store, progress: Progress,
                    *, stall_s: float, poll_s: float = 0.3,
                    sleep: Callable[[float], None] = time.sleep) -> None:
    """Send the shards to their vantage's queue and gather the answers into the store.

    Gives up (leaving the rest queued in the store, for ``--resume``) when no answer came
    for ``stall_s`` seconds.
    """
    from prober.fleet.celeryapp import TASK_NAME, queue_of

    pending = shards_of(specs)
    _collect(app, pending, store, progress)  # a resumed run: what finished meanwhile
    for sid, shard in pending.items():
        app.send_task(TASK_NAME, args=[shard], task_id=sid,
                      queue=queue_of(shard[0]["vantage"]), serializer="json")
    last = time.monotonic()
    while pending:
        if _collect(app, pending, store, progress):
            last = time.monotonic()
        elif time.monotonic() - last > stall_s:
            left = sum(len(v) for v in pending.values())
            say(f"prober: fleet run {progress.run}: no answer for {stall_s:g} s; "
                  f"{left} task(s) left queued (resume with --resume "
                  f"{progress.run})", file=sys.stderr)
            return
        progress.show()
        # each poll asks for every shard still owed: soon when few are, so the run's
        # last answer is not waited for longer than it needs
        sleep(min(poll_s, 0.02 + len(pending) * 1e-4))


def _answers(shard: list[dict[str, Any]], meta: dict[str, Any]) -> list[dict[str, Any]]:
    """One result per spec of the shard, from the agent's answer (a failed result for a
    spec it did not answer); a result for a spec that was stored meanwhile is included
    (the store keeps the first)."""
    if meta.get("status") != "SUCCESS":
        return [failed_result(s, f"the agent's task raised: {meta.get('result')!r}")
                for s in shard]
    got = meta.get("result")
    if isinstance(got, dict):  # a task sent before shards: its one result
        got = [got]
    by_endpoint = {r.get("endpoint"): r for r in got if isinstance(r, dict)} if (
        isinstance(got, list)) else {}
    return [_checked(s, by_endpoint.get(s["endpoint"])) for s in shard]


def _collect(app: Any, pending: dict[str, list[dict[str, Any]]], store: Store,
             progress: Progress) -> int:
    backend = app.backend
    got = 0
    ids = list(pending)
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        raws = backend.mget([backend.get_key_for_task(t) for t in chunk])
        for sid, raw in zip(chunk, raws, strict=True):
            if raw is None:
                continue
            meta = backend.decode_result(raw)
            if meta.get("status") not in ("SUCCESS", "FAILURE", "REVOKED"):
                continue
            for r in _answers(pending[sid], meta):
                store.record(r)
                progress.result(r)
                got += 1
            del pending[sid]
    return got
