"""Retries of attempts turned away for load: which outcomes qualify, the bounded back-off,
the budget, and that a closed port (never connected) is never retried."""

from __future__ import annotations

from prober.core.attempt import AttemptResult
from prober.core.engine import (
    RETRY_BACKOFF_S,
    RETRY_BUDGET,
    RETRY_STREAK,
    Retries,
    transient,
)
from prober.core.outcome import Outcome
from prober.net.attempt import Observation
from prober.wire.starttls import PreambleResult


def result(outcome: Outcome, code: str | None = None) -> AttemptResult:
    r = AttemptResult(id=1, target="t:25", host="t", port=25, address="192.0.2.1", sni=None,
                      profile="p", repeat=0, outcome=outcome, detail="", started_at=0.0)
    if code is not None:
        r.obs = Observation(address="192.0.2.1", port=25,
                            starttls=PreambleResult("smtp", False, "refused", "greeting", code))
    return r


def test_what_is_transient() -> None:
    assert transient(result(Outcome.REFUSED))
    assert transient(result(Outcome.STARTTLS_FAILED, "421"))
    assert not transient(result(Outcome.STARTTLS_FAILED, "550"))
    for o in (Outcome.RESET, Outcome.CONNECT_TIMEOUT, Outcome.ALERT, Outcome.HANG_ACKED):
        assert not transient(result(o))


def test_back_off_is_bounded_and_needs_a_connection_first() -> None:
    rt = Retries()
    refused = result(Outcome.REFUSED)
    assert rt.wait_before(refused, 0) is None  # nothing connected yet: a closed port
    rt.note(result(Outcome.OK))
    waits = [rt.wait_before(refused, i) for i in range(len(RETRY_BACKOFF_S) + 1)]
    assert waits == [*RETRY_BACKOFF_S, None]
    assert rt.left == RETRY_BUDGET - len(RETRY_BACKOFF_S)
    rt.left = 0
    assert rt.wait_before(refused, 0) is None  # the run's budget is spent


def test_a_refusal_before_any_connection_waits_for_the_others() -> None:
    import asyncio

    async def go() -> tuple[bool, bool]:
        rt = Retries()
        closed = await rt.took_connections()  # nothing in flight connects: a closed port
        # an attempt in flight connects during the wait: the refusal was load after all
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, rt.note, result(Outcome.OK))
        return closed, await rt.took_connections()

    assert asyncio.run(go()) == (False, True)


def test_an_endpoint_that_stopped_taking_connections_is_not_retried() -> None:
    rt = Retries()
    rt.note(result(Outcome.OK))
    refused = result(Outcome.REFUSED)
    for _ in range(RETRY_STREAK + 1):
        rt.note(refused)
    assert rt.wait_before(refused, 0) is None  # gone: stop grinding
    rt.note(result(Outcome.ALERT))  # one got in again: a throttle after all
    assert rt.wait_before(refused, 0) == RETRY_BACKOFF_S[0]
