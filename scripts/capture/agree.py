"""Agreement with reality: a real client and prober's replay of its captured profile,
against the same server, must both succeed or both fail, and when both succeed they
must negotiate the same version and suite.

The real client's result is read from the server's own log (nginx's stream log: one
JSON line per TCP session, with ``$status``, ``$ssl_protocol`` and ``$ssl_cipher``);
the replay's from prober's attempt (``prober.core.engine.attempt``), which stops after the
server's flight and so never shows up in that log as a completed handshake.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.capture import sandbox
from scripts.capture.clients import Call, Client
from tests.peers import NginxServer, Pki
from tests.peers.ports import open_connections


@dataclass(frozen=True)
class Policy:
    id: str
    title: str
    nginx: dict[str, Any]  # NginxServer keyword arguments


_CBC = "AES+SHA1:AES+SHA256:AES+SHA384:!aNULL:!PSK:!SRP:!DSS:!kDHE:@SECLEVEL=0"
POLICIES: tuple[Policy, ...] = (
    Policy("tls1.3-only", "TLS 1.3 only", {"protocols": "TLSv1.3", "cert": "rsa"}),
    Policy("tls1.2-ecdhe-gcm", "TLS 1.2 only, ECDHE with AES-GCM only (RSA + ECDSA certs)",
           {"protocols": "TLSv1.2", "ciphers": "ECDHE+AESGCM", "cert": "both"}),
    Policy("tls1.0-1.2-cbc", "TLS 1.0-1.2, AES-CBC suites only (@SECLEVEL=0)",
           {"protocols": "TLSv1 TLSv1.1 TLSv1.2", "ciphers": _CBC, "cert": "rsa"}),
    Policy("rsa-kx-only", "TLS 1.2 only, RSA key exchange only",
           {"protocols": "TLSv1.2", "ciphers": "kRSA+AESGCM:kRSA+AES", "cert": "rsa"}),
    Policy("ecdsa-cert", "ECDSA P-256 certificate only (TLS 1.2-1.3, nginx defaults)",
           {"cert": "ecdsa"}),
    Policy("rsa-cert", "RSA 2048 certificate only (TLS 1.2-1.3, nginx defaults)",
           {"cert": "rsa"}),
    Policy("ecdsa-cert-tls1.2", "ECDSA P-256 certificate only, TLS 1.2 only",
           {"cert": "ecdsa", "protocols": "TLSv1.2"}),
    Policy("rsa-cert-tls1.2", "RSA 2048 certificate only, TLS 1.2 only",
           {"cert": "rsa", "protocols": "TLSv1.2"}),
    # the server takes the client's order: the suite shows the replay keeps that order
    Policy("client-order-tls1.2", "TLS 1.2 only, the client's suite order wins (RSA + ECDSA "
           "certs)", {"protocols": "TLSv1.2", "prefer_server_ciphers": False, "cert": "both"}),
    Policy("client-order-tls1.3", "TLS 1.3 only, the client's suite order wins",
           {"protocols": "TLSv1.3", "prefer_server_ciphers": False, "cert": "both",
            "conf_commands": {"Ciphersuites": "TLS_AES_256_GCM_SHA384:"
                              "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"}}),
    Policy("alpn-required", "ALPN acme-tls/1 required (nginx stream ssl_alpn: other "
           "offered protocols get no_application_protocol)",
           {"extra_ssl": "ssl_alpn acme-tls/1;"}),
)
BY_POLICY = {p.id: p for p in POLICIES}


@dataclass
class Side:
    ok: bool
    version: str | None = None
    suite: str | None = None  # OpenSSL name (nginx's $ssl_cipher, prober's suite_openssl)
    detail: str = ""
    reached: bool = True  # the real client's connection showed up at the server
    # what the real client printed it negotiated (the helper programs, s_client, curl -v)
    client_view: tuple[str, str] | None = None
    # the real client's sessions as nginx logged them: status, protocol, cipher, length
    sessions: list[str] = field(default_factory=list)

    def text(self) -> str:
        if self.ok:
            return f"ok {self.version} {self.suite}"
        return f"fail: {self.detail}" if self.detail else "fail"


@dataclass
class Cell:
    client: str  # profile name
    policy: str
    real: Side
    replay: Side
    agree: bool
    reason: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"client": self.client, "policy": self.policy, "agree": self.agree,
                "reason": self.reason, "real": vars(self.real), "replay": vars(self.replay),
                "seconds": round(self.seconds, 3), "notes": self.notes}


def _version(v: str | None) -> str | None:
    # nginx and OpenSSL say "TLSv1", prober "TLSv1.0"
    return "TLSv1.0" if v == "TLSv1" else v


def judge(real: Side, replay: Side) -> tuple[bool, str]:
    if not real.reached:
        return False, "the real client never reached the server"
    if real.ok != replay.ok:
        return False, f"real client {'succeeded' if real.ok else 'failed'}, replay " + (
            "succeeded" if replay.ok else f"failed ({replay.detail})")
    if real.ok and (real.version, real.suite) != (replay.version, replay.suite):
        return False, (f"negotiated differently: real {real.version} {real.suite}, "
                       f"replay {replay.version} {replay.suite}")
    return True, ""


# --- the real client, seen from the server -----------------------------------------------


def _log_lines(server: NginxServer) -> list[dict[str, Any]]:
    try:
        text = server.handshake_log_path.read_text(errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


# how clients word the alert that failed them, for the table (the verdict is nginx's)
_ALERT_PATTERNS = (
    re.compile(r"alert number (\d+)"),  # OpenSSL-based: Node.js, s_client
    re.compile(r"remote error: tls: ([a-z][a-z ]+[a-z])"),  # Go
    re.compile(r"fatal alert: ([a-z_]+)"),  # Java
    re.compile(r"(?:SSLV3|TLSV1|TLSV13)_ALERT_([A-Z_]+)"),  # Python
    re.compile(r"alert ([a-z][a-z ]+[a-z])"),  # curl, s_client
)


def _client_message(output: str) -> str:
    from prober.wire.constants import alert_name

    for pat in _ALERT_PATTERNS:
        m = pat.search(output)
        if m:
            text = m.group(1)
            name = alert_name(int(text)) if text.isdigit() else text.lower().replace(" ", "_")
            return f"alert {name}"
    return ""


_NEGOTIATED = (
    re.compile(r"^negotiated (TLSv1(?:\.\d)?) (\S+)$", re.M),  # the helper programs
    # s_client's session block ("New, TLSv1.0, Cipher is" names the suite's version)
    re.compile(r"^\s*Protocol\s*: (TLSv1(?:\.\d)?)\n\s*Cipher\s*: (\S+)$", re.M),
    re.compile(r"SSL connection using (TLSv1(?:\.\d)?) / (\S+)"),  # curl -v
)


def client_view(output: str) -> tuple[str, str] | None:
    """(version, suite) as the client itself reported them, where it does."""
    for pat in _NEGOTIATED:
        m = pat.search(output)
        if m:
            return _version(m.group(1)) or "", m.group(2)
    return None


# After a failed session a heavy client (browser, JVM) may still be handshaking on a raced
# connection (under load, for seconds): it has given up once none of its connections to
# the server has been open for QUIET_S, and is stopped RACE_LIMIT_S after the failure
# whatever it does (an idle spare connection would otherwise hold it to its timeout).
QUIET_S = 1.0
RACE_LIMIT_S = 10.0


def _completed(line: dict[str, Any]) -> bool:
    return str(line.get("status")) == "200" and str(line.get("cipher") or "") not in (
        "", "-", "(NONE)")


def run_real(client: Client, server: NginxServer, *, tools: Path, work: Path,
             ca: Path | None) -> tuple[Side, str]:
    """Run the real client once against ``server``; its first connection decides."""
    before = len(_log_lines(server))
    call = Call(sandbox.ADDRESS, server.port, sandbox.NAME, work, tools, ca)
    if client.setup is not None:
        client.setup(call)
    prefix = sandbox.resolver_prefix(work / "resolver")
    log = work / "client.log"
    requests = len(server.requests())

    failed_at: float | None = None  # when the first failed session was seen
    quiet_since: float | None = None  # since when none of the client's connections is open

    def seen_enough() -> bool:
        nonlocal failed_at, quiet_since
        # nginx logs a TLS session when it ends (a failed one at once), and the request
        # a completed one carried as soon as it is proxied: either way the client has
        # shown what it does, and a browser would only sit on its page from then on
        if client.finished(log) or len(server.requests()) > requests:
            return True
        new = _log_lines(server)[before:]
        if any(_completed(d) for d in new):
            return True
        if not new:
            return False
        if not client.heavy:
            return True
        now = time.monotonic()
        failed_at = failed_at if failed_at is not None else now
        if open_connections(server.port):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        return (quiet_since is not None and now - quiet_since >= QUIET_S) or (
            now - failed_at >= RACE_LIMIT_S)

    run = sandbox.run_bounded([*prefix, *client.argv(call)], timeout=client.timeout,
                              env=client.run_env(call), cwd=work, log=log, stdin=client.stdin,
                              done=seen_enough)
    if run.returncode is None:
        time.sleep(0.3)  # the sessions our stop closed get their lines
    deadline = time.monotonic() + 3.0
    lines = _log_lines(server)[before:]
    while not lines and time.monotonic() < deadline:
        time.sleep(0.05)
        lines = _log_lines(server)[before:]
    if not lines:
        why = "killed at the deadline" if run.returncode is None else f"exit {run.returncode}"
        return Side(False, detail=f"no connection ({why})", reached=False), run.output
    # a browser races a second connection when its first is slow to handshake (Chromium's
    # backup connect job, ~250 ms) and drops the loser: a completed handshake on any
    # connection is the client's success; without one, its first connection decides
    done = [d for d in lines if _completed(d)]
    first = min(done or lines, key=lambda d: float(d.get("msec") or 0) - float(
        d.get("session_time") or 0))
    cipher = str(first.get("cipher") or "")
    ok = _completed(first)
    if ok:
        side = Side(True, _version(str(first.get("protocol") or "")), cipher)
    else:
        side = Side(False, detail=_client_message(run.output) or "handshake failed")
    if len(lines) > 1:
        side.detail += f"{'; ' if side.detail else ''}{len(lines)} connections"
    side.sessions = [f"{d.get('status')} {d.get('protocol') or '-'} {d.get('cipher') or '-'} "
                     f"{d.get('session_time')} s" for d in lines]
    side.client_view = client_view(run.output)
    return side, run.output


# --- prober's replay ---------------------------------------------------------------------


def run_replay(profile_path: Path, port: int) -> tuple[Side, int | None]:
    """Prober's attempt with the profile; also returns the local port it used."""
    from prober.core import engine
    from prober.core.targets import parse_target, with_overrides
    from prober.net.attempt import Deadlines
    from prober.profiles.loader import load_file

    profile = load_file(profile_path)
    target = with_overrides(parse_target(f"{sandbox.NAME}:{port}"), sandbox.ADDRESS, None)
    ep = engine.Endpoint(target, socket.AF_INET, sandbox.ADDRESS)
    opts = engine.EngineOptions(deadlines=Deadlines(connect=5.0, read=5.0))
    result = asyncio.run(engine.attempt(1, ep, profile, 0, opts)).to_json()
    port_used = result.get("local_port")
    if result["outcome"] == "ok":
        neg = result.get("negotiated", {})
        return Side(True, neg.get("version"), neg.get("suite_openssl") or neg.get("suite"),
                    detail=result["detail"]), port_used
    return Side(False, detail=f"{result['outcome']} {result['detail']}".strip()), port_used


