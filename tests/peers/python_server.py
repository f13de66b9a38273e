"""A TLS server built on the stdlib ``ssl`` module, in threads.

Each connection gets its own thread: handshake, record ``(version, cipher)``, then answer
an HTTP request (or any bytes) with ``200 ok`` and close.  Failed handshakes are
recorded in :meth:`PythonTLSServer.errors`.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from types import TracebackType

from .pki import Pki

ContextFactory = Callable[[Pki], ssl.SSLContext]


def default_context(pki: Pki) -> ssl.SSLContext:
    """TLS 1.2-1.3 server context with the RSA and ECDSA certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.rsa_cert, pki.rsa_key)
    ctx.load_cert_chain(pki.ecdsa_cert, pki.ecdsa_key)
    return ctx


_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


class PythonTLSServer:
    """``PythonTLSServer(pki, context_factory)``: stdlib-ssl server on 127.0.0.1.

    Attributes: ``host``, ``port``, ``context``.  ``handshakes()`` -> list of
    ``(version, cipher)`` as ``SSLSocket.version()`` / ``cipher()[0]`` report them;
    ``sni()`` -> server names seen (None when absent); ``errors()`` -> failed-handshake
    exceptions as strings.
    """

    def __init__(
        self,
        pki: Pki,
        context_factory: ContextFactory | None = None,
        *,
        host: str = "127.0.0.1",
        handshake_timeout: float = 10.0,
    ) -> None:
        self.pki = pki
        self.host = host
        self.port = 0
        self.handshake_timeout = handshake_timeout
        self.context = (context_factory or default_context)(pki)
        self._lock = threading.Lock()
        self._handshakes: list[tuple[str, str]] = []
        self._errors: list[str] = []
        self._sni: list[str | None] = []
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        if self.context.sni_callback is None:
            self.context.sni_callback = self._on_sni

    def _on_sni(
        self, _sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext
    ) -> None:
        with self._lock:
            self._sni.append(name)

    def start(self) -> PythonTLSServer:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, 0))
        s.listen(128)
        s.settimeout(0.2)
        self._sock = s
        self.port = s.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name=f"pytls-{self.port}", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            with self._lock:
                self._conns.add(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

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

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for c in conns:
            with contextlib.suppress(OSError):
                c.close()

    def __enter__(self) -> PythonTLSServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

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
        deadline = time.monotonic() + timeout
        while True:
            hs = self.handshakes()
            if len(hs) >= n or time.monotonic() >= deadline:
                return hs
            time.sleep(0.01)
