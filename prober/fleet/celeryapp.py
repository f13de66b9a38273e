"""The distributed engine: a Celery app on a Redis broker, JSON only.

Every setting here is one the fleet's guarantees rest on: JSON in and out (a pickled
message is refused before it is decoded, so a broker writer cannot run code on an
agent); a message is acknowledged only after its task finished (``acks_late``), an agent
holds no more messages than it has pool threads (prefetch 1 per thread), and the broker
hands an unacknowledged one to another agent only after ``visibility_timeout``, which
must outlast the time limit or a slow shard would run twice at once. A message is a
shard: the specs of up to ``fleet run --shard-size`` tasks of one vantage point, run side
by side and answered with their results in one list (a message per task cost the agent
about 2 ms of Celery each, half a probe task's own CPU: bench/fleet.py).
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import Future
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from celery import Celery
from celery.backends.redis import RedisBackend

from prober.core.errors import InputError
from prober.fleet.allowlist import Allowlist
from prober.fleet.leases import LEASE_TTL_S, RedisLeases
from prober.fleet.tasks import execute_shard
from prober.net.loop import new_event_loop

TASK_NAME = "prober.fleet.task"
DEFAULT_TIME_LIMIT_S = 1800.0
DEFAULT_VISIBILITY_S = 3600.0


class BrokerError(InputError):
    """A broker URL or broker settings that cannot work."""


# redis-py's spellings, which Celery's broker and backend take too; the URL may also use
# Celery's (CERT_REQUIRED ...), which redis-py refuses
_CERT_REQS = ("none", "optional", "required")
_TLS_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")


def broker_tls(url: str) -> tuple[str, dict[str, Any]]:
    """``url`` without its ``ssl_*`` query options, and those options as Celery's broker
    and backend (``broker_use_ssl``, ``redis_backend_use_ssl``) and redis-py take them,
    ``{}`` for a plaintext URL. Certificates are verified unless the URL says
    ``ssl_cert_reqs=none|optional``: kombu alone would not verify a bare ``rediss://``,
    Celery's backend would refuse it, and redis-py would refuse Celery's ``CERT_*``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    tls = {k: v for k, v in query if k.startswith("ssl_")}
    if parts.scheme != "rediss":
        if tls:
            raise BrokerError(f"--broker: {min(tls)} needs a rediss:// URL (TLS)")
        return url, {}
    unknown = sorted(set(tls) - {"ssl_cert_reqs", *_TLS_FILES})
    if unknown:
        raise BrokerError(f"--broker: unknown TLS option {unknown[0]!r} (ssl_cert_reqs, "
                          f"{', '.join(_TLS_FILES)})")
    reqs = tls.get("ssl_cert_reqs", "required")
    if reqs.lower().removeprefix("cert_") not in _CERT_REQS:
        raise BrokerError(f"--broker ssl_cert_reqs={reqs!r}: none, optional or required "
                          "(or CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED)")
    opts: dict[str, Any] = {"ssl_cert_reqs": reqs.lower().removeprefix("cert_")}
    if opts["ssl_cert_reqs"] == "required":
        # the name too, not only the chain: redis-py before 6 did not check it by default
        opts["ssl_check_hostname"] = True
    for key in _TLS_FILES:
        if key in tls:
            if not os.path.isfile(tls[key]):
                raise BrokerError(f"--broker {key}={tls[key]!r}: no such file")
            opts[key] = tls[key]
    if ("ssl_certfile" in opts) != ("ssl_keyfile" in opts):
        raise BrokerError("--broker: ssl_certfile and ssl_keyfile go together (a client "
                          "certificate and its key)")
    rest = [(k, v) for k, v in query if not k.startswith("ssl_")]
    return urlunsplit(parts._replace(query=urlencode(rest))), opts


def check_broker_tls(url: str, tls: dict[str, Any], timeout: float = 10.0) -> None:
    """One PING over TLS before Celery starts: a certificate the broker's client refuses
    is a setting to fix, where Celery would retry it forever (an agent) or stall (the
    coordinator). A broker not up yet is left to Celery's own retries."""
    import redis
    from redis.exceptions import RedisError

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout,
                                  socket_timeout=timeout, **tls)
    try:
        client.ping()
    except (RedisError, OSError) as e:
        cause: BaseException | None = e
        # ssl.SSLError by name: only prober.net imports ssl
        while cause is not None and not type(cause).__name__.startswith("SSL"):
            cause = cause.__cause__ or cause.__context__
        if cause is not None or "SSL" in str(e):
            raise BrokerError(f"--broker {urlsplit(url).netloc.rpartition('@')[2]}: TLS "
                              f"failed: {cause or e} (a private CA: add "
                              "?ssl_ca_certs=/path/ca.pem to the URL)") from None
    finally:
        client.close()


def queue_of(vantage: str) -> str:
    return f"prober.vantage.{vantage}"


# set by `prober agent` before its worker starts (one process: the thread pool)
DEFAULT_AGENT_CONCURRENCY = 16  # as `fleet run -c` in-process
AGENT: dict[str, Any] = {"allow": None, "name": None, "lease_ttl": LEASE_TTL_S,
                         "concurrency": DEFAULT_AGENT_CONCURRENCY, "time_limit": None}


