"""When two ClientHellos come from the same client configuration: the one definition
that live capture (``prober profiles capture``) and pcap import (``profiles from-pcap``)
group hellos by, so one client becomes one profile either way.

Left out, because they change on every connection or with the target and say nothing
of the client: the random, the session id's bytes (its length stays: TLS 1.3 clients
send 32 for middlebox compatibility, others none), key share bytes (groups and lengths
stay), the SNI name and the padding length (presence stays: JA4 tells them apart too),
PSK identities and binders, session ticket contents (whether there is one stays), the
body of encrypted_client_hello (GREASE ECH is random bytes), and which GREASE value was
drawn (where one is stays).

Extension order counts, except for clients that shuffle it per connection: those are
recognised by their GREASE extensions, since the ones that shuffle (Chrome and other
BoringSSL clients) also GREASE and GREASE alone does not make a hello different.
"""

from __future__ import annotations

import hashlib

from prober.wire import registry as reg
from prober.wire.buffer import DecodeError, Reader, int_list, u16, vec
from prober.wire.clienthello import ClientHello, SSLv2Hello, decode_key_share_client
from prober.wire.constants import ExtensionType

_GREASE = 0x0A0A  # every GREASE value drawn counts as this one
# bodies that change with every connection or with the target: only presence counts
_VOLATILE = {ExtensionType.SERVER_NAME, ExtensionType.PADDING, ExtensionType.PRE_SHARED_KEY,
             ExtensionType.ENCRYPTED_CLIENT_HELLO}
# lists of code points where GREASE values turn up (Chrome: groups and signature algorithms)
_U16_LISTS = {ExtensionType.SUPPORTED_GROUPS, ExtensionType.SIGNATURE_ALGORITHMS,
              ExtensionType.SIGNATURE_ALGORITHMS_CERT}


def client_identity(hello: ClientHello | SSLv2Hello) -> str:
    """Equal for two hellos of one client configuration, different otherwise.

    A hex digest of what the client offers with its extensions taken as a set; for a
    client whose extension order is fixed, ``.`` and a digest of that order follow, so
    the first 64 characters name the offer whatever the order.
    """
    if isinstance(hello, SSLv2Hello):
        return hashlib.sha256(b"v2" + u16(hello.version) + int_list(
            hello.cipher_specs, 3, 2)).hexdigest()
    parts = [u16(hello.legacy_version), bytes([len(hello.session_id)]),
             int_list([_ungrease(c) for c in hello.cipher_suites], 2, 2),
             int_list(hello.compression_methods, 1, 1)]
    if hello.extensions is None:
        return hashlib.sha256(b"|".join([*parts, b"none"])).hexdigest()
    exts = [u16(_ungrease(t)) + vec(_stable_body(t, body), 2) for t, body in hello.extensions]
    offer = hashlib.sha256(b"|".join([*parts, b"".join(sorted(exts))])).hexdigest()
    if any(reg.is_grease(t) for t, _ in hello.extensions):
        return offer
    order = int_list([t for t, _ in hello.extensions], 2, 2)
    return f"{offer}.{hashlib.sha256(order).hexdigest()[:16]}"


def _ungrease(v: int) -> int:
    return _GREASE if reg.is_grease(v) else v


def _stable_body(t: int, body: bytes) -> bytes:
    if t in _VOLATILE:
        return b""
    if t == ExtensionType.SESSION_TICKET:
        # empty asks for a ticket, anything else presents one (resumption)
        return b"\x01" if body else b""
    try:
        if t == ExtensionType.KEY_SHARE:
            return b"".join(u16(_ungrease(grp)) + u16(len(k))
                            for grp, k in decode_key_share_client(body))
        if t in _U16_LISTS:
            return int_list([_ungrease(v) for v in Reader(body).pull_list(2, 2)], 2, 2)
        if t == ExtensionType.SUPPORTED_VERSIONS:
            return int_list([_ungrease(v) for v in Reader(body).pull_list(1, 2)], 2, 1)
    except DecodeError:
        pass  # a malformed body is compared as it is
    return body
