"""The hello variants of the plan, built as profiles (pure): the version sweep, the size
ladder and its bisection, the hello split over TLS records and TCP segments,
TLS_FALLBACK_SCSV; and the pure choices made from the results (the known-good reference,
the fallback versions, the bisection bounds). How each variant changes a hello is
:mod:`prober.profiles.variants`'s; which variants to send, and on what, is decided here.
"""

from __future__ import annotations

import copy
from itertools import pairwise
from typing import Any

from prober.core.outcome import Outcome
from prober.diagnose.findings import (
    LEGACY,
    STEP_RECORDS,
    STEP_SEGMENTS,
    SWEEP_ORDER,
    SWEEP_PROFILES,
    SWEEP_VERSIONS,
    Seen,
)
from prober.profiles import variants
from prober.profiles.model import Profile
from prober.wire import registry as reg
from prober.wire.clienthello import ExtSpec, HelloSpec, build
from prober.wire.constants import ExtensionType

SANITY = "sanity"
KNOWN_GOOD = "known-good"
# size ladder: wire sizes of the padded rungs; 1800 is a Chrome-like X25519MLKEM768 hello
LADDER = (600, 1300, 1800, 4000)
PQ_RUNG = 1800
# a TCP segment split is only meaningful if the peer has to wait for the second part
SPLIT_PAUSE_MS = 200.0
# a version -> the sweep profile one below it
LOWER_VERSION = {SWEEP_VERSIONS[hi]: lo for lo, hi in pairwise(SWEEP_PROFILES)}


def sweep_profiles() -> list[Profile]:
    from prober.profiles.families import version_profile

    return [version_profile(n) for n in SWEEP_PROFILES]


def choose_reference(sweep: list[Seen]) -> tuple[str, str]:
    """(profile, why): the newest version the sweep got a full handshake with, else the
    broad sanity hello (which is what the variants are then built on)."""
    for prof in reversed(SWEEP_PROFILES):
        atts = [a for a in sweep if a.profile == prof]
        ok = sum(1 for a in atts if a.outcome == Outcome.OK)
        if atts and ok * 2 >= len(atts) and ok:
            return prof, f"the newest version the sweep succeeded with ({ok}/{len(atts)})"
    return SANITY, "no version of the sweep succeeded: the broad sanity hello is used"


def small_spec(spec: HelloSpec, suite: int | None) -> HelloSpec:
    """The reference hello cut down to the suite the server chose: the ladder's first rung."""
    if suite is not None and suite in spec.cipher_suites and len(spec.cipher_suites) > 2:
        return variants.with_suites(spec, [suite])
    return copy.deepcopy(spec)


def size_profiles(ref: Profile, suite: int | None, sni: str | None
                  ) -> list[tuple[Profile, dict[str, Any]]]:
    """The size ladder: small, ~600 B, ~1.3 kB, X25519MLKEM768 ~1.8 kB, 4 kB."""
    if ref.spec.sslv2 or ref.spec.extensions is None:
        return []  # SSLv2/SSLv3-style hellos have no extensions to pad with
    small = small_spec(ref.spec, suite)
    base = len(build(small, sni).records())
    out = [(Profile(name="size:small", spec=small, sni=ref.sni), {"size_target": base})]
    for to in LADDER:
        if to <= base:
            continue
        spec = variants.padded(small, to)
        meta: dict[str, Any] = {"size_target": to}
        if to == PQ_RUNG:
            pq = variants.with_pq_key_share(small)
            meta["pq"] = pq is not None
            if pq is not None:
                spec = variants.padded(pq, to)
        out.append((Profile(name=f"size:{to}", spec=spec, sni=ref.sni), meta))
    return out


def bisect_profile(ref: Profile, suite: int | None, to: int) -> Profile:
    return Profile(name=f"size:{to}", spec=variants.padded(small_spec(ref.spec, suite), to),
                   sni=ref.sni)


