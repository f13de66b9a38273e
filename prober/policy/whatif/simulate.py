"""Predict one handshake from a client's hello and a candidate server policy, without I/O.

The rules are OpenSSL's (1.1.1 / 3.x), which s2n (AWS ELB) follows wherever a
catalog policy can tell them apart:

* the version is chosen first (highest common one from supported_versions, else
  min(legacy_version, policy max)); a suite or group that does not fit it fails the
  handshake, it never falls back to a lower version;
* server order may carry OpenSSL's ChaCha20 priority (``SSL_OP_PRIORITIZE_CHACHA``, on
  in HAProxy by default): when the first suite of the client's list that OpenSSL knows
  is a ChaCha20 suite, the server's ChaCha20 suites go first, in its order;
* TLS <= 1.2: the first suite, in server order or the client's, whose version range,
  key exchange (ECDHE needs a common EC group, RSA and authentication need the matching
  certificate) and signature algorithms fit;
* TLS 1.3: the suite by order, a key share the server accepts in the client's order,
  else a HelloRetryRequest for the first server group the client lists, else failure.

Every failure carries a reason in words an operator acts on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from prober.core.errors import InputError
from prober.policy.naming.catalog import NamedPolicy
from prober.wire import registry as reg
from prober.wire.buffer import Reader
from prober.wire.clienthello import HelloSpec, decode_key_share_client
from prober.wire.constants import TLS_FALLBACK_SCSV, ExtensionType

CertKind = Literal["rsa", "ecdsa", "both"]
CERT_KINDS: tuple[CertKind, ...] = ("rsa", "ecdsa", "both")

TLS13 = 0x0304
TLS12 = 0x0303
# what OpenSSL, BoringSSL, s2n, Go and SChannel all enable by default
DEFAULT_GROUPS = ("x25519", "secp256r1", "secp384r1")
DEFAULT_TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                        "TLS_CHACHA20_POLY1305_SHA256")
# the ECDSA certificate is assumed to be on P-256, as nearly every public one is
ECDSA_CURVE = 0x0017
_RSA_PSS_RSAE = (0x0804, 0x0805, 0x0806)


class CandidateError(InputError):
    """A policy that cannot be simulated; the message names what is missing."""


@dataclass(frozen=True)
class Candidate:
    """A policy as the simulator uses it: code points, the server's certificates and order."""

    name: str
    protocols: tuple[int, ...]  # newest first
    tls13_suites: tuple[int, ...]
    suites: tuple[int, ...]  # TLS <= 1.2, server preference order
    groups: tuple[int, ...]  # server preference order
    cert: CertKind = "rsa"
    server_order: bool = True
    chacha_priority: bool = False  # only with server_order
    # OpenSSL 3 refuses SHA-1 signatures below security level 0, which TLS 1.0/1.1 need
    sha1_signatures: bool = False
    assumptions: tuple[str, ...] = ()

    def describe(self) -> str:
        order = "server order" if self.server_order else "client order"
        if self.server_order and self.chacha_priority:
            order += " with ChaCha20 priority"
        cert = {"rsa": "RSA", "ecdsa": "ECDSA P-256", "both": "RSA + ECDSA P-256"}[self.cert]
        return (f"{version_range(self.protocols)}, {len(self.tls13_suites)} TLS 1.3 + "
                f"{len(self.suites)} TLS ≤1.2 suites, {order}, {cert} certificate")


@dataclass(frozen=True)
class Prediction:
    ok: bool
    version: str | None = None  # "TLSv1.2"; for a failure, the version it failed at
    suite: str | None = None  # IANA name
    group: str | None = None
    hrr: bool = False
    cert: str | None = None  # "RSA" / "ECDSA": the certificate the server would send
    reason: str = ""  # why it fails, empty when ok
    alert: str | None = None  # the alert OpenSSL would send

    @property
    def suite_openssl(self) -> str | None:
        return reg.suite_openssl_name(reg.suite_value(self.suite)) if self.suite else None

    def summary(self) -> str:
        if not self.ok:
            return self.reason
        parts = [self.version or "?", self.suite or "?"]
        if self.group:
            parts.append(self.group + (" after HRR" if self.hrr else ""))
        return " ".join(parts)


