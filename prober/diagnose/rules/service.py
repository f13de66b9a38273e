"""No TLS endpoint at all: another protocol answers (HTTP, SSH, a mail greeting), nothing
listens, or no TCP connection can be made. These say so first, so a run against the
wrong port never reads as "no findings".

A peer that is silent, drops or cuts every hello is named by the rules that know those
shapes (silent-proxy, path-drop, policy-reset, injected-reset); the document's
``tls_endpoint`` says for every kind that nothing TLS-like was measured.
"""

from __future__ import annotations

from prober.core import service
from prober.diagnose.findings import (
    ENDPOINT_UNREACHABLE,
    HIGH,
    MEDIUM,
    PORT_CLOSED,
    WRONG_SERVICE,
    Finding,
    RunView,
)
from prober.diagnose.rules.context import Ctx
from prober.diagnose.rules.evidence import counts, id_list

# the kinds of core.service.no_tls this rule names itself, and under which id
_IDS = {service.WRONG_SERVICE: WRONG_SERVICE, service.PORT_CLOSED: PORT_CLOSED,
        service.UNREACHABLE: ENDPOINT_UNREACHABLE, service.NO_NAME: ENDPOINT_UNREACHABLE}

_NEXT = {
    PORT_CLOSED: "Check the port number and that the service is running and listening on "
                 "this address; a balancer in front with no healthy target can also refuse.",
    ENDPOINT_UNREACHABLE: "Check the address and port, and the firewalls and security groups "
                          "in between; from another network (`prober diff`) a filter on "
                          "this side shows up.",
}


def rule_no_tls(run: RunView, ctx: Ctx) -> list[Finding]:
    verdict = run.no_tls()
    if verdict is None or verdict.kind not in _IDS:
        return []
    fid = _IDS[verdict.kind]
    atts = run.attempts
    ctx.claim(atts)
    ev = [f"{counts(atts)} ({id_list(atts)})"]
    figures: dict[str, object] = {"kind": verdict.kind, "outcomes": verdict.outcomes}
    nxt = _NEXT.get(fid, "")
    if fid == WRONG_SERVICE:
        svc = verdict.service
        figures.update(banner=verdict.banner, protocol=svc.protocol if svc else None,
                       starttls=svc.starttls if svc else None)
        if verdict.banner:
            ev.append(f"banner: {verdict.banner!r}")
        ev.append(f"recognised as {svc.protocol}" if svc else
                  "the banner names no protocol prober knows")
        nxt = verdict.advice or "Check the port: something other than a TLS server answers there."
    if run.control is not None:
        ev.append(f"control (connect, send nothing): the peer {run.control.text()}")
    return [Finding(fid, HIGH if len(atts) >= 3 else MEDIUM, verdict.cause, nxt,
                    evidence=ev, attempts=[a.id for a in atts], figures=figures)]
