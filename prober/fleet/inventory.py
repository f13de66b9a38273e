"""The inventory: which endpoints a fleet run covers, grouped, labelled, with what each
group is expected to hold and per-vantage SNI/address overrides (docs/fleet.md).

A ``.yaml``/``.yml`` file is an inventory document; any other file is a plain targets
file (one target a line, ``#`` comments), read as one unlabelled group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prober.check.expectations import ExpectationError
from prober.check.expectations import parse as parse_expectations
from prober.core.errors import InputError
from prober.core.targets import (
    SNI_NONE,
    SNI_TARGET,
    Sni,
    Target,
    TargetError,
    is_ip,
    parse_target,
    read_targets_file,
    with_overrides,
)
from prober.core.yamlfile import read_yaml
from prober.logs.pipeline import FORMATS as LOG_FORMATS
from prober.policy.naming.catalog import CatalogError, get
from prober.wire.starttls import PROTOCOLS as STARTTLS_PROTOCOLS

INVENTORY_SCHEMA = 1
DEFAULT_CAP = 4
MIN_RATE, MAX_RATE = 0.01, 1000.0  # one start in 100 s to one per millisecond

_TOP = {"schema", "defaults", "groups"}
_GROUP = {"name", "labels", "policy", "expect", "profiles", "cap", "rate", "logs",
          "starttls", "endpoints"}
_ENDPOINT = {"target", "name", "sni", "address", "labels", "vantages", "cap", "rate", "logs",
             "starttls"}
_LOGS = {"files", "format"}
_OVERRIDE = {"sni", "address"}


class InventoryError(InputError):
    """An inventory that cannot be used; the message names the file, the field and the fix."""


@dataclass(frozen=True)
class Override:
    """What one vantage point connects to instead: the same endpoint seen from there."""

    address: str | None = None
    sni: Sni | None = None

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "sni": _sni_json(self.sni)}


@dataclass(frozen=True)
class Logs:
    """The log files holding an endpoint's clients (`fleet whatif`'s population)."""

    files: tuple[str, ...]  # paths or globs, relative ones made relative to the inventory
    format: str = "auto"  # as `prober logs --format`
    at: str = ""  # where the inventory says so, for error messages

    def to_json(self) -> dict[str, Any]:
        return {"files": list(self.files), "format": self.format}


@dataclass
class Entry:
    """One endpoint of the inventory, with everything inherited from its group."""

    name: str  # unique in the inventory: the store's and the report's key
    group: str
    target: Target
    labels: dict[str, str] = field(default_factory=dict)
    policy: str | None = None  # the catalog policy it must equal
    expect: str | None = None  # expectations file (prober check format), path as written
    expect_doc: Any = None  # its parsed YAML, sent to the agents (they may not have the file)
    profiles: list[str] = field(default_factory=lambda: ["default"])
    cap: int = DEFAULT_CAP  # connections open at once to it, fleet-wide
    rate: float | None = None  # connections started per second to it, fleet-wide
    overrides: dict[str, Override] = field(default_factory=dict)
    logs: Logs | None = None  # its client population, for `fleet whatif`

    def target_for(self, vantage: str) -> Target:
        """The target as ``vantage`` reaches it (its override applied)."""
        o = self.overrides.get(vantage)
        if o is None:
            return self.target
        t = self.target
        # the endpoint's preamble as it is (named, inferred or "none"), not inferred anew
        return with_overrides(t, o.address or t.address, o.sni or t.sni_choice,
                              t.starttls or "none")


@dataclass
class Inventory:
    path: str
    entries: list[Entry]


def load(path: str | Path) -> Inventory:
    """The inventory at ``path`` (InventoryError, a one-line message, when unusable)."""
    p = Path(path)
    if p.suffix.lower() not in (".yaml", ".yml"):
        try:
            lines = read_targets_file(str(p))
        except TargetError as e:
            raise InventoryError(str(e)) from None
        entries = [_entry(p, f"line {i + 1}", {"target": t}, _Group("default"))
                   for i, t in enumerate(lines)]
        return _checked(Inventory(str(p), entries))
    return parse(read_yaml(p, InventoryError), p)


@dataclass
class _Group:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    policy: str | None = None
    expect: str | None = None
    expect_doc: Any = None
    profiles: list[str] = field(default_factory=lambda: ["default"])
    cap: int = DEFAULT_CAP
    rate: float | None = None
    logs: Logs | None = None
    starttls: str | None = None  # as --starttls: a protocol, "none", or None to infer


def parse(doc: Any, path: Path) -> Inventory:
    if not isinstance(doc, dict):
        raise InventoryError(f"{path}: an inventory holds one mapping with 'groups'")
    _no_unknown(path, "", doc, _TOP)
    if doc.get("schema", INVENTORY_SCHEMA) != INVENTORY_SCHEMA:
        raise InventoryError(f"{path}: schema {doc.get('schema')!r} is not {INVENTORY_SCHEMA}")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise InventoryError(f"{path}: defaults: a mapping of group fields")
    _no_unknown(path, "defaults", defaults, _GROUP - {"name", "endpoints"})
    groups = doc.get("groups")
    if not isinstance(groups, list) or not groups:
        raise InventoryError(f"{path}: groups: a list of groups, each with 'endpoints'")
    entries: list[Entry] = []
    for gi, g in enumerate(groups):
        at = f"groups[{gi}]"
        if not isinstance(g, dict):
            raise InventoryError(f"{path}: {at}: a mapping with 'name' and 'endpoints'")
        _no_unknown(path, at, g, _GROUP)
        merged = {**defaults, **g,
                  "labels": {**_labels(path, "defaults", defaults.get("labels")),
                             **_labels(path, at, g.get("labels"))}}
        group = _group(path, at, merged, str(g.get("name") or f"group{gi + 1}"))
        eps = g.get("endpoints")
        if not isinstance(eps, list) or not eps:
            raise InventoryError(f"{path}: {at}.endpoints: a list of targets")
        for ei, e in enumerate(eps):
            spec = {"target": e} if isinstance(e, str) else e
            entries.append(_entry(path, f"{at}.endpoints[{ei}]", spec, group))
    return _checked(Inventory(str(path), entries))


def _group(path: Path, at: str, g: dict[str, Any], name: str) -> _Group:
    out = _Group(name, labels=_labels(path, at, g.get("labels")))
    if g.get("policy") is not None:
        out.policy = _str(path, f"{at}.policy", g["policy"])
        try:
            get(out.policy)
        except CatalogError as e:
            raise InventoryError(f"{path}: {at}.policy: {e}") from None
    if g.get("expect") is not None:
        rel = _str(path, f"{at}.expect", g["expect"])
        # relative to the inventory, so an inventory and its expectations travel together
        full = (path.parent / rel) if not Path(rel).is_absolute() else Path(rel)
        out.expect = str(full)
        out.expect_doc = read_yaml(full, InventoryError)
        try:
            parse_expectations(out.expect_doc, str(full))
        except ExpectationError as e:
            raise InventoryError(f"{path}: {at}.expect: {e}") from None
    if g.get("profiles") is not None:
        profs = g["profiles"]
        profs = [profs] if isinstance(profs, str) else profs
        if not isinstance(profs, list) or not all(isinstance(x, str) for x in profs):
            raise InventoryError(f"{path}: {at}.profiles: a profile name or a list of them")
        out.profiles = list(profs)
    if g.get("cap") is not None:
        out.cap = _cap(path, f"{at}.cap", g["cap"])
    if g.get("rate") is not None:
        out.rate = _rate(path, f"{at}.rate", g["rate"])
    if g.get("logs") is not None:
        out.logs = _logs(path, f"{at}.logs", g["logs"])
    out.starttls = _starttls(path, at, g.get("starttls"))
    return out


def _entry(path: Path, at: str, spec: Any, g: _Group) -> Entry:
    if not isinstance(spec, dict) or "target" not in spec:
        raise InventoryError(f"{path}: {at}: a target, or a mapping with 'target'")
    _no_unknown(path, at, spec, _ENDPOINT)
    text = _str(path, f"{at}.target", spec["target"])
    try:
        t = parse_target(text)
        t = with_overrides(t, _address(path, at, spec.get("address")),
                           _sni(path, at, spec.get("sni")) or SNI_TARGET,
                           _starttls(path, at, spec.get("starttls")) or g.starttls)
    except TargetError as e:
        raise InventoryError(f"{path}: {at}: {e}") from None
    overrides: dict[str, Override] = {}
    vs = spec.get("vantages") or {}
    if not isinstance(vs, dict):
        raise InventoryError(f"{path}: {at}.vantages: a mapping vantage -> {{sni, address}}")
    for v, o in vs.items():
        vat = f"{at}.vantages.{v}"
        if not isinstance(o, dict):
            raise InventoryError(f"{path}: {vat}: a mapping with 'sni' and/or 'address'")
        _no_unknown(path, vat, o, _OVERRIDE)
        overrides[str(v)] = Override(_address(path, vat, o.get("address")),
                                     _sni(path, vat, o.get("sni")))
    return Entry(name=str(spec.get("name") or t.label), group=g.name, target=t,
                 labels={**g.labels, **_labels(path, at, spec.get("labels"))},
                 policy=g.policy, expect=g.expect, expect_doc=g.expect_doc,
                 profiles=list(g.profiles),
                 cap=_cap(path, f"{at}.cap", spec["cap"]) if "cap" in spec else g.cap,
                 rate=_rate(path, f"{at}.rate", spec["rate"]) if "rate" in spec else g.rate,
                 logs=(_logs(path, f"{at}.logs", spec["logs"]) if spec.get("logs") is not None
                       else g.logs),
                 overrides=overrides)


def _checked(inv: Inventory) -> Inventory:
    if not inv.entries:
        raise InventoryError(f"{inv.path}: no endpoints")
    seen: set[str] = set()
    for e in inv.entries:
        if e.name in seen:
            raise InventoryError(f"{inv.path}: endpoint {e.name!r} is listed twice; give "
                                 "each a distinct 'name'")
        seen.add(e.name)
    return inv


def _no_unknown(path: Path, at: str, d: dict[str, Any], known: set[str]) -> None:
    extra = set(map(str, d)) - known
    if extra:
        where = f"{at}: " if at else ""
        raise InventoryError(f"{path}: {where}unknown field(s) {', '.join(sorted(extra))} "
                             f"(known: {', '.join(sorted(known))})")


def _str(path: Path, at: str, v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise InventoryError(f"{path}: {at}: expected a string, got {v!r}")
    return v.strip()


def _labels(path: Path, at: str, v: Any) -> dict[str, str]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise InventoryError(f"{path}: {at}.labels: a mapping, e.g. {{environment: prod}}")
    return {str(k): str(x) for k, x in v.items()}


def _cap(path: Path, at: str, v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise InventoryError(f"{path}: {at}: a positive number of connections, got {v!r}")
    return v


def _rate(path: Path, at: str, v: Any) -> float:
    if not isinstance(v, int | float) or isinstance(v, bool) or not MIN_RATE <= v <= MAX_RATE:
        raise InventoryError(f"{path}: {at}: connections per second, {MIN_RATE:g} to "
                             f"{MAX_RATE:g}, got {v!r}")
    return float(v)


def _logs(path: Path, at: str, v: Any) -> Logs:
    # `logs: FILE`, `logs: [FILE, ...]`, or `logs: {files: ..., format: FMT}`
    spec = v if isinstance(v, dict) else {"files": v}
    _no_unknown(path, at, spec, _LOGS)
    files = spec.get("files")
    files = [files] if isinstance(files, str) else files
    if not isinstance(files, list) or not files or not all(
            isinstance(f, str) and f.strip() for f in files):
        raise InventoryError(f"{path}: {at}.files: a log file (or glob), or a list of them")
    fmt = _str(path, f"{at}.format", spec.get("format", "auto"))
    if fmt != "auto" and fmt not in LOG_FORMATS:
        raise InventoryError(f"{path}: {at}.format: {fmt!r} is not a log format (auto, "
                             f"{', '.join(LOG_FORMATS)})")
    # relative to the inventory, like `expect`
    full = tuple(str(path.parent / f) if not Path(f).is_absolute() else f
                 for f in (f.strip() for f in files))
    return Logs(full, fmt, at)


def _address(path: Path, at: str, v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or not is_ip(v):
        raise InventoryError(f"{path}: {at}.address: {v!r} is not an IP address")
    return v


def _sni(path: Path, at: str, v: Any) -> Sni | None:
    # `sni: false` sends none, like a profile's `sni: false`; a string sends that name
    if v is None:
        return None
    if v is False:
        return SNI_NONE
    return Sni.named(_str(path, f"{at}.sni", v))


def _starttls(path: Path, at: str, v: Any) -> str | None:
    # the names of --starttls; `false` (YAML's bare no/off too) connects with TLS at once
    if v is None:
        return None
    if v is False:
        return "none"
    if not isinstance(v, str) or v.strip() not in (*STARTTLS_PROTOCOLS, "none"):
        raise InventoryError(f"{path}: {at}.starttls: {v!r} is not a STARTTLS protocol "
                             f"(one of {', '.join(STARTTLS_PROTOCOLS)}, or none)")
    return v.strip()


def _sni_json(s: Sni | None) -> str | bool | None:
    if s is None or s.kind == "target":
        return None
    return s.name if s.kind == "name" else False