def _codes(kind: str, names: Iterable[str]) -> tuple[int, ...]:
    fn = {"suite": reg.suite_value, "group": reg.group_value, "version": reg.version_value}[kind]
    out: list[int] = []
    for n in names:
        try:
            v = fn(n)
        except KeyError:
            raise CandidateError(f"unknown {kind} {n!r}") from None
        if v not in out:
            out.append(v)
    return tuple(out)


def candidate(policy: NamedPolicy, cert: CertKind = "rsa", server_order: bool | None = None,
              chacha_priority: bool | None = None) -> Candidate:
    """The simulator's view of a catalog or file policy; unknowns are assumed and said so.
    ``server_order`` / ``chacha_priority``: None = what the policy says (a policy file may
    set ``chacha_priority: true``; no catalog documents it)."""
    notes: list[str] = []
    if policy.protocols is None:
        raise CandidateError(f"policy {policy.name!r} does not document its protocols "
                             f"(`prober catalog show {policy.name}`); write a policy file "
                             "with them (--policy FILE)")
    protocols = tuple(sorted(_codes("version", policy.protocols), reverse=True))
    if not protocols:
        raise CandidateError(f"policy {policy.name!r} enables no protocol")
    tls13: tuple[int, ...] = ()
    if TLS13 in protocols:
        if policy.tls13_suites is None:
            tls13 = _codes("suite", DEFAULT_TLS13_SUITES)
            notes.append("TLS 1.3 suites not documented: assumed "
                         + ", ".join(DEFAULT_TLS13_SUITES))
        else:
            tls13 = _codes("suite", policy.tls13_suites)
    suites: tuple[int, ...] = ()
    if any(v < TLS13 for v in protocols):
        if policy.suites is None:
            raise CandidateError(f"policy {policy.name!r} does not document its TLS ≤1.2 "
                                 f"cipher suites (`prober catalog show {policy.name}`); write "
                                 "a policy file with them (--policy FILE)")
        suites = _codes("suite", policy.suites)
    groups = _codes("group", policy.groups) if policy.groups is not None else ()
    if not groups:
        groups = _codes("group", DEFAULT_GROUPS)
        notes.append("groups not documented: assumed " + ", ".join(DEFAULT_GROUPS))
    elif not any(_classic(g) for g in groups):
        # catalogs that name only their post-quantum groups still offer classic ECDHE
        groups += tuple(g for g in _codes("group", DEFAULT_GROUPS) if g not in groups)
        notes.append("only post-quantum groups documented: also assumed "
                     + ", ".join(DEFAULT_GROUPS))
    if server_order is None:
        server_order = bool(policy.raw.get("server_preferred_order", policy.order_is_priority))
    if chacha_priority is None:
        chacha_priority = bool(policy.raw.get("chacha_priority", False))
    sha1 = min(protocols) < TLS12
    if not sha1:
        notes.append("SHA-1 signatures refused, as by OpenSSL 3 at its default security level")
    if any((cs := reg.suite(s)) is not None and cs.kx == "DHE" for s in suites):
        notes.append("DHE suites usable (the server has DH parameters)")
    return Candidate(policy.name, protocols, tls13, suites, groups, cert, server_order,
                     chacha_priority and server_order, sha1, tuple(notes))


