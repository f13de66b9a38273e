"""Two private network namespaces joined by one veth, with nftables counting the SYNs
that cross it: how the benchmarks count the TCP connections a tool makes.

Layout (root only)::

    netns prb-bench<pid>-cli  203.0.113.1/24 ==veth== 203.0.113.2/24  netns prb-bench<pid>-srv
    (the tools run here)                                                (the servers, and nft)

The veth pair is created directly between the two namespaces: nothing is added to the
host's own namespace (whose eth0 has a real gateway), neither namespace has a default
route, and ``ip route get`` is checked in both before anything is sent, so no probe can
leave the machine. 203.0.113.0/24 is a documentation range (RFC 5737); the namespaces
are private, so it cannot clash with the host's addresses.

In the server namespace, ``table inet prb_bench`` counts, per watched port, every packet
arriving over the veth with SYN set and ACK clear, i.e. every connection attempt
(retransmitted SYNs included, which a lossless veth does not produce). Counting on the
server side sees every tool alike: raw-socket SYNs (nmap's port scan) as well as
connect().

Entering a namespace uses :func:`tests.lab.netns.in_netns` (setns on the main thread):
a process started inside stays there, and a server from ``tests/peers`` started inside
listens there. Namespaces of an earlier run killed before its teardown
(``prb-bench<dead pid>-*``) are deleted on the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator

from tests.lab.netns import LabError, delete_netns, exec_argv, in_netns, list_netns, run
from tests.peers.lifecycle import Peer, pid_alive
from tests.peers.netns import netns_unavailable

NETWORK = "203.0.113.0/24"
CLIENT_ADDR = "203.0.113.1"
SERVER_ADDR = "203.0.113.2"
CLIENT_IF = "pbcli0"
SERVER_IF = "pbsrv0"
TABLE = "prb_bench"
_OWNED = re.compile(r"prb-bench(\d+)-(cli|srv)")


def why_unavailable() -> str | None:
    """Why the namespaces cannot be built here (None when they can)."""
    return netns_unavailable("the SYN-counting network")


def cleanup_stale() -> list[str]:
    """Delete ``prb-bench<pid>-*`` namespaces whose creating process is gone (only ours:
    what runs inside them was started by an earlier run of this benchmark)."""
    removed = []
    for ns in list_netns():
        m = _OWNED.fullmatch(ns)
        if m is not None and not pid_alive(int(m.group(1))):
            delete_netns(ns)
            removed.append(ns)
    return removed


class SynCounterNet(Peer):
    """See the module docstring. Use as a context manager; ``watch(port)`` before the
    traffic, ``syns(port)`` for the count so far."""

    def __init__(self) -> None:
        self.client_ns = f"prb-bench{os.getpid()}-cli"
        self.server_ns = f"prb-bench{os.getpid()}-srv"
        self.client_addr = CLIENT_ADDR
        self.server_addr = SERVER_ADDR
        self._created: list[str] = []
        self._ports: list[int] = []

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> SynCounterNet:
        reason = why_unavailable()
        if reason:
            raise LabError(reason)
        with self._stopped_on_failure():
            self._setup()
        return self

    def _setup(self) -> None:
        cleanup_stale()
        cli, srv = self.client_ns, self.server_ns
        for ns in (cli, srv):
            run(["ip", "netns", "add", ns])
            self._created.append(ns)
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            # IPv4 only: nothing but the tools' own traffic crosses the veth
            run([*exec_argv(ns), "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                 "net.ipv6.conf.default.disable_ipv6=1"], check=False)
        # created between the two namespaces: the host's namespace never sees an end
        run(["ip", "-n", cli, "link", "add", CLIENT_IF, "type", "veth", "peer", "name",
             SERVER_IF, "netns", srv])
        run(["ip", "-n", cli, "addr", "add", f"{CLIENT_ADDR}/24", "dev", CLIENT_IF])
        run(["ip", "-n", srv, "addr", "add", f"{SERVER_ADDR}/24", "dev", SERVER_IF])
        run(["ip", "-n", cli, "link", "set", CLIENT_IF, "up"])
        run(["ip", "-n", srv, "link", "set", SERVER_IF, "up"])
        self._write_rules()
        self._verify_routes()

    def _verify_routes(self) -> None:
        """Each side reaches the other over the veth, and nothing routes anywhere else."""
        for ns, addr, dev in ((self.client_ns, SERVER_ADDR, CLIENT_IF),
                              (self.server_ns, CLIENT_ADDR, SERVER_IF)):
            got = run(["ip", "-n", ns, "-4", "-o", "route", "get", addr]).stdout
            if f"dev {dev} " not in got + " ":
                raise LabError(f"in {ns}, {addr} does not route via {dev}: {got.strip()!r}")
            if run(["ip", "-n", ns, "-4", "route", "show", "default"]).stdout.strip():
                raise LabError(f"{ns} has a default route")
            # an address outside the pair must have no route at all (e.g. the host's
            # gateway network): `ip route get` fails with "Network is unreachable"
            out = run(["ip", "-n", ns, "-4", "-o", "route", "get", "192.0.2.1"], check=False)
            if out.returncode == 0:
                raise LabError(f"{ns} routes 192.0.2.1: {out.stdout.strip()!r}")

    def stop(self) -> None:
        # deleting a namespace takes its veth end with it; delete_netns also kills what
        # still runs inside (only servers this benchmark started there)
        for ns in reversed(self._created):
            with contextlib.suppress(Exception):
                delete_netns(ns)
        self._created.clear()

    # -- counting -----------------------------------------------------------------------
    def watch(self, port: int) -> None:
        """Start counting SYNs to ``port`` (of the server namespace)."""
        if port not in self._ports:
            self._ports.append(port)
            self._write_rules()

    def _write_rules(self) -> None:
        counters = "\n".join(f"    counter syn_{p} {{ }}" for p in self._ports)
        rules = "\n".join(
            f'        iifname "{SERVER_IF}" tcp dport {p} tcp flags & (syn | ack) == syn '
            f'counter name "syn_{p}"' for p in self._ports)
        # one transaction: delete (if present) and recreate, so counters of ports already
        # watched restart from zero only when the set of ports changes (before traffic)
        ruleset = f"""
table inet {TABLE}
delete table inet {TABLE}
table inet {TABLE} {{
{counters}
    chain input {{
        type filter hook input priority 0; policy accept;
{rules}
    }}
}}
"""
        run([*exec_argv(self.server_ns), "nft", "-f", "-"], input=ruleset)

    def syns(self, port: int) -> int:
        """SYNs counted to ``port`` since it was watched."""
        out = run([*exec_argv(self.server_ns), "nft", "-j", "list", "counter", "inet", TABLE,
                   f"syn_{port}"]).stdout
        for item in json.loads(out).get("nftables", []):
            c = item.get("counter")
            if c is not None:
                return int(c["packets"])
        raise LabError(f"no counter syn_{port} in: {out[:300]}")

    # -- entering -----------------------------------------------------------------------
    @contextlib.contextmanager
    def in_client(self) -> Iterator[None]:
        with in_netns(self.client_ns):
            yield

    @contextlib.contextmanager
    def in_server(self) -> Iterator[None]:
        with in_netns(self.server_ns):
            yield