def split_profiles(ref: Profile, sni: str | None) -> list[tuple[str, Profile, dict[str, Any]]]:
    if ref.spec.sslv2:
        return []
    sni = ref.sni.resolve(sni)
    records = variants.split_over_records(ref.spec, sni)
    segments = variants.split_over_segments(ref.spec, sni, SPLIT_PAUSE_MS)
    return [
        (STEP_RECORDS, Profile(name="records:split", spec=ref.spec, sni=ref.sni,
                               transport=records),
         {"record_sizes": records.record_sizes}),
        (STEP_SEGMENTS, Profile(name="segments:split", spec=ref.spec, sni=ref.sni,
                                transport=segments),
         {"segment_sizes": segments.segment_sizes, "pause_ms": segments.pause_ms}),
    ]


def intolerance_profile(ref: Profile, version: str) -> Profile | None:
    """The known-good hello of ``version`` (TLS 1.2 or older, which carries no
    supported_versions) with a supported_versions extension naming that version alone:
    any server takes it as it takes the plain one, an intolerant one does not."""
    if ref.spec.sslv2 or ref.spec.extensions is None or \
            ref.spec.ext(ExtensionType.SUPPORTED_VERSIONS) is not None:
        return None
    value = reg.version_value(version)
    ext = ExtSpec(ExtensionType.SUPPORTED_VERSIONS, bytes([2]) + value.to_bytes(2, "big"))
    return Profile(name="supported-versions", spec=variants.with_extension(ref.spec, ext),
                   sni=ref.sni, origin="generated",
                   description=f"{version} hello with supported_versions [{version}]")


def fallback_profile(version: str, name: str = "fallback-scsv") -> Profile:
    """``version`` (TLSv1.x, SSLv3) with TLS_FALLBACK_SCSV, as a client retrying lower does."""
    from prober.profiles.families import VERSION_PROFILES, version_profile

    spec = variants.with_fallback_scsv(version_profile(VERSION_PROFILES[version]).spec)
    return Profile(name=name, spec=spec, origin="generated",
                   description=f"{version} with TLS_FALLBACK_SCSV")


def fallback_versions(accepted: list[str]) -> list[tuple[str, str]]:
    """(profile name, version) of the TLS_FALLBACK_SCSV probes for the versions accepted.

    One below the newest (what a client retrying once sends), and every legacy version
    (TLS 1.1 and older) the server still accepts: refusing a fallback to a version the
    server does accept is what a client that had to retry runs into.
    """
    newest = _newest(accepted)
    if newest is None or newest not in LOWER_VERSION:
        return []
    below = SWEEP_VERSIONS[LOWER_VERSION[newest]]
    out = [("fallback-scsv", below)]
    for v in LEGACY:
        if v in accepted and v != below and v != newest:
            out.append((f"fallback-scsv@{v}", v))
    return out


def size_gaps(rungs: list[Seen], limit: int = 3) -> list[tuple[int, int]]:
    """(smaller, larger) hello sizes of neighbouring rungs whose fate differs, smallest
    first: each is a boundary to bisect. No assumption that failing is monotonic in
    size: a window of sizes that fail has a boundary on each side."""
    conn = sorted((a for a in rungs if a.connected), key=lambda a: a.hello_bytes)
    out: list[tuple[int, int]] = []
    for a, b in pairwise(conn):
        if a.answered != b.answered and b.hello_bytes > a.hello_bytes:
            out.append((a.hello_bytes, b.hello_bytes))
    return out[:limit]


def size_runs(rungs: list[Seen]) -> list[tuple[bool, list[Seen]]]:
    """The rungs by size, grouped into runs of the same fate: (answered, attempts)."""
    conn = sorted((a for a in rungs if a.connected), key=lambda a: a.hello_bytes)
    runs: list[tuple[bool, list[Seen]]] = []
    for a in conn:
        if runs and runs[-1][0] == a.answered:
            runs[-1][1].append(a)
        else:
            runs.append((a.answered, [a]))
    return runs


def bisect_bounds(rungs: list[Seen]) -> tuple[int, int] | None:
    """(largest passing, smallest failing) hello size when the ladder shows a threshold."""
    conn = [a for a in rungs if a.connected]
    ok = [a.hello_bytes for a in conn if a.answered]
    bad = [a.hello_bytes for a in conn if not a.answered]
    if not ok or not bad or max(ok) >= min(bad):
        return None
    return max(ok), min(bad)


def _newest(versions: list[str]) -> str | None:
    known = [v for v in versions if v in SWEEP_ORDER]
    return max(known, key=SWEEP_ORDER.index) if known else None
