"""``prober diff A.json B.json``: two runs side by side and what their differences mean.

Either run may be a diagnose or a probe document. Rows are matched by profile name
(the diagnose plan's names are stable: ``known-good``, ``sni:none``, ``size:1300`` ...),
or by target and profile when a probe run covers several targets. A difference
between an answer on one side and a failure on the other points at the failing side's
path; a different certificate issuer points at interception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prober.core.attempt import last_try_docs
from prober.core.errors import InputError
from prober.core.outcome import ANSWERED, CONNECT_FAILURES, CUT, Outcome
from prober.diagnose.findings import (
    DIAGNOSE_SCHEMA,
    ENDPOINT_UNREACHABLE,
    HIGH,
    INJECTED_RESET,
    LOW,
    MEDIUM,
    MTU_BLACKHOLE,
    PATH_DIFFERENCE,
    PATH_DROP,
    POLICY,
    POLICY_RESET,
    PORT_CLOSED,
    SEGMENTATION_DROP,
    SILENT_PROXY,
    SIZE_DROP,
    SNI_DROP,
    SNI_RESET,
    TLS_INTERCEPTION,
    WRONG_SERVICE,
    Finding,
    view_from_doc,
)
from prober.diagnose.report import cells, evidence_text, findings_text, outcome_text
from prober.diagnose.rules import evaluate
from prober.probe.report import PROBE_SCHEMA

DIFF_SCHEMA = "prober.diff/2"
# version 1 runs (before the starttls-failed outcome) read the same way
KNOWN_SCHEMAS = (DIAGNOSE_SCHEMA, PROBE_SCHEMA, "prober.diagnose/1", "prober.probe/1")


class DiffInputError(InputError):
    """A file that is not a prober run; the message names it."""


@dataclass
class Side:
    label: str
    doc: dict[str, Any]


def check(doc: Any, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.get("schema") not in KNOWN_SCHEMAS:
        schema = doc.get("schema") if isinstance(doc, dict) else None
        raise DiffInputError(f"{where}: not a prober run (schema {schema!r}; expected "
                             f"{' or '.join(KNOWN_SCHEMAS)})")
    if not isinstance(doc.get("attempts"), list):
        raise DiffInputError(f"{where}: no 'attempts' list")
    for a in doc["attempts"]:
        if not isinstance(a, dict) or not {"id", "profile", "outcome", "detail",
                                           "target"} <= set(a):
            raise DiffInputError(f"{where}: an attempt lacks id/target/profile/outcome/detail")
    return doc


def _targets(doc: dict[str, Any]) -> set[str]:
    return {a["target"] for a in doc["attempts"]}


def rows(a: Side, b: Side) -> list[dict[str, Any]]:
    """Both runs' cells, matched; each row says whether the two sides differ."""

    by_target = len(_targets(a.doc)) > 1 or len(_targets(b.doc)) > 1
    # an attempt turned away for load and retried (``retry_of``) counts once, as its last
    # try: a rate limit met on one side only is no difference of the server's answers
    # (the findings still read every attempt: the rate-limited rule needs the retries)
    ca = {c["key"]: c for c in cells(last_try_docs(a.doc["attempts"]), by_target)}
    cb = {c["key"]: c for c in cells(last_try_docs(b.doc["attempts"]), by_target)}
    keys = list(ca) + [k for k in cb if k not in ca]
    out = []
    for k in keys:
        x, y = ca.get(k), cb.get(k)
        differs = x is not None and y is not None and (
            x["outcome"] != y["outcome"] or x["consistent"] != y["consistent"]
            or (bool(x["issuers"]) and bool(y["issuers"]) and x["issuers"] != y["issuers"]))
        out.append({"key": k, "a": x, "b": y, "differs": differs})
    return out


def _fail_id(profile: str, outcome: str) -> str:
    """The finding id a failure on one side only points at."""
    kind = profile.split(":", 1)[0]
    if outcome in CUT:
        return SNI_RESET if kind == "sni" else INJECTED_RESET
    if outcome == Outcome.HANG_ACKED:
        return SILENT_PROXY
    if outcome in (Outcome.HANG_UNACKED,) or outcome in CONNECT_FAILURES:
        return {"size": SIZE_DROP, "segments": SEGMENTATION_DROP, "records": SEGMENTATION_DROP,
                "sni": SNI_DROP}.get(kind, PATH_DROP)
    if outcome == Outcome.PARTIAL:
        return MTU_BLACKHOLE
    return PATH_DIFFERENCE


