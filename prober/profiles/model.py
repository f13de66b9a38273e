"""A client profile: the hello template to send and how to put it on the wire."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prober.wire.clienthello import HelloSpec

PROFILE_SCHEMA = 1

ORIGINS = ("generated", "handwritten", "captured", "reconstructed", "imported")


@dataclass
class TransportSpec:
    """How the hello is cut up on the way out (for DPI/middlebox tests)."""

    # sizes of the first TLS record fragments; the rest goes in records of up to 16 kB
    record_sizes: list[int] = field(default_factory=list)
    # sizes of the first TCP segments (each sent with TCP_NODELAY, then a pause)
    segment_sizes: list[int] = field(default_factory=list)
    pause_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"record_sizes": self.record_sizes, "segment_sizes": self.segment_sizes,
                "pause_ms": self.pause_ms}


@dataclass
class Profile:
    name: str
    spec: HelloSpec
    description: str = ""
    origin: str = "handwritten"
    client: dict[str, str] = field(default_factory=dict)
    source: str = ""
    tags: list[str] = field(default_factory=list)
    transport: TransportSpec = field(default_factory=TransportSpec)
    path: str | None = None
    # whether this profile sends SNI when the target has a name
    sni: bool = True
    # extra facts kept from capture (raw hex, fingerprints); carried through untouched
    extra: dict[str, Any] = field(default_factory=dict)
