"""Reading what a server sends back to one ClientHello, sans I/O.

``FlightReader`` is fed the bytes as they arrive and says, after each feed, whether
the flight is complete, what must be sent back (the second ClientHello after a
HelloRetryRequest) and everything learnt so far. It never raises on server input:
malformed bytes end the flight with status ``bad`` and a reason.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prober.wire import peertext
from prober.wire.buffer import DecodeError, Reader
from prober.wire.clienthello import BuiltHello, frame_records, retry_hello
from prober.wire.constants import ContentType, ExtensionType, HandshakeType
from prober.wire.registry import GREASE_VALUES, suite
from prober.wire.serverhello import ServerHello, pull_server_hello

if TYPE_CHECKING:
    from prober.wire.tls13 import HandshakeDecryptor

# a whole certificate chain fits comfortably; anything bigger is not a handshake flight
MAX_FLIGHT_BYTES = 1 << 20
MAX_RECORD_PAYLOAD = 16384 + 2048
# RFC 8879 certificate compression: the algorithms, and the most a compressed Certificate
# message may inflate to here, whatever it announces (its 24-bit field allows 16 MiB)
CERT_COMPRESSION = {1: "zlib", 2: "brotli", 3: "zstd"}
MAX_CERTIFICATE_BYTES = 1 << 20
# decompression goes in slices of this much output, checked against the bound after each
_INFLATE_STEP = 1 << 16

PENDING = "pending"
COMPLETE = "complete"
ALERT = "alert"
NOT_TLS = "not-tls"
BAD = "bad"


@dataclass
class Flight:
    """Everything one attempt learnt from the server's bytes."""

    status: str = PENDING
    version: int | None = None
    suite: int | None = None
    group: int | None = None
    alpn: str | None = None
    compression: int | None = None
    hrr_group: int | None = None
    downgrade_sentinel: str | None = None
    server_extensions: list[int] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    certificates: list[bytes] = field(default_factory=list)
    dh_bits: int | None = None
    cert_request: bool = False
    # the issuers the server accepts client certificates from (its CertificateRequest's
    # certificate_authorities), as "CN=...,O=..." strings
    cert_request_cas: list[str] = field(default_factory=list)
    certificate_compression: str | None = None
    # why the server's certificate could not be read although the flight was fine
    # (compressed with an algorithm we offered but cannot decompress here)
    certificate_undecodable: str | None = None
    # the scheme the server signed with (TLS 1.2 ServerKeyExchange, TLS 1.3 CertificateVerify)
    signature_scheme: int | None = None
    # the attempt asked to stop at a HelloRetryRequest and did
    stopped_at_hrr: bool = False
    ocsp_stapled: bool = False
    secure_renegotiation: bool | None = None
    extended_master_secret: bool | None = None
    session_ticket: bool | None = None
    decrypted: bool | None = None
    alert_level: int | None = None
    alert: int | None = None
    alert_encrypted: bool = False
    banner: str | None = None
    error: str | None = None
    sslv2_cipher_specs: list[int] | None = None
    bytes_received: int = 0
    # the TLS 1.3 handshake keys, once a ServerHello was processed (for --keylog); kept as
    # the key schedule itself so that a run that writes no key log derives nothing more
    handshake_keys: HandshakeKeys | None = field(default=None, repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.status != PENDING


@dataclass(frozen=True)
class HandshakeKeys:
    """What an SSLKEYLOGFILE needs to decrypt one TLS 1.3 server flight.

    ``client_random`` is the first ClientHello's: a HelloRetryRequest does not change it
    (RFC 8446 4.1.2), and it is the key a decoder such as Wireshark looks lines up by.
    """

    client_random: bytes
    schedule: HandshakeDecryptor

    @property
    def client_handshake_traffic_secret(self) -> bytes:
        return self.schedule.client_handshake_traffic_secret

    @property
    def server_handshake_traffic_secret(self) -> bytes:
        return self.schedule.server_handshake_traffic_secret

    def keylog_lines(self) -> list[str]:
        """The NSS key log lines (SSLKEYLOGFILE format) of this handshake."""
        cr = self.client_random.hex()
        return [f"CLIENT_HANDSHAKE_TRAFFIC_SECRET {cr} "
                f"{self.client_handshake_traffic_secret.hex()}",
                f"SERVER_HANDSHAKE_TRAFFIC_SECRET {cr} "
                f"{self.server_handshake_traffic_secret.hex()}"]


_MESSAGE_NAMES = {int(t): t.name.lower() for t in HandshakeType}

BANNER_BYTES = 80


def banner_of(data: bytes, limit: int = BANNER_BYTES) -> str:
    """The first ``limit`` bytes a peer that is not TLS sent, exactly (see
    prober.wire.peertext), cut back to a whole character where the limit splits one."""
    if len(data) <= limit:
        return peertext.decode(data)
    # an incremental decoder keeps an incomplete last character back instead of
    # turning it into escaped bytes
    return codecs.getincrementaldecoder("utf-8")("surrogateescape").decode(data[:limit])


class FlightReader:
    def __init__(self, built: BuiltHello) -> None:
        self.built = built
        self.flight = Flight()
        self._buf = bytearray()
        self._hs = bytearray()  # plaintext handshake bytes awaiting a whole message
        self._transcript = bytearray(built.message)
        self._decryptor: HandshakeDecryptor | None = None
        self._retried = False
        # the key-log lines are keyed by the first hello's random, whatever follows
        self._client_random = built.hello.random if built.hello is not None else b""

    # -- public ------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Take server bytes; return bytes to send back (empty when none)."""
        f = self.flight
        f.bytes_received += len(data)
        if f.done:
            return b""
        self._buf += data
        try:
            return self._process()
        except DecodeError as e:
            self._fail(f"malformed: {e}")
        except _Bad as e:
            self._fail(str(e))
        except Exception as e:
            # the contract is "any bytes -> an outcome": whatever else a hostile flight
            # provokes in the parsing below ends this flight, never the run
            self._fail(f"unreadable server flight ({type(e).__name__}: {e})")
        return b""

    # -- records -----------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        self.flight.status = BAD
        self.flight.error = reason
        # nothing more is read: let what was buffered go
        self._buf.clear()
        self._hs.clear()

    def _process(self) -> bytes:
        f = self.flight
        out = b""
        if f.bytes_received > MAX_FLIGHT_BYTES:
            raise _Bad(f"more than {MAX_FLIGHT_BYTES} bytes without completing the flight")
        while not f.done and self._buf:
            b0 = self._buf[0]
            if f.version is None and not self._transcript_has_server_bytes():
                verdict = self._first_bytes_verdict()
                if verdict is None:
                    return out
                if verdict == "sslv2":
                    self._sslv2_server_hello()
                    return out
                if verdict == "not-tls":
                    f.status = NOT_TLS
                    f.banner = banner_of(bytes(self._buf))
                    return out
            if len(self._buf) < 5:
                return out
            length = int.from_bytes(self._buf[3:5], "big")
            if b0 not in (20, 21, 22, 23, 24) or self._buf[1] != 3:
                raise _Bad(f"record header {bytes(self._buf[:5]).hex()} is not TLS")
            if length > MAX_RECORD_PAYLOAD:
                raise _Bad(f"record of {length} bytes exceeds the TLS limit")
            if len(self._buf) < 5 + length:
                return out
            header = bytes(self._buf[:5])
            payload = bytes(self._buf[5 : 5 + length])
            del self._buf[: 5 + length]
            self._saw_record = True
            out += self._record(b0, header, payload)
        return out

    _saw_record = False
    _certificate_seen = False

    def _transcript_has_server_bytes(self) -> bool:
        return self._saw_record

    def _first_bytes_verdict(self) -> str | None:
        buf = self._buf
        if self.built.spec.sslv2 and buf[0] & 0x80:
            if len(buf) < 3:
                return None
            return "sslv2" if buf[2] in (0, 4) else "not-tls"
        if buf[0] not in (20, 21, 22, 23, 24):
            return "not-tls"
        if len(buf) < 2:
            return None
        if buf[1] != 3:
            return "not-tls"
        return "tls"

    def _record(self, ctype: int, header: bytes, payload: bytes) -> bytes:
        f = self.flight
        if ctype == ContentType.ALERT:
            if len(payload) < 2:
                raise _Bad("truncated alert")
            f.alert_level, f.alert = payload[0], payload[1]
            f.status = ALERT
            return b""
        if ctype == ContentType.HANDSHAKE:
            self._hs += payload
            return self._messages(encrypted=False)
        if ctype == ContentType.CHANGE_CIPHER_SPEC:
            return b""
        if ctype == ContentType.APPLICATION_DATA:
            if f.version != 0x0304:
                raise _Bad("application data before the handshake completed")
            if self._decryptor is None:
                # we could not derive keys (placeholder key share): the encrypted
                # flight has begun, which is as far as we can follow it
                f.decrypted = False
                f.status = COMPLETE
                return b""
            from prober.wire.tls13 import DecryptError, RecordContentError

            try:
                inner, plain = self._decryptor.decrypt_record(header, payload)
            except DecryptError as e:
                raise _Bad(f"cannot decrypt the server's handshake record: {e}") from e
            except RecordContentError as e:
                # RFC 8446 5.4: a client answers this with unexpected_message
                raise _Bad(f"encrypted handshake record breaks RFC 8446 5.4: {e}") from e
            f.decrypted = True
            if inner == ContentType.ALERT:
                f.alert_level, f.alert = (plain[0], plain[1]) if len(plain) >= 2 else (2, 0)
                f.alert_encrypted = True
                f.status = ALERT
                return b""
            if inner == ContentType.HANDSHAKE:
                self._hs += plain
                return self._messages(encrypted=True)
            raise _Bad(f"unexpected inner content type {inner} in the handshake flight")
        raise _Bad(f"unexpected record type {ctype}")

    # -- handshake messages ----------------------------------------------------

    def _messages(self, encrypted: bool) -> bytes:
        out = b""
        while len(self._hs) >= 4 and not self.flight.done:
            n = int.from_bytes(self._hs[1:4], "big")
            if len(self._hs) < 4 + n:
                break
            msg = bytes(self._hs[: 4 + n])
            del self._hs[: 4 + n]
            out += self._message(msg[0], msg, Reader(msg, 4), encrypted)
        return out

    def _message(self, mtype: int, msg: bytes, r: Reader, encrypted: bool) -> bytes:
        f = self.flight
        name = _MESSAGE_NAMES.get(mtype) or f"handshake_{mtype}"
        f.messages.append(name)
        if mtype == HandshakeType.SERVER_HELLO:
            return self._server_hello(msg)
        if f.version is None:
            raise _Bad(f"{name} before ServerHello")
        tls13 = f.version == 0x0304
        if tls13 and not encrypted and mtype != HandshakeType.SERVER_HELLO:
            raise _Bad(f"plaintext {name} after a TLS 1.3 ServerHello")
        if mtype in (HandshakeType.CERTIFICATE, HandshakeType.COMPRESSED_CERTIFICATE):
            # one per flight (RFC 8446 4.4.2, RFC 5246 7.4.2); a second one would also let
            # a flight of small compressed messages inflate without bound
            if self._certificate_seen:
                raise _Bad(f"a second certificate message ({name}) in one flight")
            self._certificate_seen = True
            if mtype == HandshakeType.CERTIFICATE:
                self._certificate(r, tls13)
            else:
                self._compressed_certificate(r, tls13)
        elif mtype == HandshakeType.SERVER_KEY_EXCHANGE:
            self._server_key_exchange(r)
        elif mtype == HandshakeType.CERTIFICATE_REQUEST:
            f.cert_request = True
            f.cert_request_cas = certificate_request_cas(msg[4:], tls13)
        elif mtype == HandshakeType.CERTIFICATE_STATUS:
            f.ocsp_stapled = True
        elif mtype == HandshakeType.CERTIFICATE_VERIFY and tls13:
            f.signature_scheme = r.pull_u16()
        elif mtype == HandshakeType.ENCRYPTED_EXTENSIONS:
            self._extensions(r.sub(2), encrypted_extensions=True)
        elif mtype == HandshakeType.SERVER_HELLO_DONE and not tls13:
            f.status = COMPLETE
        elif mtype == HandshakeType.FINISHED:
            if tls13 and self._decryptor is not None and not self._decryptor.server_finished_ok(
                    bytes(self._transcript), msg[4:]):
                raise _Bad("server Finished does not verify")
            f.status = COMPLETE
        self._transcript += msg
        return b""

    def _server_hello(self, msg: bytes) -> bytes:
        f = self.flight
        spec = self.built.spec
        # bytes after the extensions have never failed a flight: not strict
        sh = pull_server_hello(Reader(msg), strict=False)
        version = sh.selected_version
        chosen = sh.cipher_suite
        offered_versions = spec.offered_versions()
        if version not in offered_versions:
            raise _Bad(f"server chose version 0x{version:04x}, not offered")
        if chosen not in spec.offered_suites() or chosen in GREASE_VALUES:
            raise _Bad(f"server chose cipher suite 0x{chosen:04x}, not offered")
        if sh.compression_method not in spec.offered_compression():
            raise _Bad(f"server chose compression method {sh.compression_method}, not offered")
        if sh.is_hello_retry_request:
            return self._hello_retry(msg, sh)
        f.version, f.suite, f.compression = version, chosen, sh.compression_method
        f.server_extensions = sh.extension_types
        # RFC 8446 4.1.3: reported whatever we offered, it tells what the server could do.
        # Only ever set, never cleared: a second ServerHello has never undone the first's
        sentinel = sh.downgrade_sentinel
        if sentinel is not None:
            f.downgrade_sentinel = sentinel
        if version != 0x0304:
            self._extensions_tls12(sh)
            self._transcript += msg
            return b""
        ks = sh.key_share
        if ks is None:
            raise _Bad("TLS 1.3 ServerHello without key_share")
        group, share = ks
        # no key_share extension in the spec means no share_groups either
        if group not in self.built.share_groups:
            raise _Bad(f"server key_share for group 0x{group:04x}, for which we sent no share")
        f.group = group
        self._transcript += msg
        key = self.built.key_shares.get(group)
        if key is not None:
            from prober.wire.tls13 import HandshakeDecryptor, suite_params

            if suite_params(chosen) is not None:
                try:
                    secret = key.shared_secret(share)
                except ValueError as e:
                    raise _Bad(f"server key share unusable: {e}") from e
                self._decryptor = HandshakeDecryptor(chosen, secret, bytes(self._transcript))
                if self._client_random:
                    f.handshake_keys = HandshakeKeys(self._client_random, self._decryptor)
        return b""

    def _hello_retry(self, msg: bytes, hrr: ServerHello) -> bytes:
        f = self.flight
        if self._retried:
            raise _Bad("second HelloRetryRequest")
        try:
            group = hrr.selected_group
        except DecodeError:
            group = None  # a key_share that is not a bare group selects none
        if group is None:
            raise _Bad("HelloRetryRequest without a selected group")
        if group not in self.built.spec.offered_groups() or group in self.built.share_groups:
            raise _Bad(f"HelloRetryRequest for group 0x{group:04x}, not offered or already shared")
        from prober.wire.tls13 import message_hash, suite_params

        chosen = hrr.cipher_suite
        params = suite_params(chosen)
        if params is None:
            raise _Bad(f"HelloRetryRequest with non-TLS 1.3 suite 0x{chosen:04x}")
        f.hrr_group = group
        f.messages[-1] = "hello_retry_request"
        if self.built.spec.stop_after_hrr:
            f.version, f.suite = 0x0304, chosen
            f.stopped_at_hrr = True
            f.status = COMPLETE
            return b""
        cookie = hrr.cookie
        self._retried = True
        second = retry_hello(self.built, group, cookie)
        # msg, not push_server_hello(hrr): the hash is over the bytes as received
        self._transcript = bytearray(message_hash(params[0], bytes(self._transcript)) + msg)
        self._transcript += second.message
        # the rest of the flight is read against the second hello's keys
        self.built = second
        return frame_records(second.message, self.built.spec.record_version)

    def _extensions_tls12(self, sh: ServerHello) -> None:
        f = self.flight
        f.secure_renegotiation = sh.extension(ExtensionType.RENEGOTIATION_INFO) is not None
        f.extended_master_secret = sh.extension(ExtensionType.EXTENDED_MASTER_SECRET) is not None
        f.session_ticket = sh.extension(ExtensionType.SESSION_TICKET) is not None
        # absent leaves what an earlier ServerHello set; present but empty clears it
        alpn = sh.extension(ExtensionType.ALPN)
        if alpn is not None:
            self._alpn(alpn)

    def _extensions(self, er: Reader, *, encrypted_extensions: bool) -> None:
        f = self.flight
        while not er.eof():
            t = er.pull_u16()
            body = er.pull_vector(2)
            if encrypted_extensions:
                f.server_extensions.append(t)
            if t == ExtensionType.ALPN:
                self._alpn(body)

    def _alpn(self, body: bytes) -> None:
        """The server's ALPN choice: RFC 7301 3.1, exactly one protocol name, one the
        hello offered.  Kept even when it is wrong (the JSON shows what was chosen)."""
        f = self.flight
        lst = Reader(body).sub(2)
        names: list[bytes] = []
        while not lst.eof():
            names.append(lst.pull_vector(1))
        if len(names) != 1:
            raise _Bad(f"ALPN extension with {len(names)} protocol names (RFC 7301: "
                       "exactly one)")
        (name,) = names
        f.alpn = peertext.decode(name)
        offered = self._offered_alpn()
        if offered is None:
            raise _Bad(f"server chose ALPN protocol {name!r}, but the hello offered no ALPN")
        if name not in offered:
            raise _Bad(f"server chose ALPN protocol {name!r}, not offered")

    def _offered_alpn(self) -> list[bytes] | None:
        """The protocol names of the hello's ALPN extension, None without one."""
        ext = self.built.spec.ext(ExtensionType.ALPN)
        if ext is None:
            return None
        names: list[bytes] = []
        try:
            lst = Reader(ext.body).sub(2)
            while not lst.eof():
                names.append(lst.pull_vector(1))
        except DecodeError:
            pass  # a template's unreadable list: what was read is what was offered
        return names

    def _certificate(self, r: Reader, tls13: bool) -> None:
        f = self.flight
        if tls13:
            r.pull_vector(1)  # certificate_request_context
        lst = r.sub(3)
        while not lst.eof():
            f.certificates.append(lst.pull_vector(3))
            if tls13:
                lst.pull_vector(2)

    def _compressed_certificate(self, r: Reader, tls13: bool) -> None:
        """RFC 8879: browsers offer it, so servers answering browser profiles use it."""
        f = self.flight
        if not tls13:
            raise _Bad("CompressedCertificate in a flight that is not TLS 1.3 (RFC 8879)")
        algorithm = r.pull_u16()
        length = r.pull_u24()
        data = r.pull_vector(3)
        name = CERT_COMPRESSION.get(algorithm, f"algorithm {algorithm}")
        offered = self._offered_certificate_compression()
        # RFC 8879 4: only an algorithm the client listed may be used, and none at all
        # when it did not send the extension
        if offered is None:
            raise _Bad(f"CompressedCertificate ({name}), but the hello offered no "
                       "compress_certificate")
        if algorithm not in offered:
            raise _Bad(f"CompressedCertificate with {name}, not offered")
        plain = _decompress(algorithm, data, length)
        if plain is None:
            f.certificate_compression = f"{name} (not decoded)"
            f.certificate_undecodable = (f"compressed with {name}, which prober cannot "
                                         "decompress here")
            return
        f.certificate_compression = name
        self._certificate(Reader(plain), tls13=True)

    def _offered_certificate_compression(self) -> list[int] | None:
        """The algorithms of the hello's compress_certificate extension, None without one."""
        ext = self.built.spec.ext(ExtensionType.COMPRESS_CERTIFICATE)
        if ext is None:
            return None
        try:
            return Reader(ext.body).pull_list(1, 2)
        except DecodeError:
            return []  # a template whose extension lists nothing readable offered nothing

    def _server_key_exchange(self, r: Reader) -> None:
        f = self.flight
        cs = suite(f.suite or -1)
        kx = (cs.kx or "") if cs else ""
        if "ECDH" in kx:
            if r.pull_u8() != 3:
                return  # explicit curves: nothing more to read reliably
            group = r.pull_u16()
            offered = self.built.spec.offered_groups()
            if offered and group not in offered:
                raise _Bad(f"ServerKeyExchange uses group 0x{group:04x}, not offered")
            f.group = group
            r.pull_vector(1)
        elif "DH" in kx:
            p = r.pull_vector(2).lstrip(b"\x00")
            f.dh_bits = len(p) * 8
            r.pull_vector(2)
            r.pull_vector(2)
        else:
            return
        # TLS 1.2 names the signature scheme before the signature (RFC 5246 7.4.3)
        signed = cs is not None and "anon" not in (cs.auth or "anon")
        if f.version == 0x0303 and signed and r.remaining() >= 2:
            f.signature_scheme = r.pull_u16()

    def _sslv2_server_hello(self) -> None:
        f = self.flight
        buf = bytes(self._buf)
        n = ((buf[0] & 0x7F) << 8) | buf[1]
        if len(buf) < 2 + n:
            return
        r = Reader(buf, 2, 2 + n)
        mtype = r.pull_u8()
        if mtype == 0:
            f.status = ALERT
            f.alert = r.pull_u16() if r.remaining() >= 2 else 0
            f.error = "SSLv2 ERROR message"
            return
        r.pull_u8()  # session id hit
        r.pull_u8()  # certificate type
        version = r.pull_u16()
        cert_len, specs_len, _conn_len = r.pull_u16(), r.pull_u16(), r.pull_u16()
        cert = r.pull_bytes(cert_len)
        specs_raw = r.pull_bytes(specs_len)
        specs = [int.from_bytes(specs_raw[i : i + 3], "big") for i in range(0, specs_len - 2, 3)]
        if version not in self.built.spec.offered_versions():
            # the ok contract: a version the hello offered (fuzzing found this one open)
            self._fail(f"SSLv2 ServerHello with version 0x{version:04x}, not offered")
            return
        f.version = version
        f.certificates = [cert] if cert else []
        f.sslv2_cipher_specs = specs
        f.messages.append("sslv2_server_hello")
        common = [s for s in specs if s in self.built.spec.cipher_suites]
        if not common:
            self._fail("SSLv2 ServerHello shares no cipher spec with the offer")
            return
        f.suite = common[0]
        f.status = COMPLETE


def _decompress(algorithm: int, data: bytes, length: int) -> bytes | None:
    """Decompress a certificate message; None when the codec is not available here.

    The output is produced in bounded slices and the work stops as soon as it passes
    the announced ``length`` (or MAX_CERTIFICATE_BYTES): a few kilobytes of brotli
    can announce 1000 bytes and inflate to gigabytes."""
    if length > MAX_CERTIFICATE_BYTES:
        raise _Bad(f"compressed certificate claims {length} bytes "
                   f"(more than the {MAX_CERTIFICATE_BYTES} accepted)")
    inflate = _INFLATERS.get(algorithm)
    if inflate is None:
        return None
    try:
        out = inflate(data, length)
    except _Bad:
        raise
    except Exception as e:  # each codec raises its own error type on corrupt input
        raise _Bad(f"compressed certificate does not decompress: {e}") from e
    if out is None:
        return None
    if len(out) != length:
        raise _Bad(f"compressed certificate inflates to {len(out)} bytes, "
                   f"not the {length} announced")
    return bytes(out)


def _room(out: bytearray, length: int) -> int:
    """How much output to ask for next: one byte past ``length`` is enough to know it
    was passed.  Never 0, which zlib and brotli would take as "no limit"."""
    return max(1, min(_INFLATE_STEP, length + 1 - len(out)))


def _too_big(produced: int, length: int) -> _Bad:
    return _Bad(f"compressed certificate inflates past the {length} bytes it announced "
                f"(stopped at {produced})")


def _inflate_zlib(data: bytes, length: int) -> bytearray:
    import zlib

    d = zlib.decompressobj()
    out = bytearray()
    pending = data
    # each round produces output or consumes input, so this bound is never the limit
    for _ in range(length + len(data) + 2):
        chunk = d.decompress(pending, _room(out, length))
        out += chunk
        if len(out) > length:
            raise _too_big(len(out), length)
        pending = d.unconsumed_tail
        if d.eof or (not chunk and not pending):
            break
    if not d.eof:
        raise _Bad("compressed certificate: the zlib stream is truncated")
    if d.unused_data:
        raise _Bad(f"compressed certificate: {len(d.unused_data)} bytes after the zlib stream")
    return out


def _inflate_brotli(data: bytes, length: int) -> bytearray | None:
    try:
        import brotli
    except ImportError:
        return None
    d = brotli.Decompressor()
    if not hasattr(d, "can_accept_more_data"):
        return None  # brotli < 1.2 cannot bound its output: not decoded rather than a bomb
    out = bytearray()
    # output_buffer_limit is honoured per block (32 KiB and up), so a slice may exceed it
    chunk = d.process(data, output_buffer_limit=_room(out, length))
    for _ in range(length + 2):
        out += chunk
        if len(out) > length:
            raise _too_big(len(out), length)
        if d.is_finished():
            return out
        if d.can_accept_more_data():
            break  # all input taken, output drained, stream not finished
        chunk = d.process(b"", output_buffer_limit=_room(out, length))
    raise _Bad("compressed certificate: the brotli stream is truncated")


def _inflate_zstd(data: bytes, length: int) -> bytearray | None:
    try:
        import zstandard
    except ImportError:
        return None
    out = bytearray()
    # a streaming reader: the frame's own content-size field is not trusted for allocation
    with zstandard.ZstdDecompressor().stream_reader(data) as reader:
        for _ in range(length + 2):
            chunk = reader.read(_room(out, length))
            if not chunk:
                return out
            out += chunk
            if len(out) > length:
                raise _too_big(len(out), length)
    raise _Bad("compressed certificate: the zstd stream does not end")


_INFLATERS: dict[int, Callable[[bytes, int], bytearray | None]] = {
    1: _inflate_zlib, 2: _inflate_brotli, 3: _inflate_zstd}


class _Bad(Exception):
    pass


# --- CertificateRequest: the CA names ------------------------------------------------------

_DN_NAMES = {"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
             "2.5.4.10": "O", "2.5.4.11": "OU", "1.2.840.113549.1.9.1": "emailAddress",
             "0.9.2342.19200300.100.1.25": "DC"}
MAX_CA_NAMES = 32


def certificate_request_cas(body: bytes, tls13: bool) -> list[str]:
    """The certificate_authorities of a CertificateRequest body (TLS 1.2: its own field;
    TLS 1.3: extension 47), as distinguished-name strings; [] when there are none or
    they do not parse (the names are advice to the client, never a reason to fail)."""
    try:
        r = Reader(body)
        if tls13:
            r.pull_vector(1)  # certificate_request_context
            exts = r.sub(2)
            while not exts.eof():
                etype, data = exts.pull_u16(), exts.pull_vector(2)
                if etype == 47:
                    return _dn_list(Reader(data).sub(2))
            return []
        r.pull_vector(1)  # certificate_types
        r.pull_vector(2)  # supported_signature_algorithms
        return _dn_list(r.sub(2))
    except (DecodeError, ValueError, IndexError):
        return []


def _dn_list(r: Reader) -> list[str]:
    out: list[str] = []
    while not r.eof() and len(out) < MAX_CA_NAMES:
        out.append(dn_text(r.pull_vector(2)))
    return out


def _der(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, content, position after) of the DER element at ``pos``."""
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first & 0x80:
        n = first & 0x7F
        if not 0 < n <= 4:
            raise ValueError("DER length")
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    else:
        length = first
    if pos + length > len(data):
        raise ValueError("DER element runs past its end")
    return tag, data[pos:pos + length], pos + length


def _oid(content: bytes) -> str:
    parts = [content[0] // 40, content[0] % 40]
    value = 0
    for b in content[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


def dn_text(der: bytes) -> str:
    """A DER Name as ``CN=...,O=...`` (most specific first, as cryptography writes it)."""
    tag, rdns, _ = _der(der, 0)
    if tag != 0x30:
        raise ValueError("a Name is a SEQUENCE")
    parts: list[str] = []
    pos = 0
    while pos < len(rdns):
        _, rdn, pos = _der(rdns, pos)
        inner = 0
        while inner < len(rdn):
            _, atv, inner = _der(rdn, inner)
            _, oid, at = _der(atv, 0)
            _, value, _ = _der(atv, at)
            key = _oid(oid)
            parts.append(f"{_DN_NAMES.get(key, key)}={value.decode('utf-8', 'replace')}")
    return ",".join(reversed(parts))