_MEANING = {
    INJECTED_RESET: "a device on the {side} path resets the connection (the server answers "
                    "the same hello from the other side)",
    SNI_RESET: "a device on the {side} path resets by SNI",
    SILENT_PROXY: "a device on the {side} path ACKs the ClientHello and never forwards it",
    PATH_DROP: "the {side} path drops these connections",
    SIZE_DROP: "large ClientHellos are dropped on the {side} path",
    SEGMENTATION_DROP: "split ClientHellos are dropped on the {side} path",
    SNI_DROP: "the {side} path drops by SNI",
    POLICY_RESET: "the {side} side reaches a front that refuses these hellos with a TCP RST "
                  "instead of a TLS alert, as a cloud load balancer does (the {other} side's "
                  "server answers them)",
    PORT_CLOSED: "nothing listens on the {side} side (connection refused)",
    ENDPOINT_UNREACHABLE: "the {side} side cannot connect at all",
    WRONG_SERVICE: "another protocol than TLS answers on the {side} side",
    MTU_BLACKHOLE: "the server's flight stalls on the {side} path (path-MTU blackhole)",
    PATH_DIFFERENCE: "something else answers on the {side} path",
}
_NEXT = {
    INJECTED_RESET: "Look for a firewall, IPS or transparent proxy on the {side} path only "
                    "(a gateway hijacking the return traffic does this); `--capture` TTLs "
                    "on the {side} side show how far away it is.",
    SILENT_PROXY: "Capture on the server while probing from the {side} side: if the hello "
                  "never arrives, the device that ACKs it is on that path.",
    POLICY_RESET: "Find the balancer or front on the {side} path and its security policy; "
                  "clients limited to these versions need an upgrade or a policy that still "
                  "allows them.",
}


def claims(found: list[Finding]) -> dict[int, str]:
    """Attempt id -> the id of the first finding of a run that names it (the policy
    summary aside): how that run's own diagnosis calls what happened to the attempt."""
    out: dict[int, str] = {}
    for f in found:
        if f.id == POLICY:
            continue
        for aid in f.attempts:
            out.setdefault(aid, f.id)
    return out


def _own_id(cell: dict[str, Any], named: dict[int, str]) -> str | None:
    """The finding id the failing side's own diagnosis gives most of this row's attempts:
    one observation, one name, whether read from one run or from two."""
    ids = [named[i] for i in cell["ids"] if i in named]
    return max(set(ids), key=ids.count) if ids else None


