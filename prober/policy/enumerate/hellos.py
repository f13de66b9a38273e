"""The hellos a policy scan builds its probes on, as compiled profile templates (so each
probe runs as a normal attempt): one version with exactly the suites and groups asked
for, and TLS 1.3 + 1.2. What a probe then changes on one of them (padding, GREASE, an
extension, the fallback SCSV...) comes from :mod:`prober.profiles.variants`.
"""

from __future__ import annotations

from collections.abc import Sequence

from prober.profiles.compile import compile_hello
from prober.profiles.families import LEGACY_GROUPS, candidate_suites, legacy_doc, tls13_doc
from prober.wire.clienthello import HelloSpec

# brainpool too: a server whose only curves are those must not look ECDHE-less
ELIMINATION_GROUPS_12 = [*LEGACY_GROUPS, "brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1"]


# suites are code points, never names: two registry entries may share a name
def hello(version: str, suites: Sequence[int], *, groups: list[str] | None = None,
          key_shares: list[str] | None = None) -> HelloSpec:
    """A hello offering exactly ``version`` (as the highest) and ``suites``."""
    if version == "TLSv1.3":
        return compile_hello(tls13_doc(suites, groups=groups, key_shares=key_shares))
    return compile_hello(legacy_doc(version, suites, groups or ELIMINATION_GROUPS_12))


def tls13_with_legacy(legacy: Sequence[int]) -> HelloSpec:
    """A TLS 1.3 + 1.2 hello (what every current client sends) whose only TLS 1.2 suites
    are ``legacy``: a TLS 1.2 server must answer it with TLS 1.2."""
    return compile_hello(tls13_doc(candidate_suites("TLSv1.3"), legacy=legacy))
