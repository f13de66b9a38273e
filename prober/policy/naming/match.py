"""Which catalog policy an endpoint is, how far it is from the nearest ones, and how it
compares with sslyze's Mozilla profile.

Equality (``match_catalog``) is over what a client can observe: the accepted protocol
versions, the set of TLS <= 1.2 suites, the set of TLS 1.3 suites, and the groups where
both sides know them. Suite *order* never decides a match: where the catalog says its
order is the priority and the server enforces its own order, the agreement is reported
next to the match.

A catalog entry says what a policy *allows*; an endpoint can only show what it can
*serve*. So each entry is compared twice (``compare``): literally (``equal``), and as
applicable (``equal-as-applicable``), leaving out exactly what one of two reasons explains
and nothing else: TLS <= 1.2 suites whose authentication needs a certificate key type the
endpoint does not serve (an RSA-only endpoint configured with an ELB policy cannot show its
ECDHE-ECDSA suites), and explicit catalog variants for library conditions the publisher
documents (Mozilla's generator leaves X25519MLKEM768 out below OpenSSL 3.5). Any other
difference is a mismatch, ranked and worded from the closest applicable form.

Distance (``PolicyDiff.distance``), the ranking of near policies, counts the edits that
turn the catalog policy into what was observed, exactly the items ``PolicyDiff.words``
lists:

* ``PROTOCOL_WEIGHT`` (4) per protocol version switched on or off: a version loses or
  gains whole classes of clients, more than any single suite does;
* 1 per TLS <= 1.2 suite, TLS 1.3 suite and group added or removed; groups only where
  both sides know them;
* switching a protocol family off (all of TLS <= 1.2, or TLS 1.3) takes its suites with
  it: they are neither counted nor listed ("minus TLS 1.3" says it). Switching one on
  lists and counts every suite it brings, since those are new facts.

Ties are broken by provider, then name (plain string order), so the result is the
same on every run. Catalog entries whose protocols are unknown are not compared
(``skipped``); entries with other unknown parts can never be equal or ranked, but are
listed as ``consistent`` when everything they do document agrees.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal

from prober.policy.model import VERSION_ORDER, ObservedPolicy
from prober.policy.naming.catalog import NamedPolicy, Variant, all_policies
from prober.wire import registry as reg

PROTOCOL_WEIGHT = 4
DISTANCE_METRIC = (
    f"edits from the catalog policy to the observed one: {PROTOCOL_WEIGHT} per protocol "
    "version on or off, 1 per suite or group added or removed (groups only where both sides "
    "know them; the suites of a protocol family switched off entirely are not counted); "
    "ties by provider, then name"
)
TLS13 = "TLSv1.3"

Policy = NamedPolicy | ObservedPolicy
MozillaLevel = Literal["modern", "intermediate", "old"]


# -- names people read ------------------------------------------------------------------

def protocol_label(version: str) -> str:
    """``TLSv1.3`` -> ``TLS 1.3``, ``SSLv3`` -> ``SSL 3.0``."""
    if version.startswith("TLSv"):
        return "TLS " + version[4:]
    if version.startswith("SSLv"):
        return f"SSL {version[4:]}.0"
    return version


def suite_label(iana: str) -> str:
    """The OpenSSL name of a suite where one exists (what operators configure and what
    ALB logs show), else the IANA name."""
    try:
        return reg.suite_openssl_name(reg.suite_value(iana)) or iana
    except KeyError:
        return iana


def _group_key(name: str) -> str:
    # catalogs and sslyze spell some groups differently (prime256v1, X25519)
    try:
        return reg.group_name(reg.group_value(name))
    except KeyError:
        return name


def _group_info(name: str) -> reg.Group | None:
    try:
        return reg.group(reg.group_value(name))
    except KeyError:
        return None


def _applies(group: str, scope: str) -> bool:
    g = _group_info(group)
    if g is None:
        return True  # unknown to the registry: keep it rather than hide a difference
    if scope == "tls13":
        return g.tls13_usable
    # ECDHE in TLS <= 1.2: classic curves only (not FFDHE, KEMs, or the tls13-only brainpools)
    return g.kind == "ecdhe" and not g.name.endswith("tls13")


# -- the comparable shape of either side ------------------------------------------------

@dataclass(frozen=True)
class _Shape:
    name: str
    protocols: tuple[str, ...] | None
    suites: tuple[str, ...] | None  # TLS <= 1.2, () when no TLS <= 1.2 protocol
    tls13: tuple[str, ...] | None  # () when TLS 1.3 is not accepted
    group_scopes: frozenset[str]  # where groups are known: "tls13", "tls12"
    groups: dict[str, tuple[str, ...]]  # scope -> groups in preference order
    # scopes whose list is only the start of the real one (what lacks may be hidden)
    partial: frozenset[str] = frozenset()
    # the groups name only post-quantum ones: the classical groups are not documented
    pq_only: bool = False


def _legacy(protocols: Iterable[str]) -> bool:
    return any(v != TLS13 for v in protocols)


def _shape_named(p: NamedPolicy) -> _Shape:
    protocols = p.protocols
    suites, tls13 = p.suites, p.tls13_suites
    scopes: set[str] = set()
    if protocols is not None:
        # a family the policy does not speak has no suites, whatever the entry says
        if not _legacy(protocols):
            suites = ()
        if TLS13 not in protocols:
            tls13 = ()
        if p.groups is not None:
            scopes = {s for s, on in (("tls13", TLS13 in protocols),
                                      ("tls12", _legacy(protocols))) if on}
    names = tuple(_group_key(g) for g in p.groups or ())
    groups = {s: tuple(g for g in names if _applies(g, s)) for s in scopes}
    pq_only = bool(names) and all(_pq(g) for g in names)
    return _Shape(p.name, protocols, suites, tls13, frozenset(scopes), groups,
                  pq_only=pq_only)


def _pq(group: str) -> bool:
    g = _group_info(group)
    return g is not None and g.kind in ("pq_kem", "hybrid_pq")


def _shape_observed(o: ObservedPolicy, name: str = "observed") -> _Shape:
    protocols = tuple(sorted(o.versions, key=_version_rank))
    legacy = [v for v in protocols if v != TLS13]
    suites: tuple[str, ...] | None = ()
    if any(v not in o.suites for v in legacy):
        suites = None  # a version was accepted but its suites were not enumerated
    else:
        suites = tuple(dict.fromkeys(s for v in legacy for s in o.suites[v]))
    tls13: tuple[str, ...] | None = ()
    if TLS13 in protocols:
        tls13 = tuple(o.suites[TLS13]) if TLS13 in o.suites else None
    groups: dict[str, tuple[str, ...]] = {}
    if o.groups_tls13 is not None and TLS13 in protocols:
        groups["tls13"] = tuple(_group_key(g) for g in o.groups_tls13)
    if o.groups_tls12 is not None and legacy:
        groups["tls12"] = tuple(_group_key(g) for g in o.groups_tls12)
    partial = frozenset(() if o.groups_tls12_complete or "tls12" not in groups else ("tls12",))
    return _Shape(name, protocols, suites, tls13, frozenset(groups), groups, partial)


def _shape(p: Policy, name: str | None = None) -> _Shape:
    if isinstance(p, NamedPolicy):
        return _shape_named(p)
    return _shape_observed(p, name or "observed")


def _version_rank(v: str) -> int:
    return VERSION_ORDER.index(v) if v in VERSION_ORDER else len(VERSION_ORDER)


# -- differences ------------------------------------------------------------------------

@dataclass(frozen=True)
class Delta:
    """What one side has that the other lacks (``plus``) and the reverse (``minus``)."""

    plus: tuple[str, ...] = ()
    minus: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.plus and not self.minus

    @property
    def size(self) -> int:
        return len(self.plus) + len(self.minus)

    def to_json(self) -> dict[str, list[str]]:
        return {"plus": list(self.plus), "minus": list(self.minus)}


def _delta(a: Sequence[str], b: Sequence[str]) -> Delta:
    bs, as_ = set(b), set(a)
    return Delta(tuple(x for x in a if x not in bs), tuple(x for x in b if x not in as_))


@dataclass(frozen=True)
class PolicyDiff:
    """``a`` relative to ``b``: ``a`` = ``b`` plus ``plus`` minus ``minus``, per part.
    A part is ``None`` when it was not compared; ``not_compared`` says why."""

    a: str
    b: str
    protocols: Delta | None
    suites: Delta | None
    tls13_suites: Delta | None
    groups: Delta | None
    not_compared: dict[str, str] = field(default_factory=dict)
    # parts whose minus items follow from a protocol family in minus (left out of words())
    implied: frozenset[str] = frozenset()

    @property
    def equal(self) -> bool:
        """Equal on everything that decides a match (groups only where compared)."""
        parts = (self.protocols, self.suites, self.tls13_suites)
        return (all(p is not None and p.empty for p in parts)
                and (self.groups is None or self.groups.empty))

    @property
    def complete(self) -> bool:
        """Protocols and both suite sets were all compared (nothing unknown)."""
        return not ({"protocols", "suites", "tls13_suites"} & set(self.not_compared))

    @property
    def distance(self) -> int:
        d = PROTOCOL_WEIGHT * (self.protocols.size if self.protocols else 0)
        return d + sum(len(self._items(side, protocols=False)) for side in ("plus", "minus"))

    def _items(self, side: str, *, protocols: bool = True) -> list[str]:
        def shown(part: str) -> bool:
            return side == "plus" or part not in self.implied

        out: list[str] = []
        if self.protocols and protocols:
            out += [protocol_label(v) for v in getattr(self.protocols, side)]
        if self.suites and shown("suites"):
            out += [suite_label(s) for s in getattr(self.suites, side)]
        if self.tls13_suites and shown("tls13_suites"):
            out += list(getattr(self.tls13_suites, side))
        if self.groups:
            out += [f"group {g}" for g in getattr(self.groups, side)]
        return out

    def counts(self) -> str:
        """``+2 −1``: how many items ``words()`` names on each side."""
        return f"+{len(self._items('plus'))} −{len(self._items('minus'))}"

    def words(self) -> str:
        """``plus AES128-SHA; minus TLS 1.3`` (``same`` when nothing differs)."""
        parts = [f"{side} {', '.join(items)}" for side in ("plus", "minus")
                 if (items := self._items(side))]
        return "; ".join(parts) if parts else "same"

    def text(self) -> str:
        return f"{self.b} {self.words()}" if not self.equal else f"{self.b} same"

    def to_json(self) -> dict[str, Any]:
        def part(d: Delta | None) -> dict[str, list[str]] | None:
            return d.to_json() if d is not None else None

        return {"protocols": part(self.protocols), "suites": part(self.suites),
                "tls13_suites": part(self.tls13_suites), "groups": part(self.groups),
                "not_compared": dict(self.not_compared),
                "implied_by_protocols": sorted(self.implied), "distance": self.distance,
                "words": self.words()}


def _family_delta(a: tuple[str, ...] | None, b: tuple[str, ...] | None, a_speaks: bool,
                  b_speaks: bool, what: str, why: dict[str, str],
                  implied: set[str]) -> Delta | None:
    if a is None or b is None:
        why[what] = "unknown on one side"
        return None
    if b_speaks and not a_speaks:
        implied.add(what)  # "minus TLS 1.3" already says these suites are gone
    return _delta(a, b)


def _diff_shapes(a: _Shape, b: _Shape) -> PolicyDiff:
    why: dict[str, str] = {}
    if a.protocols is None or b.protocols is None:
        why.update(protocols="unknown on one side", suites="unknown on one side",
                   tls13_suites="unknown on one side")
        return PolicyDiff(a.name, b.name, None, None, None, None, why)
    pa, pb = a.protocols, b.protocols
    protocols = _delta(pa, pb)
    implied: set[str] = set()
    suites = _family_delta(a.suites, b.suites, _legacy(pa), _legacy(pb), "suites", why, implied)
    tls13 = _family_delta(a.tls13, b.tls13, TLS13 in pa, TLS13 in pb, "tls13_suites", why,
                          implied)
    scopes = a.group_scopes & b.group_scopes
    partial = (a.partial | b.partial) & scopes
    if partial and "tls13" in scopes:
        # the TLS 1.3 list is whole; a TLS 1.2 list cut short adds nothing it lacks
        scopes -= partial
        partial = frozenset()
    groups: Delta | None = None
    if scopes:
        def union(s: _Shape) -> list[str]:
            return list(dict.fromkeys(g for sc in ("tls13", "tls12") if sc in scopes
                                      for g in s.groups[sc]))
        if a.pq_only or b.pq_only:
            # ELB's PQ policies and Cloudflare document their post-quantum groups only;
            # the classical ones they also offer are unknown, so only those are compared
            groups = _delta([g for g in union(a) if _pq(g)], [g for g in union(b) if _pq(g)])
            why["groups"] = ("partly: the catalog documents only its post-quantum groups; "
                             "classical groups not compared")
        else:
            groups = _delta(union(a), union(b))
        if partial:
            # what the cut-short side lacks may only be hidden: not a difference
            side = "minus" if a.partial & scopes else "plus"
            groups = replace(groups, **{side: ()})
            why["groups"] = ("partly: the TLS 1.2 curves an ECDSA-only server ranks below "
                             "its certificate's curve are hidden")
    else:
        why["groups"] = "not known on both sides"
    return PolicyDiff(a.name, b.name, protocols, suites, tls13, groups, why, frozenset(implied))


def diff_policies(a: Policy, b: Policy, *, a_name: str | None = None,
                  b_name: str | None = None) -> PolicyDiff:
    """How ``a`` differs from ``b``: ``a`` = ``b`` plus ``diff.*.plus`` minus ``diff.*.minus``.

    For a what-if ("who breaks if we move to X"): ``diff_policies(X, current)``; its
    ``minus`` parts are what clients lose in the move, its ``plus`` parts what X adds.
    ``a_name``/``b_name`` name an ObservedPolicy in the text (default ``observed``)."""
    return _diff_shapes(_shape(a, a_name), _shape(b, b_name))


# -- order ------------------------------------------------------------------------------

@dataclass(frozen=True)
class OrderCheck:
    """Does the server's enforced preference order agree with the catalog's priority order?
    ``status``: ``same``, ``differs`` or ``not-compared``; ``versions``: per version, the
    same three words or why it was not compared; ``detail``: the first disagreement;
    ``notes``: agreement with an alternative order the catalog records, and ChaCha20
    priority (a rule on top of the order that no catalog documents)."""

    status: str
    versions: dict[str, str]
    detail: str = ""
    notes: tuple[str, ...] = ()
    chacha_priority: tuple[str, ...] = ()  # versions where the server applies it

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "versions": dict(self.versions), "detail": self.detail,
                "notes": list(self.notes), "chacha_priority": list(self.chacha_priority)}


def _same_order(mine: list[str], ref: Sequence[str]) -> tuple[bool, str, str]:
    """(same, first of mine that differs, what ref has there) over the suites in common."""
    common = set(mine) & set(ref)
    a = [s for s in mine if s in common]
    b = [s for s in ref if s in common]
    if a == b:
        return True, "", ""
    i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    return False, a[i], b[i]


def _by_key(suites: Sequence[str]) -> list[str]:
    """``suites`` grouped by the certificate key they need (order kept within a group)."""
    keys = list(dict.fromkeys(_needs_key(s) or "" for s in suites))
    return [s for k in sorted(keys) for s in suites if (_needs_key(s) or "") == k]


def order_check(obs: ObservedPolicy, policy: NamedPolicy) -> OrderCheck:
    versions: dict[str, str] = {}
    details: list[str] = []
    notes: list[str] = []
    chacha: list[str] = []
    for v in sorted(obs.versions, key=_version_rank):
        ref = policy.tls13_suites if v == TLS13 else policy.suites
        enforced = obs.server_order.get(v)
        if obs.chacha_priority.get(v):
            chacha.append(v)
            notes.append(f"{protocol_label(v)}: the server applies ChaCha20 priority (a client "
                         "whose first suite is ChaCha20 gets a ChaCha20 suite), which the "
                         "catalog does not document")
        if not policy.order_is_priority:
            versions[v] = "not compared: the catalog's order is not a priority order"
        elif enforced is None:
            versions[v] = "not compared: server order not determined"
        elif not enforced:
            versions[v] = "not compared: the server follows the client's order"
        elif ref is None:
            versions[v] = "not compared: the catalog's order is unknown"
        else:
            mine = [s for s in obs.suites.get(v, []) if s in set(ref)]
            if len(mine) < 2:
                versions[v] = "not compared: fewer than two suites in common"
                continue
            if v in obs.certificate_first:
                # the certificate was chosen first: an ECDSA suite "before" an RSA one says
                # nothing about the suite order; compare within each key type
                mine = _by_key(mine)
                ref = tuple(_by_key([s for s in ref if s in set(mine)]))
                notes.append(f"{protocol_label(v)}: the server picks its certificate before "
                             "the suite; order compared within each certificate type")
            same, x, y = _same_order(mine, ref)
            if same:
                versions[v] = "same"
                continue
            # the sources of some entries disagree on the order; any of them is the policy
            alt = next((label for label, order in policy.order_alternatives
                        if v != TLS13 and _same_order(mine, _by_key(order) if v in
                                                      obs.certificate_first else order)[0]),
                       None)
            if alt is not None:
                versions[v] = "same"
                notes.append(f"{protocol_label(v)}: the order the catalog records as {alt}")
                continue
            versions[v] = "differs"
            name = suite_label if v != TLS13 else str
            details.append(f"{protocol_label(v)}: the server puts {name(x)} before "
                           f"{name(y)}, the catalog the other way round")
    words = set(versions.values())
    status = "differs" if "differs" in words else "same" if "same" in words else "not-compared"
    return OrderCheck(status, versions, "; ".join(details), tuple(notes), tuple(chacha))


# -- what an endpoint can show of a catalog policy --------------------------------------
#
# A catalog entry lists what a policy allows; an endpoint shows only what it can serve.
# Two reasons, and only these, make part of an entry "not applicable" (anything else the
# endpoint lacks is a difference):
#   * certificate: a TLS <= 1.2 suite whose authentication needs a key type the endpoint
#     serves no certificate of (and a protocol version left with no such suite);
#   * library: an explicit catalog variant for a library condition its publisher documents
#     (Mozilla's generator leaves X25519MLKEM768 out below OpenSSL 3.5).

CERTIFICATE = "certificate"
LIBRARY = "library"
# the certificate key a TLS <= 1.2 suite's authentication needs; anonymous suites need none
_AUTH_KEY = {"RSA": "RSA", "ECDSA": "ECDSA", "DSS": "DSA"}


@dataclass(frozen=True)
class NotApplicable:
    """Part of a catalog policy that the endpoint cannot show, and why."""

    reason: str  # CERTIFICATE | LIBRARY
    text: str  # "not applicable: RSA certificate only"
    items: tuple[str, ...] = ()  # what it leaves out, as people read it

    def words(self) -> str:
        return f"{self.text} ({', '.join(self.items)})" if self.items else self.text

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "text": self.text, "items": list(self.items)}


def _served(certificates: Sequence[str]) -> str:
    certs = list(dict.fromkeys(certificates))
    if len(certs) == 1:
        return f"{certs[0]} certificate only"
    return f"{' and '.join(certs)} certificates only"


def _needs_key(suite: str) -> str | None:
    try:
        cs = reg.suite(reg.suite_value(suite))
    except KeyError:
        return None
    return _AUTH_KEY.get(cs.auth or "") if cs is not None else None


def _valid_at(suite: str, version: str) -> bool:
    try:
        cs = reg.suite(reg.suite_value(suite))
    except KeyError:
        return True  # unknown: keep it rather than hide a difference
    return cs is None or version in cs.tls_versions


def applicable(p: NamedPolicy, obs: ObservedPolicy, variant: Variant | None = None
               ) -> tuple[NamedPolicy, tuple[NotApplicable, ...]]:
    """The part of ``p`` (or of its ``variant``) an endpoint serving ``obs``'s certificates
    can show, and what was left out for which reason."""
    reasons: list[NotApplicable] = []
    if variant is not None:
        gone = [g for g in p.groups or () if g not in set(variant.groups or ())]
        reasons.append(NotApplicable(
            LIBRARY, f"variant {variant.name}: {variant.why}",
            tuple(f"group {g}" for g in gone)))
        p = replace(p, groups=variant.groups)
    kinds = obs.certificate_kinds()
    if kinds is None or p.suites is None or p.protocols is None:
        return p, tuple(reasons)
    drop = [s for s in p.suites if (k := _needs_key(s)) is not None and k not in kinds]
    if not drop:
        return p, tuple(reasons)
    suites = tuple(s for s in p.suites if s not in drop)
    gone_versions = [v for v in p.protocols
                     if v != TLS13 and not any(_valid_at(s, v) for s in suites)]
    protocols = tuple(v for v in p.protocols if v not in gone_versions)
    assert obs.certificates is not None
    reasons.append(NotApplicable(
        CERTIFICATE, f"not applicable: {_served(obs.certificates)}",
        tuple([*map(protocol_label, gone_versions), *map(suite_label, drop)])))
    return replace(p, protocols=protocols, suites=suites), tuple(reasons)


@dataclass(frozen=True)
class Comparison:
    """One catalog policy against an observation.

    ``kind``: ``equal`` (the literal entry), ``equal-as-applicable`` (equal once the parts
    in ``not_applicable`` are left out), ``differs`` (``diff`` is then the edit list from
    the closest applicable form) or ``incomplete`` (a part of the entry is unknown)."""

    policy: NamedPolicy
    kind: str
    strict: PolicyDiff
    diff: PolicyDiff
    not_applicable: tuple[NotApplicable, ...] = ()
    variant: Variant | None = None

    @property
    def named(self) -> bool:
        return self.kind in ("equal", "equal-as-applicable")


def compare(obs: ObservedPolicy, p: NamedPolicy) -> Comparison:
    """``obs`` against ``p``: literally, then against what of ``p`` (and of each of its
    library variants) the endpoint can show."""
    mine = _shape_observed(obs)
    strict = _diff_shapes(mine, _shape_named(p))
    if not strict.complete:
        return Comparison(p, "incomplete", strict, strict)
    if strict.equal:
        return Comparison(p, "equal", strict, strict)
    best: tuple[PolicyDiff, tuple[NotApplicable, ...], Variant | None] | None = None
    for variant in (None, *p.variants):
        view, reasons = applicable(p, obs, variant)
        if not reasons:
            continue  # nothing left out: the literal comparison already said it
        d = _diff_shapes(mine, _shape_named(view))
        if d.equal:
            return Comparison(p, "equal-as-applicable", strict, d, reasons, variant)
        if best is None or d.distance < best[0].distance:
            best = (d, reasons, variant)
    if best is None or best[0].distance >= strict.distance:
        return Comparison(p, "differs", strict, strict)
    return Comparison(p, "differs", strict, best[0], best[1], best[2])


def extras_beyond(obs: ObservedPolicy, p: NamedPolicy
                  ) -> tuple[list[str], tuple[NotApplicable, ...], PolicyDiff]:
    """What ``obs`` accepts beyond ``p`` (protocols, TLS 1.3 suites, TLS <= 1.2 suites),
    against the form of ``p`` (literal, or applicable with each variant) that leaves the
    fewest: (the extras as people read them, what was left out of ``p``, the diff)."""
    mine = _shape_observed(obs)
    forms: list[tuple[PolicyDiff, tuple[NotApplicable, ...]]] = [
        (_diff_shapes(mine, _shape_named(p)), ())]
    for variant in (None, *p.variants):
        view, reasons = applicable(p, obs, variant)
        if reasons:
            forms.append((_diff_shapes(mine, _shape_named(view)), reasons))

    def extra(d: PolicyDiff) -> list[str]:
        return [*map(protocol_label, d.protocols.plus if d.protocols else ()),
                *(d.tls13_suites.plus if d.tls13_suites else ()),
                *map(suite_label, d.suites.plus if d.suites else ())]

    diff, reasons = min(forms, key=lambda f: len(extra(f[0])))
    return extra(diff), reasons, diff


# -- catalog verdict --------------------------------------------------------------------

@dataclass(frozen=True)
class PolicyRef:
    name: str
    provider: str
    confidence: str
    source: str

    @property
    def documented(self) -> bool:
        return self.confidence == "documented"

    @classmethod
    def of(cls, p: NamedPolicy) -> PolicyRef:
        return cls(p.name, p.provider, p.confidence, p.source)

    def label(self) -> str:
        return self.name if self.documented else f"{self.name} [{self.confidence}]"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "provider": self.provider, "confidence": self.confidence,
                "documented": self.documented, "source": self.source}


def _reasons_words(reasons: Iterable[NotApplicable]) -> str:
    return "; ".join(r.words() for r in reasons)


@dataclass(frozen=True)
class MatchEntry:
    policy: PolicyRef
    order: OrderCheck
    groups_compared: bool
    kind: str = "equal"  # or "equal-as-applicable"
    not_applicable: tuple[NotApplicable, ...] = ()
    variant: Variant | None = None

    @property
    def strict(self) -> bool:
        return self.kind == "equal"

    def label(self) -> str:
        if self.strict:
            return self.policy.label()
        return f"{self.policy.label()} as applicable ({_reasons_words(self.not_applicable)})"

    def to_json(self) -> dict[str, Any]:
        return {**self.policy.to_json(), "kind": self.kind, "order": self.order.to_json(),
                "groups_compared": self.groups_compared,
                "not_applicable": [r.to_json() for r in self.not_applicable],
                "variant": self.variant.to_json() if self.variant is not None else None}


@dataclass(frozen=True)
class NearEntry:
    """One or more catalog policies with identical content, at ``diff.distance``;
    ``not_applicable``: what was left out of them before the edit list was taken."""

    policies: tuple[PolicyRef, ...]
    diff: PolicyDiff
    not_applicable: tuple[NotApplicable, ...] = ()
    variant: Variant | None = None

    @property
    def distance(self) -> int:
        return self.diff.distance

    def text(self) -> str:
        head, *others = self.policies
        also = f" (also {', '.join(p.label() for p in others)})" if others else ""
        scope = (f" [as applicable: {_reasons_words(self.not_applicable)}]"
                 if self.not_applicable else "")
        return f"{head.label()} {self.diff.words()}{scope}{also}"

    def to_json(self) -> dict[str, Any]:
        return {"policies": [p.to_json() for p in self.policies], "distance": self.distance,
                "difference": self.diff.to_json(),
                "not_applicable": [r.to_json() for r in self.not_applicable],
                "variant": self.variant.to_json() if self.variant is not None else None,
                "text": self.text()}


@dataclass(frozen=True)
class CatalogVerdict:
    matches: tuple[MatchEntry, ...]
    nearest: tuple[NearEntry, ...]
    consistent: tuple[PolicyRef, ...]
    compared: int
    skipped: tuple[str, ...]
    certificates: tuple[str, ...] | None = None  # what the applicability rested on

    @property
    def matched(self) -> bool:
        return bool(self.matches)

    @property
    def verdict(self) -> str:
        """``equal``, ``equal-as-applicable``, ``nearest`` or ``none``."""
        if any(m.strict for m in self.matches):
            return "equal"
        if self.matches:
            return "equal-as-applicable"
        return "nearest" if self.nearest else "none"

    @property
    def rests_on_undocumented(self) -> bool:
        """A match was found, but only on entries that are not ``documented``."""
        return self.matched and not any(m.policy.documented for m in self.matches)

    def text(self) -> str:
        if self.matches:
            strict = [m for m in self.matches if m.strict]
            loose = [m for m in self.matches if not m.strict]
            parts = []
            if strict:
                parts.append("equals " + ", ".join(m.policy.label() for m in strict))
            if loose:
                parts.append(("also " if strict else "") + "equals "
                             + ", ".join(m.label() for m in loose))
            out = "; ".join(parts)
            differs = [m.policy.name for m in self.matches if m.order.status == "differs"]
            if differs:
                out += f"; server order differs from {', '.join(differs)}"
            chacha = sorted({v for m in self.matches for v in m.order.chacha_priority},
                            key=_version_rank)
            if chacha:
                out += ("; the server applies ChaCha20 priority ("
                        + ", ".join(map(protocol_label, chacha)) + ")")
            if self.rests_on_undocumented:
                out += "; rests only on non-documented catalog entries: treat it as a hint"
            return out
        if self.nearest:
            return ("no catalog policy equals it; nearest: "
                    + " | ".join(n.text() for n in self.nearest))
        return "no catalog policy to compare with"

    def brief(self) -> str:
        """``text()`` in a table cell: ``NAME`` (equal), ``≈ NAME`` (equal as applicable),
        ``nearest NAME (+2 −1)`` (the nearest's edit counts, as ``words()`` lists them)."""
        if self.matches:
            m = next((m for m in self.matches if m.strict), self.matches[0])
            more = ", …" if len(self.matches) > 1 else ""
            return f"{'' if m.strict else '≈ '}{m.policy.label()}{more}"
        if self.nearest:
            n = self.nearest[0]
            return f"nearest {n.policies[0].label()} ({n.diff.counts()})"
        return "no catalog policy"

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "matched": self.matched,
                "rests_on_undocumented": self.rests_on_undocumented,
                "certificates": list(self.certificates) if self.certificates is not None
                else None,
                "matches": [m.to_json() for m in self.matches],
                "nearest": [n.to_json() for n in self.nearest],
                "consistent": [c.to_json() for c in self.consistent],
                "compared": self.compared, "skipped": list(self.skipped),
                "distance_metric": DISTANCE_METRIC, "text": self.text()}


