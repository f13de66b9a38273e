"""The hello-mutation kit policy and diagnose both build their variants with, on bytes:
each variant changes one thing, in place where the hello already has it, and never the
hello it started from."""

from __future__ import annotations

import copy

from prober.profiles import families, variants
from prober.wire import registry as reg
from prober.wire.buffer import Reader
from prober.wire.clienthello import ClientHello, HelloSpec, build, decode_key_share_client
from prober.wire.constants import TLS_FALLBACK_SCSV, ExtensionType


def _spec(name: str = "tls1.3-only") -> HelloSpec:
    p = families.generated(name)
    assert p is not None
    return p.spec


def _hello(spec: HelloSpec, sni: str | None = "shop.test") -> ClientHello:
    h = build(spec, sni).hello
    assert h is not None
    return h


def _types(spec: HelloSpec) -> list[int]:
    return [e.type for e in spec.extensions or ()]


def test_the_base_hello_is_never_changed() -> None:
    base = _spec()
    before = copy.deepcopy(base)
    for v in (variants.padded(base, 900), variants.greased(base), variants.many_suites(base),
              variants.with_fallback_scsv(base), variants.with_unknown_extension(base),
              variants.with_pq_key_share(base),
              variants.without_extension(base, ExtensionType.SUPPORTED_GROUPS),
              variants.with_extension(base, variants.extension("alpn", ["h2"]), first=True)):
        assert v is not None and v != base
    assert base == before


def test_with_extension_replaces_in_place_else_adds() -> None:
    base = _spec()
    sigalgs = variants.extension("signature_algorithms", ["rsa_pss_rsae_sha256"])
    replaced = variants.with_extension(base, sigalgs)
    assert _types(replaced) == _types(base)
    assert replaced.ext(ExtensionType.SIGNATURE_ALGORITHMS) == sigalgs
    alpn = variants.extension("alpn", ["h2", "http/1.1"])
    assert _types(variants.with_extension(base, alpn)) == [*_types(base), ExtensionType.ALPN]
    assert _types(variants.with_extension(base, alpn, first=True))[0] == ExtensionType.ALPN
    gone = variants.without_extension(base, ExtensionType.SUPPORTED_GROUPS)
    assert _types(gone) == [t for t in _types(base) if t != ExtensionType.SUPPORTED_GROUPS]
    # a hello without an extensions block (SSLv3) gets one
    sslv3 = _spec("sslv3-only")
    assert sslv3.extensions is None
    assert _types(variants.padded(sslv3, 300)) == [ExtensionType.PADDING]


def test_padded_to_the_byte_and_suites() -> None:
    base = _spec("tls1.2-only")
    for to in (600, 1300, 4000):
        assert len(build(variants.padded(base, to), "shop.test").records()) == to
    many = variants.many_suites(base)
    assert len(many.cipher_suites) == 160 and many.cipher_suites[-len(base.cipher_suites):] \
        == base.cipher_suites
    assert all(reg.suite(v) is None for v in many.cipher_suites[:-len(base.cipher_suites)])
    assert variants.with_fallback_scsv(base).cipher_suites == [*base.cipher_suites,
                                                                TLS_FALLBACK_SCSV]
    unknown = _hello(variants.with_unknown_extension(base))
    assert unknown.extension(variants.UNKNOWN_EXTENSION) == b"\x00"


def test_greased_where_a_browser_puts_it() -> None:
    h = _hello(variants.greased(_spec()))
    exts = h.extensions or []
    assert reg.is_grease(h.cipher_suites[0])
    assert reg.is_grease(exts[0][0]) and reg.is_grease(exts[-1][0])
    for t, width in ((ExtensionType.SUPPORTED_GROUPS, 2), (ExtensionType.SIGNATURE_ALGORITHMS, 2),
                     (ExtensionType.SUPPORTED_VERSIONS, 1)):
        body = h.extension(t)
        assert body is not None and reg.is_grease(Reader(body).pull_list(width, 2)[0]), t


def test_pq_key_share_first_and_supported_groups_in_place() -> None:
    base = _spec()
    pq = variants.with_pq_key_share(base)
    assert pq is not None and _types(pq) == _types(base)
    h = _hello(pq)
    shares = decode_key_share_client(h.extension(ExtensionType.KEY_SHARE) or b"")
    assert [g for g, _ in shares] == [variants.X25519MLKEM768, variants.X25519]
    groups = Reader(h.extension(ExtensionType.SUPPORTED_GROUPS) or b"").pull_list(2, 2)
    assert groups[0] == variants.X25519MLKEM768 and groups.count(variants.X25519MLKEM768) == 1
    assert variants.with_pq_key_share(_spec("tls1.2-only")) is None


def test_splits_cut_inside_the_sni() -> None:
    base = _spec("tls1.2-only")
    sni = "shop.example.org"
    cut, length = variants.split_point(base, sni)
    records = variants.split_over_records(base, sni)
    assert records.record_sizes == [cut, (length - cut) // 2]
    segments = variants.split_over_segments(base, sni, 200.0)
    assert segments.segment_sizes == [cut + 5] and segments.pause_ms == 200.0
    no_sni_cut, no_sni_length = variants.split_point(base, None)
    assert no_sni_cut == no_sni_length // 3
