"""The flight reader's fuzz target: recorded server flights, mutated where the parsers
are, and replayed through ``FlightReader``.

A TLS 1.3 flight is taken apart with the keys it was recorded with: the plaintext
records (ServerHello, HelloRetryRequest, ChangeCipherSpec), then each encrypted record
opened to its inner plaintext.  A mutation edits the handshake messages (a body, a
length, a type; one dropped, doubled, swapped or invented), re-cuts them into records,
changes inner content types and padding (all padding, an empty record, an alert inside),
and seals everything again with the server's own handshake keys, so the reader decrypts
it and its inner parsers meet the damage; sometimes the Finished is recomputed over the
mutated transcript so that the flight verifies and goes on to be reported.  TLS 1.2 and
older flights and alerts are mutated the same way without the sealing; the record layer
and the raw sealed bytes are mutated too, and every flight is fed in random pieces.

Whatever the bytes, ``feed`` must return and the flight must end in one of its states
without the catch-all ("unreadable server flight", a parser hole); a complete flight
must hold only what the hello offered; the attempt must classify and serialise to JSON
that is valid UTF-8.
"""

from __future__ import annotations

import dataclasses
import functools
import hmac
import json
import zlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

from prober.core.attempt import AttemptResult
from prober.core.outcome import classify
from prober.net.attempt import Observation
from prober.wire import serverflight as sf
from prober.wire.buffer import Reader, u16, u24, vec
from prober.wire.clienthello import BuiltHello
from prober.wire.constants import HRR_RANDOM, ExtensionType, HandshakeType
from prober.wire.serverflight import FlightReader
from prober.wire.tls13 import (
    HandshakeDecryptor,
    hkdf_expand_label,
    message_hash,
    suite_params,
    transcript_hash,
)
from tests.fuzz.certs import mutate_der
from tests.fuzz.mutate import Choices, chance, mutate_bytes, pick, split
from tests.fuzz.recording import Recording, known_key, recorded_keys

HANDSHAKE, ALERT, CCS, APPDATA = 22, 21, 20, 23
STATES = {sf.PENDING, sf.COMPLETE, sf.ALERT, sf.NOT_TLS, sf.BAD}
_TYPES = [int(t) for t in HandshakeType]


@dataclass
class Flight:
    """One recording taken apart."""

    rec: Recording
    plain: list[tuple[int, bytes]]  # records before encryption: (content type, payload)
    sealed: list[tuple[int, bytes]]  # encrypted records opened: (inner type, content)
    suite: int | None = None
    key: bytes = b""
    iv: bytes = b""
    # the reader's transcript up to the first encrypted message (TLS 1.3)
    transcript: bytes = b""
    finished_key: bytes = b""
    hash_name: str = ""
    extra: bytes = b""  # bytes after the last whole record
    built: BuiltHello | None = None  # the first hello (the same object every case)

    @property
    def tls13(self) -> bool:
        return self.suite is not None