def measured(policy: dict[str, Any], name: str) -> Candidate:
    """The simulator's view of a policy as `prober policy` measured it (the JSON of an
    ObservedPolicy): what the endpoint accepts today, with its own certificate type(s)."""
    notes: list[str] = []
    # SSLv2 has its own cipher specs, which the simulator does not model: the rest of the
    # policy is still today's, so the endpoint is assessed on it rather than skipped
    versions = [str(v) for v in policy.get("versions") or [] if v != "SSLv2"]
    if "SSLv2" in (policy.get("versions") or []):
        notes.append("SSLv2 accepted: not simulated")
    if not versions:
        raise CandidateError(f"{name}: the measured policy accepts no version")
    protocols = tuple(sorted(_codes("version", versions), reverse=True))
    per_version = policy.get("suites") or {}
    tls13 = _codes("suite", per_version.get("TLSv1.3") or [])
    if TLS13 in protocols and not tls13:
        tls13 = _codes("suite", DEFAULT_TLS13_SUITES)
        notes.append("TLS 1.3 suites not measured: assumed " + ", ".join(DEFAULT_TLS13_SUITES))
    # one list for every version below 1.3, as OpenSSL holds it: the newest version's
    # order first, then what only older versions accept
    suites = _codes("suite", [s for v in versions if v != "TLSv1.3"
                              for s in per_version.get(v) or []])
    groups_seen = policy.get("groups_tls13") or policy.get("groups_tls12") or []
    groups = _codes("group", groups_seen)
    if not groups:
        groups = _codes("group", DEFAULT_GROUPS)
        notes.append("groups not measured: assumed " + ", ".join(DEFAULT_GROUPS))
    # "RSA 2048", "ECDSA P-256" (ObservedPolicy.certificates)
    kinds = {w[0].upper() for c in policy.get("certificates") or [] if (w := str(c).split())}
    cert: CertKind = ("both" if {"RSA", "ECDSA"} <= kinds else
                      "ecdsa" if "ECDSA" in kinds else "rsa")
    if not kinds:
        notes.append("certificate type not measured: assumed RSA")
    orders = [o for o in (policy.get("server_order") or {}).values() if o is not None]
    server_order = any(orders) if orders else True
    chacha = any(bool(c) for c in (policy.get("chacha_priority") or {}).values())
    return Candidate(name, protocols, tls13, suites, groups, cert, server_order,
                     chacha and server_order, min(protocols) < TLS12, tuple(notes))


def _classic(group: int) -> bool:
    g = reg.group(group)
    return g is not None and g.kind in ("ecdhe", "ffdhe")


def _tls12_ec_group(group: int) -> bool:
    # the EC groups usable for TLS <= 1.2 ECDHE: code points 1-30 (sect*, secp*,
    # brainpool*r1, x25519, x448); later EC code points are TLS 1.3 only
    return 1 <= group <= 30


def _tls13_group(group: int) -> bool:
    g = reg.group(group)
    return g is not None and g.tls13_usable


def version_range(versions: Iterable[int]) -> str:
    """'TLSv1.2–1.3', 'TLSv1.2 only', 'TLSv1.0, TLSv1.2' (a gap)."""
    vs = sorted(set(versions))
    if not vs:
        return "none"
    if len(vs) == 1:
        return f"{reg.version_name(vs[0])} only"
    known = [v for v in sorted(reg.VERSION_NAMES) if v >= 0x0300]  # SSLv2 is no neighbour
    if all(v in known for v in vs) and known.index(vs[-1]) - known.index(vs[0]) == len(vs) - 1:
        lo, hi = reg.version_name(vs[0]), reg.version_name(vs[-1])
        if lo.startswith("TLSv") and hi.startswith("TLSv"):
            hi = hi[len("TLSv"):]
        return f"{lo}–{hi}"
    return ", ".join(reg.version_name(v) for v in vs)


def _names(values: Iterable[int], limit: int = 3) -> str:
    names = [reg.suite_openssl_name(v) or reg.suite_name(v) for v in values]
    if len(names) == 1:
        return f"{names[0]} only"
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _group_names(values: Iterable[int], limit: int = 4) -> str:
    names = [reg.group_name(v) for v in values]
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more if names else "none"


def _u16_list(spec: HelloSpec, ext: int) -> list[int] | None:
    e = spec.ext(ext)
    return None if e is None else Reader(e.body).pull_list(2, 2)


@dataclass
class _Client:
    """What the server reads from a hello."""

    versions: list[int]
    supported_versions: bool
    suites: list[int]
    groups: list[int] | None  # None = no supported_groups extension
    key_shares: list[int] | None
    sigalgs: list[int] | None
    point_formats: list[int] | None
    null_compression: bool
    fallback_scsv: bool
    suite_set: set[int] = field(default_factory=set)
    # the first suite OpenSSL would read from the list (it skips code points it does not
    # know, GREASE and SCSVs; OpenSSL 3's own suites stand for what it knows): what its
    # ChaCha20 priority looks at
    first_known: int | None = None

    @classmethod
    def read(cls, spec: HelloSpec) -> _Client:
        ks = spec.ext(ExtensionType.KEY_SHARE)
        shares = None
        if ks is not None:
            shares = ([s.group for s in ks.key_shares] if ks.key_shares is not None
                      else [g for g, _ in decode_key_share_client(ks.body)])
        pf = spec.ext(ExtensionType.EC_POINT_FORMATS)
        suites = [s for s in spec.offered_suites() if not reg.is_grease(s)]
        return cls(
            versions=spec.offered_versions(),
            supported_versions=spec.ext(ExtensionType.SUPPORTED_VERSIONS) is not None,
            suites=suites,
            groups=None if spec.ext(ExtensionType.SUPPORTED_GROUPS) is None
            else [g for g in spec.offered_groups() if not reg.is_grease(g)],
            key_shares=None if shares is None else [g for g in shares if not reg.is_grease(g)],
            sigalgs=_u16_list(spec, ExtensionType.SIGNATURE_ALGORITHMS),
            point_formats=None if pf is None else Reader(pf.body).pull_list(1, 1),
            null_compression=0 in spec.offered_compression(),
            fallback_scsv=TLS_FALLBACK_SCSV in spec.cipher_suites,
            suite_set=set(suites),
            first_known=next((s for s in suites if (cs := reg.suite(s)) is not None
                              and not cs.scsv and cs.openssl_builtin), None),
        )


