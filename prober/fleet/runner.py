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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from prober.core.errors import InputError
from prober.fleet.inventory import Inventory
from prober.fleet.leases import LocalLeases
from prober.fleet.store import Store
from prober.fleet.tasks import (
    DIAGNOSE_SLOTS,
    SPEC_SCHEMA,
    TASK_FAILED,
    TASK_SCHEMA,
    execute,
    shard_key,
    target_json,
)
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


class BrokerUnreachable(InputError):
    """The coordinator cannot reach its broker."""


def _broker_errors() -> tuple[type[BaseException], ...]:
    """What a broker that does not answer raises, through Celery (kombu) or the result
    backend (redis-py)."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return (OperationalError, RedisConnectionError, RedisTimeoutError)


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
        "schema": SPEC_SCHEMA, "run": run, "nonce": nonce, "endpoint": e.name,
        "vantage": v, "task": opts.job,
        "target": target_json(e.target_for(v)), "profiles": opts.profiles or e.profiles,
        "policy": e.policy, "expect": e.expect_doc, "expect_path": e.expect, "cap": e.cap,
        "rate": e.rate,
        "repeat": opts.repeat, "time_limit": opts.time_limit,
        "deadlines": {"connect": opts.deadlines.connect, "read": opts.deadlines.read},
        "shard": i // max(1, opts.shard_size),
    } for v in opts.vantages for i, e in enumerate(inv.entries))
    return run


class Progress:
    """done/queued/failed per vantage on stderr, when it changes (at most once a second)."""

    def __init__(self, run: int, queued: dict[str, int], out: IO[str] | None) -> None:
        self.run, self.out = run, out
        self.counts = {v: {"done": 0, "queued": n, "failed": 0} for v, n in queued.items()}
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
    if r.get("schema") != TASK_SCHEMA:
        return failed_result(spec, f"the agent answered with a {r.get('schema')!r} result, "
                             f"this coordinator reads {TASK_SCHEMA}: run the same prober "
                             "version on the coordinator and agents")
    return r


def failed_result(spec: dict[str, Any], reason: str) -> dict[str, Any]:
    now = time.time()
    return {"schema": TASK_SCHEMA, "run": spec["run"], "endpoint": spec["endpoint"],
            "vantage": spec["vantage"], "task": spec["task"], "status": "failed",
            "reason": reason, "agent": None, "address": None, "started_at": now,
            "finished_at": now, "attempts": [], "policy": None, "verdicts": [],
            "findings": [{"id": TASK_FAILED, "severity": "high", "cause": reason}]}


async def run_embedded(specs: Iterable[dict[str, Any]], store: Store, progress: Progress,
                       concurrency: int) -> None:
    """Every task in this process on the asyncio engine: the default, no broker.
    ``concurrency`` workers take the next spec as they finish one, so the plan is read
    from the store as it is worked through, never held whole."""
    leases = LocalLeases()
    todo = iter(specs)  # one iterator for every worker: each ``next`` is one task

    async def worker() -> None:
        for spec in todo:
            r = await execute(spec, leases=leases, allow=None)
            store.record(r)
            progress.result(r)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))


def _missing(replies: dict[str, Any], vantages: Iterable[str]) -> list[str]:
    """The vantage points whose queue no agent named in ``replies`` (Celery's
    ``inspect().active_queues()``) consumes, in the order given."""
    from prober.fleet.celeryapp import queue_of

    served = {q.get("name") for qs in replies.values() for q in (qs or [])}
    return [v for v in vantages if queue_of(v) not in served]


def check_consumers(app: Any, vantages: list[str], timeout: float = 2.0,
                    step: float = 0.05, most: float = 0.4) -> None:
    # A broadcast waits its whole timeout (it cannot know how many agents will answer):
    # ask in short rounds, each twice as long as the last (a far agent answers a later
    # one), and stop at the first that finds every queue served, so a run with its agents
    # up starts at once and only a missing one costs ``timeout``.
    deadline = time.monotonic() + timeout
    replies: dict[str, Any] = {}
    while True:
        try:
            replies.update(app.control.inspect(timeout=step).active_queues() or {})
        except _broker_errors() as e:
            raise BrokerUnreachable(f"--broker: cannot reach the broker: {e}") from None
        step = min(most, step * 2)
        missing = _missing(replies, vantages)
        if not missing or time.monotonic() >= deadline:
            break
    if missing:
        raise NoConsumerError(
            f"no agent consumes the queue of vantage point(s) {', '.join(missing)} (asked "
            f"{len(replies)} agent(s), waited {timeout:g} s): start `prober agent --broker "
            f"URL --vantage {missing[0]} --allow CIDR:PORTS` there")


@dataclass(frozen=True)
class Shard:
    """Where a shard's queued specs lie in the store (the coordinator holds this, not the
    specs: its memory stays flat in the fleet's size)."""

    sid: str
    vantage: str
    first: int  # the store's rows of its specs
    last: int
    size: int

    def specs(self, store: Store, run: int) -> list[dict[str, Any]]:
        return [s for _, s in store.queued(run, self.first, self.last)
                if shard_key(s) == self.sid]


