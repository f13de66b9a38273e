"""A self-contained demo of field case 1 (DESIGN.md), on loopback only.

It rebuilds the case with nothing but this venv: an "ALB" whose security policy is
ELBSecurityPolicy-FS-1-2-Res-2020-10, read from the shipped policy catalog, and a
listener that swallows the ClientHello. Then it runs ``prober probe`` against them
exactly as a user would, and checks that every attempt got the outcome the real
balancer produces.

    backend   Python ``ssl`` server, TLS 1.2 only, the policy's four suites, RSA and
              ECDSA certificates: it answers unsupported hellos with a TLS alert
    front     asyncio TCP front on 127.0.0.1: reads the ClientHello, resets (RST)
              hellos whose newest version is below TLS 1.2 as an ALB does, and relays
              everything else to the backend byte for byte
    silent    accepts, reads, never answers

Run as ``python -m prober.cli.demo`` (``make demo``). Exit status: 0 when every outcome is
the expected one, 1 when one differs or the demo could not run, 130 on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import shlex
import signal
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from prober.cli import main as cli
from prober.wire.buffer import DecodeError, Reader
from prober.wire.clienthello import ClientHello, SSLv2Hello, read_client_hello
from prober.wire.constants import ExtensionType
from prober.wire.registry import GREASE_VALUES

T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

POLICY_CATALOG = "aws_elb.json"
POLICY_NAME = "ELBSecurityPolicy-FS-1-2-Res-2020-10"
LOOPBACK = "127.0.0.1"
CERT_NAME = "demo.test"

TLS1_2 = 0x0303
# the front gives up on a ClientHello that is not whole within these bounds; real hellos
# are a few hundred bytes to ~2 KB (post-quantum key shares), 64 KiB is generous
HELLO_MAX_BYTES = 64 * 1024
HELLO_TIMEOUT_S = 5.0
# nothing in the demo legitimately takes longer; bounds every blocking step on shutdown
IO_TIMEOUT_S = 5.0

FRONT_PROFILES = ["tls1.2-only", "tls1.3-only", "tls1.1-only", "cipher:ECDHE-RSA-AES256-SHA",
                  "cipher:ECDHE-RSA-AES128-GCM-SHA256", "firefox-137-win11"]
FRONT_REPEAT = 3
SILENT_PROFILES = ["tls1.2-only"]
SILENT_TIMEOUT_S = 2


@dataclass(frozen=True)
class Expect:
    outcome: str
    alert: str | None = None  # the alert description every attempt must carry


FRONT_EXPECT: dict[str, Expect] = {
    "tls1.2-only": Expect("ok"),
    "tls1.3-only": Expect("alert", "protocol_version"),
    "tls1.1-only": Expect("reset"),
    "cipher:ECDHE-RSA-AES256-SHA": Expect("alert", "handshake_failure"),
    "cipher:ECDHE-RSA-AES128-GCM-SHA256": Expect("ok"),
    "firefox-137-win11": Expect("ok"),
}
SILENT_EXPECT: dict[str, Expect] = {"tls1.2-only": Expect("hang-acked")}


# --- the policy --------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    name: str
    protocols: list[str]
    ciphers: list[str]  # OpenSSL names, in the catalog's (server preference) order


def load_policy(name: str = POLICY_NAME, catalog: str = POLICY_CATALOG) -> Policy:
    """The policy as the shipped catalog describes it, so the demo cannot drift from it."""
    path = resources.files("prober").joinpath("data", "policies", catalog)
    doc = json.loads(path.read_text(encoding="utf-8"))
    for entry in doc["policies"]:
        if entry["name"] == name:
            return Policy(name, list(entry["protocols"]), list(entry["ciphers"]))
    raise KeyError(f"{name} is not in {catalog}")


# catalog protocol names -> ssl module versions (the catalogs spell TLS 1.0 both ways)
_SSL_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.0": ssl.TLSVersion.TLSv1,
                 "TLSv1.1": ssl.TLSVersion.TLSv1_1, "TLSv1.2": ssl.TLSVersion.TLSv1_2,
                 "TLSv1.3": ssl.TLSVersion.TLSv1_3}


def backend_context(policy: Policy, certs: list[tuple[Path, Path]]) -> ssl.SSLContext:
    """A server context that negotiates what the policy allows and nothing else."""
    versions = sorted(_SSL_VERSIONS[p] for p in policy.protocols)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # the ssl module's defaults would allow TLS 1.3, which this policy does not
    ctx.minimum_version, ctx.maximum_version = versions[0], versions[-1]
    ctx.set_ciphers(":".join(policy.ciphers))
    # AWS picks the first suite of its own list that the client offers
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    # OpenSSL keeps one certificate per key type: RSA and ECDSA suites both work, as on
    # an ALB whose listener has both
    for cert, key in certs:
        ctx.load_cert_chain(cert, key)
    return ctx


def make_certificates(directory: Path) -> list[tuple[Path, Path]]:
    """Self-signed RSA 2048 and ECDSA P-256 certificates for demo.test / 127.0.0.1.

    Nobody verifies them (the prober only reads the server's flight), so no CA is needed.
    """

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    out = []
    keys: list[tuple[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]] = [
        ("rsa", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ecdsa", ec.generate_private_key(ec.SECP256R1())),
    ]
    for kind, key in keys:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CERT_NAME),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"prober demo {kind}")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName(CERT_NAME), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256())
        )
        cert_path, key_path = directory / f"{kind}.crt", directory / f"{kind}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.touch(mode=0o600)
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        out.append((cert_path, key_path))
    return out


# --- the backend: Python ssl, in threads --------------------------------------------------


class Backend:
    """A blocking TLS server: one thread accepts, one thread per connection.

    Threads rather than asyncio so OpenSSL sends its alert and the handshake error stays
    in our hands (asyncio would log every failed handshake as an error).
    """

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.sock = socket.create_server((LOOPBACK, 0))
        # accept() wakes up this often to notice stop(); closing a socket another
        # thread blocks on does not wake it everywhere
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept_loop, name="demo-backend",
                                          daemon=True)

    def start(self) -> None:
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                if self._stop.is_set():
                    conn.close()
                    return
                self._conns.add(conn)
                t = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                     name="demo-backend-conn")
                self._threads = [x for x in self._threads if x.is_alive()]
                self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(IO_TIMEOUT_S)
        try:
            # the handshake runs here; on a hello the policy refuses, OpenSSL sends the
            # alert before raising, which is the whole point of this server
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                # the prober hangs up after the server's flight; wait for that
                tls.recv(1024)
        except (ssl.SSLError, OSError):
            pass  # failed and aborted handshakes are what the demo provokes
        finally:
            conn.close()
            with self._lock:
                self._conns.discard(conn)

    def stop(self) -> None:
        self._stop.set()
        self.sock.close()
        if self._acceptor.is_alive():
            self._acceptor.join(IO_TIMEOUT_S)
        with self._lock:
            for c in self._conns:
                # wakes a thread blocked in the handshake or recv
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            threads = list(self._threads)
        for t in threads:
            t.join(IO_TIMEOUT_S)


# --- the front: what an ALB does before TLS starts -----------------------------------------


def highest_offered_version(hello: ClientHello | SSLv2Hello) -> int:
    """The newest protocol version a hello offers (0 when it offers none).

    supported_versions (RFC 8446 4.2.1) overrides legacy_version when present; GREASE
    entries are placeholders, not versions.
    """
    if isinstance(hello, SSLv2Hello):
        return hello.version
    body = hello.extension(ExtensionType.SUPPORTED_VERSIONS)
    if body is None:
        return hello.legacy_version
    versions = [v for v in Reader(body).pull_list(1, 2) if v not in GREASE_VALUES]
    return max(versions, default=0)


def front_forwards(hello: ClientHello | SSLv2Hello) -> bool:
    """True when the ALB-like front hands the hello to the backend, False when it resets.

    The balancer refuses below-TLS-1.2 hellos itself, with a TCP RST and no alert
    (field case 1); everything else reaches the TLS stack, which alerts on its own.
    """
    try:
        return highest_offered_version(hello) >= TLS1_2
    except DecodeError:
        return False  # a broken supported_versions: nothing a TLS 1.2 server can use


async def read_hello(reader: asyncio.StreamReader
                     ) -> tuple[bytes, ClientHello | SSLv2Hello | None]:
    """Read until a whole ClientHello parses; (bytes read, hello or None when it never did)."""
    buf = b""
    deadline = time.monotonic() + HELLO_TIMEOUT_S
    while len(buf) < HELLO_MAX_BYTES:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(HELLO_MAX_BYTES - len(buf)), remaining)
        except (TimeoutError, OSError):  # distinct before 3.11
            break
        if not chunk:
            break
        buf += chunk
        # neither a TLS handshake record nor an SSLv2 hello: no point in waiting for more
        if not (buf[0] == 0x16 or buf[0] & 0x80):
            break
        try:
            return buf, read_client_hello(buf)
        except DecodeError:
            continue  # most often just incomplete: read on, within the bounds
    return buf, None


def abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close with RST, not FIN: SO_LINGER on with a zero timeout, then close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    except OSError:
        pass  # a reset on either side ends the relay like a close does


class Listeners:
    """The front and the silent listener, on one asyncio loop in its own thread.

    Their own thread because ``prober.cli.main.main`` runs ``asyncio.run`` in the main thread.
    """

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="demo-listeners",
                                        daemon=True)
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self.front_port = 0
        self.silent_port = 0

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(IO_TIMEOUT_S)

    def start(self) -> None:
        self._thread.start()
        self.front_port = self._call(self._listen(self._front))
        self.silent_port = self._call(self._listen(self._silent))

    async def _listen(self, handler: Handler) -> int:
        server = await asyncio.start_server(handler, LOOPBACK, 0)
        self._servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    def _track(self) -> None:
        # connection tasks are created by asyncio; remember them so stop() can cancel them
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _front(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._front_conn(reader, writer)
        except asyncio.CancelledError:
            # cancelled at shutdown: end quietly (asyncio logs a cancelled handler task)
            writer.close()

    async def _front_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                          ) -> None:
        self._track()
        try:
            data, hello = await read_hello(reader)
            if hello is None or not front_forwards(hello):
                abort_with_rst(writer)
                return
            try:
                b_reader, b_writer = await asyncio.wait_for(
                    asyncio.open_connection(LOOPBACK, self.backend_port), IO_TIMEOUT_S)
            except (TimeoutError, OSError):
                abort_with_rst(writer)  # no healthy target: the client sees a reset
                return
            try:
                b_writer.write(data)
                pumps = [asyncio.create_task(_pump(reader, b_writer)),
                         asyncio.create_task(_pump(b_reader, writer))]
                try:
                    # either side closing ends the connection: the relay holds no state
                    await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for p in pumps:
                        p.cancel()
                    await asyncio.gather(*pumps, return_exceptions=True)
            finally:
                b_writer.close()
        finally:
            writer.close()

    async def _silent(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._track()
        try:
            # reading keeps the window open, so the kernel ACKs the hello: hang-acked
            while await reader.read(65536):
                pass
        except (OSError, asyncio.CancelledError):
            # cancelled at shutdown: end quietly (asyncio logs a cancelled handler task)
            pass
        finally:
            writer.close()

    async def _shutdown(self) -> None:
        for s in self._servers:
            s.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for s in self._servers:
            await s.wait_closed()

    def stop(self) -> None:
        if not self._thread.is_alive():
            self.loop.close()
            return
        try:
            self._call(self._shutdown())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(IO_TIMEOUT_S)
            if not self._thread.is_alive():
                self.loop.close()


# --- running the prober and checking what it saw ------------------------------------------


class Interrupted(Exception):
    """The prober run was stopped by Ctrl-C."""


def run_prober(argv: list[str], explanation: str) -> None:
    """Run ``prober`` in-process with ``argv``, after showing the command a user would type."""

    print(f"# {explanation}")
    print(f"$ {shlex.join(['prober', *argv])}", flush=True)
    rc = cli.main(argv)
    print(flush=True)
    if rc == cli.EXIT_INTERRUPTED:
        raise Interrupted
    if rc != cli.EXIT_OK:
        raise RuntimeError(f"prober exited with status {rc}")


def check(doc_path: Path, expect: dict[str, Expect]) -> list[str]:
    """Every expected profile, every attempt: the outcome (and alert) expected, else why not."""
    doc = json.loads(doc_path.read_text(encoding="utf-8"))
    problems = []
    cells = {c["profile"]: c for c in doc["summary"]}
    for profile, want in expect.items():
        cell = cells.get(profile)
        if cell is None:
            problems.append(f"{profile}: no attempts in {doc_path}")
            continue
        counts: dict[str, int] = cell["counts"]
        if counts != {want.outcome: cell["attempts"]}:
            got = ", ".join(f"{o} {n}/{cell['attempts']}" for o, n in counts.items())
            problems.append(f"{profile}: expected {want.outcome}, got {got} ({cell['detail']})")
            continue
        if want.alert is not None:
            alerts = {a.get("alert", {}).get("description") for a in doc["attempts"]
                      if a["profile"] == profile}
            if alerts != {want.alert}:
                names = ", ".join(sorted(str(a) for a in alerts))
                problems.append(f"{profile}: expected alert {want.alert}, got {names}")
    return problems


@contextlib.contextmanager
def demo_endpoint(policy: Policy) -> Iterator[Listeners]:
    """The backend enforcing ``policy`` and, in front of it, the ALB-like front and the
    silent listener; stopped in reverse order, each step even if an earlier one fails."""
    backend: Backend | None = None
    listeners: Listeners | None = None
    try:
        # the keys live only until OpenSSL has loaded them into the context
        with tempfile.TemporaryDirectory(prefix="prober-demo-") as tmp:
            certs = make_certificates(Path(tmp))
            backend = Backend(backend_context(policy, certs))
            backend.start()
            listeners = Listeners(backend.port)
            listeners.start()
        yield listeners
    finally:
        try:
            if listeners is not None:
                listeners.stop()
        finally:
            if backend is not None:
                backend.stop()


def run_demo(out_dir: Path) -> int:
    t0 = time.monotonic()
    policy = load_policy()
    with demo_endpoint(policy) as listeners:
        out_dir.mkdir(parents=True, exist_ok=True)
        front_json, silent_json = out_dir / "demo.json", out_dir / "demo-silent.json"

        print(f"Field case 1: an AWS ALB with {policy.name} "
              f"({', '.join(policy.protocols)}; {':'.join(policy.ciphers)}).\n")
        front_argv = ["probe", f"{LOOPBACK}:{listeners.front_port}"]
        for p in FRONT_PROFILES:
            front_argv += ["-p", p]
        front_argv += ["--repeat", str(FRONT_REPEAT), "--json", str(front_json)]
        run_prober(front_argv, f"ALB-like front: RST for hellos below TLS 1.2, the rest "
                   f"relayed to a Python ssl backend enforcing {policy.name}")

        silent_argv = ["probe", f"{LOOPBACK}:{listeners.silent_port}"]
        for p in SILENT_PROFILES:
            silent_argv += ["-p", p]
        silent_argv += ["--timeout", str(SILENT_TIMEOUT_S), "--json", str(silent_json)]
        run_prober(silent_argv, "silent listener: accepts the connection, reads the "
                   "ClientHello, never answers (like a middlebox that swallows it)")

    problems = check(front_json, FRONT_EXPECT) + check(silent_json, SILENT_EXPECT)
    elapsed = time.monotonic() - t0
    if problems:
        for p in problems:
            print(f"UNEXPECTED  {p}")
        print(f"demo: {len(problems)} outcome(s) differ from what the ALB does "
              f"({elapsed:.1f} s); JSON in {front_json} and {silent_json}")
        return 1
    print(f"demo: every outcome as expected ({elapsed:.1f} s); JSON in {front_json} and "
          f"{silent_json}")
    return 0


def serve(port_file: Path | None) -> int:
    """Keep the demo endpoint up until SIGTERM/Ctrl-C: the target of the project's own CI
    gate (`prober check` against it, as a user's pipeline would check their endpoint)."""

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    policy = load_policy()
    try:
        with demo_endpoint(policy) as listeners:
            _serve_until(stop, listeners, policy, port_file)
    except KeyboardInterrupt:
        pass
    return 0


def _serve_until(stop: threading.Event, listeners: Listeners, policy: Policy,
                 port_file: Path | None) -> None:
    line = f"FRONT={listeners.front_port}\nSILENT={listeners.silent_port}\n"
    if port_file is not None:
        tmp_file = port_file.with_suffix(".tmp")
        tmp_file.write_text(line)
        tmp_file.replace(port_file)
    print(f"demo endpoint ({policy.name}) on {LOOPBACK}:{listeners.front_port}, silent "
          f"listener on {LOOPBACK}:{listeners.silent_port}; SIGTERM or Ctrl-C stops it",
          flush=True)
    while not stop.wait(0.5):
        pass


def main(argv: list[str] | None = None) -> int:
    args = list(argv or [])
    if args and args[0] == "serve":
        port_file = None
        if len(args) == 3 and args[1] == "--port-file":
            port_file = Path(args[2])
        elif len(args) != 1:
            print("usage: python -m prober.cli.demo serve [--port-file FILE]", file=sys.stderr)
            return 2
        return serve(port_file)
    if args:
        print("usage: python -m prober.cli.demo [serve [--port-file FILE]]  (without arguments: "
              "the demo; writes out/ in the current directory)", file=sys.stderr)
        return 2
    try:
        return run_demo(Path("out"))
    except (KeyboardInterrupt, Interrupted):
        print("demo: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        # setup failures (port, certificate, catalog) are one line, not a traceback
        print(f"demo: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
