"""The result of a policy scan: the shared :class:`ObservedPolicy` plus everything else a
scan finds (features, certificates, intolerance, connection counts, every attempt).

:func:`assemble` reads a finished :class:`Planner` and the attempts; it is pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prober.core.outcome import NO_HELLO
from prober.core.targets import SNI_TARGET
from prober.policy.enumerate.candidates import auth_of, bundles, suite_label
from prober.policy.enumerate.plan import PURPOSES, SUITES, VERSIONS, Probe, Reply
from prober.policy.model import VERSION_ORDER, ObservedPolicy
from prober.wire.certificates import describe
from prober.wire.registry import sig_name, version_name

if TYPE_CHECKING:
    from prober.core.attempt import AttemptResult
    from prober.core.engine import Endpoint
    from prober.policy.enumerate.planner import Planner


@dataclass
class PolicyScan:
    target: str
    host: str
    port: int
    address: str | None
    sni: str | None
    policy: ObservedPolicy
    started: float
    finished: float
    complete: bool
    # False when the endpoint changed or failed during the scan: not to be read as policy
    reliable: bool
    sanity: dict[str, Any]
    group_server_order: dict[str, bool | None]
    hello_retry_request: bool | None
    features: dict[str, Any]
    certificates: list[dict[str, Any]]
    sni_dependent: bool | None
    intolerance: dict[str, dict[str, Any]]
    connections: dict[str, int]
    ideal_suite_connections: int
    bundles: dict[str, list[int]]
    warnings: list[str]
    attempts: list[AttemptResult] = field(default_factory=list)
    starttls: str | None = None  # the plaintext preamble before every hello
    # filled by the command: catalog verdict and Mozilla compliance (prober.policy.naming.match,
    # objects with text() and to_json()), --deep checks (prober.policy.deep)
    catalog: Any = None
    compliance: list[Any] = field(default_factory=list)
    deep: dict[str, Any] | None = None

    @property
    def elapsed(self) -> float:
        return self.finished - self.started


def _purpose(probe: Probe, accepted: set[str]) -> str:
    # a suite hello of a version the server refuses only told that the version is off
    if probe.purpose == SUITES and probe.version not in accepted:
        return VERSIONS
    return probe.purpose


def _same(a: Reply | None, b: Reply | None) -> bool:
    if a is None or b is None:
        return False
    return (a.outcome, a.version, a.suite) == (b.outcome, b.version, b.suite)


def assemble(plan: Planner, ep: Endpoint, results: list[AttemptResult], *, started: float,
             finished: float, complete: bool) -> PolicyScan:
    obs = ObservedPolicy()
    for v in VERSION_ORDER:
        if v == "SSLv2":
            specs = plan.sslv2.specs
            if specs:
                obs.versions.append(v)
                obs.suites[v] = [suite_label(s, v)[0] for s in specs]
                obs.server_order[v] = None
            continue
        merge = plan.merges[v]
        # an interrupted scan has no merge yet: its winners in the order they came
        seq = merge.merged if merge.merged is not None else plan.all_winners(v)
        if not seq:
            continue
        obs.versions.append(v)
        obs.suites[v] = [suite_label(s, v)[0] for s in seq]
        obs.server_order[v] = plan.server_order(v) if len(seq) > 1 else None
    obs.certificate_first = [v for v in obs.versions
                             if any(k.winners for k in plan.kinds.get(v, []))]
    for v, check in plan.chacha.items():
        if v in obs.suites and check.applies:
            obs.chacha_priority[v] = check.verdict
    g13, g12 = plan.groups["TLSv1.3"], plan.groups["TLSv1.2"]
    if "TLSv1.3" in obs.versions:
        obs.groups_tls13 = list(g13.winners) if not g13.skipped else None
    if "TLSv1.2" in obs.versions:
        obs.groups_tls12 = list(g12.winners) if not g12.skipped else []
    pinned = g12.pinned and plan.orders["TLSv1.2"].group_verdict is not False
    obs.groups_tls12_complete = not pinned

    accepted = set(obs.versions)
    counts = dict.fromkeys(PURPOSES, 0)
    for probe, _reply in plan.replies:
        counts[_purpose(probe, accepted)] += 1
    counts["total"] = len(plan.replies)
    for r in results:
        meta = r.data.get("policy")
        if meta is not None and meta.get("purpose") == SUITES and \
                meta.get("version") not in accepted:
            meta["purpose"] = VERSIONS
    ideal = sum(len(obs.suites[v]) + 1 for v in obs.versions if v != "SSLv2") + (
        1 if "SSLv2" in accepted else 0)

    # sorted: concurrent steps warn in whatever order they finish, and two runs against
    # the same endpoint should print the same report
    warnings = sorted(plan.warnings)
    start, end = plan.sanity_start.reply, plan.sanity_end.reply
    consistent = _same(start, end)
    if start is not None and end is not None and not consistent:
        warnings.insert(0, "the endpoint answered the same hello differently at the start "
                        f"({start.outcome}: {start.detail}) and the end ({end.outcome}: "
                        f"{end.detail}) of the scan: it is flaky or changed; the results "
                        "below are not a reliable policy")
    if pinned:
        warnings.append(f"TLS 1.2 ECDHE curves after {g12.pin} not determined: the server "
                        f"uses its ECDSA certificate only while {g12.pin} is offered, and "
                        f"prefers {g12.pin} to the rest")
    incomplete = [e.label for es in plan.elims.values() for e in es if e.end == "incomplete"]
    if g13.incomplete or g12.incomplete:
        incomplete.append("groups")
    reliable = consistent and not plan.stopped and not incomplete and complete
    if incomplete:
        warnings.append(f"incomplete: {', '.join(incomplete)}")
    features = _features(plan, obs)
    features["signature_schemes"] = _signature_schemes(results)
    certs, sni_dep = _certificates(plan, results)
    obs.certificates = served_keys(certs, ep.target.sni) or None
    return PolicyScan(
        target=ep.target.label, host=ep.target.host, port=ep.target.port, address=ep.address,
        sni=ep.target.sni, policy=obs, started=started, finished=finished, complete=complete,
        reliable=reliable, starttls=ep.target.starttls,
        sanity={"start": _reply_json(start), "end": _reply_json(end), "consistent": consistent},
        group_server_order={v: plan.orders[v].group_verdict for v in ("TLSv1.3", "TLSv1.2")
                            if len((obs.groups_tls13 if v == "TLSv1.3" else
                                    obs.groups_tls12) or []) > 1},
        hello_retry_request=g13.hrr if "TLSv1.3" in accepted else None,
        features=features, certificates=certs, sni_dependent=sni_dep,
        intolerance=_intolerance(plan, obs), connections=counts,
        ideal_suite_connections=ideal,
        bundles={v: [len(b) for b in bundles(v)] for v in plan.elims},
        warnings=warnings, attempts=sorted(results, key=lambda r: r.id))


def _signature_schemes(results: list[AttemptResult]) -> dict[str, list[str]]:
    """Per version, the schemes the server signed with, most used first.

    What a server picks depends on its certificate and on what each hello offered, so
    this is what was seen, not the server's whole list.
    """
    from collections import Counter


    seen: dict[str, Counter[str]] = {}
    for r in results:
        f = r.obs.flight if r.obs is not None else None
        if f is None or f.signature_scheme is None or f.version is None:
            continue
        seen.setdefault(version_name(f.version), Counter())[sig_name(f.signature_scheme)] += 1
    return {v: [n for n, _ in c.most_common()] for v, c in seen.items()}


def _reply_json(r: Reply | None) -> dict[str, Any] | None:
    if r is None:
        return None
    out: dict[str, Any] = {"outcome": r.outcome, "detail": r.detail}
    if r.version:
        out["version"] = r.version
    if r.suite is not None and r.version:
        out["suite"] = suite_label(r.suite, r.version)[0]
    return out


def _features(plan: Planner, obs: ObservedPolicy) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fb = plan.extras["fallback_scsv"].replies.get("fallback-scsv")
    if fb is None:
        out["fallback_scsv"] = None
    elif fb.alert == "inappropriate_fallback":
        out["fallback_scsv"] = True
    elif fb.answered:
        out["fallback_scsv"] = False
    else:
        out["fallback_scsv"] = None
    legacy = [v for v in obs.versions if v not in ("TLSv1.3", "SSLv2")]
    # the version probe's answer: its hello offers these extensions (not every probe does)
    first = plan.elims[legacy[0]][0].first if legacy else None
    if first is not None and not first.answered:
        first = None
    for k in ("secure_renegotiation", "extended_master_secret", "session_ticket"):
        out[k] = getattr(first, k) if first is not None else None
    alpn = plan.extras["alpn"].replies.get("alpn-ocsp")
    if alpn is not None and alpn.answered:
        out["alpn"] = alpn.alpn  # None: the server chose no protocol
        out["alpn_offered"] = ["h2", "http/1.1"]
        out["ocsp_stapling"] = alpn.ocsp_stapled if alpn.version != "TLSv1.3" else None
    else:
        out["alpn"] = out["ocsp_stapling"] = None
    return out


def _certificates(plan: Planner, results: list[AttemptResult]
                  ) -> tuple[list[dict[str, Any]], bool | None]:

    by_sha: dict[str, dict[str, Any]] = {}
    sni_of: dict[str, str] = {}
    for r in results:
        f = r.obs.flight if r.obs is not None else None
        if f is None or not f.certificates or f.version is None:
            continue
        d = describe(f.certificates[0])
        sha = str(d.get("sha256"))
        entry = by_sha.setdefault(sha, {**d, "chain_length": len(f.certificates),
                                        "versions": [], "suite_auth": [], "sni": []})

        v = version_name(f.version)
        if v not in entry["versions"]:
            entry["versions"].append(v)
        auth = auth_of(f.suite) if f.suite is not None and v != "SSLv2" else None
        if auth and "TLS1.3" not in auth and auth not in entry["suite_auth"]:
            entry["suite_auth"].append(auth)
        label = r.sni or "none"
        if label not in entry["sni"]:
            entry["sni"].append(label)
        sni_of.setdefault(r.profile, sha)
    order = {v: i for i, v in enumerate(VERSION_ORDER)}
    for e in by_sha.values():
        e["versions"].sort(key=lambda v: order.get(v, 99))
    probe = next((n for n in ("cert/no-sni", "cert/sni") if n in sni_of), None)
    sni_dep: bool | None = None
    if probe is not None:
        top = plan.max_version()
        base = next((p.name for p, r in plan.replies
                     if r.answered and r.version == top and p.sni == SNI_TARGET), None)
        if base is not None and base in sni_of:
            sni_dep = sni_of[probe] != sni_of[base]
    return list(by_sha.values()), sni_dep


_CURVE_LABEL = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def served_keys(certs: list[dict[str, Any]], sni: str | None) -> list[str]:
    """The key types of the certificates served with ``sni`` (the name the suites were
    enumerated with; None: no SNI), RSA first: ``RSA``, ``ECDSA P-256``, ``DSA``…"""
    label = sni or "none"
    out: list[str] = []
    for c in certs:
        if label not in c.get("sni", []) or not c.get("key_type"):
            continue
        key = str(c["key_type"])
        if key == "ECDSA" and c.get("curve"):
            key += " " + _CURVE_LABEL.get(str(c["curve"]), str(c["curve"]))
        if key not in out:
            out.append(key)
    return sorted(out, key=lambda k: (not k.startswith("RSA"), k))


INTOLERANCE_CHECKS = ("tls13-hello", "hello>512", "hello>1460", "suites>128",
                      "unknown-extension", "grease")


def _intolerance(plan: Planner, obs: ObservedPolicy) -> dict[str, dict[str, Any]]:
    replies = plan.extras["intolerance"].replies
    out: dict[str, dict[str, Any]] = {}
    for check in INTOLERANCE_CHECKS:
        r = replies.get(f"intolerance/{check}")
        if r is None:
            why = ("n/a: the server speaks TLS 1.3" if check == "tls13-hello"
                   and "TLSv1.3" in obs.versions else "not checked")
            out[check] = {"tolerated": None, "detail": why}
            continue
        if r.outcome in NO_HELLO:
            # the hello never went out (connect or STARTTLS failed): nothing was learnt
            out[check] = {"tolerated": None, "outcome": r.outcome,
                          "detail": f"not checked: {r.detail}"}
            continue
        ok = r.answered and (r.version == "TLSv1.2" if check == "tls13-hello" else True)
        out[check] = {"tolerated": ok, "outcome": r.outcome, "detail": r.detail}
    return out
