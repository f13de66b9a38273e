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


class CatalogError(InputError):
    """A policy name or file that cannot be used; the message names it."""


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
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def documented(self) -> bool:
        return self.confidence == "documented"


def _tuple(v: Any) -> tuple[str, ...] | None:
    return None if v is None else tuple(str(x) for x in v)


def _entry(e: dict[str, Any]) -> NamedPolicy:

    protocols = e.get("effective_protocols") or e.get("protocols")
    groups = e.get("groups")
    if groups is not None:
        names = []
        for g in groups:
            try:
                names.append(reg.group_name(reg.group_value(str(g))))
            except KeyError:
                names.append(str(g))
        groups = names
    return NamedPolicy(
        name=e["name"], provider=e.get("provider", ""), protocols=_tuple(protocols),
        tls13_suites=_tuple(e.get("tls13_ciphersuites")), suites=_tuple(e.get("ciphers_iana")),
        groups=_tuple(groups), confidence=e.get("confidence", "unknown"),
        source=e.get("source", ""), notes=e.get("notes", "") or "",
        order_is_priority=bool(e.get("cipher_order_is_priority", True)), raw=e)


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
    raise CatalogError(f"unknown policy {name!r}{hint} (`prober policies` lists them)")


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
