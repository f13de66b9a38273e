"""The lab: client, router and server hosts in network namespaces, with a real
scenario per finding of ``prober diagnose``.  See docs/lab.md for the picture.

::

    client1 198.51.100.10 ─┐                                    ┌─ server 203.0.113.10
                           ├─ br-lan 198.51.100.1  ROUTER  203.0.113.1 ─ wan0   + .11–.30
    client2 198.51.100.11 ─┘   (forwarding, nftables, iptables string match,
                                 policy routes, Python middleboxes)

No namespace has a default route and the host namespace gets nothing of the lab, so a
probe can reach the lab's addresses and nothing else.  :meth:`Lab.start` checks that
with ``ip route get`` in every namespace before anything sends a packet.

``Lab()`` names its namespaces ``prb-lab<pid>-<host>`` (tests; ``tag=`` tells two labs
of one process apart); ``Lab(manual=True)`` uses ``prb-lab-<host>`` (the lab brought up
by hand, see scripts/lab.py).  Starting a lab removes namespaces of labs whose owner died.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prober.cli.demo import load_policy
from tests.peers.lifecycle import Peer, poll_until, stop_process
from tests.peers.nginx_server import NginxServer, NginxSession
from tests.peers.ports import free_port

from .certs import LabCA
from .netns import (
    ETC_NETNS,
    LabError,
    cleanup_stale,
    delete_netns,
    exec_argv,
    in_netns,
    prefix_for,
    run,
    unavailable_reason,
)
from .profiles import write_profiles
from .scenarios import (
    BACKEND_A,
    BACKEND_B,
    CLIENT1,
    CLIENT2,
    CLIENT_NET,
    MIXED_A,
    MIXED_B,
    ROUTER_LAN,
    ROUTER_WAN,
    SERVER,
    SERVER_NET,
    SERVICE_ADDRESSES,
    SERVICE_PORT,
    LabParams,
    Scenario,
    catalog,
)
from .services import (
    AlbFront,
    AsyncHost,
    BannerService,
    InterceptingProxy,
    NearTerminator,
    RecordWiseTLSServer,
    SilentProxy,
    StrictSniServer,
    VersionIntolerantFront,
)

HOSTS = ("client1", "client2", "router", "server")
CLIENT_IF = "lan0"  # the clients' only interface
SERVER_IF = "wan0"  # the server's only interface
ROUTER_LAN_IF, ROUTER_WAN_IF = "br-lan", "srv0"

# router-local ports of the middleboxes the router REDIRECTs to (by scenario address)
SILENT_PORT, INTERCEPT_PORT, NEAR_PORT = 10014, 10024, 10028
MTU_TABLE = 120  # routing table holding the small-MTU route of mtu-blackhole
# TLS record headers (type 20-23, version 3.0-3.4) as the first 3 payload bytes
_RECORD_HEADERS = ", ".join(f"0x{t:02x}03{v:02x}" for t in range(0x14, 0x18) for v in range(5))
# A veth passes whole GSO super-packets (up to 64 kB) from one namespace to the next, so
# nftables on the router would see a 1.8 kB ClientHello as one packet where a real wire
# carries two segments.  One segment per packet, as on a real link: no rule here can
# tell the lab from a wire.  (ethtool -K ... tso off gso off needs one more package.)
_WIRE = ("gso_max_segs", "1")
_LEGACY_CIPHERS = "HIGH:!aNULL:!MD5:@SECLEVEL=0"  # OpenSSL 3 refuses TLS < 1.2 above level 0


def _sysctl(ns: str, *settings: str, check: bool = True) -> None:
    run([*exec_argv(ns), "sysctl", "-q", "-w", *settings], check=check)


def _start_nginx(server: NginxServer) -> None:
    # a LabError is what scripts/lab.py reports as a message rather than a traceback
    try:
        server.start()
    except RuntimeError as e:
        raise LabError(f"nginx on {server.host}:{server.port}: {e}") from None


@dataclass
class Packet:
    """One line pair of ``tcpdump -v`` output."""

    time: float
    ttl: int
    ip_id: int
    length: int
    src: str
    sport: int
    dst: str
    dport: int
    flags: str  # tcpdump's: "S", "S.", ".", "P.", "R", "R.", "F." ...
    payload: int


_TCPDUMP_IP = re.compile(r"^(\d+\.\d+) IP \(tos \S+, ttl (\d+), id (\d+), .*length (\d+)\)")
_TCPDUMP_TCP = re.compile(
    r"^\s+(\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): Flags \[([^\]]*)\]"
    r".*length (\d+)")


def parse_tcpdump(text: str) -> list[Packet]:
    """Packets from ``tcpdump -tt -n -v`` output (IPv4 TCP only)."""
    out = []
    head: re.Match[str] | None = None
    for line in text.splitlines():
        if m := _TCPDUMP_IP.match(line):
            head = m
            continue
        if head is not None and (t := _TCPDUMP_TCP.match(line)):
            out.append(Packet(time=float(head.group(1)), ttl=int(head.group(2)),
                              ip_id=int(head.group(3)), length=int(head.group(4)),
                              src=t.group(1), sport=int(t.group(2)), dst=t.group(3),
                              dport=int(t.group(4)), flags=t.group(5), payload=int(t.group(6))))
        head = None
    return out


@dataclass
class Capture:
    """A running ``tcpdump`` in a lab namespace; ``packets()`` after the block ends."""

    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    _packets: list[Packet] = field(default_factory=list)

    def packets(self) -> list[Packet]:
        return self._packets

    def wait_for(self, what: str, pred: Callable[[list[Packet]], bool],
                 timeout: float = 10.0) -> None:
        """Inside the block: until the packets written so far satisfy ``pred``.  tcpdump
        writes a packet some time after it passed, and on SIGINT it drops what it has not
        written yet: a test asserting on the *last* packets of an exchange (a reset, a FIN)
        waits for them here instead of trusting the block's short grace."""
        def seen() -> bool:
            return pred(parse_tcpdump(self.out.read_text(errors="replace")))

        if not poll_until(seen, timeout):
            raise LabError(f"tcpdump did not show {what} within {timeout} s:\n"
                           f"{self.out.read_text(errors='replace')[-3000:]}")