class AgentLoop:
    """The agent's one event loop, in a thread of its own, with its one lease client: the
    worker's threads hand it their shards, whose tasks then run side by side on it as the
    tasks of an in-process run do, at most ``--concurrency`` of them at once whatever
    shards they came in. A loop and a Redis connection per task cost the agent about as
    much CPU as the task's own attempts (bench/fleet.py)."""

    def __init__(self, broker: str, tls: dict[str, Any]) -> None:
        self.broker = broker
        self.tls = tls
        # uvloop as in-process (run_loop): asyncio's own loop cost the agent's loop thread
        # a third more CPU than the in-process run (bench/fleet.py)
        self.loop = new_event_loop()
        self._leases: RedisLeases | None = None
        self._slots: asyncio.Semaphore | None = None
        threading.Thread(target=self.loop.run_forever, name="prober-agent-loop",
                         daemon=True).start()

    def submit(self, specs: list[dict[str, Any]]) -> Future[list[dict[str, Any]]]:
        return asyncio.run_coroutine_threadsafe(self._execute(specs), self.loop)

    async def _execute(self, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self._leases is None or self._slots is None:  # made on the loop that uses them
            self._leases = RedisLeases(self.broker, ttl_s=AGENT["lease_ttl"],
                                       tls=self.tls)
            self._slots = asyncio.Semaphore(max(1, int(AGENT["concurrency"])))
        return await execute_shard(specs, leases=self._leases, allow=AGENT["allow"],
                                   slots=self._slots, agent=AGENT["name"],
                                   time_limit=AGENT["time_limit"])


_LOOPS: dict[str, AgentLoop] = {}
_LOOPS_LOCK = threading.Lock()


def agent_loop(broker: str, tls: dict[str, Any]) -> AgentLoop:
    with _LOOPS_LOCK:
        if broker not in _LOOPS:
            _LOOPS[broker] = AgentLoop(broker, tls)
        return _LOOPS[broker]


class PolledRedisBackend(RedisBackend):  # type: ignore[misc]
    """Celery's Redis result backend, minus its publish-subscribe half: the coordinator
    collects results by MGET (runner._collect) and never reads a result's channel. The
    subscription made per task sent left each published result unread in Redis's output
    buffer for the coordinator (tens of kB a task) and cost a SUBSCRIBE round trip per
    send; the PUBLISH beside each SET made the agent send every answer twice (a shard's
    answer is about 400 kB)."""

    def on_task_call(self, producer: Any, task_id: str) -> None:
        return None

    def _set(self, key: str, value: str, expires: float | None = None) -> None:
        expires = self.expires if expires is None else expires
        if expires:
            self.client.setex(key, expires, value)
        else:
            self.client.set(key, value)


def make_app(broker: str, *, time_limit: float = DEFAULT_TIME_LIMIT_S,
             visibility_timeout: float = DEFAULT_VISIBILITY_S) -> Celery:
    if not broker.startswith(("redis://", "rediss://", "unix://")):
        raise BrokerError(f"--broker {broker!r}: a redis:// URL (e.g. redis://host:6379/0)")
    if visibility_timeout <= time_limit:
        raise BrokerError(f"--visibility-timeout ({visibility_timeout:g} s) must be longer "
                          f"than the task time limit ({time_limit:g} s), or a slow task is "
                          "handed to a second agent while the first still runs it")
    broker, tls = broker_tls(broker)
    if tls:
        check_broker_tls(broker, tls)
    app = Celery("prober", broker=broker, backend=f"{__name__}:PolledRedisBackend+{broker}",
                 set_as_current=False)
    app.conf.update(
        accept_content=["json"], result_accept_content=["json"],
        task_serializer="json", result_serializer="json", event_serializer="json",
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_time_limit=time_limit,
        broker_transport_options={
            "visibility_timeout": visibility_timeout,
            # kombu sweeps for unacknowledged messages every interval x throttle seconds
            # (100 s by default): a lost task should come back soon after its timeout
            "unacked_restore_interval": max(1, min(10, int(visibility_timeout / 4))),
            "unacked_restore_throttle": 1},
        result_expires=7 * 86400, result_extended=False,
        broker_connection_retry_on_startup=True, worker_hijack_root_logger=False,
        task_default_queue="prober.default",
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_use_ssl=tls or None, redis_backend_use_ssl=tls or None,
    )

    @app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
    def fleet_shard(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
            raise TypeError("a fleet message is a list of task specs (a shard)")
        return agent_loop(broker, tls).submit(specs).result()

    return app


def run_agent(broker: str, vantage: str, allow: Allowlist, *, time_limit: float,
              visibility_timeout: float, name: str, lease_ttl: float = LEASE_TTL_S,
              concurrency: int = DEFAULT_AGENT_CONCURRENCY, loglevel: str = "INFO") -> None:
    """Consume ``vantage``'s queue until stopped: up to ``concurrency`` shards held and
    ``concurrency`` tasks at once (the pool's threads only wait; the tasks run on one event
    loop), each itself concurrent up to its endpoint's cap."""
    app = make_app(broker, time_limit=time_limit, visibility_timeout=visibility_timeout)
    # Celery's threads pool does not enforce task_time_limit: the agent's own limit is
    # applied by execute_shard, so that no shard outlives this agent's visibility timeout
    # whatever time limit the coordinator asked for
    AGENT.update(allow=allow, name=name, lease_ttl=lease_ttl, concurrency=concurrency,
                 time_limit=time_limit)
    app.worker_main(["worker", "-Q", queue_of(vantage), "-P", "threads",
                     "-c", str(concurrency), "-n", name, "-l", loglevel,
                     "--without-gossip", "--without-mingle"])