def shards_of(queued: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[Shard]:
    """The queued (row, spec) pairs grouped into the shards they were planned into. A
    shard's specs are consecutive rows (``plan`` writes them so), so one pass over the
    store finds each shard whole."""
    seen: set[str] = set()
    cur: list[Any] | None = None  # sid, vantage, first, last, size
    for row, spec in queued:
        sid = shard_key(spec)
        if cur is not None and cur[0] == sid:
            cur[3], cur[4] = row, cur[4] + 1
            continue
        if cur is not None:
            yield Shard(*cur)
        if sid in seen:  # not a plan this prober wrote: resending it would split a shard
            raise InputError(f"the store's run {spec['run']} has shard {sid} in pieces; "
                             "it cannot be resumed by this prober")
        seen.add(sid)
        cur = [sid, spec["vantage"], row, row, 1]
    if cur is not None:
        yield Shard(*cur)


def _unserved(app: Any, vantages: set[str], timeout: float = 2.0) -> list[str]:
    """The vantage points whose queue no agent answers for now (one inspect, as long as
    check_consumers' whole wait: an agent busy with its tasks answers late)."""
    return _missing(app.control.inspect(timeout=timeout).active_queues() or {},
                    sorted(vantages))


def run_distributed(app: Any, run: int, store: Store, progress: Progress,
                    *, stall_s: float, poll_s: float = 0.3, consumer_check_s: float = 30.0,
                    sleep: Callable[[float], None] = time.sleep) -> None:
    """Send the run's queued shards to their vantage's queue and gather the answers into
    the store.

    Gives up (leaving the rest queued in the store, for ``--resume``) when no answer came
    for ``stall_s`` seconds. When none came for ``consumer_check_s``, asks whether every
    vantage point still waited on has an agent, and says so on stderr when one has none
    (its agents may come back: the run waits for them until ``stall_s``).
    """
    from prober.fleet.celeryapp import TASK_NAME, queue_of

    pending = {sh.sid: sh for sh in shards_of(store.queued(run))}
    try:
        _collect(app, run, pending, store, progress)  # a resumed run: what finished
        for sh in list(pending.values()):
            app.send_task(TASK_NAME, args=[sh.specs(store, run)], task_id=sh.sid,
                          queue=queue_of(sh.vantage), serializer="json")
        last = asked = time.monotonic()
        while pending:
            now = time.monotonic()
            if _collect(app, run, pending, store, progress):
                last = time.monotonic()
            elif now - last > stall_s:
                _left(progress.run, pending, f"no answer for {stall_s:g} s")
                return
            elif now - max(last, asked) > consumer_check_s:
                asked = now
                waiting = {sh.vantage for sh in pending.values()}
                gone = _unserved(app, waiting)
                if gone:
                    say(f"prober: fleet run {progress.run}: no agent consumes vantage "
                        f"point(s) {', '.join(gone)} now; their tasks wait for one (the run "
                        f"gives up after {stall_s:g} s without an answer, --stall)",
                        file=sys.stderr)
            progress.show()
            # each poll asks for every shard still owed: soon when few are, so the run's
            # last answer is not waited for longer than it needs
            sleep(min(poll_s, 0.02 + len(pending) * 1e-4))
    except _broker_errors() as e:
        # what the agents finish meanwhile waits in the result backend for --resume
        _left(progress.run, pending, f"the broker stopped answering ({e})")


def _left(run: int, pending: dict[str, Shard], why: str) -> None:
    left = sum(sh.size for sh in pending.values())
    say(f"prober: fleet run {run}: {why}; {left} task(s) left queued (resume with "
        f"--resume {run})", file=sys.stderr)


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


_MGET_SHARDS = 16


def _collect(app: Any, run: int, pending: dict[str, Shard], store: Store,
             progress: Progress) -> int:
    backend = app.backend
    got = 0
    ids = list(pending)
    # a few shards per MGET: an answer is up to a few hundred kB, and a resumed run may
    # find every answer waiting at once
    for i in range(0, len(ids), _MGET_SHARDS):
        chunk = ids[i:i + _MGET_SHARDS]
        raws = backend.mget([backend.get_key_for_task(t) for t in chunk])
        for sid, raw in zip(chunk, raws, strict=True):
            if raw is None:
                continue
            meta = backend.decode_result(raw)
            if meta.get("status") not in ("SUCCESS", "FAILURE", "REVOKED"):
                continue
            for r in _answers(pending[sid].specs(store, run), meta):
                store.record(r)
                progress.result(r)
                got += 1
            del pending[sid]
    return got
