"""``DropLab``: a network namespace whose firewall makes packets vanish.

Layout (root only)::

    host  NET.1/24  prbh<id>  <== veth ==>  prbn<id>  NET.2/24  netns prb-<pid>-<id>

NET is the first of the documentation ranges 192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24 that this host does not already use (env ``PRB_DROPLAB_NET`` forces one).
On the sandboxes this project runs on, eth0 itself is 192.0.2.2/24 with its gateway at
192.0.2.1, so the lab normally lands on 198.51.100.0/24: use ``lab.addr``, never a
literal address.  Before handing the lab out we check that ``ip route get lab.addr``
goes through our veth, so no probe can leak to a real gateway.

No default route in the namespace, nothing forwarded: the only traffic is between the
test process and the namespace.  A silent listener (accepts, reads, never writes; it
logs ``accept PORT`` / ``data PORT N`` lines, see :meth:`DropLab.events`) runs inside on
443, 8443 and 9443, and nftables (``table ip prb``, input hook) does:

=========  =============================================  ============================
port       rule                                           what a client sees
=========  =============================================  ============================
8443       drop everything (the SYN)                      connect timeout
443        accept the TCP handshake, drop every segment   connects; its ClientHello is
           that carries payload                           never ACKed (hangs unacked)
9443       ``reject with icmp type host-unreachable``     EHOSTUNREACH on connect
=========  =============================================  ============================

Entering a DropLab where it can't run (not root, no ``ip netns``/``nft``) raises
``pytest.skip`` with the reason (:func:`unavailable_reason`).

The namespace (and with it the veth pair) and the listener are removed on exit, also
after failures; namespaces left by a killed run (``prb-<dead pid>-*``) are removed on
the next start.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .lifecycle import Peer, pid_alive, poll_until, stop_process

CANDIDATE_NETS = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
_ROUTE_TYPES = {
    "unicast",
    "local",
    "broadcast",
    "multicast",
    "anycast",
    "unreachable",
    "blackhole",
    "prohibit",
    "throw",
    "nat",
}
HANG_PORT = 443
DROP_SYN_PORT = 8443
UNREACHABLE_PORT = 9443

_LISTENER = r"""
import selectors, socket, sys
ports = [int(p) for p in sys.argv[1:]]
sel = selectors.DefaultSelector()
for p in ports:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", p)); s.listen(1024); s.setblocking(False)
    sel.register(s, selectors.EVENT_READ, ("L", p))
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        kind, port = key.data
        if kind == "L":
            try:
                c, _a = key.fileobj.accept()
            except BlockingIOError:
                continue
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ, ("C", port))
            print("accept", port, flush=True)
        else:
            try:
                d = key.fileobj.recv(65536)
            except OSError:
                d = b""
            if d:
                print("data", port, len(d), flush=True)
            else:
                sel.unregister(key.fileobj); key.fileobj.close()
                print("close", port, flush=True)
"""


def _nft_rules() -> str:
    payload_rules = "\n".join(
        # a segment carries payload when ip length > ip header (20) + tcp header (doff*4)
        f"        tcp dport {HANG_PORT} ip hdrlength 5 tcp doff {doff} "
        f"ip length > {20 + 4 * doff} counter drop"
        for doff in range(5, 16)
    )
    return f"""
table ip prb {{
    chain input {{
        type filter hook input priority 0; policy accept;
        tcp dport {DROP_SYN_PORT} counter drop
        tcp dport {UNREACHABLE_PORT} counter reject with icmp type host-unreachable
{payload_rules}
    }}
}}
"""


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


NETNS_TOOLS = (("ip", "iproute2"), ("nft", "nftables"))


def netns_unavailable(who: str, tools: Sequence[tuple[str, str]] = NETNS_TOOLS) -> str | None:
    """Why ``who`` can't build network namespaces here (None when it can); ``tools``:
    the (binary, Debian package) it needs."""
    if os.geteuid() != 0:
        return f"{who} needs root (network namespaces, veth, nftables)"
    for binary, package in tools:
        if shutil.which(binary) is None:
            return f"{who} needs `{binary}` (apt-get install {package})"
    r = _run("ip", "netns", "list", check=False)
    if r.returncode != 0:
        return f"`ip netns` unavailable: {r.stderr.strip()}"
    return None


def unavailable_reason() -> str | None:
    """Why a DropLab can't run here (None when it can)."""
    return netns_unavailable("DropLab")


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Networks of the host's non-default IPv4 routes and addresses."""
    used = []
    for line in _run("ip", "-4", "route", "show", "table", "all", check=False).stdout.splitlines():
        parts = line.split()
        dest = (
            parts[1] if parts and parts[0] in _ROUTE_TYPES else (parts[0] if parts else "default")
        )
        if dest == "default" or not dest[0].isdigit():
            continue
        with_prefix = dest if "/" in dest else dest + "/32"
        used.append(ipaddress.ip_network(with_prefix, strict=False))
    for line in _run("ip", "-4", "-o", "addr", "show", check=False).stdout.splitlines():
        m = re.search(r"inet (\S+)", line)
        if m:
            used.append(ipaddress.ip_interface(m.group(1)).network)
    return [n for n in used if isinstance(n, ipaddress.IPv4Network)]


def pick_network() -> ipaddress.IPv4Network:
    """The first documentation /24 no route or address of this host overlaps."""
    forced = os.environ.get("PRB_DROPLAB_NET")
    candidates = [forced] if forced else list(CANDIDATE_NETS)
    used = _used_networks()
    for cand in candidates:
        net = ipaddress.IPv4Network(cand)
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(
        f"all of {candidates} are in use on this host (another DropLab running?): {used}"
    )


