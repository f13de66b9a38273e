"""What an endpoint was observed to accept: the input of catalog matching and what-if."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prober.wire.registry import VERSIONS

VERSION_ORDER = tuple(reversed(VERSIONS))


@dataclass
class ObservedPolicy:
    """An endpoint's effective policy. Names are IANA names (suites, groups) and
    ``TLSv1.x`` / ``SSLv3`` (versions), as in the packaged registries and catalogs."""

    # accepted protocol versions, newest first
    versions: list[str] = field(default_factory=list)
    # accepted suites per version, in the server's preference order (client order when
    # the server follows the client); TLS 1.3 suites under "TLSv1.3"
    suites: dict[str, list[str]] = field(default_factory=dict)
    # per version: True = server enforces its order, False = follows the client,
    # None = not determined (e.g. a single suite)
    server_order: dict[str, bool | None] = field(default_factory=dict)
    # per version, under server order: True = OpenSSL's ChaCha20 priority (a client whose
    # first suite is ChaCha20 gets the server's best ChaCha20 suite), False = checked and
    # absent, None = not determined or not observable (no ChaCha20 suite ranked below
    # another suite); missing = not asked (client order, or no ChaCha20 suite)
    chacha_priority: dict[str, bool | None] = field(default_factory=dict)
    # accepted groups in server preference order; None = not determined
    groups_tls13: list[str] | None = None
    groups_tls12: list[str] | None = None
    # False when the TLS 1.2 list stops early: an ECDSA-only server hides the curves it
    # ranks below its certificate's curve
    groups_tls12_complete: bool = True
    # the certificate key types served with the SNI the suites were enumerated with
    # ("RSA", "ECDSA P-256", "ECDSA P-384", "DSA", ...); None = not known
    certificates: list[str] | None = None
    # versions where the server picks its certificate before the suite (a hello offering
    # every suite never reached one key type's suites: HAProxy takes ECDSA whenever it
    # can); the suite order is then a preference within each key type only
    certificate_first: list[str] = field(default_factory=list)

    def all_suites(self, tls13: bool | None = None) -> set[str]:
        out: set[str] = set()
        for v, names in self.suites.items():
            if tls13 is None or (v == "TLSv1.3") == tls13:
                out.update(names)
        return out

    def order_word(self, version: str) -> str | None:
        """``server``, ``server+chacha``, ``client`` or None (not determined)."""
        enforced = self.server_order.get(version)
        if enforced is None:
            return None
        if not enforced:
            return "client"
        return "server+chacha" if self.chacha_priority.get(version) else "server"

    def certificate_kinds(self) -> set[str] | None:
        """``RSA``, ``ECDSA``, ``DSA``… of the served certificates; None = not known."""
        if not self.certificates:
            return None
        return {c.split()[0] for c in self.certificates}

    def to_json(self) -> dict[str, Any]:
        return {"versions": self.versions, "suites": self.suites,
                "server_order": self.server_order,
                "order": {v: self.order_word(v) for v in self.versions
                          if v in self.server_order},
                "chacha_priority": self.chacha_priority, "groups_tls13": self.groups_tls13,
                "groups_tls12": self.groups_tls12,
                "groups_tls12_complete": self.groups_tls12_complete,
                "certificates": self.certificates,
                "certificate_first": self.certificate_first}
