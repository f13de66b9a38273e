"""The lab's scenarios: what each service address is, what really breaks there (the
ground truth a diagnosis must name) and the finding id it must produce.

Pure data: :mod:`tests.lab.lab` builds what the rows describe (servers in the server
namespace, rules and middleboxes on the router).  Finding ids are the stable ids of
``prober diagnose`` (issue 5).
"""

from __future__ import annotations

from dataclasses import dataclass

from .certs import LAB_DOMAIN

CLIENT_NET = "198.51.100.0/24"
ROUTER_LAN = "198.51.100.1"
CLIENT1 = "198.51.100.10"
CLIENT2 = "198.51.100.11"
SERVER_NET = "203.0.113.0/24"
ROUTER_WAN = "203.0.113.1"
SERVER = "203.0.113.10"
SERVICE_ADDRESSES = tuple(f"203.0.113.{i}" for i in range(11, 46))
SERVICE_PORT = 443

# the finding ids of `prober diagnose` (issue 5): every one is the main finding of a
# scenario, except dpi-fragmentation, which is true *as well* where a DPI rule matches
# on whole packets (sni-reset, sni-drop)
FINDING_IDS = frozenset({
    "policy-alert", "policy-reset", "silent-proxy", "injected-reset", "sni-reset",
    "sni-drop", "size-drop", "segmentation-drop", "mtu-blackhole", "intermittent",
    "inappropriate-fallback", "idle-timeout", "tls-interception", "endpoint-flapping",
    "near-tcp-terminator", "dpi-fragmentation",
    "sni-required", "client-certificate", "mixed-certificates", "size-window",
    "rate-limited", "lossy-path", "version-intolerance", "wrong-service", "port-closed",
    "endpoint-unreachable",
})

# the backends behind the two-backends balancer
BACKEND_A = "203.0.113.22"
BACKEND_B = "203.0.113.23"
# the backends behind mixed-certificates: the same nginx, B's certificate expired
MIXED_A = "203.0.113.32"
MIXED_B = "203.0.113.33"


@dataclass(frozen=True)
class LabParams:
    """The knobs of the lab (defaults follow the field cases)."""

    idle_timeout_s: float = 5.0  # idle-timeout: how long the router keeps an idle flow
    silent_fin_s: float = 10.0  # silent-proxy: FIN this long after accepting (case 3)
    near_delay_ms: float = 40.0  # near-tcp-terminator: delay each way behind the relay
    size_limit: int = 1200  # size-drop: longer IP packets to the service are dropped
    # size-window: IP packets to the service of these lengths are dropped (both inclusive)
    size_window: tuple[int, int] = (640, 720)
    rate_per_s: int = 10  # rate-limited: new connections per second beyond the burst
    rate_burst: int = 5
    loss_percent: int = 15  # lossy-path: client-to-server packets dropped at random
    blackhole_mtu: int = 1280  # mtu-blackhole: MTU of the path back to the clients
    flap_up_s: float = 6.0  # flapping, when the lab toggles it by itself (`lab-up`)
    flap_down_s: float = 3.0


@dataclass(frozen=True)
class Scenario:
    """One service of the lab.

    ``finding`` is the id ``prober diagnose`` must report (None: a healthy endpoint,
    nothing beyond its policy); ``also`` lists findings that are true as well and
    therefore not false positives; ``clients`` are the hosts from which the cause shows
    (the other client, where there is one, sees a healthy endpoint); ``try_args`` are
    ``prober probe`` options that show the failure mode.
    """

    name: str
    address: str
    finding: str | None
    cause: str
    try_args: tuple[str, ...]
    port: int = SERVICE_PORT
    clients: tuple[str, ...] = ("client1", "client2")
    also: tuple[str, ...] = ()
    # a shell command showing the failure where `prober probe` alone cannot ({ns}: the
    # client's namespace); None: `prober probe NAME try_args`
    try_command: str | None = None

    @property
    def sni(self) -> str:
        return f"{self.name}.{LAB_DOMAIN}"

    @property
    def target(self) -> str:
        """``address:port``: give ``--sni`` too, or use :attr:`name_target`."""
        return f"{self.address}:{self.port}"

    @property
    def name_target(self) -> str:
        """``name:port``: the lab's clients resolve these names from their hosts file."""
        return f"{self.sni}:{self.port}"


def _s(i: int) -> str:
    return f"203.0.113.{i}"


