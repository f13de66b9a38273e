"""`whatif --against/--current TARGET`: the clients' hellos run live, to set the
simulation beside reality."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from prober.core import engine
from prober.core.attempt import RETRY_OF, AttemptResult, last_tries
from prober.core.errors import InputError
from prober.core.outcome import NO_HELLO
from prober.core.targets import Target
from prober.net.attempt import Deadlines
from prober.policy.whatif.run import Client, Live
from prober.policy.whatif.simulate import CertKind


class LiveError(InputError):
    """A live endpoint that did not resolve or never answered: it says nothing of any
    policy, so the comparison cannot be made."""


async def run_live(clients: list[Client], targets: list[Target], deadlines: Deadlines, *,
                   on_endpoints: Callable[[list[engine.Endpoint]], None] | None = None,
                   on_result: Callable[[AttemptResult], None] | None = None
                   ) -> dict[str, list[Live]]:
    """Each client's hello once against each target; results by target label, in
    client order. ``on_endpoints`` is called with the resolved endpoints before anything
    is sent, ``on_result`` with every attempt as it ends (``--pcap``, ``--keylog``)."""
    endpoints = await engine.resolve_targets(targets, False)
    for ep in endpoints:
        if ep.error:
            raise LiveError(f"{ep.target.label}: {ep.error}")
    if on_endpoints is not None:
        on_endpoints(endpoints)
    every: list[AttemptResult] = []

    def got(r: AttemptResult) -> None:
        every.append(r)
        if on_result is not None:
            on_result(r)

    opts = engine.EngineOptions(concurrency=32, per_target=8, deadlines=deadlines)
    await engine.run(endpoints, [c.profile for c in clients], opts, got)
    # a hello turned away for load is retried (``retry_of``): its last try is the answer
    results = {(r.target, r.profile): r for r in last_tries(every)}
    retried = Counter((r.target, r.profile) for r in every if r.data.get(RETRY_OF) is not None)
    out = {t.label: [Live.of(results[(t.label, c.name)], retried[(t.label, c.name)])
                     for c in clients] for t in targets}
    for label, lives in out.items():
        if all(lv.outcome in NO_HELLO for lv in lives):
            raise LiveError(f"{label}: no TLS endpoint answered ({lives[0].outcome}: "
                            f"{lives[0].detail})")
    return out


def cert_seen(live: list[Live]) -> CertKind | None:
    """The certificate key types an endpoint served, as the simulation names them."""
    kinds = {lv.cert_key_type for lv in live if lv.cert_key_type}
    if kinds == {"RSA"}:
        return "rsa"
    if kinds == {"ECDSA"}:
        return "ecdsa"
    return "both" if {"RSA", "ECDSA"} <= kinds else None
