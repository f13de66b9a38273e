"""Per-endpoint connection caps held as short-lived leases.

A task asks for up to ``want`` connection slots on an endpoint address and gets between
``least`` (default 1) and ``cap`` minus what others hold; it then opens at most that many
connections at once. In-process the book is a counter; across agents it is a sorted set
in Redis whose members expire (the server's own clock, so agents with skewed clocks
agree), so a killed agent's slots come back after ``ttl`` seconds and two agents never
exceed the cap together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)
LEASE_TTL_S = 15.0
WAIT_STEP_S = 0.05


class LeaseTimeout(TimeoutError):
    """No slot came free within the wait allowed."""


class LeaseBook(Protocol):
    def hold(self, key: str, want: int, cap: int, wait_s: float, least: int = 1
             ) -> contextlib.AbstractAsyncContextManager[int]: ...

    async def pace(self, key: str, rate: float) -> None:
        """Wait for the key's next start: at most ``rate`` a second, evenly spaced,
        across every holder of the book."""


@dataclass
class LocalLeases:
    """One process's book: every task of an in-process run shares it."""

    def __post_init__(self) -> None:
        self._used: dict[str, int] = {}
        self._next: dict[str, float] = {}  # each key's next start (monotonic)

    @contextlib.asynccontextmanager
    async def hold(self, key: str, want: int, cap: int, wait_s: float, least: int = 1
                   ) -> AsyncIterator[int]:
        deadline = time.monotonic() + wait_s
        while True:
            free = cap - self._used.get(key, 0)
            if free >= max(1, least):
                n = min(free, max(1, want))
                break
            if time.monotonic() >= deadline:
                raise LeaseTimeout(f"{key}: no connection slot free within {wait_s:g} s")
            await asyncio.sleep(WAIT_STEP_S)
        self._used[key] = self._used.get(key, 0) + n
        try:
            yield n
        finally:
            self._used[key] -= n

    async def pace(self, key: str, rate: float) -> None:
        now = time.monotonic()
        at = max(now, self._next.get(key, 0.0))
        self._next[key] = at + 1.0 / rate
        if at > now:
            await asyncio.sleep(at - now)


# KEYS[1]: the endpoint's set; ARGV: ttl_ms, want, cap, token, least. Drops expired
# members, then takes min(want, cap - held) slots when at least `least` are free, each a
# member token:i scored by its expiry.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local free = tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[1])
if free <= 0 or free < tonumber(ARGV[5]) then return 0 end
local n = math.min(free, tonumber(ARGV[2]))
for i = 1, n do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[4] .. ':' .. i) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return n
"""
# KEYS[1]: the endpoint's next start (ms, server clock); ARGV: the spacing (ms). Takes the
# next start and moves it one spacing on; the wait until it, in ms. The key lapses when
# no start is due.
_PACE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local at = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
local step = tonumber(ARGV[1])
redis.call('SET', KEYS[1], tostring(at + step), 'PX', math.ceil(at - now + step) + 1000)
return math.floor(at - now)
"""
# KEYS[1]; ARGV: ttl_ms, n, token. Pushes the expiry of the token's slots forward.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, tonumber(ARGV[2]) do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[3] .. ':' .. i)
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return 1
"""


class RedisLeases:
    """The fleet-wide book in Redis (the broker's server, another database is fine).

    One renewer per book pushes forward every slot it holds, a third of the TTL at a
    time, in one round trip: a renewer per lease cost each task a task and a timer of
    its own, and renewal commands it might be cancelled inside."""

    def __init__(self, url: str, ttl_s: float = LEASE_TTL_S,
                 tls: dict[str, Any] | None = None) -> None:
        import redis.asyncio as aioredis

        # tls: the broker URL's ssl_* options, normalised (celeryapp.broker_tls)
        self._redis: Any = aioredis.Redis.from_url(url, **(tls or {}))
        # EVALSHA, the script sent once: a lease costs two small round trips, not two
        # scripts' text each time
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        self._pace = self._redis.register_script(_PACE)
        self.ttl_ms = int(ttl_s * 1000)
        self._held: dict[str, tuple[str, int]] = {}  # token: (key, slots)
        self._renewer: asyncio.Task[None] | None = None

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        await self._redis.aclose()

    @contextlib.asynccontextmanager
    async def hold(self, key: str, want: int, cap: int, wait_s: float, least: int = 1
                   ) -> AsyncIterator[int]:
        rkey = f"prober:lease:{key}"
        token = uuid.uuid4().hex
        deadline = time.monotonic() + wait_s
        while True:
            n = int(await self._acquire(keys=[rkey], args=[self.ttl_ms, max(1, want), cap,
                                                           token, max(1, least)]))
            if n > 0:
                break
            if time.monotonic() >= deadline:
                raise LeaseTimeout(f"{key}: no connection slot free fleet-wide within "
                                   f"{wait_s:g} s")
            await asyncio.sleep(WAIT_STEP_S * 2)
        self._held[token] = (rkey, n)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.ensure_future(self._renew_all())
        try:
            yield n
        finally:
            # a renewal after this is a no-op (ZADD XX touches only members still there)
            del self._held[token]
            await asyncio.shield(
                self._redis.zrem(rkey, *(f"{token}:{i}" for i in range(1, n + 1))))

    async def pace(self, key: str, rate: float) -> None:
        wait_ms = int(await self._pace(keys=[f"prober:pace:{key}"], args=[1000.0 / rate]))
        if wait_ms > 0:
            await asyncio.sleep(wait_ms / 1000)

    async def _renew_all(self) -> None:
        from redis.exceptions import RedisError

        while self._held:
            await asyncio.sleep(self.ttl_ms / 3000)
            held = list(self._held.items())
            if not held:
                return
            # a round that fails (Redis restarting) is tried again a third of a TTL later,
            # before any slot it should have renewed expires: the renewer never stops
            # while slots are held, or they would lapse under their holders
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for token, (rkey, n) in held:
                        await self._renew(keys=[rkey], args=[self.ttl_ms, n, token],
                                          client=pipe)
                    await pipe.execute()
            except (RedisError, OSError) as e:
                log.warning("lease renewal failed, retried in %.1f s: %s",
                            self.ttl_ms / 3000, e)
            except Exception:
                log.exception("lease renewal failed, retried in %.1f s", self.ttl_ms / 3000)