def records(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    out, pos = [], 0
    while pos + 5 <= len(data):
        n = int.from_bytes(data[pos + 3:pos + 5], "big")
        if pos + 5 + n > len(data):
            break
        out.append((data[pos], data[pos + 5:pos + 5 + n]))
        pos += 5 + n
    return out, data[pos:]


def messages(stream: bytes) -> tuple[list[bytes], bytes]:
    """Whole handshake messages (headers included) and what is left."""
    out, pos = [], 0
    while pos + 4 <= len(stream):
        n = int.from_bytes(stream[pos + 1:pos + 4], "big")
        if pos + 4 + n > len(stream):
            break
        out.append(stream[pos:pos + 4 + n])
        pos += 4 + n
    return out, stream[pos:]


def _server_share(sh: bytes) -> tuple[int, int, bytes, bool]:
    """(suite, group, share, is HRR) of a ServerHello message."""
    r = Reader(sh, 4)
    r.pull_u16()
    hrr = r.pull_bytes(32) == HRR_RANDOM
    r.pull_vector(1)
    suite = r.pull_u16()
    r.pull_u8()
    exts = r.sub(2)
    group, share = 0, b""
    while not exts.eof():
        t, body = exts.pull_u16(), exts.pull_vector(2)
        if t == ExtensionType.KEY_SHARE:
            kr = Reader(body)
            group = kr.pull_u16()
            share = b"" if hrr else kr.pull_vector(2)
    return suite, group, share, hrr


def take_apart(rec: Recording) -> Flight:
    recs, extra = records(rec.server)
    first_sealed = next((i for i, (t, _) in enumerate(recs) if t == APPDATA), None)
    if first_sealed is None:
        return Flight(rec, recs, [], extra=extra)
    plain = recs[:first_sealed]
    hs, _ = messages(b"".join(p for t, p in plain if t == HANDSHAKE))
    suite, group, share, _ = _server_share(hs[-1])
    hash_name = suite_params(suite)[0]  # type: ignore[index]
    if len(hs) == 2:  # HelloRetryRequest, then the ServerHello to the second hello
        transcript = (message_hash(hash_name, rec.hellos[0]) + hs[0] + rec.hellos[1] + hs[1])
    else:
        transcript = rec.hellos[0] + hs[0]
    secret = known_key(group, rec.keys[group]).shared_secret(share)
    dec = HandshakeDecryptor(suite, secret, transcript)
    sealed = []
    for t, payload in recs[first_sealed:]:
        header = bytes([t, 3, 3]) + u16(len(payload))
        sealed.append(dec.decrypt_record(header, payload))
    fin = hkdf_expand_label(dec.server_handshake_traffic_secret, b"finished", b"",
                            dec.hash_len, hash_name)
    return Flight(rec, plain, sealed, suite, dec.server_write_key, dec.server_write_iv,
                  transcript, fin, hash_name, extra)


def _aead(suite: int, key: bytes) -> AESGCM | ChaCha20Poly1305 | AESCCM:
    if suite == 0x1303:
        return ChaCha20Poly1305(key)
    if suite in (0x1304, 0x1305):
        return AESCCM(key, tag_length=16 if suite == 0x1304 else 8)
    return AESGCM(key)


def seal(f: Flight, inners: list[bytes]) -> bytes:
    """Each TLSInnerPlaintext in an application_data record, under the server's keys."""
    assert f.suite is not None
    aead = _aead(f.suite, f.key)
    out = bytearray()
    for seq, inner in enumerate(inners):
        tag = 8 if f.suite == 0x1305 else 16
        header = bytes([APPDATA, 3, 3]) + u16(len(inner) + tag)
        nonce = (int.from_bytes(f.iv, "big") ^ seq).to_bytes(len(f.iv), "big")
        out += header + aead.encrypt(nonce, inner, header)
    return bytes(out)


# -- mutations ---------------------------------------------------------------------------


def _certificate_list(body: bytes, tls13: bool) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """(context, [(DER, entry extensions)]) of a Certificate message body."""
    r = Reader(body)
    context = r.pull_vector(1) if tls13 else b""
    lst = r.sub(3)
    entries = []
    while not lst.eof():
        entries.append((lst.pull_vector(3), lst.pull_vector(2) if tls13 else b""))
    return context, entries


def _certificate_body(context: bytes, entries: list[tuple[bytes, bytes]], tls13: bool) -> bytes:
    lst = b"".join(vec(d, 3) + (vec(e, 2) if tls13 else b"") for d, e in entries)
    return (vec(context, 1) if tls13 else b"") + vec(lst, 3)


def mutate_certificate(c: Choices, body: bytes, tls13: bool) -> bytes:
    """A Certificate body with one certificate changed where it is parsed (DER-aware),
    or one dropped, doubled or made empty."""
    try:
        context, entries = _certificate_list(body, tls13)
    except ValueError:
        return mutate_bytes(c, body)
    if not entries:
        return _certificate_body(context, [(c.randbytes(c.randint(0, 40)), b"")], tls13)
    i = c.randint(0, len(entries) - 1)
    kind = c.randint(0, 5)
    if kind <= 2:
        entries[i] = (mutate_der(c, entries[i][0]), entries[i][1])
    elif kind == 3:
        entries.insert(i, entries[i])
    elif kind == 4:
        entries[i] = (b"", entries[i][1])
    else:
        entries[i] = (entries[i][0], mutate_bytes(c, entries[i][1]))
    return _certificate_body(context, entries, tls13)


def _compress(algorithm: int, data: bytes) -> bytes:
    if algorithm == 2:
        import brotli

        return bytes(brotli.compress(data))
    return zlib.compress(data)


def mutate_compressed(c: Choices, body: bytes) -> bytes:
    """A CompressedCertificate (RFC 8879) changed inside its compression: the Certificate
    in it mutated and compressed again, the announced length wrong, the stream cut or
    followed by bytes, another algorithm, a small bomb."""
    try:
        r = Reader(body)
        algorithm, length, data = r.pull_u16(), r.pull_u24(), r.pull_vector(3)
        plain = zlib.decompress(data) if algorithm == 1 else _decompress_brotli(data)
    except Exception:  # a body already mutated (any codec error): edit its bytes
        return mutate_bytes(c, body)
    kind = c.randint(0, 7)
    if kind <= 2:
        plain = mutate_certificate(c, plain, tls13=True)
        data, length = _compress(algorithm, plain), len(plain)
    elif kind == 3:
        length = pick(c, [0, length - 1, length + 1, 1 << 20, (1 << 20) + 1, 0xFFFFFF])
    elif kind == 4:
        data = data[:c.randint(0, max(len(data) - 1, 0))]
    elif kind == 5:
        data += c.randbytes(c.randint(1, 8))
    elif kind == 6:
        algorithm = pick(c, [1, 2, 3, 0, 0xFFFF])
    else:  # a bomb: a few hundred bytes that inflate to 2 MB, announced as 1000
        data, length = _bomb(algorithm), pick(c, [1000, 2 << 20])
    return u16(algorithm) + u24(length) + vec(data, 3)


@functools.cache
def _bomb(algorithm: int) -> bytes:
    return _compress(algorithm, bytes(2 << 20))


def _decompress_brotli(data: bytes) -> bytes:
    import brotli

    return bytes(brotli.decompress(data))


def mutate_messages(c: Choices, msgs: list[bytes], tls13: bool = False) -> list[bytes]:
    """Edit a list of handshake messages (headers kept consistent unless a length is
    the edit)."""
    msgs = list(msgs)
    for _ in range(c.randint(1, 3)):
        kind = c.randint(0, 9)
        i = c.randint(0, max(len(msgs) - 1, 0))
        if not msgs:
            msgs.append(bytes([pick(c, _TYPES)]) + u24(0))
            continue
        m = msgs[i]
        if m[0] in (HandshakeType.CERTIFICATE, HandshakeType.COMPRESSED_CERTIFICATE) and (
                kind <= 4):
            body = (mutate_certificate(c, m[4:], tls13) if m[0] == HandshakeType.CERTIFICATE
                    else mutate_compressed(c, m[4:]))
            msgs[i] = m[:1] + u24(len(body)) + body
        elif kind <= 3:  # the body: most of the damage goes where the parsers are
            body = mutate_bytes(c, m[4:])
            msgs[i] = m[:1] + u24(len(body)) + body
        elif kind == 4:  # a length that lies
            n = int.from_bytes(m[1:4], "big")
            lie = pick(c, [0, 1, n - 1, n + 1, n + c.randint(2, 300), 0xFFFFFF,
                           c.randint(0, 0xFFFFFF)])
            msgs[i] = m[:1] + u24(min(max(0, lie), 0xFFFFFF)) + m[4:]
        elif kind == 5:
            del msgs[i]
        elif kind == 6:
            msgs.insert(i, m)
        elif kind == 7:
            j = c.randint(0, len(msgs) - 1)
            msgs[i], msgs[j] = msgs[j], msgs[i]
        elif kind == 8:
            msgs[i] = bytes([pick(c, [*_TYPES, c.randint(0, 255)])]) + m[1:]
        else:  # a message of any type with any body
            body = c.randbytes(c.randint(0, 64))
            msgs.insert(i, bytes([pick(c, _TYPES)]) + u24(len(body)) + body)
    return msgs


def fix_finished(f: Flight, msgs: list[bytes]) -> list[bytes]:
    """Recompute the Finished (when one is last) over the mutated messages, so the flight
    verifies and is reported."""
    if not msgs or msgs[-1][0] != HandshakeType.FINISHED:
        return msgs
    verify = hmac.new(f.finished_key,
                      transcript_hash(f.hash_name, f.transcript + b"".join(msgs[:-1])),
                      f.hash_name).digest()
    return [*msgs[:-1], bytes([HandshakeType.FINISHED]) + u24(len(verify)) + verify]


def _inner(c: Choices, content: bytes, ctype: int) -> bytes:
    pad = bytes(pick(c, [0, 0, 0, 1, c.randint(0, 300)]))
    return content + bytes([ctype]) + pad


def mutate_sealed(c: Choices, f: Flight) -> bytes:
    stream = b"".join(p for t, p in f.sealed if t == HANDSHAKE)
    msgs, rest = messages(stream)
    if chance(c, 0.85):
        msgs = mutate_messages(c, msgs, tls13=True)
    if chance(c, 0.3):
        msgs = fix_finished(f, msgs)
    stream = b"".join(msgs) + rest
    inners = [_inner(c, piece, HANDSHAKE)
              for piece in split(c, stream, pick(c, [16384, 16384, 1000, 64, 5]))]
    for _ in range(c.randint(0, 2) if chance(c, 0.4) else 0):
        i = c.randint(0, len(inners))
        kind = c.randint(0, 5)
        if kind == 0:
            inners.insert(i, bytes(c.randint(0, 40)))  # all padding: no content type
        elif kind == 1:
            inners.insert(i, bytes([HANDSHAKE]))  # an empty handshake record
        elif kind == 2:
            inners.insert(i, _inner(c, c.randbytes(c.randint(0, 3)), ALERT))
        elif kind == 3:
            inners.insert(i, _inner(c, c.randbytes(c.randint(0, 20)), c.randint(1, 255)))
        elif kind == 4 and inners:
            inners[min(i, len(inners) - 1)] = mutate_bytes(c, inners[min(i, len(inners) - 1)])
        else:
            inners.insert(i, _inner(c, b"", HANDSHAKE) + bytes(16400))  # oversized
    sealed = seal(f, inners)
    if chance(c, 0.05):
        sealed = mutate_bytes(c, sealed)  # bits flipped under the AEAD
    return sealed


def mutate_plain(c: Choices, recs: list[tuple[int, bytes]]) -> bytes:
    """Plaintext records: their handshake messages edited and re-cut, others kept."""
    stream = b"".join(p for t, p in recs if t == HANDSHAKE)
    msgs, rest = messages(stream)
    out = bytearray()
    others = [(t, p) for t, p in recs if t != HANDSHAKE]
    if msgs or rest:
        edited = mutate_messages(c, msgs) + ([rest] if rest else [])
        for piece in split(c, b"".join(edited), pick(c, [16384, 16384, 300, 7])):
            out += bytes([HANDSHAKE, 3, 3]) + vec(piece, 2)
    for t, p in others:
        out += bytes([t, 3, 3]) + vec(mutate_bytes(c, p) if chance(c, 0.5) else p, 2)
    return bytes(out)


def mutate_flight(c: Choices, f: Flight) -> bytes:
    """One mutated flight, as the server would have sent it."""
    kind = c.randint(0, 9)
    if not f.plain and not f.sealed:  # not TLS records at all (SSLv2, a banner)
        return mutate_bytes(c, f.rec.server, c.randint(1, 6))
    plain = b"".join(bytes([t, 3, 3]) + vec(p, 2) for t, p in f.plain)
    if f.tls13 and kind <= 6:
        if kind == 6:  # the ServerHello side: a mangled HRR/ServerHello before good records
            plain = mutate_plain(c, f.plain)
        sealed = mutate_sealed(c, f) if kind != 6 else seal(
            f, [p + bytes([t]) for t, p in f.sealed])
        data = plain + sealed
    elif kind <= 7:
        data = mutate_plain(c, f.plain) + f.extra
    elif kind == 8:  # the record layer itself
        data = mutate_records(c, f.rec.server)
    else:
        data = mutate_bytes(c, f.rec.server, c.randint(1, 8))
    return data


def mutate_records(c: Choices, data: bytes) -> bytes:
    """Record headers changed (type, version, length), records inserted or dropped,
    bytes that are not TLS in front, a flood past the reader's bound."""
    recs, rest = records(data)
    kind = c.randint(0, 6)
    if kind == 5:
        return c.randbytes(c.randint(1, 8)) + data  # a banner, or a first byte that is off
    if kind == 6 and chance(c, 0.05):  # more than any flight: 1 MiB of ChangeCipherSpec
        return data + (bytes([CCS, 3, 3]) + vec(bytes(16000), 2)) * 66
    out = []
    for t, p in recs:
        header = bytearray([t, 3, 3]) + u16(len(p))
        if chance(c, 0.2):
            at = c.randint(0, 4)
            header[at] = pick(c, [20, 21, 22, 23, 24, 0, 2, 0x80, 0xFF, c.randint(0, 255)])
        out.append(bytes(header) + p)
    if out and kind <= 1:
        del out[c.randint(0, len(out) - 1)]
    elif kind == 2:
        out.insert(c.randint(0, len(out)), bytes([pick(c, [20, 21, 22, 23, 24]), 3,
                                                  c.randint(0, 4)]) + vec(c.randbytes(
                                                      c.randint(0, 4)), 2))
    elif kind == 3:
        big = 16384 + 2048 + c.randint(1, 1000)
        out.insert(c.randint(0, len(out)), bytes([HANDSHAKE, 3, 3]) + u16(big) + bytes(big))
    return b"".join(out) + rest


# -- the check -----------------------------------------------------------------------------


@dataclass
class Verdict:
    status: str
    error: str | None
    problems: list[str] = field(default_factory=list)


def feed(c: Choices | None, built: BuiltHello, data: bytes) -> FlightReader:
    reader = FlightReader(built)
    # mostly whole, often in pieces, now and then byte by byte (every buffering path,
    # but a thousand feeds)
    if c is None or not chance(c, 0.4):
        pieces = [data]
    elif len(data) > 20000:  # the flood: in records' worth, not bytes
        pieces = split(c, data, 20000)
    elif chance(c, 0.1):
        pieces = [data[i:i + 1] for i in range(len(data))]
    else:
        pieces = split(c, data, pick(c, [1000, 100, 7, 3]))
    for p in pieces:
        reader.feed(p)
    return reader


def check(reader: FlightReader, data: bytes) -> list[str]:
    """What is wrong with how the reader ended (nothing, for a correct reader)."""
    f = reader.flight
    problems = []
    if f.status not in STATES:
        problems.append(f"status {f.status!r}")
    if (f.error or "").startswith("unreadable server flight"):
        problems.append(f"the catch-all was needed: {f.error}")
    if f.bytes_received != len(data):
        problems.append(f"bytes_received {f.bytes_received} != {len(data)}")
    spec = reader.built.spec
    if f.status == sf.COMPLETE and not f.stopped_at_hrr:
        if f.version not in spec.offered_versions():
            problems.append(f"complete with version {f.version} not offered")
        # an SSLv2 server chooses one of the hello's 3-byte cipher specs
        if f.suite not in (spec.cipher_suites if spec.sslv2 else spec.offered_suites()):
            problems.append(f"complete with suite {f.suite} not offered")
        if f.alpn is not None and f.alpn not in spec.offered_alpn():
            problems.append(f"complete with ALPN {f.alpn!r} not offered")
    obs = Observation("127.0.0.1", 443, flight=f, t_connect=0.001, t_sent=0.002,
                      t_first_byte=0.003, t_end=0.004, end="complete", hello_bytes=1)
    verdict = classify(obs)
    doc = AttemptResult(1, "t", "t", 443, "127.0.0.1", None, "p", 0, verdict.outcome,
                        verdict.detail, 0.0, obs).to_json()
    # JSON that any consumer can read: valid UTF-8, no lone surrogates
    json.dumps(doc, ensure_ascii=False).encode("utf-8")
    return problems


def run_case(c: Choices, flights: list[Flight]) -> tuple[bytes, list[str]]:
    f = pick(c, flights)
    data = mutate_flight(c, f)
    with recorded_keys(f.rec.keys):
        if f.built is None:
            f.built = f.rec.built()
        built = f.built
        if f.rec.expect.get("hrr_group") and chance(c, 0.2):
            # as the policy scan's group enumeration asks: stop at the HelloRetryRequest
            built = dataclasses.replace(built, spec=dataclasses.replace(
                built.spec, stop_after_hrr=True))
        reader = feed(c, built, data)
    return data, check(reader, data)


def sslv2_seed() -> Flight:
    """An SSLv2 SERVER-HELLO (SSL 2.0 draft, 1995) to prober's ``sslv2-only`` hello: no
    SSLv2 server runs here to record one, so this one flight is written by hand."""
    from prober.profiles.families import version_profile
    from prober.wire.clienthello import build
    from tests.hostile.certs import good_certificate

    built = build(version_profile("sslv2-only").spec, None)
    cert, specs = good_certificate(), bytes.fromhex("010080" "0700c0")
    body = (b"\x04\x00\x01" + u16(0x0002) + u16(len(cert)) + u16(len(specs)) + u16(16)
            + cert + specs + bytes(range(16)))
    server = u16(0x8000 | len(body)) + body
    rec = Recording("synthetic-sslv2-server-hello", "written by hand (no SSLv2 server)",
                    "sslv2-only", None, 0x0002, [built.message], {}, server,
                    {"status": sf.COMPLETE})
    return Flight(rec, [], [], extra=server, built=built)
