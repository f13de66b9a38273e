"""Turning expectations into a probe plan, and a run's results into verdicts (pure)."""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from prober.check.expectations import Expectations
from prober.core.attempt import AttemptResult
from prober.core.outcome import Outcome
from prober.core.service import NoTls
from prober.policy.naming.catalog import get
from prober.policy.naming.match import compare, extras_beyond
from prober.profiles.families import VERSION_PROFILES
from prober.wire import registry as reg
from prober.wire.certificates import describe
from prober.wire.registry import VERSIONS, suite_name, version_name


@dataclass
class Verdict:
    """One expectation checked on one target: one JUnit test case."""

    target: str
    name: str
    passed: bool
    message: str
    evidence: list[str] = field(default_factory=list)
    # true only of a TLS endpoint: holds vacuously when nothing TLS-like was measured
    # ("nothing below TLS 1.2 was accepted" of an HTTP port), so it fails there
    needs_tls: bool = field(default=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "expectation": self.name, "passed": self.passed,
                "message": self.message, "evidence": self.evidence}


def forbidden_suite_names(patterns: list[str]) -> list[str]:
    """IANA names of every registry suite a pattern names (``*CBC*``, OpenSSL or IANA)."""

    out: list[str] = []
    for pat in patterns:
        if "*" not in pat and "?" not in pat:
            name = reg.suite_name(reg.suite_value(pat))
            if name not in out:
                out.append(name)
            continue
        for cs in reg.all_suites():
            if cs.scsv:
                continue
            names = [cs.name, *([cs.openssl_name] if cs.openssl_name else [])]
            if any(fnmatch.fnmatchcase(n.upper(), pat.upper()) for n in names) and (
                    cs.name not in out):
                out.append(cs.name)
    return out


def plan(exp: Expectations) -> dict[str, list[str]]:
    """Profile arguments to run, keyed by the expectation that needs them."""
    needs: dict[str, list[str]] = {}
    for i, rule in enumerate(exp.profiles):
        needs[f"profiles[{i}]"] = list(rule.profiles)
    if exp.min_version:
        below = VERSIONS[: VERSIONS.index(exp.min_version)]
        needs["min_version"] = [VERSION_PROFILES[v] for v in below if v != "SSLv2"]
    if exp.forbidden_suites:

        names = []
        for n in forbidden_suite_names(exp.forbidden_suites):
            cs = reg.suite(reg.suite_value(n))
            # only suites a hello can offer with a certificate-based server in mind
            if cs is not None and cs.tls_versions:
                names.append(f"cipher:{n}")
        needs["forbidden_suites"] = names
    if exp.required_groups:
        needs["required_groups"] = [f"group:{g}" for g in exp.required_groups]
    if exp.certificate_valid_days is not None and not needs:
        needs["certificate"] = ["tls1.2-only", "tls1.3-only"]
    return needs


def _ev(r: AttemptResult) -> str:
    return f"#{r.id} {r.profile}: {r.outcome} ({r.detail})"


def evaluate(exp: Expectations, target: str, results: list[AttemptResult],
             profile_sets: dict[str, list[str]], now: dt.datetime | None = None
             ) -> list[Verdict]:
    """Verdicts for one target. ``profile_sets`` maps each profile argument of the plan to
    the profile names it resolved to (a set name expands to many)."""
    by_profile: dict[str, list[AttemptResult]] = defaultdict(list)
    for r in results:
        by_profile[r.profile].append(r)
    out: list[Verdict] = []
    for i, rule in enumerate(exp.profiles):
        for arg in rule.profiles:
            for name in profile_sets.get(arg, [arg]):
                rs = by_profile.get(name, [])
                bad = [r for r in rs if r.outcome not in rule.allow
                       or (rule.detail is not None and rule.detail not in r.detail)]
                want = "|".join(rule.allow) + (f" ({rule.detail})" if rule.detail else "")
                title = f"profiles[{i}] {name} -> {want}"
                if not rs:
                    out.append(Verdict(target, title, False, "no attempt ran for this profile"))
                elif bad:
                    out.append(Verdict(target, title, False,
                                       f"{len(bad)}/{len(rs)} attempts outside {want}",
                                       [_ev(r) for r in bad[:10]]))
                else:
                    out.append(Verdict(target, title, True, f"{len(rs)}/{len(rs)} {want}"))
    if exp.min_version:
        low = [r for r in results if r.outcome == Outcome.OK and _version(r) is not None
               and VERSIONS.index(_version(r) or "") < VERSIONS.index(exp.min_version)]
        out.append(Verdict(target, f"min_version {exp.min_version}", not low,
                           f"{len(low)} attempts negotiated below {exp.min_version}" if low
                           else f"nothing below {exp.min_version} was accepted",
                           [_ev(r) for r in low[:10]], needs_tls=True))
    if exp.forbidden_suites:
        names = set(forbidden_suite_names(exp.forbidden_suites))
        hits = [r for r in results if r.outcome == Outcome.OK and _suite(r) in names]
        accepted = sorted({_suite(r) or "" for r in hits})
        shown = ", ".join(accepted[:4]) + (f" and {len(accepted) - 4} more"
                                           if len(accepted) > 4 else "")
        out.append(Verdict(target, f"forbidden_suites {', '.join(exp.forbidden_suites)}",
                           not hits, f"{len(accepted)} accepted: {shown}" if hits
                           else f"none of {len(names)} forbidden suites accepted",
                           [_ev(r) for r in hits[:10]], needs_tls=True))
    for g in exp.required_groups:
        rs = by_profile.get(f"group:{g}", [])
        good = [r for r in rs if r.outcome == Outcome.OK]
        out.append(Verdict(target, f"required_groups {g}", bool(good),
                           f"{g} accepted" if good else f"{g} not accepted",
                           [_ev(r) for r in rs[:5]]))
    if exp.certificate_valid_days is not None:
        out.append(_certificate_verdict(exp.certificate_valid_days, target, results, now))
    return out


