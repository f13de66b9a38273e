"""nginx as a test peer, with the server's view of every TLS handshake.

How nginx reports handshakes that carry no request
--------------------------------------------------
A prober sends a ClientHello and goes away; the ``http`` module logs nothing of that
in its access log (no request), and its ``error_log ... info`` only says "client closed
connection while waiting for request" / "SSL_do_handshake() failed (...)" without the
protocol or cipher (``error_log ... debug`` does print ``SSL: TLSv1.2, cipher: ...`` since
Debian builds ``--with-debug``, but at ~50 lines per connection).

So by default (``mode="stream"``) ``.port`` is a ``stream { server { listen ... ssl; } }``:
the stream module (Debian: ``libnginx-mod-stream``, loaded with ``load_module``) logs
one JSON line per TCP session when it ends, handshake or not, with ``$status`` (200:
handshake done; 500: failed or abandoned), ``$ssl_protocol``, ``$ssl_cipher``, the
curve, SNI, byte counts.  After the handshake it ``proxy_pass``es the plaintext to an
internal plain-HTTP server of the same nginx that answers ``200 ok``, so curl and
browsers get a real HTTP response through the same TLS policy.

What the stream log can and can't show (nginx 1.22 + OpenSSL 3.0):
* completed handshakes: protocol, cipher, curve, SNI;
* a TLS 1.3 handshake the client abandons after the server's flight: protocol + cipher
  (status 500);
* a TLS 1.2 handshake abandoned after ServerHello, or one that failed: cipher
  ``(NONE)``; ``$ssl_protocol`` is then the version being attempted, not a negotiated one.
* ``$ssl_curve`` crashes the worker (SIGSEGV) when evaluated for a failed handshake,
  so the config only evaluates it through a ``map`` when a cipher was negotiated.

``mode="http"`` gives a classic ``http { server { listen ... ssl; } }`` instead; its
access log (same JSON fields plus ``request``) then only has handshakes followed by a
request.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .lifecycle import ProcessPeer, children, poll_until, ppid, proc_stat, wait_count
from .pki import Pki
from .ports import free_port, wait_listening

CertKind = Literal["rsa", "ecdsa", "ecdsa384", "both"]
NGINX_DEFAULT_CIPHERS = "HIGH:!aNULL:!MD5"

_LOG_FIELDS = (
    '"msec":"$msec","client":"$remote_addr:$remote_port","status":"$status",'
    '"protocol":"$ssl_protocol","cipher":"$ssl_cipher","curve":"$prb_ssl_curve",'
    '"sni":"$ssl_server_name","reused":"$ssl_session_reused"'
)
_STREAM_FIELDS = (
    '"bytes_received":"$bytes_received","bytes_sent":"$bytes_sent","session_time":"$session_time"'
)
# $ssl_curve segfaults nginx 1.22 when evaluated for a failed handshake: only look at it
# when a cipher was negotiated (map values are evaluated lazily, for the matching key).
_CURVE_MAP = 'map $ssl_cipher $prb_ssl_curve { "" ""; "(NONE)" ""; "-" ""; default $ssl_curve; }'


@dataclass
class NginxSession:
    """One line of the handshake log (stream session or http request)."""

    status: int
    protocol: str
    cipher: str
    curve: str
    sni: str
    reused: bool
    client: str
    msec: float
    bytes_received: int = 0
    bytes_sent: int = 0
    request: str = ""

    @property
    def negotiated(self) -> bool:
        """True when the server picked a cipher (handshake completed, or TLS 1.3 flight sent)."""
        return self.cipher not in ("", "-", "(NONE)")


def _dash(v: Any) -> str:
    s = str(v) if v is not None else ""
    return "" if s == "-" else s


def parse_log(text: str) -> list[NginxSession]:
    out: list[NginxSession] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        out.append(
            NginxSession(
                status=int(d.get("status") or 0),
                protocol=_dash(d.get("protocol")),
                cipher=_dash(d.get("cipher")),
                curve=_dash(d.get("curve")),
                sni=_dash(d.get("sni")),
                reused=d.get("reused") == "r",
                client=str(d.get("client", "")),
                msec=float(d.get("msec") or 0),
                bytes_received=int(d.get("bytes_received") or 0),
                bytes_sent=int(d.get("bytes_sent") or 0),
                request=_dash(d.get("request")),
            )
        )
    return out


def nginx_build_info(nginx: str = "nginx") -> str:
    r = subprocess.run([nginx, "-V"], capture_output=True, text=True, check=False)
    return r.stdout + r.stderr


def stream_module_path(nginx: str = "nginx") -> str | None:
    """``""`` when the stream module is built in, its .so path when dynamic and installed,
    ``None`` when unavailable (Debian: ``apt-get install libnginx-mod-stream``)."""
    info = nginx_build_info(nginx)
    if re.search(r"--with-stream(\s|$)", info):
        return ""
    if "--with-stream=dynamic" not in info:
        return None
    m = re.search(r"--modules-path=(\S+)", info)
    mod = Path(m.group(1) if m else "/usr/lib/nginx/modules") / "ngx_stream_module.so"
    return str(mod) if mod.exists() else None


class NginxServer(ProcessPeer):
    """An nginx master + workers with a config of its own in a temp dir.

    ``protocols``/``ciphers``/``ecdh_curve``/``prefer_server_ciphers`` become
    ``ssl_protocols``/``ssl_ciphers``/``ssl_ecdh_curve``/``ssl_prefer_server_ciphers``;
    ``conf_commands`` become ``ssl_conf_command KEY VALUE;`` (e.g.
    ``{"Ciphersuites": "TLS_AES_128_GCM_SHA256"}`` for TLS 1.3 suites);
    ``cert="both"`` serves RSA and ECDSA certificates side by side.
    ``port``: the TLS port (default: a free one at each start); ``dir``: where the
    config and logs go (default: a temp dir of its own).  Either way a restart keeps
    the directory, so the logs span every run.
    Attributes: ``host``, ``port`` (the TLS port), ``http_port`` (internal plain HTTP,
    stream mode), ``pid`` (master), ``dir``.
    """

    program = "nginx"
    startup_log = ("error.log", "stderr.log")

    def __init__(
        self,
        pki: Pki,
        *,
        protocols: str = "TLSv1.2 TLSv1.3",
        ciphers: str = NGINX_DEFAULT_CIPHERS,
        ecdh_curve: str | None = None,
        prefer_server_ciphers: bool = True,
        cert: CertKind = "rsa",
        conf_commands: dict[str, str] | None = None,
        mode: Literal["stream", "http"] = "stream",
        worker_processes: int = 1,
        worker_connections: int = 8192,
        handshake_timeout: float = 60.0,
        extra_ssl: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
        dir: str | Path | None = None,
        nginx: str = "nginx",
    ) -> None:
        super().__init__(host, port=port, dir=dir)
        self.pki = pki
        self.protocols = protocols
        self.ciphers = ciphers
        self.ecdh_curve = ecdh_curve
        self.prefer_server_ciphers = prefer_server_ciphers
        self.cert = cert
        self.conf_commands = dict(conf_commands or {})
        self.mode = mode
        self.worker_processes = worker_processes
        self.worker_connections = worker_connections
        self.handshake_timeout = handshake_timeout
        self.extra_ssl = extra_ssl
        self.nginx = shutil.which(nginx) or nginx
        self.http_port = 0

    # -- config -----------------------------------------------------------------------
    @property
    def handshake_log_path(self) -> Path:
        return self.dir / ("handshakes.log" if self.mode == "stream" else "access.log")

    def _ssl_block(self) -> str:
        kinds = ["rsa", "ecdsa"] if self.cert == "both" else [self.cert]
        lines = []
        for kind in kinds:
            c, k = self.pki.cert_key(kind)
            lines += [f"ssl_certificate {c};", f"ssl_certificate_key {k};"]
        lines.append(f"ssl_protocols {self.protocols};")
        lines.append(f'ssl_ciphers "{self.ciphers}";')
        lines.append(f"ssl_prefer_server_ciphers {'on' if self.prefer_server_ciphers else 'off'};")
        if self.ecdh_curve:
            lines.append(f"ssl_ecdh_curve {self.ecdh_curve};")
        for key, val in self.conf_commands.items():
            lines.append(f'ssl_conf_command {key} "{val}";')
        if self.extra_ssl:
            lines.append(self.extra_ssl)
        return "\n        ".join(lines)

    def config(self) -> str:
        d = self.dir
        load = ""
        if self.mode == "stream":
            mod = stream_module_path(self.nginx)
            if mod is None:
                raise RuntimeError(
                    "nginx has no stream module (Debian: apt-get install libnginx-mod-stream)"
                )
            load = f"load_module {mod};" if mod else ""
        user = "user root root;" if os.geteuid() == 0 else ""
        temp = "\n    ".join(
            f"{name}_temp_path {d / name};"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        http_log = "log_format prb_http escape=json '{" + _LOG_FIELDS + ',"request":"$request"}\';'
        if self.mode == "stream":
            http_server = f"""
    server {{
        listen {self.host}:{self.http_port};
        access_log {d / "access.log"} prb_http;
        location / {{ return 200 "ok\\n"; }}
    }}"""
            stream = f"""