def predict(spec: HelloSpec, cand: Candidate) -> Prediction:
    """How a server running ``cand`` answers the hello ``spec``."""
    c = _Client.read(spec)
    version, why = _choose_version(c, cand)
    if version is None:
        return Prediction(False, reason=why, alert=_version_alert(c))
    vname = reg.version_name(version)
    if c.fallback_scsv and version < cand.protocols[0]:
        return Prediction(False, vname, alert="inappropriate_fallback",
                          reason=f"TLS_FALLBACK_SCSV at {vname} while the policy allows "
                                 f"{reg.version_name(cand.protocols[0])}")
    if not c.null_compression:
        return Prediction(False, vname, alert="decode_error",
                          reason="the client offers no null compression")
    if version == TLS13:
        return _tls13(c, cand)
    return _tls12(c, cand, version)


def _choose_version(c: _Client, cand: Candidate) -> tuple[int | None, str]:
    enabled = set(cand.protocols)
    if c.supported_versions:
        common = [v for v in c.versions if v in enabled]
        if common:
            return max(common), ""
    else:
        # without supported_versions the client's maximum is legacy_version, capped at 1.2,
        # and the server answers with its highest version not above it
        top = max(c.versions, default=0)
        below = [v for v in cand.protocols if v <= min(top, TLS12)]
        if below:
            return max(below), ""
    offered = [v for v in c.versions if v in reg.VERSION_NAMES]
    policy = version_range(cand.protocols)
    if not offered:
        return None, f"no common protocol: client offers no known version, policy {policy}"
    if max(offered) < min(cand.protocols):
        return None, (f"no common protocol: client max {reg.version_name(max(offered))}, "
                      f"policy {policy}")
    return None, f"no common protocol: client offers {version_range(offered)}, policy {policy}"


def _version_alert(c: _Client) -> str:
    # OpenSSL built without SSLv3 answers an SSLv3 hello with handshake_failure
    return "handshake_failure" if max(c.versions, default=0) == 0x0300 else "protocol_version"


def _chacha(suite: int) -> bool:
    cs = reg.suite(suite)
    return cs is not None and cs.enc == "CHACHA20"


def _order(c: _Client, cand: Candidate, server: tuple[int, ...]) -> tuple[int, ...]:
    """The list the server walks: its own (``server``, the version's suites), ChaCha20
    first when its priority applies, or the client's."""
    if not cand.server_order:
        return tuple(c.suites)
    if cand.chacha_priority and c.first_known is not None and _chacha(c.first_known):
        return (*(s for s in server if _chacha(s)), *(s for s in server if not _chacha(s)))
    return server


# --- TLS 1.3 ---------------------------------------------------------------------------


