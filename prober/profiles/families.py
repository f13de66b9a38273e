"""Generated profile families: one per protocol version, per cipher suite, per group.

Each family member is written as a profile document and compiled like a file, so
generated and hand-written profiles go through one path.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from prober.profiles.compile import ProfileError, compile_hello
from prober.profiles.model import Profile
from prober.wire import registry as reg
from prober.wire.clienthello import HelloSpec

# version -> the profile offering it alone ("TLSv1.2" -> "tls1.2-only"), oldest first
VERSION_PROFILES = {v: v.lower().replace("tlsv", "tls") + "-only" for v in reg.VERSIONS}
VERSION_FAMILY = tuple(VERSION_PROFILES.values())
# version profile name -> its version
PROFILE_VERSIONS = {p: v for v, p in VERSION_PROFILES.items()}
# supported_versions of a broad hello, newest first: SSL hellos have no extensions
BROAD_VERSIONS = tuple(v for v in reversed(reg.VERSIONS) if v.startswith("TLSv"))

# groups a broad client offers for ECDHE / FFDHE in TLS <= 1.2
LEGACY_GROUPS = ["x25519", "secp256r1", "secp384r1", "secp521r1", "x448",
                 "ffdhe2048", "ffdhe3072", "ffdhe4096"]
TLS13_GROUPS = ["x25519", "secp256r1", "secp384r1", "secp521r1", "x448",
                "X25519MLKEM768", "ffdhe2048", "ffdhe3072"]
SIGALGS = [
    "ecdsa_secp256r1_sha256", "ecdsa_secp384r1_sha384", "ecdsa_secp521r1_sha512",
    "ed25519", "ed448", "rsa_pss_rsae_sha256", "rsa_pss_rsae_sha384", "rsa_pss_rsae_sha512",
    "rsa_pss_pss_sha256", "rsa_pss_pss_sha384", "rsa_pss_pss_sha512",
    "rsa_pkcs1_sha256", "rsa_pkcs1_sha384", "rsa_pkcs1_sha512",
    "ecdsa_sha224", "rsa_sha224", "dsa_sha224", "dsa_sha256", "dsa_sha384", "dsa_sha512",
    "ecdsa_sha1", "rsa_pkcs1_sha1", "dsa_sha1",
]
TLS13_SIGALGS = SIGALGS[:14]

# the key exchanges and authentications a certificate-based server can negotiate
_KX = {"RSA", "ECDHE", "DHE", "ECDH", "DH", "RSA_EXPORT", "DHE_EXPORT", "RSA_EXPORT1024",
       "DHE_EXPORT1024", "DH_EXPORT", "ECDH_anon", "DH_anon"}
_AUTH = {"RSA", "ECDSA", "DSS", "anon"}
MAX_SWEEP_SUITES = 128


def _strength(c: reg.CipherSuite) -> tuple[bool, bool, int, int]:
    return (not c.forward_secret, not c.aead, -(c.enc_bits or 0), c.value)


def _version_suites(version: str, kx: tuple[str, ...] | None = None) -> list[str]:
    """Suites a server could choose at ``version``: strongest first, at most 128.

    Capped because some servers and middleboxes fail hellos with more than 128 suites,
    and a version probe must not be confused with that intolerance.
    """
    cands = [c for c in reg.all_suites()
             if version in c.tls_versions and c.openssl_name and not c.scsv
             and c.kx in _KX and c.auth in _AUTH and (kx is None or c.kx in kx)]
    cands.sort(key=_strength)
    return [c.name for c in cands[:MAX_SWEEP_SUITES]]


@cache
def candidate_suites(version: str) -> tuple[int, ...]:
    """Every registry suite a certificate-based or anonymous server could pick at
    ``version``, strongest first, uncapped (code points: two registry entries may share
    a name)."""
    if version == "TLSv1.3":
        return tuple(reg.suite_value(n) for n in tls13_suites())
    cands = [c for c in reg.all_suites()
             if version in c.tls_versions and not c.scsv and c.kx in _KX and c.auth in _AUTH]
    cands.sort(key=_strength)
    return tuple(c.value for c in cands)


def legacy_doc(version: str, suites: Sequence[str | int], groups: list[str] | None = None
               ) -> dict[str, Any]:
    """A TLS 1.0-1.2 (or SSLv3) hello offering ``suites``."""
    if version == "SSLv3":
        return {"record_version": "SSLv3", "version": "SSLv3",
                "cipher_suites": [*suites, "TLS_EMPTY_RENEGOTIATION_INFO_SCSV"],
                "extensions": None}
    exts: list[Any] = ["server_name", {"supported_groups": groups or LEGACY_GROUPS},
                       {"ec_point_formats": ["uncompressed"]}]
    if version == "TLSv1.2":
        exts.append({"signature_algorithms": SIGALGS})
    exts += ["renegotiation_info", "extended_master_secret", "session_ticket"]
    return {"record_version": "TLSv1.0", "version": version, "cipher_suites": list(suites),
            "extensions": exts}


def tls13_doc(suites: Sequence[str | int], groups: list[str] | None = None,
              key_shares: list[str] | None = None, legacy: Sequence[str | int] | None = None,
              versions: Sequence[str] | None = None) -> dict[str, Any]:
    """A TLS 1.3 hello; with ``legacy`` suites it also offers TLS 1.2 (or ``versions``)."""
    groups = groups or TLS13_GROUPS
    if key_shares is None:
        key_shares = [groups[0]]
    if versions is None:
        versions = ["TLSv1.3", "TLSv1.2"] if legacy else ["TLSv1.3"]
    exts: list[Any] = [
        "server_name",
        {"supported_groups": groups},
        {"ec_point_formats": ["uncompressed"]},
        {"signature_algorithms": TLS13_SIGALGS if not legacy else SIGALGS},
        "renegotiation_info",
        "extended_master_secret",
        {"supported_versions": list(versions)},
        {"psk_key_exchange_modes": ["psk_dhe_ke"]},
        {"key_share": key_shares},
    ]
    return {"record_version": "TLSv1.0", "version": "TLSv1.2",
            "cipher_suites": [*suites, *(legacy or [])], "extensions": exts}


def tls13_suites() -> list[str]:
    # the five RFC 8446 suites; SM4/AEGIS code points would make a plain probe exotic
    return [c.name for c in reg.all_suites() if 0x1301 <= c.value <= 0x1305]


# the sanity hello: this many of each legacy version's strongest suites
SANITY_SUITES_PER_VERSION = 60


def sanity_doc() -> dict[str, Any]:
    """The broad hello nearly every server answers, which policy and diagnose send first
    and last (an endpoint that dies or changes meanwhile shows up) and diagnose falls back
    to as its known-good reference: TLS 1.0-1.3, the strongest suites of TLS 1.2 and of
    TLS 1.0, at most 128 suites so that it does not trip the intolerance of longer lists.
    """
    legacy: list[int] = []
    for v in ("TLSv1.2", "TLSv1.0"):
        legacy += [s for s in candidate_suites(v)[:SANITY_SUITES_PER_VERSION]
                   if s not in legacy]
    tls13 = candidate_suites("TLSv1.3")
    return tls13_doc(tls13, legacy=legacy[:MAX_SWEEP_SUITES - len(tls13)],
                     versions=BROAD_VERSIONS)


def sanity_spec() -> HelloSpec:
    return compile_hello(sanity_doc())


def sanity_profile(name: str) -> Profile:
    return Profile(name=name, spec=sanity_spec(), origin="generated",
                   description="broad TLS 1.0-1.3 hello (the sanity probe)")


def version_profile(name: str) -> Profile:
    version = PROFILE_VERSIONS[name]
    if version == "SSLv2":
        specs = [f"0x{v:06X}" for v in sorted(reg.sslv2_specs())]
        doc: dict[str, Any] = {"sslv2": True, "version": "SSLv2", "cipher_suites": specs}
    elif version == "TLSv1.3":
        doc = tls13_doc(tls13_suites())
    else:
        doc = legacy_doc(version, _version_suites(version))
    return Profile(name=name, spec=compile_hello(doc), origin="generated",
                   description=f"offers {version} only, with every suite a server could pick",
                   tags=["sweep-versions"])


def cipher_profile(name: str) -> Profile:
    """``cipher:NAME`` or ``cipher:NAME@VERSION``: that one suite and nothing else."""
    arg = name.split(":", 1)[1]
    suite_arg, _, version_arg = arg.partition("@")
    try:
        value = reg.suite_value(suite_arg)
    except KeyError:
        raise ProfileError(f"profile {name!r}: unknown cipher suite {suite_arg!r}") from None
    cs = reg.suite(value)
    versions = list(cs.tls_versions) if cs else ["TLSv1.2"]
    if version_arg:
        try:
            version = reg.version_name(reg.version_value(version_arg))
        except KeyError:
            raise ProfileError(f"profile {name!r}: unknown version {version_arg!r}") from None
    else:
        version = "TLSv1.3" if "TLSv1.3" in versions else (
            "TLSv1.2" if "TLSv1.2" in versions or not versions else versions[-1])
    label = cs.name if cs else f"0x{value:04X}"
    if version == "TLSv1.3":
        doc = tls13_doc([label])
    else:
        doc = legacy_doc(version, [label])
    return Profile(name=name, spec=compile_hello(doc), origin="generated",
                   description=f"offers only {label} at {version}", tags=["sweep-ciphers"])


def group_profile(name: str) -> Profile:
    """``group:NAME``: a TLS 1.3 + 1.2 hello whose only group is NAME."""
    arg = name.split(":", 1)[1]
    try:
        value = reg.group_value(arg)
    except KeyError:
        raise ProfileError(f"profile {name!r}: unknown group {arg!r}") from None
    g = reg.group(value)
    gname = g.name if g else f"0x{value:04X}"
    kind = g.kind if g else ""
    legacy = [] if kind in ("pq_kem", "hybrid_pq") else _version_suites(
        "TLSv1.2", ("DHE",) if kind == "ffdhe" else ("ECDHE",))
    tls13 = g is None or g.tls13_usable
    if tls13:
        doc = tls13_doc(tls13_suites(), groups=[gname], key_shares=[gname], legacy=legacy or None)
    else:
        doc = legacy_doc("TLSv1.2", legacy, groups=[gname])
    return Profile(name=name, spec=compile_hello(doc), origin="generated",
                   description=f"offers only the group {gname}", tags=["sweep-groups"])


def sweep_cipher_names() -> list[str]:
    """``cipher:`` profiles for every suite a certificate-based server could pick."""
    names = [f"cipher:{c}" for c in tls13_suites()]
    seen = set()
    for version in reversed(reg.VERSIONS[1:-1]):  # TLS 1.2 down to SSLv3
        for c in _version_suites(version):
            if c not in seen:
                seen.add(c)
                names.append(f"cipher:{c}")
    return names


def generated(name: str) -> Profile | None:
    if name in VERSION_FAMILY:
        return version_profile(name)
    if name.startswith("cipher:"):
        return cipher_profile(name)
    if name.startswith("group:"):
        return group_profile(name)
    return None