def _sort_key(p: NamedPolicy) -> tuple[str, str]:
    return (p.provider, p.name)


def match_catalog(obs: ObservedPolicy, *, candidates: Iterable[NamedPolicy] | None = None,
                  nearest: int = 3) -> CatalogVerdict:
    """Every catalog policy equal to ``obs``, literally or as applicable, or when none is,
    the ``nearest`` closest ones (identical catalog entries grouped into one near entry)."""
    pool = sorted(all_policies() if candidates is None else candidates, key=_sort_key)
    matches: list[MatchEntry] = []
    consistent: list[PolicyRef] = []
    skipped: list[str] = []
    near: dict[str, tuple[list[NamedPolicy], Comparison]] = {}
    for p in pool:
        if p.protocols is None:
            skipped.append(p.name)
            continue
        c = compare(obs, p)
        if c.kind == "incomplete":
            known = [d for d in (c.strict.protocols, c.strict.suites, c.strict.tls13_suites,
                                 c.strict.groups) if d]
            if all(d.empty for d in known):
                consistent.append(PolicyRef.of(p))
            continue
        if c.named:
            matches.append(MatchEntry(PolicyRef.of(p), order_check(obs, p),
                                      c.diff.groups is not None, c.kind, c.not_applicable,
                                      c.variant))
            continue
        # same difference (and same reasons) from obs <=> same content: aliases
        key = repr((sorted(c.diff.to_json().items()), [r.to_json() for r in c.not_applicable]))
        near.setdefault(key, ([], c))[0].append(p)
    # literal matches first: they need no reason
    matches.sort(key=lambda m: not m.strict)
    ranked = sorted(near.values(), key=lambda e: (e[1].diff.distance, *_sort_key(e[0][0])))
    nearest_entries = () if matches else tuple(
        NearEntry(tuple(PolicyRef.of(p) for p in ps), c.diff, c.not_applicable, c.variant)
        for ps, c in ranked[:max(0, nearest)])
    certs = tuple(obs.certificates) if obs.certificates is not None else None
    return CatalogVerdict(tuple(matches), nearest_entries, tuple(consistent),
                          len(pool) - len(skipped), tuple(skipped), certs)


