"""A TLS server built on the stdlib ``ssl`` module, in threads.

Each connection gets its own thread: handshake, record ``(version, cipher)``, then answer
an HTTP request (or any bytes) with ``200 ok`` and close.  Failed handshakes are
recorded in :meth:`PythonTLSServer.errors`.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable

from .lifecycle import ThreadedServer, wait_count
from .pki import Pki

ContextFactory = Callable[[Pki], ssl.SSLContext]


def default_context(pki: Pki) -> ssl.SSLContext:
    """TLS 1.2-1.3 server context with the RSA and ECDSA certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.rsa_cert, pki.rsa_key)
    ctx.load_cert_chain(pki.ecdsa_cert, pki.ecdsa_key)
    return ctx


_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


class PythonTLSServer(ThreadedServer):
    """``PythonTLSServer(pki, context_factory)``: stdlib-ssl server on 127.0.0.1.

    Attributes: ``host``, ``port``, ``context``.  ``handshakes()`` -> list of
    ``(version, cipher)`` as ``SSLSocket.version()`` / ``cipher()[0]`` report them;
    ``sni()`` -> server names seen (None when absent); ``errors()`` -> failed-handshake
    exceptions as strings.
    """

    thread_name = "pytls"

    def __init__(
        self,
        pki: Pki,
        context_factory: ContextFactory | None = None,
        *,
        host: str = "127.0.0.1",
        handshake_timeout: float = 10.0,
    ) -> None:
        super().__init__(host)
        self.pki = pki
        self.handshake_timeout = handshake_timeout
        self.context = (context_factory or default_context)(pki)
        self._handshakes: list[tuple[str, str]] = []
        self._errors: list[str] = []
        self._sni: list[str | None] = []
        if self.context.sni_callback is None:
            self.context.sni_callback = self._on_sni

    def _on_sni(
        self, _sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        with self._lock:
            self._sni.append(name)

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(self.handshake_timeout)
            try:
                tls = self.context.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError) as e:
                with self._lock:
                    self._errors.append(f"{type(e).__name__}: {e}")
                return
            with self._lock:
                self._conns.add(tls)
                cipher = tls.cipher()
                self._handshakes.append((tls.version() or "", cipher[0] if cipher else ""))
            with contextlib.suppress(OSError):
                tls.settimeout(2.0)
                if tls.recv(4096):
                    tls.sendall(_RESPONSE)
            with contextlib.suppress(OSError):
                tls.close()
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            with self._lock:
                self._conns.discard(conn)

    def handshakes(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._handshakes)

    def errors(self) -> list[str]:
        with self._lock:
            return list(self._errors)

    def sni(self) -> list[str | None]:
        with self._lock:
            return list(self._sni)

    def wait_handshakes(self, n: int, timeout: float = 5.0) -> list[tuple[str, str]]:
        return wait_count(self.handshakes, n, timeout, step=0.01)