def _tls13(c: _Client, cand: Candidate) -> Prediction:
    v = "TLSv1.3"
    order = _order(c, cand, cand.tls13_suites)
    common = [s for s in order if s in c.suite_set and s in cand.tls13_suites]
    if not common:
        offered = [s for s in c.suites if (cs := reg.suite(s)) is not None and cs.tls13]
        what = _names(offered) if offered else "none"
        return Prediction(False, v, alert="handshake_failure",
                          reason=f"no common TLS 1.3 cipher suite: client offers {what}, "
                                 f"policy {_names(cand.tls13_suites)}")
    suite = reg.suite_name(common[0])
    for ext, have in (("supported_groups", c.groups), ("key_share", c.key_shares),
                      ("signature_algorithms", c.sigalgs)):
        if have is None:
            return Prediction(False, v, suite, alert="missing_extension",
                              reason=f"TLS 1.3 needs the {ext} extension; the client sent none")
    assert c.groups is not None and c.key_shares is not None and c.sigalgs is not None
    stray = [g for g in c.key_shares if g not in c.groups]
    if stray:
        return Prediction(False, v, suite, alert="illegal_parameter",
                          reason=f"key share for {reg.group_name(stray[0])}, a group the "
                                 "client does not list in supported_groups")
    server_groups = [g for g in cand.groups if _tls13_group(g)]
    share = next((g for g in c.key_shares if g in server_groups), None)
    hrr = False
    if share is None:
        share = next((g for g in server_groups if g in c.groups), None)
        hrr = share is not None
    if share is None:
        return Prediction(False, v, suite, alert="handshake_failure",
                          reason=f"no common group: client offers {_group_names(c.groups)}, "
                                 f"policy {_group_names(server_groups)}")
    cert = _tls13_cert(c.sigalgs, cand)
    if cert is None:
        return Prediction(False, v, suite, reg.group_name(share), hrr, alert="handshake_failure",
                          reason=_no_sigalg(cand.cert, c.sigalgs, tls13=True))
    return Prediction(True, v, suite, reg.group_name(share), hrr, cert)


def _tls13_cert(sigalgs: list[int], cand: Candidate) -> str | None:
    usable: dict[int, str] = {}
    if cand.cert in ("rsa", "both"):
        usable.update(dict.fromkeys(_RSA_PSS_RSAE, "RSA"))
    if cand.cert in ("ecdsa", "both"):
        usable[0x0403] = "ECDSA"
    # OpenSSL walks the shared list in its own order (ECDSA first) under server
    # preference, else in the client's order
    server_pref = [0x0403, *_RSA_PSS_RSAE]
    order = [s for s in server_pref if s in sigalgs] if cand.server_order else sigalgs
    return next((usable[s] for s in order if s in usable), None)


def _no_sigalg(cert: CertKind, sigalgs: list[int], tls13: bool) -> str:
    kind = {"rsa": "RSA", "ecdsa": "ECDSA", "both": "RSA or ECDSA"}[cert]
    offered = ", ".join(reg.sig_name(s) for s in sigalgs[:4]) or "none"
    more = f" (+{len(sigalgs) - 4} more)" if len(sigalgs) > 4 else ""
    need = ("rsa_pss_rsae_* / ecdsa_secp256r1_sha256" if tls13
            else {"rsa": "rsa_*", "ecdsa": "ecdsa_*", "both": "rsa_* / ecdsa_*"}[cert])
    return (f"no signature algorithm for the {kind} certificate: client offers {offered}{more}"
            f" (needs {need})")


# --- TLS 1.0-1.2 -------------------------------------------------------------------------


def _tls12(c: _Client, cand: Candidate, version: int) -> Prediction:
    vname = reg.version_name(version)
    order = _order(c, cand, cand.suites)
    common = [s for s in order if s in c.suite_set and s in cand.suites]
    if not common:
        offered = [s for s in c.suites if (cs := reg.suite(s)) is not None and not cs.scsv
                   and not cs.tls13]
        what = _names(offered) if offered else "no TLS ≤1.2 suite"
        return Prediction(False, vname, alert="handshake_failure",
                          reason=f"no common cipher suite: client offers {what}")
    ecdhe_group = _ecdhe_group(c, cand)
    rejected: dict[str, list[int]] = {}
    for s in common:
        why = _suite_unusable(s, c, cand, version, ecdhe_group)
        if why is not None:
            rejected.setdefault(why, []).append(s)
            continue
        cs = reg.suite(s)
        assert cs is not None and cs.auth is not None
        group = reg.group_name(ecdhe_group) if cs.kx == "ECDHE" and ecdhe_group else None
        # OpenSSL skips ECDSA suites the client cannot verify, but picks an RSA suite by
        # the certificate alone and only then looks for a signature algorithm: none
        # fails the handshake, even when an ECDSA suite further down would have worked
        if not _can_sign(c, cand, version, cs.auth):
            return Prediction(False, vname, reg.suite_name(s), group, cert=cs.auth,
                              alert="handshake_failure", reason=_no_tls12_sig(c, cand, cs))
        return Prediction(True, vname, reg.suite_name(s), group, cert=cs.auth)
    parts = []
    for why, ss in rejected.items():
        names = _names(ss, 2).removesuffix(" only")
        parts.append(f"{names} {'needs' if len(ss) == 1 else 'need'} {why}")
    return Prediction(False, vname, alert="handshake_failure",
                      reason=f"no usable cipher suite at {vname}: " + "; ".join(parts))


