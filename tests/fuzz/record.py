"""Record the fuzz corpus: real server flights from real local servers.

    PYTHONPATH=. .venv/bin/python -m tests.fuzz.record [--only NAME...]

Starts ``openssl s_server`` and nginx (tests/peers) with one configuration per flight,
and the hostile TLS 1.3 harness (tests/hostile) for what neither sends here (RFC 8879
compressed certificates: OpenSSL 3.0 has none); sends each one a ClientHello built by
prober from a profile, with key pairs whose private keys are kept; answers a
HelloRetryRequest as the prober does; and writes every byte the server sent, the hellos
and the keys to tests/fuzz/corpus/NAME.json.  The client here is a plain blocking socket
(test code), the bytes are prober's own.  Each recording is replayed through the reader
before it is written: it must end as it ended live.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prober.profiles.compile import compile_hello
from prober.profiles.families import tls13_doc
from prober.profiles.loader import resolve
from prober.wire.clienthello import BuiltHello, HelloSpec, build
from prober.wire.constants import HandshakeType
from prober.wire.serverflight import Flight, FlightReader
from tests.fuzz.recording import CORPUS, KNOWN_GROUPS, Recording, new_private, recorded_keys
from tests.hostile.alpn import alpn_extension, offered_alpn
from tests.hostile.certs import good_certificate
from tests.hostile.tls13_server import HostileTls13, Session
from tests.peers.lifecycle import Peer
from tests.peers.nginx_server import NginxServer
from tests.peers.openssl_server import OpenSSLServer
from tests.peers.pki import Pki, make_pki

SNI = "demo.test"


def spec_of(profile: str) -> HelloSpec:
    (p,) = resolve(profile)
    return p.spec


def compressing_spec() -> HelloSpec:
    """TLS 1.3 offering RFC 8879 certificate compression with zlib and brotli, and ALPN."""
    doc = tls13_doc(["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"])
    doc["extensions"] = [*doc["extensions"], {"compress_certificate": ["zlib", "brotli"]},
                         {"alpn": ["h2", "http/1.1"]}]
    return compile_hello(doc)


def summary(f: Flight) -> dict[str, Any]:
    """What the reader made of a flight: what a replay must reproduce."""
    return {"status": f.status, "version": f.version, "suite": f.suite, "group": f.group,
            "hrr_group": f.hrr_group, "alpn": f.alpn, "messages": list(f.messages),
            "certificates": len(f.certificates), "alert": f.alert, "error": f.error,
            "decrypted": f.decrypted, "certificate_compression": f.certificate_compression,
            "bytes": f.bytes_received}


def exchange(port: int, built: BuiltHello, timeout: float = 5.0
             ) -> tuple[bytes, list[bytes], Flight]:
    """Send the hello, read until the reader is done (answering an HRR), the server closes
    or ``timeout`` passes."""
    reader = FlightReader(built)
    hellos = [built.message]
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(built.records())
        deadline = time.monotonic() + timeout
        while not reader.flight.done and time.monotonic() < deadline:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
            reply = reader.feed(chunk)
            if reply:
                sock.sendall(reply)
                hellos.append(reader.built.message)
    return bytes(received), hellos, reader.flight


@dataclass
class Plan:
    name: str
    how: str
    profile: str
    server: Callable[[Pki], Peer]  # started by the recorder, stopped after
    spec: Callable[[], HelloSpec] | None = None  # else the profile's
    port: str = "port"  # the peer's attribute holding the port to connect to


def openssl(**kw: Any) -> Callable[[Pki], Peer]:
    return lambda pki: OpenSSLServer(pki, trace=False, **kw)


def nginx(**kw: Any) -> Callable[[Pki], Peer]:
    return lambda pki: NginxServer(pki, **kw)


def hostile(answer: Callable[[Session], bytes]) -> Callable[[Pki], Peer]:
    return lambda _pki: HostileTls13(answer)


def compressed_flight(algorithm: int) -> Callable[[Session], bytes]:
    def answer(s: Session) -> bytes:
        import brotli

        der = good_certificate()
        entries = len(der).to_bytes(3, "big") + der + b"\x00\x00"
        plain = b"\x00" + len(entries).to_bytes(3, "big") + entries
        data = zlib.compress(plain) if algorithm == 1 else brotli.compress(plain)
        names = offered_alpn(s)
        ee_body = alpn_extension(names[0]) if names else b""
        ee = s.message(HandshakeType.ENCRYPTED_EXTENSIONS,
                       len(ee_body).to_bytes(2, "big") + ee_body)
        return s.seal(ee + s.compressed_certificate(algorithm, len(plain), data)
                      + s.certificate_verify() + s.finished(), padding=3)
    return answer


def encrypted_alert(s: Session) -> bytes:
    return s.seal(s.encrypted_extensions()) + s.seal(b"\x02\x2a", ctype=21)  # bad_certificate


LEGACY = "ALL:@SECLEVEL=0"
PLANS = [
    Plan("openssl-tls1.0-rsa", "openssl s_server -cipher ALL:@SECLEVEL=0 -min_protocol TLSv1",
         "tls1.0-only", openssl(ciphers=LEGACY, min_protocol="TLSv1")),
    Plan("openssl-tls1.1-ecdsa", "openssl s_server (ECDSA) -cipher ALL:@SECLEVEL=0 "
         "-min_protocol TLSv1", "tls1.1-only",
         openssl(cert="ecdsa", ciphers=LEGACY, min_protocol="TLSv1")),
    Plan("openssl-tls1.2-ecdhe-rsa", "openssl s_server (RSA)", "tls1.2-only", openssl()),
    Plan("openssl-tls1.2-ecdhe-ecdsa", "openssl s_server (ECDSA)", "tls1.2-only",
         openssl(cert="ecdsa")),
    Plan("openssl-tls1.2-dhe-rsa", "openssl s_server -cipher DHE-RSA-AES128-GCM-SHA256",
         "cipher:DHE-RSA-AES128-GCM-SHA256", openssl(ciphers="DHE-RSA-AES128-GCM-SHA256")),
    Plan("openssl-tls1.2-rsa-kx", "openssl s_server -cipher AES128-SHA:@SECLEVEL=0",
         "cipher:AES128-SHA", openssl(ciphers="AES128-SHA:@SECLEVEL=0")),
    Plan("openssl-tls1.2-certificate-request", "openssl s_server -verify 1", "tls1.2-only",
         openssl(extra=["-verify", "1"])),
    Plan("openssl-tls1.2-alpn", "openssl s_server -max_protocol TLSv1.2 -alpn h2",
         "chrome-101-win10", openssl(max_protocol="TLSv1.2", extra=["-alpn", "h2"])),
    Plan("openssl-tls1.3-rsa", "openssl s_server (RSA)", "tls1.3-only", openssl()),
    Plan("openssl-tls1.3-ecdsa-alpn", "openssl s_server (ECDSA) -alpn h2",
         "firefox-137-win11", openssl(cert="ecdsa", extra=["-alpn", "h2"])),
    Plan("openssl-tls1.3-hrr", "openssl s_server -groups P-384 (the hello shares x25519)",
         "tls1.3-only", openssl(groups="P-384")),
    Plan("openssl-tls1.3-certificate-request", "openssl s_server -verify 1", "tls1.3-only",
         openssl(extra=["-verify", "1"])),
    Plan("openssl-alert-protocol-version", "openssl s_server -max_protocol TLSv1.2",
         "tls1.3-only", openssl(max_protocol="TLSv1.2")),
    Plan("openssl-alert-handshake-failure", "openssl s_server -cipher ECDHE+AESGCM",
         "cipher:ECDHE-RSA-AES256-SHA", openssl(ciphers="ECDHE+AESGCM")),
    Plan("nginx-tls1.2-both-certs", "nginx ssl_protocols TLSv1.2, RSA and ECDSA",
         "chrome-101-win10", nginx(protocols="TLSv1.2", cert="both")),
    Plan("nginx-tls1.3", "nginx ssl_protocols TLSv1.3", "tls1.3-only",
         nginx(protocols="TLSv1.3")),
    Plan("nginx-tls1.3-hrr", "nginx ssl_ecdh_curve secp256r1 (the hello shares x25519)",
         "tls1.3-only", nginx(protocols="TLSv1.3", ecdh_curve="secp256r1")),
    Plan("nginx-plain-http", "nginx's plain HTTP listener (not TLS: 400 Bad Request)",
         "tls1.2-only", nginx(), port="http_port"),
    Plan("harness-tls1.3-compressed-zlib", "tests/hostile harness: zlib-compressed "
         "certificate (RFC 8879), ALPN, padded records", "tls1.3 + compress_certificate",
         hostile(compressed_flight(1)), compressing_spec),
    Plan("harness-tls1.3-compressed-brotli", "tests/hostile harness: brotli-compressed "
         "certificate (RFC 8879), ALPN, padded records", "tls1.3 + compress_certificate",
         hostile(compressed_flight(2)), compressing_spec),
    Plan("harness-tls1.3-encrypted-alert", "tests/hostile harness: EncryptedExtensions, "
         "then an encrypted bad_certificate alert", "tls1.3-only", hostile(encrypted_alert)),
]


@contextmanager
def started(peer: Peer) -> Iterator[Peer]:
    peer.start()
    try:
        yield peer
    finally:
        peer.stop()


def record(plan: Plan, pki: Pki) -> Recording:
    keys = {g: new_private(g) for g in KNOWN_GROUPS}
    with recorded_keys(keys), started(plan.server(pki)) as srv:
        spec = plan.spec() if plan.spec is not None else spec_of(plan.profile)
        built = build(spec, SNI)
        port = int(getattr(srv, plan.port))
        server, hellos, flight = exchange(port, built)
    used = set(built.key_shares) | ({flight.hrr_group} if flight.hrr_group else set())
    rec = Recording(plan.name, plan.how, plan.profile, SNI, spec.record_version, hellos,
                    {g: k for g, k in keys.items() if g in used}, server, summary(flight))
    check_replay(rec)
    return rec


def replay(rec: Recording) -> tuple[Flight, list[bytes]]:
    with recorded_keys(rec.keys):
        reader = FlightReader(rec.built())
        hellos = [rec.hellos[0]]
        if reader.feed(rec.server):
            hellos.append(reader.built.message)
    return reader.flight, hellos


def check_replay(rec: Recording) -> None:
    flight, hellos = replay(rec)
    if summary(flight) != rec.expect or hellos != rec.hellos:
        raise AssertionError(f"{rec.name}: the replay differs:\n{summary(flight)}\n"
                             f"{rec.expect}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="record only these")
    ap.add_argument("--out", type=Path, default=CORPUS)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        pki = make_pki(tmp)
        for plan in PLANS:
            if args.only and plan.name not in args.only:
                continue
            rec = record(plan, pki)
            (args.out / f"{rec.name}.json").write_text(json.dumps(rec.to_json(), indent=1)
                                                       + "\n")
            e = rec.expect
            print(f"{rec.name}: {e['status']} {e['messages']} {len(rec.server)} bytes",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