def _certificate_verdict(days: int, target: str, results: list[AttemptResult],
                         now: dt.datetime | None) -> Verdict:
    now = now or dt.datetime.now(dt.UTC)
    need = now + dt.timedelta(days=days)
    seen: dict[str, tuple[str, str]] = {}
    for r in results:
        if r.outcome != Outcome.OK or r.obs is None or r.obs.flight is None:
            continue
        certs = r.obs.flight.certificates
        if not certs:
            continue

        info = describe(certs[0])
        if "not_after" in info:
            seen[info["sha256"]] = (info["not_after"], info.get("subject", "?"))
    title = f"certificate valid for {days} more days"
    if not seen:
        return Verdict(target, title, False, "no certificate was seen")
    short = [f"{subj}: expires {na}" for na, subj in seen.values()
             if dt.datetime.fromisoformat(na) < need]
    if short:
        return Verdict(target, title, False, f"{len(short)} certificate(s) expire before "
                       f"{need.date().isoformat()}", short)
    soonest = min(na for na, _ in seen.values())
    return Verdict(target, title, True, f"{len(seen)} certificate(s), soonest expiry {soonest}")


def _version(r: AttemptResult) -> str | None:
    if r.obs is None or r.obs.flight is None or r.obs.flight.version is None:
        return None

    return version_name(r.obs.flight.version)


def _suite(r: AttemptResult) -> str | None:
    if r.obs is None or r.obs.flight is None or r.obs.flight.suite is None:
        return None

    return suite_name(r.obs.flight.suite)


def policy_verdicts(exp: Expectations, target: str, scan: Any) -> list[Verdict]:
    """``policy.equals`` (literally or as applicable), ``policy.equals_strict`` (the
    literal entry) and ``policy.no_weaker_than`` against a `prober policy` scan."""

    out: list[Verdict] = []
    obs = scan.policy
    unreliable = [] if scan.reliable else [
        "the policy scan is NOT RELIABLE: " + "; ".join(scan.warnings[:2])]
    for strict, name in ((False, exp.policy_equals), (True, exp.policy_equals_strict)):
        if not name:
            continue
        named = get(name)
        c = compare(obs, named)
        ok = (c.kind == "equal" if strict else c.named) and scan.reliable
        why = "; ".join(r.words() for r in c.not_applicable)
        if c.kind == "equal":
            msg = f"equals {named.name}"
        elif c.kind == "equal-as-applicable":
            msg = f"equals {named.name} as applicable ({why})"
            if strict:
                msg += f"; the literal entry differs: observed = {c.strict.text()}"
        else:
            scope = f" [as applicable: {why}]" if why else ""
            msg = f"differs from {named.name}: observed = {c.diff.text()}{scope}"
        what = "policy equals_strict" if strict else "policy equals"
        out.append(Verdict(target, f"{what} {named.name}", ok, msg, unreliable,
                           needs_tls=True))
    if exp.policy_no_weaker_than:
        named = get(exp.policy_no_weaker_than)
        extra, reasons, diff = extras_beyond(obs, named)
        ok = not extra and scan.reliable
        msg = (f"accepts nothing beyond {named.name}" if not extra
               else f"accepts {len(extra)} thing(s) {named.name} does not: "
                    + ", ".join(extra[:8]) + (" …" if len(extra) > 8 else ""))
        if reasons:
            msg += " (as applicable: " + "; ".join(r.words() for r in reasons) + ")"
        out.append(Verdict(target, f"policy no weaker than {named.name}", ok, msg,
                           unreliable + [f"not compared: {k}: {v}"
                                         for k, v in diff.not_compared.items()],
                           needs_tls=True))
    return out


def finding_verdicts(exp: Expectations, target: str, findings: list[dict[str, Any]]
                     ) -> list[Verdict]:
    """``no_findings``: none of the listed finding ids in a `prober diagnose` run."""
    out = []
    for fid in exp.no_findings:
        hits = [f for f in findings if f.get("id") == fid]
        out.append(Verdict(target, f"no finding {fid}", not hits,
                           f"{fid}: {hits[0].get('cause', '')}" if hits else f"no {fid}",
                           [e for f in hits for e in f.get("evidence", [])][:10],
                           needs_tls=True))
    return out


TLS_ENDPOINT = "TLS endpoint"


def no_tls_verdicts(target: str, verdict: NoTls | None, verdicts: list[Verdict]
                    ) -> list[Verdict]:
    """The target's verdicts, led by a failed ``TLS endpoint`` verdict with the cause when
    nothing TLS-like was measured; then what held only vacuously fails too."""
    if verdict is None:
        return verdicts
    head = Verdict(target, TLS_ENDPOINT, False, f"no TLS endpoint measured: {verdict.text()}",
                   [f"{o}: {n}" for o, n in verdict.outcomes.items()])
    out = [head]
    for v in verdicts:
        if v.passed and v.needs_tls:
            v = Verdict(v.target, v.name, False,
                        f"not measured: no TLS endpoint ({verdict.kind}); would read: "
                        f"{v.message}", v.evidence, needs_tls=True)
        out.append(v)
    return out
