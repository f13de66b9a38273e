"""Which catalog policy an endpoint is, how far it is from the nearest ones, and how it
compares with sslyze's Mozilla profile.

Equality (``match_catalog``) is over what a client can observe: the accepted protocol
versions, the set of TLS <= 1.2 suites, the set of TLS 1.3 suites, and the groups where
both sides know them. Suite *order* never decides a match: where the catalog says its
order is the priority and the server enforces its own order, the agreement is reported
next to the match.

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
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from prober.policy.model import VERSION_ORDER, ObservedPolicy
from prober.policy.naming.catalog import NamedPolicy, all_policies
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
    return _Shape(p.name, protocols, suites, tls13, frozenset(scopes), groups)


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
    return _Shape(name, protocols, suites, tls13, frozenset(groups), groups)


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
    groups: Delta | None = None
    if scopes:
        def union(s: _Shape) -> list[str]:
            return list(dict.fromkeys(g for sc in ("tls13", "tls12") if sc in scopes
                                      for g in s.groups[sc]))
        groups = _delta(union(a), union(b))
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
    same three words or why it was not compared; ``detail``: the first disagreement."""

    status: str
    versions: dict[str, str]
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "versions": dict(self.versions), "detail": self.detail}


def order_check(obs: ObservedPolicy, policy: NamedPolicy) -> OrderCheck:
    versions: dict[str, str] = {}
    details: list[str] = []
    for v in sorted(obs.versions, key=_version_rank):
        ref = policy.tls13_suites if v == TLS13 else policy.suites
        enforced = obs.server_order.get(v)
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
            theirs = [s for s in ref if s in set(mine)]
            if len(mine) < 2:
                versions[v] = "not compared: fewer than two suites in common"
            elif mine == theirs:
                versions[v] = "same"
            else:
                versions[v] = "differs"
                i = next(i for i, (x, y) in enumerate(zip(mine, theirs, strict=True)) if x != y)
                name = suite_label if v != TLS13 else str
                details.append(f"{protocol_label(v)}: the server puts {name(mine[i])} before "
                               f"{name(theirs[i])}, the catalog the other way round")
    words = set(versions.values())
    status = "differs" if "differs" in words else "same" if "same" in words else "not-compared"
    return OrderCheck(status, versions, "; ".join(details))


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


@dataclass(frozen=True)
class MatchEntry:
    policy: PolicyRef
    order: OrderCheck
    groups_compared: bool

    def to_json(self) -> dict[str, Any]:
        return {**self.policy.to_json(), "order": self.order.to_json(),
                "groups_compared": self.groups_compared}


@dataclass(frozen=True)
class NearEntry:
    """One or more catalog policies with identical content, at ``diff.distance``."""

    policies: tuple[PolicyRef, ...]
    diff: PolicyDiff

    @property
    def distance(self) -> int:
        return self.diff.distance

    def text(self) -> str:
        head, *others = self.policies
        also = f" (also {', '.join(p.label() for p in others)})" if others else ""
        return f"{head.label()} {self.diff.words()}{also}"

    def to_json(self) -> dict[str, Any]:
        return {"policies": [p.to_json() for p in self.policies], "distance": self.distance,
                "difference": self.diff.to_json(), "text": self.text()}


def _names(refs: Iterable[PolicyRef]) -> str:
    return ", ".join(r.label() for r in refs)


@dataclass(frozen=True)
class CatalogVerdict:
    matches: tuple[MatchEntry, ...]
    nearest: tuple[NearEntry, ...]
    consistent: tuple[PolicyRef, ...]
    compared: int
    skipped: tuple[str, ...]

    @property
    def matched(self) -> bool:
        return bool(self.matches)

    @property
    def rests_on_undocumented(self) -> bool:
        """A match was found, but only on entries that are not ``documented``."""
        return self.matched and not any(m.policy.documented for m in self.matches)

    def text(self) -> str:
        if self.matches:
            out = "equals " + _names(m.policy for m in self.matches)
            differs = [m.policy.name for m in self.matches if m.order.status == "differs"]
            if differs:
                out += f"; server order differs from {', '.join(differs)}"
            if self.rests_on_undocumented:
                out += "; rests only on non-documented catalog entries: treat it as a hint"
            return out
        if self.nearest:
            return ("no catalog policy equals it; nearest: "
                    + " | ".join(n.text() for n in self.nearest))
        return "no catalog policy to compare with"

    def to_json(self) -> dict[str, Any]:
        return {"matched": self.matched, "rests_on_undocumented": self.rests_on_undocumented,
                "matches": [m.to_json() for m in self.matches],
                "nearest": [n.to_json() for n in self.nearest],
                "consistent": [c.to_json() for c in self.consistent],
                "compared": self.compared, "skipped": list(self.skipped),
                "distance_metric": DISTANCE_METRIC, "text": self.text()}


def _sort_key(p: NamedPolicy) -> tuple[str, str]:
    return (p.provider, p.name)


def match_catalog(obs: ObservedPolicy, *, candidates: Iterable[NamedPolicy] | None = None,
                  nearest: int = 3) -> CatalogVerdict:
    """Every catalog policy equal to ``obs`` or, when none is, the ``nearest`` closest
    ones (identical catalog entries grouped into one near entry)."""
    pool = sorted(all_policies() if candidates is None else candidates, key=_sort_key)
    mine = _shape_observed(obs)
    matches: list[MatchEntry] = []
    consistent: list[PolicyRef] = []
    skipped: list[str] = []
    near: dict[str, tuple[list[NamedPolicy], PolicyDiff]] = {}
    for p in pool:
        if p.protocols is None:
            skipped.append(p.name)
            continue
        diff = _diff_shapes(mine, _shape_named(p))
        if not diff.complete:
            known = [d for d in (diff.protocols, diff.suites, diff.tls13_suites, diff.groups) if d]
            if all(d.empty for d in known):
                consistent.append(PolicyRef.of(p))
            continue
        if diff.equal:
            matches.append(MatchEntry(PolicyRef.of(p), order_check(obs, p),
                                      diff.groups is not None))
            continue
        # same difference from obs <=> same content on everything compared: aliases
        key = repr(sorted(diff.to_json().items()))
        near.setdefault(key, ([], diff))[0].append(p)
    ranked = sorted(near.values(), key=lambda e: (e[1].distance, *_sort_key(e[0][0])))
    nearest_entries = () if matches else tuple(
        NearEntry(tuple(PolicyRef.of(p) for p in ps), d) for ps, d in ranked[:max(0, nearest)])
    return CatalogVerdict(tuple(matches), nearest_entries, tuple(consistent),
                          len(pool) - len(skipped), tuple(skipped))


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
