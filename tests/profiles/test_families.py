"""The sanity hello policy and diagnose both send: broad, and short enough that a server
intolerant of more than 128 suites still answers it."""

from __future__ import annotations

from prober.profiles import families


def test_sanity_hello_is_broad_and_within_128_suites() -> None:
    spec = families.sanity_profile("sanity").spec
    assert len(spec.cipher_suites) <= 128
    assert [hex(v) for v in spec.offered_versions()] == ["0x304", "0x303", "0x302", "0x301"]
    for version in ("TLSv1.3", "TLSv1.2", "TLSv1.0"):
        strongest = families.candidate_suites(version)[0]
        assert strongest in spec.cipher_suites, version