def _ecdhe_group(c: _Client, cand: Candidate) -> int | None:
    if c.groups is None:
        # OpenSSL reads a missing supported_groups as "no curves" and skips ECDHE
        return None
    if c.point_formats is not None and 0 not in c.point_formats:
        return None
    server = [g for g in cand.groups if _tls12_ec_group(g)]
    client = [g for g in c.groups if _tls12_ec_group(g)]
    if cand.server_order:
        return next((g for g in server if g in client), None)
    return next((g for g in client if g in server), None)


def _suite_unusable(s: int, c: _Client, cand: Candidate, version: int,
                    ecdhe_group: int | None) -> str | None:
    """Why the server cannot pick suite ``s`` (None: it can)."""
    cs = reg.suite(s)
    if cs is None:
        return "a suite the simulator does not know"
    if reg.version_name(version) not in cs.tls_versions:
        return " or ".join(cs.tls_versions)
    if cs.auth == "RSA":
        if cand.cert == "ecdsa":
            return "an RSA certificate (the endpoint serves ECDSA)"
    elif cs.auth == "ECDSA":
        if cand.cert == "rsa":
            return "an ECDSA certificate (the endpoint serves RSA)"
        if c.groups is not None and ECDSA_CURVE not in c.groups:
            return "the certificate's curve secp256r1, absent from the client's groups"
        if not _can_sign(c, cand, version, "ECDSA"):
            return ("an ECDSA signature, which the client's signature_algorithms do not allow"
                    if c.sigalgs is not None else
                    "an ECDSA signature, and the client sent no signature_algorithms "
                    "(SHA-1, refused)")
    else:
        return f"a {cs.auth} certificate"
    if cs.kx not in ("ECDHE", "DHE", "RSA") or (cs.kx == "RSA" and cs.auth != "RSA"):
        return f"{cs.kx} key exchange, which the simulator does not model"
    if cs.kx == "ECDHE" and ecdhe_group is None:
        if c.groups is None:
            return "ECDHE, and the client sent no supported_groups"
        client = [g for g in c.groups if _tls12_ec_group(g)]
        return (f"a common ECDHE group: client offers {_group_names(client)}, "
                f"policy {_group_names(g for g in cand.groups if _tls12_ec_group(g))}")
    return None


def _weak(scheme: int) -> bool:
    # MD5 and SHA-1 hash/signature pairs (TLS 1.2 code points 0x01XX, 0x02XX)
    return scheme >> 8 in (0x01, 0x02)


def _can_sign(c: _Client, cand: Candidate, version: int, key: str) -> bool:
    """Whether the server may sign with its ``key`` certificate (TLS 1.2 rules)."""
    if version < TLS12:
        return True
    if c.sigalgs is None:
        # RFC 5246 7.4.1.4.1: no signature_algorithms means SHA-1 with the key's own type
        return cand.sha1_signatures
    low = 0x01 if key == "RSA" else 0x03
    return any((s & 0xFF == low or (key == "RSA" and s in _RSA_PSS_RSAE))
               and (cand.sha1_signatures or not _weak(s)) for s in c.sigalgs)


def _no_tls12_sig(c: _Client, cand: Candidate, cs: reg.CipherSuite) -> str:
    name = cs.openssl_name or cs.name
    if c.sigalgs is None:
        return (f"{name}: the client sent no signature_algorithms, which means SHA-1, and "
                "the server refuses SHA-1 signatures")
    sha1 = "" if cand.sha1_signatures else " (SHA-1 refused)"
    return f"{name}: " + _no_sigalg(cand.cert if cand.cert != "both" else (
        "rsa" if cs.auth == "RSA" else "ecdsa"), c.sigalgs, tls13=False) + sha1
