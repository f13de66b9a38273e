"""Named TLS policies of cloud providers and Mozilla, from the packaged catalogs.

The catalogs (``prober/data/policies/*.json``) were transcribed from public sources;
their provenance is in ``prober/data/PROVENANCE.md`` and in each entry's ``source`` and
``confidence``. ``null`` in the source data means *unknown*, ``[]`` means *none*.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from prober.core.errors import InputError
from prober.core.yamlfile import read_yaml
from prober.wire import registry as reg

CATALOG_FILES = ("aws_elb.json", "aws_cloudfront.json", "gcp.json", "azure_appgw.json",
                 "cloudflare.json", "mozilla.json")


# `prober catalog list --provider` families and the catalog providers each covers
PROVIDER_FAMILIES: dict[str, tuple[str, ...]] = {
    "aws": ("aws-elb", "aws-cloudfront"),
    "gcp": ("gcp",),
    "azure": ("azure-application-gateway",),
    "mozilla": ("mozilla",),
    "cloudflare": ("cloudflare",),
}
LIST_HINT = "`prober catalog list` lists them"


class CatalogError(InputError):
    """A policy name or file that cannot be used; the message names it."""


@dataclass(frozen=True)
class Variant:
    """A catalog policy as deployed under a library condition its publisher documents
    (e.g. Mozilla's generator leaves X25519MLKEM768 out below OpenSSL 3.5): the policy
    with ``groups`` replaced. ``name`` is what a match on it is called."""

    id: str
    name: str
    condition: str
    why: str
    source: str
    groups: tuple[str, ...] | None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "condition": self.condition,
                "why": self.why, "source": self.source,
                "groups": list(self.groups) if self.groups is not None else None}


@dataclass(frozen=True)
class NamedPolicy:
    name: str
    provider: str
    # None = unknown (not documented), () = none
    protocols: tuple[str, ...] | None
    tls13_suites: tuple[str, ...] | None  # IANA names
    suites: tuple[str, ...] | None  # TLS <= 1.2, IANA names, in the provider's order
    groups: tuple[str, ...] | None
    confidence: str
    source: str
    notes: str = ""
    order_is_priority: bool = True
    # certificate key types the publisher prescribes ("rsa", "ecdsa"); None = not said
    certificate_types: tuple[str, ...] | None = None
    variants: tuple[Variant, ...] = ()
    # other orders the sources give for the same suites (IANA names), by source label
    order_alternatives: tuple[tuple[str, tuple[str, ...]], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def documented(self) -> bool:
        return self.confidence == "documented"


def _tuple(v: Any) -> tuple[str, ...] | None:
    return None if v is None else tuple(str(x) for x in v)


def _groups(groups: Any) -> tuple[str, ...] | None:
    if groups is None:
        return None
    names = []
    for g in groups:
        try:
            names.append(reg.group_name(reg.group_value(str(g))))
        except KeyError:
            names.append(str(g))
    return tuple(names)


def _iana(names: Any) -> tuple[str, ...]:
    out = []
    for n in names:
        try:
            out.append(reg.suite_name(reg.suite_value(str(n))))
        except KeyError:
            out.append(str(n))
    return tuple(out)


def _entry(e: dict[str, Any]) -> NamedPolicy:

    protocols = e.get("effective_protocols") or e.get("protocols")
    variants = tuple(
        Variant(str(v["id"]), str(v["name"]), str(v.get("condition", "")),
                str(v.get("why", "")), str(v.get("source", "")), _groups(v.get("groups")))
        for v in e.get("variants") or ())
    alternatives = tuple((str(k), _iana(v))
                         for k, v in (e.get("cipher_order_alternatives") or {}).items())
    cert_types = e.get("certificate_types")
    return NamedPolicy(
        name=e["name"], provider=e.get("provider", ""), protocols=_tuple(protocols),
        tls13_suites=_tuple(e.get("tls13_ciphersuites")), suites=_tuple(e.get("ciphers_iana")),
        groups=_groups(e.get("groups")), confidence=e.get("confidence", "unknown"),
        source=e.get("source", ""), notes=e.get("notes", "") or "",
        order_is_priority=bool(e.get("cipher_order_is_priority", True)),
        certificate_types=_tuple(cert_types), variants=variants,
        order_alternatives=alternatives, raw=e)


@cache
def all_policies() -> tuple[NamedPolicy, ...]:
    out: list[NamedPolicy] = []
    for f in CATALOG_FILES:
        text = resources.files("prober.data").joinpath(f"policies/{f}").read_text(encoding="utf-8")
        out.extend(_entry(e) for e in json.loads(text)["policies"])
    return tuple(out)


def get(name: str) -> NamedPolicy:
    for p in all_policies():
        if p.name == name:
            return p
    lowered = name.lower()
    for p in all_policies():
        if p.name.lower() == lowered:
            return p
    close = [p.name for p in all_policies() if lowered in p.name.lower()][:5]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise CatalogError(f"unknown policy {name!r}{hint} ({LIST_HINT})")


def by_provider(family: str | None = None) -> tuple[NamedPolicy, ...]:
    """Every catalog policy, or those of one ``PROVIDER_FAMILIES`` key, in catalog order."""
    if family is None:
        return all_policies()
    try:
        providers = PROVIDER_FAMILIES[family]
    except KeyError:
        raise CatalogError(f"unknown provider {family!r}; providers: "
                           f"{', '.join(PROVIDER_FAMILIES)}") from None
    return tuple(p for p in all_policies() if p.provider in providers)


def load_policy_file(path: str | Path) -> NamedPolicy:
    """A candidate policy written by the user, in the catalog's own entry format
    (YAML or JSON): name, protocols, tls13_ciphersuites, ciphers (OpenSSL or IANA
    names), groups."""

    p = Path(path)
    doc = read_yaml(p, CatalogError)
    if not isinstance(doc, dict) or "name" not in doc:
        raise CatalogError(f"{p}: a policy file is a mapping with at least 'name'")
    entry = dict(doc)
    iana = []
    for c in doc.get("ciphers") or []:
        try:
            iana.append(reg.suite_name(reg.suite_value(str(c))))
        except KeyError:
            raise CatalogError(f"{p}: ciphers: unknown cipher suite {c!r}") from None
    entry["ciphers_iana"] = iana if doc.get("ciphers") is not None else None
    entry.setdefault("provider", "file")
    entry.setdefault("confidence", "documented")
    entry.setdefault("source", str(p))
    return _entry(entry)
