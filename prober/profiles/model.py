"""A client profile: the hello template to send and how to put it on the wire."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ORIGINS", "PROFILE_SCHEMA", "Profile", "TransportSpec"]

from prober.core.targets import SNI_TARGET, Sni
from prober.net.attempt import TransportSpec
from prober.wire.clienthello import HelloSpec

PROFILE_SCHEMA = 1

ORIGINS = ("generated", "handwritten", "captured", "reconstructed", "imported")


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
    # SNI_NONE: this client never sends SNI; SNI_TARGET: the target's name when it has one
    sni: Sni = SNI_TARGET
    # extra facts kept from capture (raw hex, fingerprints); carried through untouched
    extra: dict[str, Any] = field(default_factory=dict)
