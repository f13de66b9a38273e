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
    # accepted groups in server preference order; None = not determined
    groups_tls13: list[str] | None = None
    groups_tls12: list[str] | None = None

    def all_suites(self, tls13: bool | None = None) -> set[str]:
        out: set[str] = set()
        for v, names in self.suites.items():
            if tls13 is None or (v == "TLSv1.3") == tls13:
                out.update(names)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"versions": self.versions, "suites": self.suites,
                "server_order": self.server_order, "groups_tls13": self.groups_tls13,
                "groups_tls12": self.groups_tls12}
