"""``openssl s_server`` as a test peer.

How the server's own view of each connection is read
-----------------------------------------------------
* ``-brief`` (default mode, i.e. neither ``-www`` nor ``-rev``): after every *completed*
  handshake s_server prints ``Protocol version: TLSv1.2`` and ``Ciphersuite: <OpenSSL
  name>`` (plus the client's cipher list, sigalgs and groups), ``ERROR`` + the reason for
  a failed one.  It then echoes whatever the client sends and goes back to ``accept`` when
  the client closes: it keeps serving any number of connections, **one at a time** (a
  client that connects and stays silent holds up the next one until it goes away).
  stdin is a pipe that we keep open and never write to (EOF on stdin would end the
  connection).  -> :meth:`OpenSSLServer.handshakes`.
* ``-trace`` (to stdout, run under ``stdbuf -oL`` so it is written line by line; with
  ``-msgfile`` OpenSSL would buffer it in 8 KiB blocks): every TLS message sent or
  received, decoded.  The ``ServerHello`` (and HelloRetryRequest) the server *sent*
  shows its choice even when the client drops the connection right after reading it (a
  ClientHello-replaying prober never completes a TLS 1.2 handshake, so ``-brief`` never
  prints it).
  -> :meth:`OpenSSLServer.server_hellos`.

``-www`` is not used: it reports Protocol/Cipher only in its HTTP status page, i.e. only
to clients that send ``GET /``.

OpenSSL 3 refuses TLS 1.0/1.1 and SHA-1 signatures at the default security level: a
legacy policy needs ``@SECLEVEL=0`` in ``ciphers`` (and a legacy client needs it too).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Literal

from .lifecycle import ProcessPeer, wait_count
from .pki import Pki

CertKind = Literal["rsa", "ecdsa", "ecdsa384", "both"]

HRR_RANDOM = "CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C"
_VERSION_NAMES = {
    "0x300": "SSLv3",
    "0x301": "TLSv1",
    "0x302": "TLSv1.1",
    "0x303": "TLSv1.2",
    "0x304": "TLSv1.3",
}


@dataclass
class ServerHello:
    """One ServerHello (or HelloRetryRequest) that s_server sent, from its -trace."""

    version: str  # "TLSv1.2", "TLSv1.3" (from supported_versions when present)
    cipher: str  # IANA name, e.g. "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    cipher_id: int  # e.g. 0xC02F
    group: str | None = None  # "x25519", "secp256r1", ...: key_share (1.3) or SKE curve (1.2)
    hrr: bool = False


def _group_name(trace_name: str) -> str:
    """'secp384r1 (P-384)' -> 'secp384r1', 'ecdh_x25519' -> 'x25519'."""
    name = trace_name.split(" (")[0].strip()
    return name.removeprefix("ecdh_")


def parse_trace(text: str) -> list[ServerHello]:
    """ServerHellos sent by the server, in order, from ``s_server -trace`` output."""
    out: list[ServerHello] = []
    direction = ""
    current: ServerHello | None = None  # last ServerHello, for the 1.2 ServerKeyExchange
    in_hello = False
    gmt = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line in ("Sent Record", "Received Record"):
            direction = line.split()[0]
            in_hello = False
            continue
        if direction != "Sent":
            continue
        if line.startswith("ServerHello,"):
            in_hello = True
            current = ServerHello(version="", cipher="", cipher_id=-1)
            out.append(current)
            continue
        if current is None:
            continue
        if in_hello:
            if m := re.match(r"server_version=(0x[0-9a-fA-F]+)", line):
                current.version = _VERSION_NAMES.get(m.group(1).lower(), m.group(1))
            elif m := re.match(r"gmt_unix_time=0x([0-9A-Fa-f]+)", line):
                gmt = m.group(1).upper()
            elif m := re.match(r"random_bytes \(len=\d+\): ([0-9A-Fa-f]+)", line):
                current.hrr = (gmt + m.group(1).upper()) == HRR_RANDOM
            elif m := re.match(r"cipher_suite \{0x([0-9A-Fa-f]+), 0x([0-9A-Fa-f]+)\} (\S+)", line):
                current.cipher_id = int(m.group(1), 16) << 8 | int(m.group(2), 16)
                current.cipher = m.group(3)
            elif line == "TLS 1.3 (772)":
                current.version = "TLSv1.3"
            elif m := re.match(r"NamedGroup: (.+?) \(\d+\)$", line):
                current.group = _group_name(m.group(1))
        elif m := re.match(r"named_curve: (.+?) \(\d+\)$", line):
            current.group = _group_name(m.group(1))
    return out


def parse_brief(text: str) -> list[tuple[str, str]]:
    """(protocol, cipher) of each completed handshake from ``s_server -brief`` output."""
    out: list[tuple[str, str]] = []
    proto: str | None = None
    for line in text.splitlines():
        if line.startswith("Protocol version: "):
            proto = line.split(": ", 1)[1].strip()
        elif line.startswith("Ciphersuite: ") and proto is not None:
            out.append((proto, line.split(": ", 1)[1].strip()))
            proto = None
    return out


class OpenSSLServer(ProcessPeer):
    """``openssl s_server -brief -trace`` on ``127.0.0.1:<free port>``.

    Parameters map to s_server options: ``ciphers`` -> ``-cipher`` (TLS <= 1.2, append
    ``:@SECLEVEL=0`` for TLS 1.0/1.1 or SHA-1), ``ciphersuites`` -> ``-ciphersuites``
    (TLS 1.3), ``min_protocol``/``max_protocol`` ("TLSv1", "TLSv1.1", "TLSv1.2",
    "TLSv1.3"), ``groups`` -> ``-groups`` ("X25519:P-256"), ``server_pref`` ->
    ``-serverpref`` (s_server's own default is the *client's* order), ``cert`` ->
    ``-cert/-key`` (``"both"`` adds the ECDSA pair as ``-dcert/-dkey``), ``extra`` is
    appended verbatim.
    """

    program = "s_server"
    startup_log = ("server.log",)

    def __init__(
        self,
        pki: Pki,
        *,
        cert: CertKind = "rsa",
        ciphers: str | None = None,
        ciphersuites: str | None = None,
        min_protocol: str | None = None,
        max_protocol: str | None = None,
        groups: str | None = None,
        server_pref: bool = True,
        trace: bool = True,
        extra: list[str] | None = None,
        host: str = "127.0.0.1",
        openssl: str = "openssl",
    ) -> None:
        super().__init__(host)
        self.pki = pki
        self.argv_tail: list[str] = []
        if cert == "both":
            self.argv_tail += ["-cert", str(pki.rsa_cert), "-key", str(pki.rsa_key)]
            self.argv_tail += ["-dcert", str(pki.ecdsa_cert), "-dkey", str(pki.ecdsa_key)]
        else:
            c, k = pki.cert_key(cert)
            self.argv_tail += ["-cert", str(c), "-key", str(k)]
        for opt, val in (
            ("-cipher", ciphers),
            ("-ciphersuites", ciphersuites),
            ("-min_protocol", min_protocol),
            ("-max_protocol", max_protocol),
            ("-groups", groups),
        ):
            if val is not None:
                self.argv_tail += [opt, val]
        if server_pref:
            self.argv_tail.append("-serverpref")
        self.trace = trace
        self.argv_tail += list(extra or [])
        self.openssl = shutil.which(openssl) or openssl

    # -- lifecycle --------------------------------------------------------------------
    def _launch(self) -> None:
        argv = [self.openssl, "s_server", "-accept", f"{self.host}:{self.port}", "-brief"]
        if self.trace:
            argv.append("-trace")
        argv += self.argv_tail
        stdbuf = shutil.which("stdbuf")
        self.argv = [stdbuf, "-oL", *argv] if stdbuf else argv
        # stdout: -trace output and the data clients send; stderr: -brief summaries,
        # ERROR + reasons; stdin kept open: EOF on it would end a session
        self._spawn(self.argv, "trace.log", "server.log", stdin=subprocess.PIPE)

    # -- what the server saw ----------------------------------------------------------
    def log(self) -> str:
        """s_server's output so far: stderr (``-brief`` summaries, ``ERROR`` + reasons)
        then stdout (``-trace`` and whatever clients sent)."""
        return self.brief_log() + self.trace_log()

    def brief_log(self) -> str:
        return self._read("server.log")

    def trace_log(self) -> str:
        return self._read("trace.log")

    def handshakes(self) -> list[tuple[str, str]]:
        """(protocol, OpenSSL cipher name) of each completed handshake, in order."""
        return parse_brief(self.brief_log())

    def server_hellos(self) -> list[ServerHello]:
        """Every ServerHello/HRR the server sent (needs ``trace=True``), in order."""
        return parse_trace(self.trace_log())

    def errors(self) -> int:
        """How many connections ended in ``ERROR`` (failed handshake or unclean close)."""
        return sum(1 for line in self.brief_log().splitlines() if line.strip() == "ERROR")

    def wait_handshakes(self, n: int, timeout: float = 5.0) -> list[tuple[str, str]]:
        """Wait until at least ``n`` completed handshakes were printed; return them all."""
        return wait_count(self.handshakes, n, timeout)

    def wait_server_hellos(self, n: int, timeout: float = 5.0) -> list[ServerHello]:
        return wait_count(self.server_hellos, n, timeout)