def run_cell(client: Client, profile_name: str, profile_path: Path, policy: Policy,
             server: NginxServer, *, tools: Path, work: Path, pki: Pki) -> Cell:
    t0 = time.monotonic()
    before = len(_log_lines(server))
    real, _ = run_real(client, server, tools=tools, work=work / policy.id, ca=pki.ca_cert)
    logged = len(_log_lines(server))
    replay, port = run_replay(profile_path, server.port)
    # the replay's session must be in the log before the next real client counts lines
    deadline = time.monotonic() + 3.0
    while len(_log_lines(server)) <= logged and time.monotonic() < deadline:
        time.sleep(0.02)
    agree, reason = judge(real, replay)
    cell = Cell(profile_name, policy.id, real, replay, agree, reason, time.monotonic() - t0)
    if not agree:
        # what the server logged meanwhile, for whoever looks into it
        lines = _log_lines(server)[before:]
        cell.notes = [json.dumps(d, sort_keys=True) for d in lines]
        cell.notes.append(f"replay local port: {port}")
    return cell


def run_row(client: Client, profile_name: str, profile_path: Path, policies: list[Policy],
            servers: dict[str, NginxServer], *, tools: Path, work: Path, pki: Pki,
            parallel: int = 3) -> list[Cell]:
    """One client against every policy; policies run side by side (each has its own
    server, so the server's log still tells the client's connections apart)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = [pool.submit(run_cell, client, profile_name, profile_path, p,
                               servers[p.id], tools=tools, work=work, pki=pki)
                   for p in policies]
        return [f.result() for f in futures]


def start_server(policy: Policy, pki: Pki) -> NginxServer:
    return NginxServer(pki, **policy.nginx).start()


# --- the table ---------------------------------------------------------------------------


def _short(side: Side, width: int = 48) -> str:
    t = side.text()
    return t if len(t) <= width else t[: width - 1] + "…"


def render(cells: list[Cell]) -> str:
    rows = [("client (profile)", "server policy", "real client (nginx log)", "prober replay",
             "agree")]
    for c in cells:
        rows.append((c.client, c.policy, _short(c.real), _short(c.replay),
                     "yes" if c.agree else "NO"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(f"{v:{widths[i]}}" for i, v in enumerate(r)).rstrip() for r in rows]
    return "\n".join(lines)


def render_matrix(cells: list[Cell]) -> str:
    """Client x policy, each cell: what both sides got, = when they agree."""
    clients = list(dict.fromkeys(c.client for c in cells))
    policies = list(dict.fromkeys(c.policy for c in cells))
    by = {(c.client, c.policy): c for c in cells}

    def mark(c: Cell | None) -> str:
        if c is None:
            return "-"
        if not c.agree:
            return "DISAGREE"
        if not c.real.ok:
            return "= fail"
        return f"= {(c.real.version or '').replace('TLSv', '')}"

    rows = [("", *policies)] + [(cl, *(mark(by.get((cl, p))) for p in policies))
                                for cl in clients]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(f"{v:{widths[i]}}" for i, v in enumerate(r)).rstrip()
                     for r in rows)


def totals(cells: list[Cell]) -> str:
    bad = [c for c in cells if not c.agree]
    ok_ok = sum(1 for c in cells if c.agree and c.real.ok)
    lines = [f"cells: {len(cells)}, agreeing: {len(cells) - len(bad)} "
             f"(both succeeded with the same version and suite: {ok_ok}; both failed: "
             f"{len(cells) - len(bad) - ok_ok}), disagreeing: {len(bad)}"]
    lines += [f"  {c.client} × {c.policy}: {c.reason}"
              + (f" (real client's sessions: {'; '.join(c.real.sessions)})"
                 if c.real.sessions else "") for c in bad]
    return "\n".join(lines)