stream {{
    {_CURVE_MAP}
    log_format prb_stream escape=json '{{{_LOG_FIELDS},{_STREAM_FIELDS}}}';
    server {{
        listen {self.host}:{self.port} ssl;
        access_log {d / "handshakes.log"} prb_stream;
        ssl_handshake_timeout {int(self.handshake_timeout * 1000)}ms;
        {self._ssl_block()}
        proxy_pass {self.host}:{self.http_port};
    }}
}}"""
        else:
            http_server = f"""
    server {{
        listen {self.host}:{self.port} ssl;
        access_log {d / "access.log"} prb_http;
        {self._ssl_block()}
        location / {{ return 200 "ok\\n"; }}
    }}"""
            stream = ""
        return f"""# written by tests/peers/nginx_server.py
{load}
{user}
daemon off;
master_process on;
worker_processes {self.worker_processes};
worker_rlimit_nofile {self.worker_connections * 2 + 64};
pid {d / "nginx.pid"};
error_log {d / "error.log"} info;
events {{ worker_connections {self.worker_connections}; }}
http {{
    {temp}
    default_type text/plain;
    {_CURVE_MAP}
    {http_log}
    {http_server}
}}
{stream}
"""

    # -- lifecycle --------------------------------------------------------------------
    def _launch(self) -> None:
        # the internal plain-HTTP server behind the stream proxy: same host, any port
        self.http_port = free_port(self.host) if self.mode == "stream" else 0
        conf = self.dir / "nginx.conf"
        conf.write_text(self.config())
        argv = [self.nginx, "-p", str(self.dir), "-c", str(conf), "-e",
                str(self.dir / "error.log")]
        test = subprocess.run([*argv, "-t"], capture_output=True, text=True, check=False,
                              timeout=30)
        if test.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{test.stderr}\n--- config:\n{conf.read_text()}")
        self._spawn(argv, "stderr.log")

    def _wait_ready(self, timeout: float) -> None:
        super()._wait_ready(timeout)
        if self.http_port:
            wait_listening(self.host, self.http_port, timeout, alive=self._proc)
        if not poll_until(lambda: len(self.worker_pids()) >= self.worker_processes, timeout):
            raise TimeoutError("nginx workers did not start")

    def worker_pids(self) -> list[int]:
        if self._proc is None:
            return []
        return children(self._proc.pid)

    def stop(self) -> None:
        master, workers = self.pid, self.worker_pids()
        super().stop()  # SIGTERM is nginx's fast shutdown: the master stops its workers
        for w in workers:  # normally gone already; never leave an orphan worker behind
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if ppid(w) in (master, 1):
                    os.kill(w, signal.SIGKILL)

    # -- what the server saw ----------------------------------------------------------
    def error_log(self) -> str:
        return self._read(*self.startup_log)

    def sessions(self) -> list[NginxSession]:
        """Every logged session (stream mode: each TCP connection, handshake or not;
        http mode: each request)."""
        try:
            return parse_log(self.handshake_log_path.read_text(errors="replace"))
        except OSError:
            return []

    def requests(self) -> list[NginxSession]:
        """HTTP requests served (in stream mode they arrive in plaintext from the proxy)."""
        try:
            return parse_log((self.dir / "access.log").read_text(errors="replace"))
        except OSError:
            return []

    def handshakes(self) -> list[tuple[str, str]]:
        """(protocol, cipher) of each session in which the server negotiated a cipher."""
        return [(s.protocol, s.cipher) for s in self.sessions() if s.negotiated]

    def wait_sessions(self, n: int, timeout: float = 5.0) -> list[NginxSession]:
        """Wait until at least ``n`` sessions are logged (a line is written when the
        connection ends); return them all."""
        return wait_count(self.sessions, n, timeout)

    def cpu_seconds(self) -> float:
        """utime+stime of the master and its live workers, plus the master's
        cutime+cstime (workers that already exited), from /proc/PID/stat."""
        if self._proc is None:
            return 0.0
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        master = proc_stat(self._proc.pid)
        if master:
            total += sum(int(x) for x in master[11:15])  # utime stime cutime cstime
        for w in self.worker_pids():
            f = proc_stat(w)
            if f:
                total += int(f[11]) + int(f[12])
        return total / tick