# -- Mozilla profile (sslyze's bundled copy) --------------------------------------------

# sslyze spells TLS 1.0 "TLSv1"
_SSLYZE_VERSION = {"TLSv1.0": "TLSv1"}
_FROM_SSLYZE_VERSION = {v: k for k, v in _SSLYZE_VERSION.items()}
# what sslyze's checker also looks at, which an observed policy cannot show
_LIVE_ONLY_CHECKS = (
    "certificate (trust, types, curves, signatures, lifespan, RSA key size)",
    "ECDH/DH parameter sizes", "TLS compression", "Heartbleed", "OpenSSL CCS injection",
    "ROBOT", "TLS_FALLBACK_SCSV", "secure renegotiation", "extended master secret",
)


@dataclass(frozen=True)
class ComplianceVerdict:
    """Compliance with one level of the Mozilla profile that sslyze ships.

    ``mode``: ``offline`` (an ObservedPolicy against sslyze's profile data: protocols,
    suites and curves only; ``not_checked`` lists the rest) or ``live`` (sslyze's own
    scan and checker). ``compliant`` is None when the check could not run (``error``)."""

    level: str
    mode: str
    compliant: bool | None
    issues: dict[str, str]
    profile_version: str
    profile_source: str
    not_checked: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    error: str = ""

    def text(self) -> str:
        head = f"Mozilla {self.level} {self.profile_version} ({self.mode}, {self.profile_source})"
        if self.compliant is None:
            return f"{head}: not checked: {self.error}"
        if self.compliant:
            scope = " on protocols, suites and curves" if self.mode == "offline" else ""
            return f"{head}: compliant{scope}"
        # sslyze's own messages end with a full stop; the list reads better without
        return f"{head}: not compliant: " + "; ".join(i.rstrip(".") for i in self.issues.values())

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "mode": self.mode, "compliant": self.compliant,
                "issues": dict(self.issues), "profile_version": self.profile_version,
                "profile_source": self.profile_source, "not_checked": list(self.not_checked),
                "notes": list(self.notes), "error": self.error, "text": self.text()}


