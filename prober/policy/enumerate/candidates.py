"""What a policy scan offers: candidate suites per version (in bundles), candidate groups,
and the strength notes of a suite. Pure functions over the registries."""

from __future__ import annotations

from functools import cache

from prober.policy.model import VERSION_ORDER
from prober.profiles.families import candidate_suites
from prober.wire import registry as reg

# newest first, between TLS 1.3 (suites of its own) and SSLv2 (cipher specs, not suites)
LEGACY_VERSIONS = VERSION_ORDER[1:-1]
# some servers and middleboxes fail hellos with more than 128 suites
BUNDLE_CAP = 128
# the key exchanges nearly every deployed server uses; their suites go in the first
# bundle, so the usual policy is enumerated in one bundle and needs no merge
_COMMON_KX = {"ECDHE", "DHE", "RSA"}

RSA_SIGALGS = ["rsa_pss_rsae_sha256", "rsa_pss_rsae_sha384", "rsa_pss_rsae_sha512",
               "rsa_pkcs1_sha256", "rsa_pkcs1_sha384", "rsa_pkcs1_sha512"]
ECDSA_SIGALGS = ["ecdsa_secp256r1_sha256", "ecdsa_secp384r1_sha384", "ecdsa_secp521r1_sha512"]


@cache
def bundles(version: str, cap: int = BUNDLE_CAP) -> tuple[tuple[int, ...], ...]:
    """The candidates of ``version`` cut into hellos of at most ``cap`` suites, the
    commonly deployed key exchanges first: bundle 0 alone holds what nearly every server
    accepts, so the others usually cost one refused hello each and no merge."""
    cands = candidate_suites(version)
    common = [v for v in cands if _kx(v) in _COMMON_KX]
    rare = [v for v in cands if _kx(v) not in _COMMON_KX]
    out: list[tuple[int, ...]] = []
    for part in (common, rare):
        out += [tuple(part[i:i + cap]) for i in range(0, len(part), cap)]
    # fold a small tail into the bundle before it when both fit one hello
    merged: list[tuple[int, ...]] = []
    for b in out:
        if merged and len(merged[-1]) + len(b) <= cap:
            merged[-1] = merged[-1] + b
        else:
            merged.append(b)
    return tuple(merged)


def _kx(value: int) -> str:
    cs = reg.suite(value)
    return (cs.kx or "") if cs else ""


def candidate_index(version: str) -> dict[int, int]:
    """Position of each candidate in the canonical (strongest-first) order."""
    return {v: i for i, v in enumerate(candidate_suites(version))}


@cache
def tls13_groups() -> tuple[str, ...]:
    """Every group a TLS 1.3 server could select (named in supported_groups)."""
    return tuple(g.name for g in reg.all_groups() if g.tls13_usable)


@cache
def tls12_ecdhe_groups() -> tuple[str, ...]:
    """Every elliptic curve a TLS 1.2 ECDHE server could select."""
    return tuple(g.name for g in reg.all_groups() if g.kind == "ecdhe" and g.value <= 0x1E)


def is_ecdhe(value: int) -> bool:
    return _kx(value) == "ECDHE"


def is_chacha(value: int) -> bool:
    cs = reg.suite(value)
    return cs is not None and cs.enc == "CHACHA20"


# A known, non-ChaCha20 suite that cannot be negotiated at the hello's version: put first
# in a hello that compares two suites when the first of them is ChaCha20. OpenSSL's
# ChaCha20 priority looks at the first suite of the client's list that it knows, whatever
# its version; the decoy keeps that from deciding a question about plain order.
_DECOY = {"TLSv1.3": 0xC02F, "TLSv1.2": 0x1301}


def neutral(version: str, suites: list[int]) -> list[int]:
    """``suites`` as offered in a preference comparison: a decoy first when the first is
    ChaCha20 and something else follows (TLS 1.2 and 1.3 have ChaCha20 suites)."""
    if version in _DECOY and len(suites) > 1 and is_chacha(suites[0]) and \
            not all(is_chacha(s) for s in suites):
        return [_DECOY[version], *suites]
    return list(suites)


def auth_of(value: int) -> str | None:
    cs = reg.suite(value)
    return cs.auth if cs else None


def strength_notes(value: int, version: str) -> list[str]:
    """Why a suite is weak, in the words operators search for (empty: nothing to say)."""
    cs = reg.suite(value) if version != "SSLv2" else reg.sslv2_spec(value)
    if cs is None:
        return ["unknown suite"]
    if version == "SSLv2":
        return ["SSLv2"]
    notes: list[str] = []
    kx, auth, enc = cs.kx or "", cs.auth or "", cs.enc or ""
    name = cs.name
    if "EXPORT" in kx or "EXPORT" in name:
        notes.append("export")
    if enc in ("NULL", "None") or "_NULL_" in name:
        notes.append("NULL")
    if auth == "anon":
        notes.append("anon")
    if enc == "RC4":
        notes.append("RC4")
    if enc in ("3DES", "DES", "RC2", "IDEA"):
        notes.append(enc if enc != "3DES" else "3DES")
    if version != "TLSv1.3" and not cs.aead and name.endswith("_SHA") and enc not in (
            "NULL", "RC4"):
        notes.append("CBC-SHA1")
    if name.endswith("_MD5"):
        notes.append("MD5")
    if version != "TLSv1.3" and not cs.forward_secret and auth != "anon":
        notes.append("no FS")
    return notes


def suite_label(value: int, version: str) -> tuple[str, str]:
    """(IANA name, OpenSSL name) of a suite; SSLv2 cipher specs have their own registry."""
    if version == "SSLv2":
        spec = reg.sslv2_spec(value)
        return (spec.name if spec else f"0x{value:06X}",
                (spec.openssl_name or "") if spec else "")
    return reg.suite_name(value), reg.suite_openssl_name(value) or ""