def catalog(p: LabParams) -> tuple[Scenario, ...]:
    """Every scenario, described with the lab's parameters."""
    return (
        Scenario("healthy", _s(11), None,
                 "nginx with TLS 1.2 and 1.3; nothing on the path",
                 ("-p", "default")),
        Scenario("policy-alert", _s(12), "policy-alert",
                 "nginx allows TLS 1.2 only: older hellos get a protocol_version alert",
                 ("-p", "sweep-versions")),
        Scenario("policy-reset", _s(13), "policy-reset",
                 "an ALB-like front (prober demo's) resets hellos below TLS 1.2 before any "
                 "TLS; behind it nginx with ELBSecurityPolicy-FS-1-2-Res-2020-10 (which "
                 "alerts TLS 1.3 hellos away: policy-alert is true as well)",
                 ("-p", "sweep-versions"), also=("policy-alert",)),
        Scenario("silent-proxy", _s(14), "silent-proxy",
                 "a transparent proxy on the router (1 hop away) ACKs the ClientHello, never "
                 f"forwards it, and closes with FIN after {p.silent_fin_s:g} s; the server never "
                 "sees the hello",
                 ("-p", "tls1.2-only", "--timeout", "12"), also=("near-tcp-terminator",)),
        Scenario("injected-reset", _s(15), "injected-reset",
                 "the router forges a TCP RST in the server's name at the ClientHello (nftables "
                 "`reject with tcp reset`); the SYN-ACK came from the server, the RST from 1 hop "
                 "closer (TTL 64 vs 63)",
                 ("-p", "tls1.2-only", "-p", "tls1.3-only")),
        Scenario("sni-reset", _s(16), "sni-reset",
                 f"a DPI rule on the router resets any ClientHello naming sni-reset.{LAB_DOMAIN} "
                 "(iptables string match, one packet at a time: a name split over two "
                 "records or segments passes); the RST is forged (TTL 64); other names and no "
                 "SNI pass",
                 ("-p", "tls1.2-only"), also=("injected-reset", "dpi-fragmentation")),
        Scenario("sni-drop", _s(17), "sni-drop",
                 f"a DPI rule on the router drops any ClientHello naming sni-drop.{LAB_DOMAIN} "
                 "(iptables string match, one packet at a time: a name split over two "
                 "records or segments passes); other names and no SNI pass",
                 ("-p", "tls1.2-only", "--timeout", "3"), also=("dpi-fragmentation",)),
        Scenario("size-drop", _s(18), "size-drop",
                 f"the router drops IP packets to this service longer than {p.size_limit} bytes: a "
                 "ClientHello that fills a full-size segment (X25519MLKEM768, ~1.8 kB) never "
                 "arrives; small hellos, or the same hello in small segments, pass",
                 ("-p", "tls1.2-only", "-p", "firefox-137-win11", "-p",
                  "lab-mlkem-small-segments", "--timeout", "3")),
        Scenario("segmentation-drop", _s(19), "segmentation-drop",
                 "a middlebox on the router that cannot reassemble drops TCP segments that do "
                 "not start with a TLS record header: any ClientHello spread over two segments "
                 "(X25519MLKEM768, or a small one split on purpose) never completes",
                 ("-p", "tls1.2-only", "-p", "firefox-137-win11", "-p", "lab-split-hello",
                  "--timeout", "3")),
        Scenario("mtu-blackhole", _s(20), "mtu-blackhole",
                 f"the path back to the clients has MTU {p.blackhole_mtu} and the router drops "
                 "the ICMP fragmentation-needed it sends; the server writes record by record: "
                 "the ServerHello (a small segment) arrives, the full-size certificate "
                 "segments never do",
                 ("-p", "tls1.2-only", "-p", "tls1.3-only", "--timeout", "3")),
        Scenario("two-backends", _s(21), "intermittent",
                 "the router balances connections over two nginx by a hash of the client's "
                 f"address and port (nftables jhash DNAT): {BACKEND_A} allows TLS 1.1, "
                 f"{BACKEND_B} does not; their certificates differ (CN backend-a / backend-b)",
                 ("-p", "tls1.1-only", "-p", "tls1.2-only", "--repeat", "10"),
                 # true of backend A when the version sweep's TLS 1.1 hello lands there: it
                 # accepts TLS 1.1 yet refuses a client falling back to it (the fallback
                 # scenario)
                 also=("inappropriate-fallback",)),
        Scenario("intercepting-proxy", _s(24), "tls-interception",
                 "client2's connections are redirected to a TLS-intercepting proxy on the router "
                 "whose certificate comes from its own CA (prober lab intercept CA); client1 "
                 "reaches the real server",
                 ("-p", "tls1.2-only", "-p", "tls1.3-only"),
                 clients=("client2",), also=("near-tcp-terminator",)),
        Scenario("idle-timeout", _s(25), "idle-timeout",
                 f"the router's flow table forgets a connection idle for {p.idle_timeout_s:g} s "
                 "(conntrack timeout, no loose pickup) and answers its next segment with RST, "
                 "like an NLB (field case 4)",
                 ("-p", "tls1.2-only"),
                 try_command=(f"(sleep {p.idle_timeout_s + 2:g}; "
                              "printf 'GET / HTTP/1.0\\r\\n\\r\\n')"
                              " | sudo ip netns exec {ns} openssl s_client -quiet -connect "
                              f"idle-timeout.{LAB_DOMAIN}:443   # read:errno=104")),
        Scenario("flapping", _s(26), "endpoint-flapping",
                 "nginx is stopped and restarted (the hand-started lab: "
                 f"{p.flap_down_s:g} s down every {p.flap_up_s + p.flap_down_s:g} s): "
                 "connections are refused while it is down",
                 ("-p", "tls1.2-only", "--repeat", "20", "--rate", "2"),
                 also=("intermittent",)),
        Scenario("fallback", _s(27), "inappropriate-fallback",
                 "nginx allows TLS 1.0 to 1.3: a hello with TLS_FALLBACK_SCSV and a lower "
                 "maximum version gets an inappropriate_fallback alert",
                 ("-p", "tls1.1-only", "-p", "lab-tls1.1-scsv")),
        Scenario("near-tcp-terminator", _s(28), "near-tcp-terminator",
                 "a transparent TCP proxy on the router completes the TCP handshake itself and "
                 f"relays to the server over a path {p.near_delay_ms:g} ms long each way: TCP "
                 "answers at once from 1 hop away, the ServerHello comes much later",
                 ("-p", "tls1.2-only", "--repeat", "3")),
        Scenario("sni-required", _s(29), "sni-required",
                 "a TLS server that serves sni-required.lab.test only: hellos without SNI or "
                 "naming another host get an unrecognized_name alert (a server policy, as "
                 "nginx's ssl_reject_handshake; nothing on the path)",
                 ("-p", "tls1.2-only", "--no-sni")),
        Scenario("client-certificate", _s(30), "client-certificate",
                 "nginx asks every client for a certificate issued by the lab CA "
                 "(ssl_verify_client on): the CertificateRequest names CN=prober lab CA",
                 ("-p", "tls1.2-only", "--json", "-")),
        Scenario("mixed-certificates", _s(31), "mixed-certificates",
                 "the router balances over two identical nginx by a hash of the client's "
                 f"address and port ({MIXED_A}, {MIXED_B}); {MIXED_B}'s certificate expired "
                 "yesterday (a backend that missed its renewal)",
                 ("-p", "tls1.2-only", "--repeat", "10", "--json", "-")),
        Scenario("size-window", _s(34), "size-window",
                 f"the router drops IP packets to the service {p.size_window[0]}-"
                 f"{p.size_window[1]} bytes long: a ClientHello of ~600 bytes never arrives "
                 "while smaller and larger ones do (the shape of the F5 hello-padding bug)",
                 ("-p", "tls1.2-only", "-p", "tls1.3-only", "--timeout", "3")),
        Scenario("rate-limited", _s(35), "rate-limited",
                 f"the router refuses new connections (RST to the SYN) above "
                 f"{p.rate_per_s}/s after a burst of {p.rate_burst} (nftables limit): "
                 "connections opened faster are refused, slower ones pass",
                 # without retries: probe would retry the refused ones after a back-off
                 ("-p", "tls1.2-only", "--repeat", "30", "--retries", "0")),
        Scenario("lossy-path", _s(36), "lossy-path",
                 f"the router drops {p.loss_percent}% of the packets from the clients to the "
                 "service at random (nftables numgen): handshakes succeed after TCP "
                 "retransmissions",
                 ("-p", "tls1.2-only", "--repeat", "20", "--json", "-")),
        Scenario("version-intolerance", _s(37), "version-intolerance",
                 "a front (old balancer firmware) resets every ClientHello carrying the "
                 "supported_versions extension, even offering TLS 1.2; other hellos reach "
                 "nginx (TLS 1.2 and 1.3) behind it",
                 ("-p", "tls1.2-only", "-p", "tls1.3-only")),
        Scenario("outside-reset", _s(38), "injected-reset",
                 "the router forges an RST for client2's ClientHellos only (field case 2: "
                 "a device on the outside path); client1 reaches a healthy nginx; `prober "
                 "diff` of the two runs names the outside side",
                 ("-p", "tls1.2-only"), clients=("client2",)),
        Scenario("wrong-service", _s(39), "wrong-service",
                 "an SSH server's banner on port 443: no TLS at all",
                 ("-p", "tls1.2-only")),
        Scenario("port-closed", _s(40), "port-closed",
                 "nothing listens on port 443 of this address: the server's kernel answers "
                 "every SYN with RST",
                 ("-p", "tls1.2-only")),
        Scenario("endpoint-unreachable", _s(41), "endpoint-unreachable",
                 "the router answers every SYN to this service with ICMP host-unreachable",
                 ("-p", "tls1.2-only")),
    )
