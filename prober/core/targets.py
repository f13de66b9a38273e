"""Target syntax: ``host``, ``host:port``, ``[v6]:port``, ``v6addr``, with overrides."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from prober.core.errors import InputError
from prober.wire.starttls import PORTS as STARTTLS_PORTS
from prober.wire.starttls import PROTOCOLS as STARTTLS_PROTOCOLS
from prober.wire.starttls import protocol_name


class TargetError(InputError):
    """A target that cannot be parsed; the message names it."""


@dataclass(frozen=True)
class Sni:
    """Which server name a hello carries: the target's own (when the target is a name,
    not an address), none at all, or a given name. The one SNI choice of the project:
    targets (--sni/--no-sni), profiles (``sni: false``) and policy probes all use it."""

    kind: str = "target"  # target | none | name
    name: str | None = None

    @classmethod
    def named(cls, name: str) -> Sni:
        return cls("name", name)

    def resolve(self, default: str | None) -> str | None:
        """The name to send, ``default`` being what "the target's" means here."""
        if self.kind == "target":
            return default
        return self.name if self.kind == "name" else None

    def __str__(self) -> str:
        return self.name if self.kind == "name" and self.name else self.kind


SNI_TARGET = Sni()
SNI_NONE = Sni("none")


def sni_choice(sni: str | None, no_sni: bool) -> Sni:
    """``--sni NAME`` / ``--no-sni`` as one choice (TargetError when both are given)."""
    if sni is not None and no_sni:
        raise TargetError("--sni and --no-sni exclude each other")
    if no_sni:
        return SNI_NONE
    return Sni.named(sni) if sni is not None else SNI_TARGET


@dataclass(frozen=True)
class Target:
    host: str
    port: int = 443
    # probe the name at this address instead of resolving it
    address: str | None = None
    sni_choice: Sni = SNI_TARGET
    # the plaintext preamble before the ClientHello (prober.wire.starttls), and whether it
    # was inferred from the port rather than asked for
    starttls: str | None = None
    starttls_inferred: bool = False

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def host_is_ip(self) -> bool:
        return is_ip(self.host)

    @property
    def sni(self) -> str | None:
        """The name its hellos carry (None: no SNI)."""
        return self.sni_choice.resolve(None if self.host_is_ip else self.host)


@lru_cache(maxsize=1 << 16)
def is_ip(text: str) -> bool:
    """Whether ``text`` is an IP address (cached: run loops and log readers ask a lot)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_target(text: str, default_port: int = 443) -> Target:
    t = text.strip()
    if not t:
        raise TargetError("empty target")
    if "://" in t:
        scheme, _, t = t.partition("://")
        t = t.split("/", 1)[0]
        if scheme not in ("https", "tls") or not t:
            raise TargetError(f"target {text!r}: only host[:port] (or https://host[:port])")
    host, port = t, default_port
    if t.startswith("["):
        end = t.find("]")
        if end < 0:
            raise TargetError(f"target {text!r}: missing ']' after the IPv6 address")
        host, rest = t[1:end], t[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise TargetError(f"target {text!r}: expected ':PORT' after ']'")
            port = _port(text, rest[1:])
        if not is_ip(host):
            raise TargetError(f"target {text!r}: {host!r} is not an IPv6 address")
    elif t.count(":") == 1:
        host, p = t.split(":")
        port = _port(text, p)
    elif t.count(":") > 1 and not is_ip(t):
        raise TargetError(f"target {text!r}: write IPv6 with a port as [addr]:port")
    if not host:
        raise TargetError(f"target {text!r}: no host")
    if not is_ip(host):
        try:
            host.encode("idna")
        except UnicodeError:
            raise TargetError(f"target {text!r}: {host!r} is not a valid host name") from None
    return Target(host=host, port=port)


def _port(text: str, p: str) -> int:
    if not p.isdigit() or not 0 < int(p) < 65536:
        raise TargetError(f"target {text!r}: port {p!r} is not 1-65535")
    return int(p)


def read_targets_file(path: str) -> list[str]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise TargetError(f"targets file {path!r}: {e.strerror}") from None
    return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]


def with_overrides(t: Target, address: str | None, sni: Sni = SNI_TARGET,
                   starttls: str | None = None) -> Target:
    """``t`` with --address, --sni/--no-sni and --starttls applied. ``starttls`` None
    infers the protocol from a plaintext port (25, 587, 143, 110, 21, 389, 5222, 5432);
    "none" connects with TLS at once whatever the port."""
    if address is not None and not is_ip(address):
        raise TargetError(f"--address {address!r} is not an IP address")
    out = replace(t, address=address or t.address, sni_choice=sni)
    if starttls is None:
        inferred = STARTTLS_PORTS.get(t.port)
        return replace(out, starttls=inferred, starttls_inferred=inferred is not None)
    if starttls == "none":
        return replace(out, starttls=None)
    if starttls not in STARTTLS_PROTOCOLS:
        raise TargetError(f"--starttls {starttls!r}: one of {', '.join(STARTTLS_PROTOCOLS)} "
                          "or none")
    return replace(out, starttls=starttls)


def starttls_note(t: Target) -> str | None:
    """The words every command shows for a preamble it inferred from the port."""
    if not t.starttls_inferred or t.starttls is None:
        return None
    return (f"port {t.port} is plaintext {protocol_name(t.starttls)}: using --starttls "
            f"{t.starttls} (inferred from the port; --starttls none connects with TLS at once)")