def cleanup_stale() -> list[str]:
    """Delete ``prb-<pid>-*`` namespaces whose creating process is gone."""
    removed = []
    r = _run("ip", "netns", "list", check=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.fullmatch(r"prb-(\d+)-[0-9a-f]+", name)
        if m and not pid_alive(int(m.group(1))):
            _run("ip", "netns", "del", name, check=False)
            removed.append(name)
    return removed


class DropLab(Peer):
    """See the module docstring.  Attributes: ``addr`` (the namespace side, NET.2),
    ``host_addr`` (NET.1), ``network``, ``ns`` (namespace name), ``hang_port`` (443),
    ``drop_syn_port`` (8443), ``unreachable_port`` (9443), ``listener_pid``."""

    hang_port = HANG_PORT
    drop_syn_port = DROP_SYN_PORT
    unreachable_port = UNREACHABLE_PORT
    # aliases named after what the client sees
    timeout_port = DROP_SYN_PORT
    unacked_port = HANG_PORT

    def __init__(self) -> None:
        ident = secrets.token_hex(3)
        self.ns = f"prb-{os.getpid()}-{ident}"
        self.host_if = f"prbh{ident}"
        self.ns_if = f"prbn{ident}"
        self.listener_pid: int | None = None
        self._listener: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._created = False
        self.network: ipaddress.IPv4Network | None = None
        self.addr = ""
        self.host_addr = ""

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> DropLab:
        reason = unavailable_reason()
        if reason:
            import pytest  # only here: the lab is usable outside pytest too

            pytest.skip(reason)
        with self._stopped_on_failure():
            self._setup()
        return self

    def _setup(self) -> None:
        cleanup_stale()
        self.network = net = pick_network()
        hosts = net.hosts()
        self.host_addr, self.addr = str(next(hosts)), str(next(hosts))
        prefix = net.prefixlen
        _run("ip", "netns", "add", self.ns)
        self._created = True
        ns = ("ip", "-n", self.ns)
        _run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _run("ip", "link", "set", self.ns_if, "netns", self.ns)
        _run("ip", "addr", "add", f"{self.host_addr}/{prefix}", "dev", self.host_if)
        _run("ip", "link", "set", self.host_if, "up")
        _run(*ns, "addr", "add", f"{self.addr}/{prefix}", "dev", self.ns_if)
        _run(*ns, "link", "set", self.ns_if, "up")
        _run(*ns, "link", "set", "lo", "up")
        # let every rejected SYN get its ICMP (no per-destination rate limit)
        for key, val in (
            ("net.ipv4.icmp_ratelimit", "0"),
            ("net.ipv4.icmp_msgs_per_sec", "100000"),
            ("net.ipv4.icmp_msgs_burst", "100000"),
        ):
            _run("ip", "netns", "exec", self.ns, "sysctl", "-q", "-w", f"{key}={val}", check=False)
        r = subprocess.run(
            ["ip", "netns", "exec", self.ns, "nft", "-f", "-"],
            input=_nft_rules(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if r.returncode != 0:
            raise RuntimeError(f"nft failed: {r.stderr.strip()}\n{_nft_rules()}")
        self._tmp = tempfile.TemporaryDirectory(prefix="prb-droplab-")
        argv = ["ip", "netns", "exec", self.ns, sys.executable, "-u", "-c", _LISTENER,
                str(HANG_PORT), str(DROP_SYN_PORT), str(UNREACHABLE_PORT)]
        with open(Path(self._tmp.name) / "listener.log", "ab") as out:
            self._listener = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                              stderr=subprocess.STDOUT)
        self.listener_pid = self._listener.pid  # `ip netns exec` execs: same pid
        listener = self._listener
        poll_until(lambda: "ready" in self.listener_log() or listener.poll() is not None, 10)
        if "ready" not in self.listener_log():
            raise RuntimeError(f"namespace listener did not start: {self.listener_log()}")
        # the host end of the veth up with carrier (both ends up), so the first test's
        # SYN isn't lost
        poll_until(lambda: _link_up(self.host_if), 5)
        route = _run("ip", "-4", "-o", "route", "get", self.addr).stdout
        if f"dev {self.host_if} " not in route + " ":
            raise RuntimeError(f"{self.addr} is not routed through {self.host_if}: {route!r}")

    def stop(self) -> None:
        p, self._listener = self._listener, None
        if p is not None:
            stop_process(p)
        if self._created:
            _run("ip", "netns", "del", self.ns, check=False)
            self._created = False
        # deleting the namespace destroys the veth pair; make sure of it
        if _run("ip", "link", "show", self.host_if, check=False).returncode == 0:
            _run("ip", "link", "del", self.host_if, check=False)

    # -- observations -----------------------------------------------------------------
    def listener_log(self) -> str:
        if self._tmp is None:
            return ""
        try:
            return (Path(self._tmp.name) / "listener.log").read_text()
        except OSError:
            return ""

    def events(self) -> list[tuple[str, int, int]]:
        """(``accept``|``data``|``close``, port, bytes) seen by the namespace listener."""
        out = []
        for line in self.listener_log().splitlines():
            parts = line.split()
            if parts and parts[0] in ("accept", "data", "close"):
                out.append((parts[0], int(parts[1]), int(parts[2]) if len(parts) > 2 else 0))
        return out

    def nft_counters(self) -> str:
        """``nft list ruleset`` inside the namespace (with packet counters)."""
        return _run("ip", "netns", "exec", self.ns, "nft", "list", "ruleset").stdout


def _link_up(interface: str) -> bool:
    r = _run("ip", "-o", "link", "show", interface, check=False)
    return "LOWER_UP" in r.stdout and "state UP" in r.stdout