def findings(a: Side, b: Side, table: list[dict[str, Any]],
             own: tuple[list[Finding], list[Finding]] | None = None) -> list[Finding]:
    fa, fb = own if own is not None else (_evaluate(a), _evaluate(b))
    named = {a.label: claims(fa), b.label: claims(fb)}
    out: list[Finding] = []
    groups: dict[tuple[str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    policy: list[str] = []
    issuers: dict[tuple[str, str], list[str]] = {}  # (A's, B's) -> profiles
    one_sided: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for r in table:
        x, y = r["a"], r["b"]
        if x is None or y is None or not r["differs"]:
            continue
        xa, ya = x["outcome"] in ANSWERED, y["outcome"] in ANSWERED
        if xa != ya:
            good, bad, side = (x, y, b.label) if xa else (y, x, a.label)
            one_sided.append((side, good, bad))
        elif x["outcome"] != y["outcome"]:
            policy.append(f"{r['key']}: {a.label} {outcome_words(x)}, {b.label} "
                          f"{outcome_words(y)}")
        if x["issuers"] and y["issuers"] and x["issuers"] != y["issuers"]:
            pair = ("; ".join(x["issuers"]), "; ".join(y["issuers"]))
            issuers.setdefault(pair, []).append(r["key"])
    # a row that side's own diagnosis left unnamed (a variant no rule reads) takes the
    # name it gave the same outcome elsewhere: the same observation, the same name
    by_outcome: dict[tuple[str, str], str] = {}
    for side, _, bad in one_sided:
        fid = _own_id(bad, named[side])
        if fid is not None:
            by_outcome.setdefault((side, bad["outcome"]), fid)
    for side, good, bad in one_sided:
        fid = (_own_id(bad, named[side]) or by_outcome.get((side, bad["outcome"]))
               or _fail_id(bad["profile"], bad["outcome"]))
        groups.setdefault((side, fid), []).append((good, bad))
    if issuers:
        out.append(Finding(
            TLS_INTERCEPTION, HIGH,
            f"The certificate issuer differs between {a.label} and {b.label}: one of the two "
            "paths intercepts TLS (the one whose issuer is not the server's real CA).",
            "Check which issuer is the server's own; on the other side look for a "
            "TLS-inspecting proxy (corporate firewall, antivirus).",
            evidence=[f"{a.label}: issuer {ia}; {b.label}: issuer {ib} ({len(keys)} profile"
                      f"{'s' * (len(keys) != 1)}: {', '.join(keys[:4])}"
                      f"{' …' if len(keys) > 4 else ''})"
                      for (ia, ib), keys in issuers.items()],
            figures={"issuers": [[ia, ib] for ia, ib in issuers]}))
    for (side, fid), pairs in groups.items():
        other = a.label if side == b.label else b.label
        profiles = [bad["profile"] for _, bad in pairs]
        bad0 = pairs[0][1]
        conf = HIGH if len(pairs) >= 2 or bad0["attempts"] >= 2 else MEDIUM
        ev = [f"{bad['profile']}: {side} {outcome_words(bad)} — {other} "
              f"{outcome_words(good)}" for good, bad in pairs[:8]]
        meaning = _MEANING.get(fid, "the {side} path differs").format(side=side, other=other)
        out.append(Finding(
            fid, conf,
            f"{side} only: {bad0['detail']} ({len(pairs)} profile"
            f"{'s' * (len(pairs) != 1)}: {', '.join(profiles[:4])}"
            f"{' …' if len(profiles) > 4 else ''}) → {meaning}.",
            _NEXT.get(fid, "Compare the two paths hop by hop (traceroute, firewall rules); the "
                           "{side} run's own findings say more.").format(side=side, other=other),
            evidence=ev, figures={"side": side, "profiles": profiles}))
    if policy:
        out.append(Finding(
            POLICY, MEDIUM if len(policy) > 1 else LOW,
            f"{a.label} and {b.label} are answered differently by the server "
            f"({len(policy)} profile{'s' * (len(policy) != 1)}): a different server, "
            "backend or TLS terminator on one side, or a policy change between the runs.",
            "Compare the certificates and negotiated parameters below; `prober policy` on "
            "both sides shows the full difference.", evidence=policy[:8]))
    return out


def outcome_words(cell: dict[str, Any]) -> str:

    return f"{outcome_text(cell)} ({cell['detail']})"


def _evaluate(s: Side) -> list[Finding]:
    return evaluate(view_from_doc(s.doc))


def side_findings(fa: list[Finding], fb: list[Finding]) -> dict[str, list[str]]:
    """Finding ids each run raises on its own, split into A only / B only / both."""
    ia = {f.id for f in fa if f.id != POLICY}
    ib = {f.id for f in fb if f.id != POLICY}
    return {"a_only": sorted(ia - ib), "b_only": sorted(ib - ia), "both": sorted(ia & ib)}


def document(a: Side, b: Side) -> dict[str, Any]:
    table = rows(a, b)
    own = (_evaluate(a), _evaluate(b))
    found = findings(a, b, table, own)
    return {
        "schema": DIFF_SCHEMA,
        "a": _meta(a), "b": _meta(b),
        "findings": [f.to_json() for f in found],
        "own_findings": side_findings(*own),
        "rows": [{"key": r["key"], "differs": r["differs"],
                  "a": _brief(r["a"]), "b": _brief(r["b"])} for r in table],
    }


def _meta(s: Side) -> dict[str, Any]:
    v = s.doc.get("vantage") or {}
    targets = sorted(_targets(s.doc))
    return {"label": s.label, "schema": s.doc.get("schema"), "targets": targets,
            "hostname": v.get("hostname"), "local_addresses": v.get("local_addresses", []),
            "started_at": v.get("started_at"), "attempts": len(s.doc["attempts"])}


def _brief(c: dict[str, Any] | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {k: c[k] for k in ("step", "profile", "attempts", "counts", "outcome", "detail",
                              "median_ms", "issuers", "ids")}


def text(doc: dict[str, Any]) -> str:
    from prober.report.escape import for_terminal
    from prober.report.table import tabulate

    a, b = doc["a"], doc["b"]
    lines = [f"prober diff  A = {a['label']}: {', '.join(a['targets'])} from "
             f"{', '.join(a['local_addresses']) or '?'} ({a['attempts']} attempts)",
             f"             B = {b['label']}: {', '.join(b['targets'])} from "
             f"{', '.join(b['local_addresses']) or '?'} ({b['attempts']} attempts)", "",
             "FINDINGS", *findings_text(doc["findings"])]
    if doc["findings"]:
        lines += ["", "EVIDENCE", *evidence_text(doc["findings"])]
    own = doc["own_findings"]
    parts = [f"{label}: {', '.join(own[key])}" for key, label in (
        ("a_only", f"{a['label']} only"), ("b_only", f"{b['label']} only"), ("both", "both"))
        if own[key]]
    if parts:
        lines += ["", "EACH RUN'S OWN FINDINGS", *(f"  {p}" for p in parts)]
    diff_rows = [r for r in doc["rows"] if r["differs"]]
    lines += ["", f"DIFFERENCES ({len(diff_rows)} of {len(doc['rows'])} rows)"]
    for r in diff_rows:
        # one line each, whatever the detail or the issuer holds
        lines.append(f"  {for_terminal(r['key'])}")
        lines.append(f"    {for_terminal(a['label'])}: {for_terminal(_cell(r['a']))}")
        lines.append(f"    {for_terminal(b['label'])}: {for_terminal(_cell(r['b']))}")
    table = [["≠" if r["differs"] else "", r["key"], _short(r["a"]), _short(r["b"])]
             for r in doc["rows"]]
    lines += ["", "MATRIX", tabulate(table, headers=["", "profile", a["label"], b["label"]],
                                     tablefmt="plain", disable_numparse=True)]
    return "\n".join(lines)


def _short(c: dict[str, Any] | None) -> str:

    return "-" if c is None else outcome_text(c)


def _cell(c: dict[str, Any] | None) -> str:
    if c is None:
        return "not run"
    ms = "" if c["median_ms"] is None else f", {c['median_ms']:.1f} ms"
    iss = f"; issuer {'; '.join(c['issuers'])}" if c["issuers"] else ""
    return f"{_short(c)} — {c['detail']}{ms}{iss}"