class Flapper:
    """Stops and starts the flapping scenario's nginx.  ``down()``/``up()`` from the main
    thread (starting nginx enters the server namespace); ``tick()`` toggles on a
    schedule when the lab runs by itself."""

    def __init__(self, lab: Lab, server: NginxServer) -> None:
        self.lab, self.server = lab, server
        self.auto = False
        self._next = 0.0
        self.toggles: list[tuple[float, bool]] = []  # (time.time(), up?) of every change

    @property
    def is_up(self) -> bool:
        return self.server.running

    def down(self) -> None:
        if self.server.running:
            self.server.stop()
            self.toggles.append((time.time(), False))

    def up(self) -> None:
        if not self.server.running:
            with in_netns(self.lab.ns("server")):
                _start_nginx(self.server)
            self.toggles.append((time.time(), True))

    def start_auto(self) -> None:
        self.auto = True
        self._next = time.monotonic() + self.lab.params.flap_up_s

    def tick(self) -> None:
        if not self.auto or time.monotonic() < self._next:
            return
        if self.is_up:
            self.down()
            self._next = time.monotonic() + self.lab.params.flap_down_s
        else:
            self.up()
            self._next = time.monotonic() + self.lab.params.flap_up_s


@dataclass
class ProbeRun:
    """A ``prober probe`` started in a lab namespace (see :meth:`Lab.start_probe`)."""

    argv: list[str]
    proc: subprocess.Popen[str]
    json_path: Path
    timeout: float

    def result(self) -> dict[str, Any]:
        """Wait (bounded) and return the JSON document; raise with the output if it failed."""
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=10)
            raise LabError(f"timed out after {self.timeout} s: {' '.join(self.argv)}\n{err}"
                           ) from None
        if self.proc.returncode != 0 or not self.json_path.exists():
            raise LabError(f"exit {self.proc.returncode}: {' '.join(self.argv)}\n{out}\n{err}")
        doc: dict[str, Any] = json.loads(self.json_path.read_text())
        doc["_table"] = out
        return doc


