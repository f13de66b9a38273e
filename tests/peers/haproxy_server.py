"""HAProxy as a TLS test peer: a ``mode tcp`` frontend that terminates TLS with a given
policy, logs each session (with the negotiated protocol and cipher) and closes.

``ciphers``/``ciphersuites``/``curves``/``min_version``/``max_version`` become the
``bind`` options of the same names (``ssl-min-ver``/``ssl-max-ver``);
``prefer_client_ciphers=True`` adds ``prefer-client-ciphers`` (HAProxy's default is the
server's order, with OpenSSL's ChaCha20 priority); ``global_lines`` go into ``global``
(e.g. ``ssl-dh-param-file PATH``). ``cert`` is ``"rsa"``, ``"ecdsa"``, ``"ecdsa384"`` or
``"both"`` (two ``crt`` files on one bind: for a client that sends a name the certificates
carry, HAProxy takes the ECDSA one whenever the hello offers an ECDSA suite and ECDSA
signatures, else the RSA one; without SNI, the first, ECDSA). Runs in the foreground
(``-db``), so :meth:`stop` ends exactly the process it started, by PID.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .lifecycle import ProcessPeer, wait_count
from .pki import Pki

CertKind = Literal["rsa", "ecdsa", "ecdsa384", "both"]
_LOG_FORMAT = "%ci:%cp %sslv %sslc"


@dataclass
class HaproxySession:
    client: str
    protocol: str  # "-" when no handshake completed
    cipher: str


class HaproxyServer(ProcessPeer):
    program = "haproxy"
    startup_log = ("haproxy.log",)

    def __init__(self, pki: Pki, *, ciphers: str | None = None, ciphersuites: str | None = None,
                 curves: str | None = None, min_version: str | None = None,
                 max_version: str | None = None, prefer_client_ciphers: bool = False,
                 cert: CertKind = "rsa", global_lines: list[str] | None = None,
                 host: str = "127.0.0.1", haproxy: str = "haproxy") -> None:
        super().__init__(host)
        self.pki = pki
        self.ciphers = ciphers
        self.ciphersuites = ciphersuites
        self.curves = curves
        self.min_version = min_version
        self.max_version = max_version
        self.prefer_client_ciphers = prefer_client_ciphers
        self.cert = cert
        self.global_lines = list(global_lines or [])
        self.haproxy = shutil.which(haproxy) or haproxy

    def _crt_files(self) -> list[Path]:
        kinds = ["ecdsa", "rsa"] if self.cert == "both" else [self.cert]
        out = []
        for kind in kinds:
            c, k = self.pki.cert_key(kind)
            pem = self.dir / f"{kind}.pem"  # HAProxy wants certificate and key in one file
            pem.write_bytes(c.read_bytes() + k.read_bytes())
            out.append(pem)
        return out

    def config(self) -> str:
        bind = [f"bind {self.host}:{self.port} ssl"]
        bind += [f"crt {p}" for p in self._crt_files()]
        for opt, val in (("ssl-min-ver", self.min_version), ("ssl-max-ver", self.max_version),
                         ("ciphers", self.ciphers), ("ciphersuites", self.ciphersuites),
                         ("curves", self.curves)):
            if val is not None:
                bind.append(f"{opt} {val}")
        if self.prefer_client_ciphers:
            bind.append("prefer-client-ciphers")
        extra = "".join(f"\n    {line}" for line in self.global_lines)
        return f"""# written by tests/peers/haproxy_server.py
global
    nbthread 1{extra}
defaults
    mode tcp
    no option tcp-smart-accept
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend policy
    {" ".join(bind)}
    log stdout format raw local0 info
    log-format "{_LOG_FORMAT}"
    tcp-request content reject
"""

    def _launch(self) -> None:
        cfg = self.dir / "haproxy.cfg"
        cfg.write_text(self.config())
        check = subprocess.run([self.haproxy, "-c", "-q", "-f", str(cfg)],
                               capture_output=True, text=True, check=False, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejects its config:\n{check.stdout}{check.stderr}"
                               f"\n{cfg.read_text()}")
        self._spawn([self.haproxy, "-db", "-f", str(cfg)], "haproxy.log")

    def log(self) -> str:
        return self._read("haproxy.log")

    def sessions(self) -> list[HaproxySession]:
        """One entry per logged session (``protocol`` "-" when no handshake completed)."""
        out = []
        for line in self.log().splitlines():
            parts = line.split()
            if len(parts) == 3 and ":" in parts[0]:
                out.append(HaproxySession(parts[0], parts[1], parts[2]))
        return out

    def wait_sessions(self, n: int, timeout: float = 5.0) -> list[HaproxySession]:
        return wait_count(self.sessions, n, timeout)
