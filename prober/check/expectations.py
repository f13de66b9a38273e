"""The expectations file: what must hold for an endpoint (YAML, schema 1).

Every error names the file, the entry and the bad value, so a broken file in a
pipeline says what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prober.core.errors import InputError
from prober.core.outcome import OUTCOMES
from prober.core.yamlfile import read_yaml
from prober.policy.naming.catalog import LIST_HINT, CatalogError, get
from prober.wire import registry as reg

EXPECT_SCHEMA = 1
_TOP = {"schema", "profiles", "min_version", "forbidden_suites", "required_groups",
        "certificate", "policy", "no_findings", "repeat", "timeout"}


POLICY_KEYS = ("equals", "equals_strict", "no_weaker_than")


class ExpectationError(InputError):
    """An expectations file that cannot be used; the message names the problem."""


@dataclass
class OutcomeRule:
    profiles: list[str]
    allow: list[str]
    # a detail the outcome must carry, e.g. the alert description
    detail: str | None = None


@dataclass
class Expectations:
    path: str
    profiles: list[OutcomeRule] = field(default_factory=list)
    min_version: str | None = None
    forbidden_suites: list[str] = field(default_factory=list)
    required_groups: list[str] = field(default_factory=list)
    certificate_valid_days: int | None = None
    # equal literally or as applicable (see prober.policy.naming.match.compare)
    policy_equals: str | None = None
    # equal to the literal catalog entry
    policy_equals_strict: str | None = None
    policy_no_weaker_than: str | None = None
    no_findings: list[str] = field(default_factory=list)
    repeat: int = 1
    timeout: float = 5.0


def _list(where: str, v: Any) -> list[str]:
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ExpectationError(f"{where}: expected a name or a list of names, got {v!r}")
    return list(v)


def parse(doc: Any, where: str) -> Expectations:

    if not isinstance(doc, dict):
        raise ExpectationError(f"{where}: an expectations file holds one mapping")
    unknown = set(doc) - _TOP
    if unknown:
        raise ExpectationError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if doc.get("schema", EXPECT_SCHEMA) != EXPECT_SCHEMA:
        raise ExpectationError(f"{where}: schema {doc.get('schema')!r} is not {EXPECT_SCHEMA}")
    exp = Expectations(path=where)
    for i, rule in enumerate(doc.get("profiles") or []):
        at = f"{where}: profiles[{i}]"
        if not isinstance(rule, dict) or "profiles" not in rule or "allow" not in rule:
            raise ExpectationError(f"{at}: needs 'profiles' and 'allow'")
        extra = set(rule) - {"profiles", "allow", "detail"}
        if extra:
            raise ExpectationError(f"{at}: unknown field(s) {', '.join(sorted(extra))}")
        allow = _list(f"{at}.allow", rule["allow"])
        bad = [o for o in allow if o not in OUTCOMES]
        if bad:
            raise ExpectationError(f"{at}.allow: {', '.join(bad)} is not an outcome "
                                   f"({', '.join(OUTCOMES)})")
        exp.profiles.append(OutcomeRule(_list(f"{at}.profiles", rule["profiles"]), allow,
                                        rule.get("detail")))
    if "min_version" in doc:
        try:
            exp.min_version = reg.version_name(reg.version_value(str(doc["min_version"])))
        except KeyError:
            raise ExpectationError(f"{where}: min_version: unknown version "
                                   f"{doc['min_version']!r}") from None
    exp.forbidden_suites = _list(f"{where}: forbidden_suites", doc.get("forbidden_suites", []))
    for s in exp.forbidden_suites:
        if "*" not in s:
            try:
                reg.suite_value(s)
            except KeyError:
                raise ExpectationError(f"{where}: forbidden_suites: unknown cipher suite "
                                       f"{s!r}") from None
    exp.required_groups = _list(f"{where}: required_groups", doc.get("required_groups", []))
    for g in exp.required_groups:
        try:
            reg.group_value(g)
        except KeyError:
            raise ExpectationError(f"{where}: required_groups: unknown group {g!r}") from None
    cert = doc.get("certificate") or {}
    if not isinstance(cert, dict) or set(cert) - {"valid_days"}:
        raise ExpectationError(f"{where}: certificate: only 'valid_days' is understood")
    if "valid_days" in cert:
        exp.certificate_valid_days = _int(f"{where}: certificate.valid_days", cert["valid_days"])
    pol = doc.get("policy") or {}
    if not isinstance(pol, dict) or set(pol) - set(POLICY_KEYS):
        raise ExpectationError(f"{where}: policy: give any of {', '.join(POLICY_KEYS)} "
                               f"(catalog names; {LIST_HINT})")
    for key in POLICY_KEYS:
        name = pol.get(key)
        if name is None:
            continue
        if not isinstance(name, str):
            raise ExpectationError(f"{where}: policy.{key}: a catalog policy name, got "
                                   f"{name!r}")
        try:
            get(name)
        except CatalogError as e:
            raise ExpectationError(f"{where}: policy.{key}: {e}") from None
    exp.policy_equals = pol.get("equals")
    exp.policy_equals_strict = pol.get("equals_strict")
    exp.policy_no_weaker_than = pol.get("no_weaker_than")
    exp.no_findings = _list(f"{where}: no_findings", doc.get("no_findings", []))
    exp.repeat = _int(f"{where}: repeat", doc.get("repeat", 1))
    try:
        exp.timeout = float(doc.get("timeout", 5.0))
    except (TypeError, ValueError):
        raise ExpectationError(f"{where}: timeout: a number of seconds") from None
    return exp


def _int(where: str, v: Any) -> int:
    if not isinstance(v, int) or v < 0:
        raise ExpectationError(f"{where}: expected a non-negative integer, got {v!r}")
    return v


EXAMPLE_PREFIX = "example:"


def examples() -> list[str]:
    """Names of the expectations examples shipped in prober/data/examples."""
    from importlib import resources

    folder = resources.files("prober").joinpath("data", "examples")
    try:
        names = [f.name for f in folder.iterdir()]
    except OSError:
        return []
    return sorted(n[len("expect-"):-len(".yaml")] for n in names
                  if n.startswith("expect-") and n.endswith(".yaml"))


def example_text(name: str) -> str:
    """The text of a shipped example: ``ExpectationError`` naming the examples there are
    when ``name`` is not one, or when the installation lost the file."""
    from importlib import resources

    f = resources.files("prober").joinpath("data", "examples", f"expect-{name}.yaml")
    try:
        return f.read_text(encoding="utf-8")
    except OSError:
        known = ", ".join(examples()) or "none are installed"
        raise ExpectationError(f"{EXAMPLE_PREFIX}{name}: no such example ({known})") from None


def load(path: str | Path) -> Expectations:
    """An expectations file, or ``example:NAME`` for one shipped with prober."""
    from prober.core.yamlfile import parse_yaml

    text = str(path)
    if text.startswith(EXAMPLE_PREFIX):
        name = text[len(EXAMPLE_PREFIX):]
        return parse(parse_yaml(example_text(name), text, ExpectationError), text)
    return parse(read_yaml(path, ExpectationError), text)
