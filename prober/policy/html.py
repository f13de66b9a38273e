"""``policy --html`` and ``prober report`` of a policy run: the policy table (versions,
suites in the server's order, groups, features), the comparison with the catalogs and
Mozilla's profiles, the certificates, and one diagram per distinct behaviour."""

from __future__ import annotations

from typing import Any

from prober.probe.html import attempt_rows, matrix_rows, pictures
from prober.report.html import environment


def render(doc: dict[str, Any]) -> str:
    attempts = sorted(doc.get("attempts", []), key=lambda a: a["id"])
    figs, more, drawn = pictures(attempts)
    rows, outcomes = matrix_rows(attempts)
    pol = doc.get("policy") or {}
    cat = doc.get("catalog") or {}
    env = environment("prober.policy", "prober.probe")
    return env.get_template("policy.html.j2").render(
        target=(doc.get("target") or {}).get("target", "?"), t=doc.get("target") or {},
        vantage=doc.get("vantage") or {}, complete=doc.get("complete", True),
        reliable=doc.get("reliable", True), elapsed=doc.get("elapsed_s"),
        versions=pol.get("versions") or [], server_order=pol.get("server_order") or {},
        suites=doc.get("suites") or {}, groups=doc.get("groups") or {},
        features=doc.get("features") or {}, matches=cat.get("matches") or [],
        nearest=cat.get("nearest") or [], compared=cat.get("compared"),
        mozilla=doc.get("mozilla_compliance") or [], certs=doc.get("certificates") or [],
        warnings=doc.get("warnings") or [], connections=doc.get("connections") or {},
        pictures=figs, more_behaviours=more, rows=rows, outcomes=outcomes,
        attempt_rows=attempt_rows(attempts, drawn))