# sslyze's profile loader turns the ANSI X9.62 curve names of the Mozilla JSON into SECG
# names; done the same way here so the sets equal what its checker compares against
_MOZILLA_CURVE_TO_SECG = {"prime256v1": "secp256r1", "prime192v1": "secp192r1"}


@dataclass(frozen=True)
class _MozillaLevel:
    """The parts of one level of the Mozilla profile that an observed policy can show."""

    tls_versions: frozenset[str]
    ciphersuites: frozenset[str]
    ciphers_iana: frozenset[str]
    tls_curves: frozenset[str]
    server_preferred_order: bool


@cache  # one search per process: every run checks three levels against the same file
def _sslyze_files() -> tuple[Path, Path]:
    """(sslyze's package directory, the Mozilla profile JSON its checker reads), found
    without importing sslyze: ``import sslyze`` (or any submodule, whose parent package
    runs first) loads every plugin, nassl and pydantic models, ~0.4 s of CPU that
    ``prober policy`` would pay at every run for one JSON file."""
    spec = importlib.util.find_spec("sslyze")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModuleNotFoundError("No module named 'sslyze'", name="sslyze")
    pkg = Path(locations[0])
    folder = pkg / "mozilla_tls_profile"
    # the checker names its file in a class attribute (``_JSON_PROFILE_PATH = ... /
    # "5.7.json"``): read that name from its source rather than run it
    try:
        code = (folder / "tls_config_checker.py").read_text(encoding="utf-8")
    except OSError:
        code = ""
    m = re.search(r"_JSON_PROFILE_PATH\s*=[^\n]*[\"']([^\"'/]+\.json)[\"']", code)
    path = folder / m.group(1) if m else None
    if path is None or not path.is_file():
        # else the newest profile shipped (by version number: "5.10" is after "5.7")
        shipped = sorted(folder.glob("*.json"), key=lambda f: _version_tuple(f.stem))
        if not shipped:
            raise FileNotFoundError(f"no Mozilla profile JSON in {folder}")
        path = shipped[-1]
    return pkg, path


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text))