class Lab(Peer):
    """See the module docstring.

    Attributes: ``params`` (:class:`LabParams`), ``scenarios`` (name -> :class:`Scenario`),
    ``servers`` (scenario or backend name -> nginx), ``flapper``, the middleboxes
    (``silent_proxy``, ``near_terminator``, ``interceptor``, ``alb_front``), ``workdir``
    (certificates, profiles, logs), ``profiles_dir`` (for ``$PROBER_PROFILES``),
    ``lab_ca`` / ``intercept_ca`` (paths of the two CA certificates).
    """

    def __init__(self, params: LabParams | None = None, *, manual: bool = False,
                 tag: str = "") -> None:
        self.params = params or LabParams()
        # a test lab carries its owner's pid, so a later run can tell it is stale; the
        # lab brought up by hand has fixed names users can type (scripts/lab.py owns it)
        self.owner_pid = None if manual else os.getpid()
        # a tag tells apart two labs of one owner (namespace names stay [a-z0-9-])
        if not re.fullmatch(r"[a-z0-9]*", tag):
            raise ValueError(f"lab tag {tag!r}: lowercase letters and digits only")
        self.prefix = prefix_for(self.owner_pid) + tag
        self.scenarios: dict[str, Scenario] = {s.name: s for s in catalog(self.params)}
        self.servers: dict[str, NginxServer] = {}
        self.flapper: Flapper | None = None
        self.silent_proxy: SilentProxy | None = None
        self.near_terminator: NearTerminator | None = None
        self.interceptor: InterceptingProxy | None = None
        self.alb_front: AlbFront | None = None
        self._router_host: AsyncHost | None = None
        self._server_host: AsyncHost | None = None
        self.mtu_server: RecordWiseTLSServer | None = None
        self.strict_sni: StrictSniServer | None = None
        self.intolerant_front: VersionIntolerantFront | None = None
        self.banner_service: BannerService | None = None
        self._ca: LabCA | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # -- names and commands -----------------------------------------------------------
    def ns(self, host: str) -> str:
        if host not in HOSTS:
            raise KeyError(f"no host {host!r} in the lab (hosts: {', '.join(HOSTS)})")
        return f"{self.prefix}{host}"

    @property
    def namespaces(self) -> list[str]:
        return [self.ns(h) for h in HOSTS]

    def exec_argv(self, host: str) -> list[str]:
        """``ip netns exec <ns>``: prefix a command with this to run it on ``host``."""
        return exec_argv(self.ns(host))

    def prober_argv(self, host: str = "client1") -> list[str]:
        """``prober`` run on ``host`` (this interpreter, so the venv's prober)."""
        return [*self.exec_argv(host), "env", f"PROBER_PROFILES={self.profiles_dir}",
                sys.executable, "-m", "prober"]

    def scenario(self, name: str) -> Scenario:
        return self.scenarios[name]

    @property
    def workdir(self) -> Path:
        if self._tmp is None:
            raise LabError("the lab is not started")
        return Path(self._tmp.name)

    @property
    def profiles_dir(self) -> Path:
        return self.workdir / "profiles"

    @property
    def lab_ca(self) -> Path:
        return self.workdir / "ca" / "ca.pem"

    @property
    def intercept_ca(self) -> Path:
        return self.workdir / "intercept-ca" / "ca.pem"

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> Lab:
        reason = unavailable_reason()
        if reason:
            raise LabError(reason)
        cleanup_stale()
        for ns in self.namespaces:  # a lab of ours with these names is running elsewhere
            if ns in run(["ip", "netns", "list"]).stdout.split():
                raise LabError(f"namespace {ns} exists already (`scripts/lab.py down`?)")
        # every file of the lab (certificates, server configs and logs, captures) lives
        # here; the name carries the owner's pid so a killed run's leftovers can go
        self._tmp = tempfile.TemporaryDirectory(prefix=f"{self.prefix}work-")
        os.chmod(self._tmp.name, 0o755)  # nginx workers read certificates from here
        with self._stopped_on_failure():
            self._build_topology()
            self._verify_routes()
            self._start_services()
            self._load_rules()
            self._wait_reachable()
        return self

    def stop(self) -> None:
        """Stop everything the lab started and delete its namespaces.  Idempotent, and
        every step runs even when an earlier one fails."""
        steps: list[Any] = []
        if self.alb_front is not None:
            steps.append(self.alb_front.stop)
        for host in (self._router_host, self._server_host):
            if host is not None:
                steps.append(host.stop)
        steps += [srv.stop for srv in reversed(self.servers.values())]
        for step in steps:
            with contextlib.suppress(Exception):
                step()
        self.alb_front = self._router_host = self._server_host = None
        self.servers.clear()
        for ns in reversed(self.namespaces):
            with contextlib.suppress(Exception):
                delete_netns(ns)
        if self._tmp is not None:
            with contextlib.suppress(Exception):
                self._tmp.cleanup()
            self._tmp = None

    # -- topology ---------------------------------------------------------------------
    def _build_topology(self) -> None:
        c1, c2, r, s = (self.ns(h) for h in HOSTS)
        for ns in self.namespaces:
            run(["ip", "netns", "add", ns])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
            # IPv4 only: no router solicitations or v6 leftovers in captures
            _sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1")
        # every veth pair is created between two lab namespaces: nothing in the host's
        run(["ip", "-n", r, "link", "add", ROUTER_LAN_IF, "type", "bridge"])
        for client, port_if in ((c1, "c1"), (c2, "c2")):
            run(["ip", "-n", r, "link", "add", port_if, "type", "veth", "peer", "name",
                 CLIENT_IF, "netns", client])
            run(["ip", "-n", r, "link", "set", port_if, "master", ROUTER_LAN_IF, *_WIRE, "up"])
        run(["ip", "-n", r, "link", "add", ROUTER_WAN_IF, "type", "veth", "peer", "name",
             SERVER_IF, "netns", s])
        run(["ip", "-n", r, "addr", "add", f"{ROUTER_LAN}/24", "dev", ROUTER_LAN_IF])
        run(["ip", "-n", r, "addr", "add", f"{ROUTER_WAN}/24", "dev", ROUTER_WAN_IF])
        run(["ip", "-n", r, "link", "set", ROUTER_LAN_IF, *_WIRE, "up"])
        run(["ip", "-n", r, "link", "set", ROUTER_WAN_IF, *_WIRE, "up"])
        for client, addr in ((c1, CLIENT1), (c2, CLIENT2)):
            run(["ip", "-n", client, "addr", "add", f"{addr}/24", "dev", CLIENT_IF])
            run(["ip", "-n", client, "link", "set", CLIENT_IF, *_WIRE, "up"])
            run(["ip", "-n", client, "route", "add", SERVER_NET, "via", ROUTER_LAN])
        run(["ip", "-n", s, "addr", "add", f"{SERVER}/24", "dev", SERVER_IF])
        for addr in SERVICE_ADDRESSES:
            run(["ip", "-n", s, "addr", "add", f"{addr}/32", "dev", SERVER_IF])
        run(["ip", "-n", s, "link", "set", SERVER_IF, *_WIRE, "up"])
        run(["ip", "-n", s, "route", "add", CLIENT_NET, "via", ROUTER_WAN])

        # the router forwards (decrementing TTL: its own packets arrive with 64, the
        # server's with 63); the bridge is plain L2 (no iptables on bridged frames);
        # conntrack never picks up a flow it lost mid-stream (idle-timeout needs that)
        _sysctl(r, "net.ipv4.ip_forward=1", "net.netfilter.nf_conntrack_tcp_loose=0")
        _sysctl(r, "net.bridge.bridge-nf-call-iptables=0",
                "net.bridge.bridge-nf-call-arptables=0", check=False)
        # a server that never learns of the small MTU must not find it by probing either
        _sysctl(s, "net.ipv4.tcp_mtu_probing=0")
        # mtu-blackhole: replies from its address leave the router over a 1280-byte path
        mtu_addr = self.scenarios["mtu-blackhole"].address
        run(["ip", "-n", r, "route", "add", CLIENT_NET, "dev", ROUTER_LAN_IF, "mtu", "lock",
             str(self.params.blackhole_mtu), "table", str(MTU_TABLE)])
        run(["ip", "-n", r, "rule", "add", "from", mtu_addr, "lookup", str(MTU_TABLE),
             "priority", "1000"])
        self._write_etc()

    def _write_etc(self) -> None:
        """Hosts file and resolver for ``ip netns exec``: lab names resolve from the file,
        any other name fails at once (the resolver is 127.0.0.1 of the namespace, where
        nothing listens; and there is no route out anyway)."""
        hosts = ["127.0.0.1 localhost", f"{SERVER} server.lab.test"]
        hosts += [f"{s.address} {s.sni}" for s in self.scenarios.values()]
        hosts += [f"{BACKEND_A} backend-a.lab.test", f"{BACKEND_B} backend-b.lab.test",
                  f"{MIXED_A} mixed-a.lab.test", f"{MIXED_B} mixed-b.lab.test"]
        for ns in self.namespaces:
            d = ETC_NETNS / ns
            d.mkdir(parents=True, exist_ok=True)
            (d / "hosts").write_text("\n".join(hosts) + "\n")
            (d / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    def _verify_routes(self) -> None:
        """Every lab address routes into the lab, and nothing routes out of it."""
        c1, c2, r, s = (self.ns(h) for h in HOSTS)
        checks = [(c, a, f"dev {CLIENT_IF}") for c in (c1, c2)
                  for a in (ROUTER_LAN, SERVER, *SERVICE_ADDRESSES)]
        checks += [(r, CLIENT1, f"dev {ROUTER_LAN_IF}"), (r, SERVER, f"dev {ROUTER_WAN_IF}")]
        checks += [(s, CLIENT1, f"dev {SERVER_IF}")]
        for ns, addr, want in checks:
            got = run(["ip", "-n", ns, "-4", "-o", "route", "get", addr]).stdout
            if want not in got:
                raise LabError(f"in {ns}, {addr} does not route {want}: {got.strip()!r}")
        for ns in self.namespaces:
            if run(["ip", "-n", ns, "-4", "route", "show", "default"]).stdout.strip():
                raise LabError(f"{ns} has a default route")
            # the host's real gateway and a public address must be unreachable from the lab
            for outside in ("192.0.2.1", "8.8.8.8"):
                r_out = run(["ip", "-n", ns, "-4", "-o", "route", "get", outside], check=False)
                if r_out.returncode == 0:
                    raise LabError(f"{ns} has a route to {outside}: {r_out.stdout.strip()}")

    # -- services ---------------------------------------------------------------------
    def _nginx(self, key: str, address: str, *, expired: bool = False,
               **kwargs: Any) -> NginxServer:
        kwargs.setdefault("protocols", "TLSv1.2 TLSv1.3")
        assert self._ca is not None
        kwargs.setdefault("port", SERVICE_PORT)
        # in the lab's directory, so it goes with the lab
        srv = NginxServer(self._ca.pki(key, expired=expired), host=address,
                          dir=self.workdir / f"nginx-{key}", **kwargs)
        self.servers[key] = srv
        _start_nginx(srv)
        return srv

    def _start_services(self) -> None:
        self._ca = ca = LabCA(self.workdir / "ca", "prober lab", "prober lab CA",
                              (SERVER, *SERVICE_ADDRESSES))
        icpt = LabCA(self.workdir / "intercept-ca", "prober lab intercept",
                     "prober lab intercept CA", (SERVER, *SERVICE_ADDRESSES))
        write_profiles(self.profiles_dir)
        sc = self.scenarios
        with in_netns(self.ns("server")):
            for name in ("healthy", "silent-proxy", "injected-reset", "sni-reset", "sni-drop",
                         "size-drop", "segmentation-drop",
                         "intercepting-proxy", "idle-timeout", "flapping",
                         "near-tcp-terminator", "size-window", "rate-limited", "lossy-path",
                         "outside-reset"):
                self._nginx(name, sc[name].address)
            # client-certificate: every client is asked for a certificate of the lab CA
            self._nginx("client-certificate", sc["client-certificate"].address,
                        extra_ssl=f"ssl_verify_client on;\n        "
                                  f"ssl_client_certificate {ca.cert_path};")
            # mixed-certificates: the same server twice, B with yesterday's certificate
            self._nginx("mixed-a", MIXED_A)
            self._nginx("mixed-b", MIXED_B, expired=True)
            # version-intolerance: nginx on the server's loopback, behind the front
            intolerant_backend = self._nginx("version-intolerance", "127.0.0.1",
                                             port=free_port("127.0.0.1"))
            self._nginx("policy-alert", sc["policy-alert"].address, protocols="TLSv1.2")
            self._nginx("backend-a", BACKEND_A, protocols="TLSv1.1 TLSv1.2 TLSv1.3",
                        ciphers=_LEGACY_CIPHERS)
            self._nginx("backend-b", BACKEND_B)
            self._nginx("fallback", sc["fallback"].address,
                        protocols="TLSv1 TLSv1.1 TLSv1.2 TLSv1.3", ciphers=_LEGACY_CIPHERS)
            # policy-reset: prober demo's ALB front on the service address, and behind it
            # (on the server's loopback) nginx with the policy the demo reads from the
            # catalog
            policy = load_policy()
            backend = self._nginx("policy-reset", "127.0.0.1", port=free_port("127.0.0.1"),
                                  protocols=" ".join(policy.protocols),
                                  ciphers=":".join(policy.ciphers), cert="both")
            self.alb_front = AlbFront(backend.port, sc["policy-reset"].address, SERVICE_PORT)
            self.alb_front.start()
        self.flapper = Flapper(self, self.servers["flapping"])

        # mtu-blackhole: a server that writes the ServerHello in a segment of its own
        self._server_host = AsyncHost(self.ns("server")).start()
        # 40 more names: a certificate record well over the path's MTU, as real ones are
        cert, key = ca.leaf("mtu-blackhole", "rsa", extra_names=40)
        self.mtu_server = RecordWiseTLSServer(self._server_host, sc["mtu-blackhole"].address,
                                              SERVICE_PORT, cert, key).start()
        strict = sc["sni-required"]
        cert, key = ca.leaf("sni-required", "rsa")
        self.strict_sni = StrictSniServer(self._server_host, strict.address, SERVICE_PORT,
                                          cert, key, strict.sni).start()
        self.intolerant_front = VersionIntolerantFront(
            self._server_host, sc["version-intolerance"].address, SERVICE_PORT,
            ("127.0.0.1", intolerant_backend.port)).start()
        self.banner_service = BannerService(self._server_host, sc["wrong-service"].address,
                                            SERVICE_PORT,
                                            b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n").start()

        self._router_host = AsyncHost(self.ns("router")).start()
        p = self.params
        self.silent_proxy = SilentProxy(self._router_host, SILENT_PORT, p.silent_fin_s).start()
        self.near_terminator = NearTerminator(self._router_host, NEAR_PORT,
                                              p.near_delay_ms).start()
        cert, key = icpt.leaf("intercepted", "rsa")
        self.interceptor = InterceptingProxy(self._router_host, INTERCEPT_PORT, cert, key,
                                             ca.cert_path).start()

    # -- router rules -----------------------------------------------------------------
    def nft_ruleset(self) -> str:
        sc = self.scenarios
        p = self.params
        port = SERVICE_PORT

        def a(name: str) -> str:
            return sc[name].address

        return f"""
table ip prblab {{
    # idle-timeout: the flow table keeps an idle established flow this long
    ct timeout lab_idle {{
        protocol tcp
        l3proto ip
        policy = {{ established : {int(p.idle_timeout_s)} }}
    }}

    chain nat_prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        ip daddr {a("silent-proxy")} tcp dport {port} counter redirect to :{SILENT_PORT}
        ip daddr {a("near-tcp-terminator")} tcp dport {port} counter redirect to :{NEAR_PORT}
        ip saddr {CLIENT2} ip daddr {a("intercepting-proxy")} tcp dport {port} counter \\
            redirect to :{INTERCEPT_PORT}
        # two-backends: a hash of the client's address and port picks the backend, as
        # ECMP and LVS do: one flow always lands on the same backend, successive flows
        # (new source ports) on either
        ip daddr {a("two-backends")} tcp dport {port} counter \\
            dnat to jhash ip saddr . tcp sport mod 2 map {{ 0 : {BACKEND_A}, 1 : {BACKEND_B} }}
        # mixed-certificates: the same balancing over two backends that differ only in
        # their certificate
        ip daddr {a("mixed-certificates")} tcp dport {port} counter \\
            dnat to jhash ip saddr . tcp sport mod 2 map {{ 0 : {MIXED_A}, 1 : {MIXED_B} }}
    }}

    chain forward {{
        type filter hook forward priority filter; policy accept;
        # idle-timeout: the flow gets the short timeout when it is created (the policy
        # attaches to a connection conntrack has not confirmed yet: its first packet)...
        ip daddr {a("idle-timeout")} tcp dport {port} ct state new ct timeout set "lab_idle"
        # ...and a segment of a flow the table forgot is answered with RST
        ip daddr {a("idle-timeout")} tcp dport {port} ct state invalid counter \\
            reject with tcp reset
        # injected-reset: a forged RST for the ClientHello (a TLS handshake record)
        ip daddr {a("injected-reset")} tcp dport {port} @ih,0,8 0x16 counter \\
            reject with tcp reset
        # size-drop: long packets vanish
        ip daddr {a("size-drop")} tcp dport {port} ip length > {p.size_limit} counter drop
        # segmentation-drop: SSLv2-format hellos pass; any other segment with payload
        # that does not start with a TLS record header is the rest of a split record
        ip daddr {a("segmentation-drop")} tcp dport {port} @ih,0,1 1 @ih,16,8 0x01 accept
        ip daddr {a("segmentation-drop")} tcp dport {port} \\
            @ih,0,24 != {{ {_RECORD_HEADERS} }} counter drop
        # size-window: packets of a band of lengths vanish (larger and smaller pass)
        ip daddr {a("size-window")} tcp dport {port} \\
            ip length {p.size_window[0]}-{p.size_window[1]} counter drop
        # rate-limited: new connections beyond the rate are refused with RST
        ip daddr {a("rate-limited")} tcp dport {port} ct state new \\
            limit rate over {p.rate_per_s}/second burst {p.rate_burst} packets counter \\
            reject with tcp reset
        # lossy-path: a share of the clients' packets is lost (the replies are not)
        ip daddr {a("lossy-path")} tcp dport {port} \\
            numgen random mod 100 < {p.loss_percent} counter drop
        # outside-reset: client2's ClientHellos get a forged RST, client1's pass
        ip saddr {CLIENT2} ip daddr {a("outside-reset")} tcp dport {port} @ih,0,8 0x16 \\
            counter reject with tcp reset
        # endpoint-unreachable: every SYN gets ICMP host-unreachable
        ip daddr {a("endpoint-unreachable")} tcp dport {port} counter \\
            reject with icmp type host-unreachable
    }}

    chain output {{
        type filter hook output priority filter; policy accept;
        # mtu-blackhole: the router's "fragmentation needed" never reaches the server
        ip daddr {a("mtu-blackhole")} icmp type destination-unreachable \\
            icmp code frag-needed counter drop
    }}
}}
"""

    def _load_rules(self) -> None:
        r = self.ns("router")
        run([*exec_argv(r), "nft", "-f", "-"], input=self.nft_ruleset())
        # SNI matching: nftables has no substring match, xt_string does (iptables-nft
        # puts it in its own `ip filter` table, next to ours)
        for name, target in (("sni-reset", ["REJECT", "--reject-with", "tcp-reset"]),
                             ("sni-drop", ["DROP"])):
            run([*exec_argv(r), "iptables", "-w", "5", "-A", "FORWARD", "-p", "tcp",
                 "--dport", str(SERVICE_PORT), "-m", "string", "--string",
                 self.scenarios[name].sni, "--algo", "bm", "--to", "4096", "-j", *target])

    def _wait_reachable(self, timeout: float = 10.0) -> None:
        """The first probe must not race the links coming up: connect once from each
        client to the healthy server (bounded)."""
        addr = self.scenarios["healthy"].address
        code = ("import socket,sys,time\n"
                "end=time.monotonic()+float(sys.argv[2])\n"
                "while True:\n"
                "  try:\n"
                "    socket.create_connection((sys.argv[1],443),timeout=1).close(); break\n"
                "  except OSError:\n"
                "    if time.monotonic()>end: raise\n"
                "    time.sleep(0.05)\n")
        for host in ("client1", "client2"):
            run([*self.exec_argv(host), sys.executable, "-c", code, addr, str(timeout)],
                timeout=timeout + 5)

    # -- using the lab ----------------------------------------------------------------
    def run_in(self, host: str, argv: Sequence[str], *, timeout: float = 60.0,
               check: bool = False) -> subprocess.CompletedProcess[str]:
        return run([*self.exec_argv(host), *argv], timeout=timeout, check=check)

    def start_probe(self, *args: str, host: str = "client1",
                    timeout: float = 60.0) -> ProbeRun:
        """Start ``prober probe ARGS --json FILE -q`` on ``host``; ``.result()`` waits."""
        fd, path = tempfile.mkstemp(prefix="probe-", suffix=".json", dir=self.workdir)
        os.close(fd)
        os.unlink(path)
        argv = [*self.prober_argv(host), "probe", *args, "--json", path]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        return ProbeRun(argv, proc, Path(path), timeout)

    def probe(self, *args: str, host: str = "client1", timeout: float = 60.0) -> dict[str, Any]:
        """Run ``prober probe`` on ``host`` and return its JSON document."""
        return self.start_probe(*args, host=host, timeout=timeout).result()

    @contextlib.contextmanager
    def capture(self, host: str, bpf: str, *, count: int = 200,
                max_s: float = 60.0) -> Iterator[Capture]:
        """``tcpdump -v`` on ``host``'s lab interface while the block runs (at most
        ``count`` packets, ``max_s`` seconds); packets are parsed when it ends."""
        iface = CLIENT_IF if host.startswith("client") else SERVER_IF
        out = self.workdir / f"tcpdump-{host}-{time.monotonic_ns()}.txt"
        err = out.with_suffix(".err")
        argv = [*self.exec_argv(host), "timeout", str(int(max_s)), "tcpdump", "-i", iface,
                "-n", "-tt", "-v", "-l", "-U", "-c", str(count), bpf]
        with open(out, "wb") as fo, open(err, "wb") as fe:
            proc = subprocess.Popen(argv, stdout=fo, stderr=fe)
        cap = Capture(proc, out, err)
        try:
            poll_until(lambda: b"listening on" in err.read_bytes() or proc.poll() is not None,
                       10)
            if b"listening on" not in err.read_bytes():
                raise LabError(f"tcpdump did not start: {err.read_text()}")
            yield cap
            time.sleep(0.2)  # let the last packets reach the file
        finally:
            stop_process(proc, signal.SIGINT)  # on SIGINT tcpdump flushes and exits
            cap._packets = parse_tcpdump(out.read_text(errors="replace"))

    def sessions(self, server: str) -> list[NginxSession]:
        """What nginx of a scenario (or ``backend-a``/``backend-b``) logged."""
        return self.servers[server].sessions()

    def nft_counters(self) -> str:
        return self.run_in("router", ["nft", "list", "ruleset"], check=True).stdout

    # -- for scripts/lab.py -----------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {
            "namespaces": {h: self.ns(h) for h in HOSTS},
            "workdir": str(self.workdir),
            "profiles_dir": str(self.profiles_dir),
            "lab_ca": str(self.lab_ca),
            "intercept_ca": str(self.intercept_ca),
            "params": {k: getattr(self.params, k) for k in self.params.__dataclass_fields__},
            "scenarios": [
                {"name": s.name, "address": s.address, "port": s.port, "sni": s.sni,
                 "finding": s.finding, "also": list(s.also), "cause": s.cause,
                 "clients": list(s.clients), "try_args": list(s.try_args),
                 "try_command": s.try_command}
                for s in self.scenarios.values()
            ],
        }


def idle_probe_code() -> str:
    """A client for idle-timeout (``python -c CODE ADDRESS IDLE_S``): TLS handshake, an
    HTTP request answered in full, ``IDLE_S`` seconds of silence, another request.
    Prints how the second one ended: ``ok``, ``reset``, ``eof`` or ``error ...``."""
    return """
import socket, ssl, sys, time
addr, idle = sys.argv[1], float(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
raw = socket.create_connection((addr, 443), timeout=5)
s = ctx.wrap_socket(raw, server_hostname="idle-timeout.lab.test", suppress_ragged_eofs=False)
req = b"GET / HTTP/1.1\\r\\nHost: idle-timeout.lab.test\\r\\n\\r\\n"
s.sendall(req)
got = b""
while not got.endswith(b"ok\\n"):
    chunk = s.recv(4096)
    if not chunk:
        sys.exit("the first request got no full answer: %r" % got)
    got += chunk
time.sleep(idle)
try:
    s.sendall(req)
    data = s.recv(4096)
except OSError:
    data = b""  # OpenSSL reports a reset as an EOF: TCP_INFO below says which it was
if b" 200 " in data:
    print("ok")
else:
    # tcpi_state: 7 = CLOSE (a RST came), 8 = CLOSE_WAIT (a FIN came)
    state = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[0]
    print({7: "reset", 8: "eof"}.get(state, "state %d %r" % (state, data[:40])))
"""
