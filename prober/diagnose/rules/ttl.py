"""TTL arithmetic (--capture): whether a reply came from as far away as the SYN-ACK."""

from __future__ import annotations

from collections.abc import Callable

from prober.diagnose.findings import Packet, Seen


def initial_ttl(ttl: int) -> int:
    """The usual initial TTL a packet with this TTL most likely started from."""
    for start in (32, 64, 128, 255):
        if ttl <= start:
            return start
    return 255


def hops(ttl: int) -> int:
    return initial_ttl(ttl) - ttl


def first_packet(packets: tuple[Packet, ...] | None, incoming: bool, pred: Callable[[str], bool]
           ) -> Packet | None:
    for p in packets or ():
        if p.incoming == incoming and pred(p.flags):
            return p
    return None


def synack(a: Seen) -> Packet | None:
    return first_packet(a.packets, True, lambda f: "S" in f and "A" in f)


def rst(a: Seen) -> Packet | None:
    return first_packet(a.packets, True, lambda f: "R" in f)


def ttl_compare(p: Packet, ref: Packet) -> tuple[int, str] | None:
    """(hops closer than ``ref``, words) when ``p`` comes from another distance, else None."""
    if initial_ttl(p.ttl) != initial_ttl(ref.ttl):
        return (0, f"TTL {p.ttl} vs the SYN-ACK's {ref.ttl}: another initial TTL "
                   f"({initial_ttl(p.ttl)} vs {initial_ttl(ref.ttl)}), another device")
    closer = hops(ref.ttl) - hops(p.ttl)
    if closer == 0:
        return None
    side = "closer than" if closer > 0 else "further than"
    n = abs(closer)
    return (closer, f"TTL {p.ttl} vs the SYN-ACK's {ref.ttl}: {n} hop{'s' * (n != 1)} "
                    f"{side} the server")


def ttl_lines(atts: list[Seen], what: str = "RST") -> list[str]:
    """What the captured TTLs say about where ``what`` came from (empty without capture)."""
    lines = []
    for a in atts:
        ref = synack(a)
        if ref is None:
            continue
        p = rst(a) if what == "RST" else first_packet(a.packets, True,
                                                 lambda f: f == "A")
        if p is None:
            continue
        cmp = ttl_compare(p, ref)
        n = hops(p.ttl)
        lines.append(f"{what} of id {a.id}: " + (cmp[1] if cmp else
                     f"TTL {p.ttl} = the SYN-ACK's: both from {n} hop{'s' * (n != 1)} away "
                     f"(initial TTL {initial_ttl(p.ttl)})"))
    # one line per distinct wording is enough
    seen: dict[str, str] = {}
    for line in lines:
        seen.setdefault(line.split(": ", 1)[1], line)
    return list(seen.values())[:3]


def forged(a: Seen) -> bool:
    """The attempt's RST came from another distance than its SYN-ACK (captured TTLs): a
    device on the path sent it, not the endpoint that accepted the connection."""
    ref, r = synack(a), rst(a)
    return ref is not None and r is not None and ttl_compare(r, ref) is not None