@cache
def _sslyze_version(pkg: Path) -> str:
    # what ``sslyze.__version__.__version__`` holds, read without executing the package
    try:
        m = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']",
                      (pkg / "__version__.py").read_text(encoding="utf-8"), re.M)
    except OSError:
        m = None
    if m:
        return m.group(1)
    from importlib.metadata import version

    return version("sslyze")


@cache  # three compliance levels per run read the same file
def sslyze_mozilla_profile() -> tuple[str, str, dict[str, Any]]:
    """(version, where it was read, the raw JSON) of the Mozilla profile sslyze ships and
    its checker uses."""
    import json

    pkg, path = _sslyze_files()
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    source = f"sslyze {_sslyze_version(pkg)} {path.parent.name}/{path.name}"
    return str(doc["version"]), source, doc


def _mozilla_level(doc: dict[str, Any], level: str) -> _MozillaLevel:
    """One level of the profile, with the fields and curve names sslyze's loader gives."""
    try:
        cfg = doc["configurations"][level]
        return _MozillaLevel(
            tls_versions=frozenset(map(str, cfg["tls_versions"])),
            ciphersuites=frozenset(map(str, cfg["ciphersuites"])),
            ciphers_iana=frozenset(map(str, cfg["ciphers"]["iana"])),
            tls_curves=frozenset(_MOZILLA_CURVE_TO_SECG.get(str(c), str(c))
                                 for c in cfg["tls_curves"]),
            server_preferred_order=bool(cfg["server_preferred_order"]))
    except (KeyError, TypeError) as e:
        raise ValueError(f"sslyze's Mozilla profile has no usable {level!r} level: {e!r}") \
            from None


