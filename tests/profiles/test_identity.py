"""One client configuration, one identity: what per-connection noise it ignores, what
still tells two configurations apart, and that pcap import groups by it as live capture
does (Chrome's shuffled, re-GREASEd hellos and GREASE ECH included)."""

from __future__ import annotations

import random
from dataclasses import replace

from prober.capture.hellos import Grouper, SeenHello
from prober.profiles import families
from prober.profiles.identity import client_identity
from prober.wire.buffer import Reader, int_list
from prober.wire.clienthello import (
    ClientHello,
    SSLv2Hello,
    build,
    decode_key_share_client,
    ext_key_share,
)
from prober.wire.constants import ExtensionType

ECH = ExtensionType.ENCRYPTED_CLIENT_HELLO


def _hello(name: str = "tls1.3-only", sni: str | None = "demo.test") -> ClientHello:
    p = families.generated(name)
    assert p is not None
    h = build(p.spec, sni).hello
    assert h is not None
    return h


def _set(h: ClientHello, t: int, body: bytes) -> ClientHello:
    exts = list(h.extensions or ())
    at = [i for i, (x, _) in enumerate(exts) if x == t]
    if at:
        exts[at[0]] = (t, body)
    else:
        exts.append((t, body))
    return replace(h, extensions=exts)


def _chrome_like(h: ClientHello, rnd: random.Random) -> ClientHello:
    """A fresh GREASE draw everywhere Chrome puts one, GREASE ECH, a shuffled order."""
    g = 0x0A0A + 0x1010 * rnd.randrange(16)
    exts: list[tuple[int, bytes]] = [(g, b""), (ECH, rnd.randbytes(200))]
    for t, b in h.extensions or ():
        if t in (ExtensionType.SUPPORTED_GROUPS, ExtensionType.SIGNATURE_ALGORITHMS):
            b = int_list([g, *Reader(b).pull_list(2, 2)], 2, 2)
        elif t == ExtensionType.SUPPORTED_VERSIONS:
            b = int_list([g, *Reader(b).pull_list(1, 2)], 2, 1)
        elif t == ExtensionType.KEY_SHARE:
            b = ext_key_share([(g, b"\0"), *decode_key_share_client(b)])
        exts.append((t, b))
    rnd.shuffle(exts)
    return replace(h, random=rnd.randbytes(32), cipher_suites=[g, *h.cipher_suites],
                   extensions=exts)


def test_per_connection_parts_do_not_count() -> None:
    a, b = _hello(sni="demo.test"), _hello(sni="a-much-longer-name.example")
    assert a.random != b.random and a.session_id != b.session_id
    assert client_identity(a) == client_identity(b)
    # PSK identities and binders, ticket contents, ECH bytes: only presence counts
    for t, one, two in ((ExtensionType.PRE_SHARED_KEY, b"\x00\x01x", b"\x00\x02yz"),
                        (ExtensionType.SESSION_TICKET, b"ticket-1", b"another ticket"),
                        (ECH, b"\x00" * 90, b"\x01" * 120),
                        (ExtensionType.PADDING, b"\x00" * 3, b"\x00" * 300)):
        assert client_identity(_set(a, t, one)) == client_identity(_set(a, t, two)), t
        assert client_identity(_set(a, t, one)) != client_identity(a), t
    # asking for a ticket and presenting one are not the same hello
    asks = _set(a, ExtensionType.SESSION_TICKET, b"")
    assert client_identity(asks) != client_identity(_set(a, ExtensionType.SESSION_TICKET, b"t"))


def test_configurations_differ() -> None:
    a = _hello()
    assert client_identity(a) != client_identity(_hello("tls1.2-only"))
    assert client_identity(a) != client_identity(_hello(sni=None))  # SNI sent or not
    assert client_identity(a) != client_identity(replace(a, session_id=b""))
    fewer = replace(a, cipher_suites=a.cipher_suites[1:])
    assert client_identity(a) != client_identity(fewer)


def test_extension_order_counts_unless_the_client_greases() -> None:
    a = _hello()
    exts = list(a.extensions or ())
    swapped = replace(a, extensions=[exts[1], exts[0], *exts[2:]])
    one, two = client_identity(a), client_identity(swapped)
    assert one != two
    # what is offered is the same: the offer part is
    assert one.split(".")[0] == two.split(".")[0] and "." in one
    rnd = random.Random(7)
    chrome = {client_identity(_chrome_like(a, rnd)) for _ in range(20)}
    assert len(chrome) == 1 and "." not in next(iter(chrome))


def test_sslv2_hellos() -> None:
    v2 = SSLv2Hello(0x0301, [0x010080, 0x00002F], b"", b"c" * 16)
    assert client_identity(v2) == client_identity(replace(v2, challenge=b"d" * 16))
    assert client_identity(v2) != client_identity(replace(v2, cipher_specs=[0x010080]))


def _seen(h: ClientHello, port: int) -> SeenHello:
    return SeenHello(h.encode(), h, "192.0.2.1", port, "198.51.100.1", 443, float(port), "f")


def test_pcap_groups_by_the_same_identity() -> None:
    """Twenty Chrome-like connections are one profile, as in live capture (before, each
    GREASE draw, order and ECH payload made a profile of its own)."""
    rnd = random.Random(3)
    base = _hello()
    grouper = Grouper()
    for port in range(20):
        grouper.add(_seen(_chrome_like(base, rnd), 40000 + port))
    grouper.add(_seen(base, 50000))
    groups = grouper.groups()
    assert [g.count for g in groups] == [20, 1]
    assert groups[0].identity == client_identity(groups[0].first.hello)