def mozilla_compliance(obs: ObservedPolicy,
                       level: MozillaLevel = "intermediate") -> ComplianceVerdict:
    """``obs`` against sslyze's bundled Mozilla profile, checked the way sslyze's checker
    checks a scan: anything accepted beyond the profile is an issue (supporting fewer
    suites or curves is compliant)."""
    version, source, doc = sslyze_mozilla_profile()
    cfg = _mozilla_level(doc, level)
    issues: dict[str, str] = {}
    versions = [v for v in sorted(obs.versions, key=_version_rank)
                if _SSLYZE_VERSION.get(v, v) not in cfg.tls_versions]
    if versions:
        allowed_versions = sorted((_FROM_SSLYZE_VERSION.get(v, v) for v in cfg.tls_versions),
                                  key=_version_rank)
        issues["tls_versions"] = (f"{', '.join(map(protocol_label, versions))} accepted (the "
                                  "profile allows only "
                                  f"{', '.join(map(protocol_label, allowed_versions))})")
    extra13 = [s for s in obs.suites.get(TLS13, []) if s not in cfg.ciphersuites]
    if extra13:
        issues["ciphersuites"] = f"TLS 1.3 suites {', '.join(extra13)} accepted"
    legacy = [s for v, names in obs.suites.items() if v != TLS13 for s in names]
    extra = [s for s in dict.fromkeys(legacy) if s not in cfg.ciphers_iana]
    if extra:
        issues["ciphers"] = f"suites {', '.join(map(suite_label, extra))} accepted"
    allowed = {_group_key(c) for c in cfg.tls_curves}
    seen = list(dict.fromkeys(_group_key(g) for g in
                              (obs.groups_tls13 or []) + (obs.groups_tls12 or [])))
    curves = [g for g in seen if _is_curve(g)]
    extra_curves = [g for g in curves if g not in allowed]
    if extra_curves:
        issues["tls_curves"] = f"curves {', '.join(extra_curves)} accepted"
    notes: list[str] = []
    others = [g for g in seen if not _is_curve(g)]
    if others:
        notes.append(f"not judged (sslyze's checker covers elliptic curves only): "
                     f"{', '.join(others)}")
    if obs.groups_tls13 is None and obs.groups_tls12 is None:
        notes.append("groups were not determined: curves not checked")
    enforced = [v for v, on in obs.server_order.items() if on]
    if cfg.server_preferred_order and obs.server_order and not enforced:
        notes.append("the profile recommends server cipher order; the server follows the "
                     "client's (sslyze's checker does not judge order)")
    return ComplianceVerdict(level, "offline", not issues, issues, version, source,
                             _LIVE_ONLY_CHECKS, tuple(notes))


def _is_curve(name: str) -> bool:
    g = _group_info(name)
    return g is not None and g.kind == "ecdhe"
