"""Matching against what an endpoint can show: each reason a catalog entry's part is "not
applicable" (certificate key types, publisher-documented library variants), and for each
a negative: an endpoint lacking the same part for any other reason is not named.

Observations are built as in test_naming (OpenSSL's own expansion of the catalog's
cipher string), then cut to what a server with the given certificates can serve."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from prober.check.evaluate import policy_verdicts
from prober.check.expectations import ExpectationError, parse
from prober.policy.model import ObservedPolicy
from prober.policy.naming import catalog
from prober.policy.naming.catalog import NamedPolicy
from prober.policy.naming.match import (
    compare,
    extras_beyond,
    match_catalog,
    order_check,
    suite_label,
)
from prober.wire import registry as reg
from tests.policy.test_naming import observed

pytestmark = pytest.mark.requires_bin("openssl")

_KEY = {"RSA": "RSA", "ECDSA": "ECDSA"}


def serving(obs: ObservedPolicy, *certs: str) -> ObservedPolicy:
    """``obs`` as a server holding only ``certs`` ("RSA", "ECDSA P-256") shows it."""
    kinds = {c.split()[0] for c in certs}
    out = ObservedPolicy(certificates=list(certs), groups_tls13=obs.groups_tls13,
                         groups_tls12=obs.groups_tls12)
    for v in obs.versions:
        keep = [s for s in obs.suites[v] if v == "TLSv1.3"
                or _KEY.get(reg.suite(reg.suite_value(s)).auth or "", "") in kinds  # type: ignore[union-attr]
                or reg.suite(reg.suite_value(s)).auth == "anon"]  # type: ignore[union-attr]
        if keep:
            out.versions.append(v)
            out.suites[v] = keep
            out.server_order[v] = obs.server_order.get(v)
    return out


def names(obs: ObservedPolicy, **kw: Any) -> dict[str, str]:
    return {m.policy.name: m.kind for m in match_catalog(obs, **kw).matches}


FS12 = "ELBSecurityPolicy-FS-1-2-Res-2020-10"


def test_rsa_only_endpoint_is_named_as_applicable() -> None:
    p = catalog.get(FS12)
    obs = serving(observed(p), "RSA")
    c = compare(obs, p)
    assert c.kind == "equal-as-applicable" and not c.strict.equal
    (why,) = c.not_applicable
    assert why.reason == "certificate"
    assert why.text == "not applicable: RSA certificate only"
    assert why.items == ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384")
    verdict = match_catalog(obs)
    assert verdict.verdict == "equal-as-applicable"
    assert names(obs)[FS12] == "equal-as-applicable"
    assert f"equals {FS12} as applicable (not applicable: RSA certificate only (" in verdict.text()
    assert verdict.brief().removeprefix("≈ ").removesuffix(", …") in names(obs)
    assert verdict.brief().startswith("≈ ")
    doc = verdict.to_json()
    m = next(m for m in doc["matches"] if m["name"] == FS12)
    assert m["kind"] == "equal-as-applicable" and doc["certificates"] == ["RSA"]
    assert m["not_applicable"][0]["items"] == list(why.items)
    # the literal entry is still equal for an endpoint that serves both certificates
    both = serving(observed(p), "RSA", "ECDSA P-256")
    assert compare(both, p).kind == "equal" and names(both)[FS12] == "equal"
    assert not match_catalog(both).brief().startswith("≈")


def test_certificate_reason_negatives() -> None:
    p = catalog.get(FS12)
    rsa_only = serving(observed(p), "RSA")
    # the same suites from an endpoint that does serve an ECDSA certificate: its ECDSA
    # suites were left out by configuration, not by its certificate
    both = replace(rsa_only, certificates=["RSA", "ECDSA P-256"])
    c = compare(both, p)
    assert c.kind == "differs" and not c.not_applicable
    assert c.diff.words() == "minus ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES256-GCM-SHA384"
    assert FS12 not in names(both)
    # an RSA-only endpoint that also lacks an RSA suite: not named, the edit list says what
    fewer = serving(observed(p), "RSA")
    fewer.suites["TLSv1.2"].remove("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")
    c = compare(fewer, p)
    assert c.kind == "differs"
    assert c.diff.words() == "minus ECDHE-RSA-AES256-GCM-SHA384"
    assert [r.text for r in c.not_applicable] == ["not applicable: RSA certificate only"]
    verdict = match_catalog(fewer)
    assert not verdict.matched
    near = next(n for n in verdict.nearest if FS12 in [r.name for r in n.policies])
    assert near.text().startswith(f"{FS12} minus ECDHE-RSA-AES256-GCM-SHA384 [as applicable: "
                                  "not applicable: RSA certificate only (")
    # or gains one
    more = serving(observed(p, extra=":AES128-SHA"), "RSA")
    assert compare(more, p).diff.words() == "plus AES128-SHA"
    # certificates unknown: only the literal comparison
    unknown = replace(rsa_only, certificates=None)
    assert compare(unknown, p).kind == "differs"
    assert compare(unknown, p).not_applicable == ()


def test_ecdsa_only_endpoint_and_a_version_left_without_suites() -> None:
    p = catalog.get("ELBSecurityPolicy-2016-08")
    obs = serving(observed(p), "ECDSA P-256")
    assert obs.versions == ["TLSv1.2", "TLSv1.1", "TLSv1.0"]  # ECDHE-ECDSA-*-SHA reach 1.0
    c = compare(obs, p)
    assert c.kind == "equal-as-applicable"
    assert c.not_applicable[0].text == "not applicable: ECDSA P-256 certificate only"
    assert "AES128-SHA" in c.not_applicable[0].items
    # a policy whose TLS 1.0 has RSA suites only: for an ECDSA-only server, TLS 1.0 goes
    # with them (the server cannot speak it), and says so
    tiny = NamedPolicy("test-tiny", "test", ("TLSv1.2", "TLSv1.0"), (), (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA"), None,
        "documented", "test")
    seen = ObservedPolicy(versions=["TLSv1.2"], suites={"TLSv1.2": [
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]}, server_order={"TLSv1.2": None},
        certificates=["ECDSA P-384"])
    c = compare(seen, tiny)
    assert c.kind == "equal-as-applicable"
    assert c.not_applicable[0].items == ("TLS 1.0", "AES128-SHA")
    # ...but a server that serves RSA too and still lacks TLS 1.0 is not that policy
    assert compare(replace(seen, certificates=["RSA", "ECDSA P-256"]), tiny).kind == "differs"


def m58_observed(groups: list[str], *certs: str, level: str = "intermediate") -> ObservedPolicy:
    p = catalog.get(f"mozilla-{level}-5.8")
    obs = serving(observed(p, groups=groups, server_order=None), *certs)
    return obs


CLASSIC = ["x25519", "secp256r1", "secp384r1"]


def test_library_variant_names_openssl_below_35() -> None:
    p = catalog.get("mozilla-intermediate-5.8")
    obs = m58_observed(CLASSIC, "RSA", "ECDSA P-256")
    c = compare(obs, p)
    assert c.kind == "equal-as-applicable" and c.variant is not None
    assert c.variant.id == "openssl-below-3.5"
    (why,) = c.not_applicable
    assert why.reason == "library" and why.items == ("group X25519MLKEM768",)
    assert why.text.startswith("variant mozilla-intermediate-5.8 without X25519MLKEM768")
    assert "OpenSSL is older than 3.5" in why.text
    j = next(m for m in match_catalog(obs).to_json()["matches"] if m["name"] == p.name)
    assert j["variant"]["id"] == "openssl-below-3.5"
    # with the hybrid group the literal entry is equal
    full = m58_observed(["X25519MLKEM768", *CLASSIC], "RSA", "ECDSA P-256")
    assert compare(full, p).kind == "equal"


def test_library_variant_negatives() -> None:
    p = catalog.get("mozilla-intermediate-5.8")
    # lacking another group (x25519) is not the documented condition
    odd = m58_observed(["X25519MLKEM768", "secp256r1", "secp384r1"], "RSA", "ECDSA P-256")
    c = compare(odd, p)
    assert c.kind == "differs" and c.diff.words() == "minus group x25519"
    assert p.name not in names(odd)
    # lacking X25519MLKEM768 where the publisher documents no such condition
    bare = replace(p, name="test-no-variant", variants=())
    c = compare(m58_observed(CLASSIC, "RSA", "ECDSA P-256"), bare)
    assert c.kind == "differs" and c.diff.words() == "minus group X25519MLKEM768"


def test_both_reasons_at_once_old_58_on_its_rsa_certificate() -> None:
    # 5.8 "old" prescribes an RSA certificate but lists ECDSA suites
    p = catalog.get("mozilla-old-5.8")
    assert p.certificate_types == ("rsa",)
    obs = m58_observed(CLASSIC, "RSA", level="old")
    # this OpenSSL 3 has no 3DES: a library condition Mozilla does not document, so the
    # entry is not named, and the edit list says why
    assert "TLS_RSA_WITH_3DES_EDE_CBC_SHA" not in obs.suites["TLSv1.2"]
    c = compare(obs, p)
    assert c.kind == "differs" and c.diff.words() == "minus DES-CBC3-SHA"
    # a library that has it serves the whole RSA part
    for v in ("TLSv1.2", "TLSv1.1", "TLSv1.0"):
        obs.suites[v].append("TLS_RSA_WITH_3DES_EDE_CBC_SHA")
    c = compare(obs, p)
    assert c.kind == "equal-as-applicable"
    assert [r.reason for r in c.not_applicable] == ["library", "certificate"]
    assert all(reg.suite(reg.suite_value(n)).auth == "ECDSA"  # type: ignore[union-attr]
               for n in c.not_applicable[1].items)


def test_no_weaker_than_uses_the_applicable_part() -> None:
    p = catalog.get("mozilla-intermediate-5.8")
    obs = m58_observed(CLASSIC, "RSA")
    # nothing beyond the policy: the RSA-only endpoint on the OpenSSL < 3.5 variant
    assert extras_beyond(obs, p)[0] == []
    weaker = m58_observed(CLASSIC, "RSA")
    weaker.suites["TLSv1.2"].append("TLS_RSA_WITH_AES_128_CBC_SHA")
    assert extras_beyond(weaker, p)[0] == ["AES128-SHA"]


def test_order_alternatives_and_chacha_in_the_order_check() -> None:
    p = catalog.get("ELBSecurityPolicy-2016-08")
    (label, alt), = p.order_alternatives
    obs = observed(p)
    obs.suites["TLSv1.2"] = list(alt)
    check = order_check(obs, p)
    assert check.status == "same" and check.versions["TLSv1.2"] == "same"
    assert any(label in n for n in check.notes)
    verdict = match_catalog(obs, candidates=[p])
    assert "differs" not in verdict.text()
    # an order that is neither still differs
    obs.suites["TLSv1.2"].reverse()
    assert order_check(obs, p).status == "differs"
    # ChaCha20 priority is reported next to the match, not as a difference
    m = catalog.get("mozilla-intermediate-5.7")
    chacha = observed(m)
    chacha.chacha_priority = {"TLSv1.2": True, "TLSv1.3": True}
    oc = order_check(chacha, m)
    assert oc.chacha_priority == ("TLSv1.3", "TLSv1.2")
    assert "ChaCha20 priority" in match_catalog(chacha, candidates=[m]).text()


def test_partial_tls12_groups_are_not_a_difference() -> None:
    # an ECDSA-only TLS 1.2 server hides the curves it ranks below its certificate's
    p = catalog.get("mozilla-modern-4.0")
    assert p.groups is not None
    obs = serving(observed(p, groups=["secp256r1"]), "ECDSA P-256")
    obs.groups_tls12_complete = False
    # (4.0 "modern" prescribes an ECDSA certificate and lists ECDHE-RSA suites too)
    assert compare(obs, p).kind == "equal-as-applicable"
    obs.groups_tls12 = ["secp256r1", "x448"]  # what was seen beyond the catalog still counts
    assert compare(obs, p).diff.words() == "plus group x448"


def test_post_quantum_only_groups_compare_only_those() -> None:
    # ELB's PQ policies document their ML-KEM hybrids only; the classical groups they also
    # offer are unknown, not absent
    p = catalog.get("ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09")
    assert p.groups is not None and "x25519" not in p.groups
    groups = ["X25519MLKEM768", "x25519", "secp256r1", "SecP256r1MLKEM768", "secp384r1",
              "SecP384r1MLKEM1024"]
    obs = serving(observed(p, groups=groups), "RSA", "ECDSA P-256")
    assert compare(obs, p).kind == "equal"
    # a server without them (OpenSSL before 3.5) is not that policy
    classic = serving(observed(p, groups=CLASSIC), "RSA", "ECDSA P-256")
    c = compare(classic, p)
    assert c.kind == "differs" and c.diff.words() == (
        "minus group SecP256r1MLKEM768, group SecP384r1MLKEM1024, group X25519MLKEM768")


@dataclass
class _Scan:
    """What policy_verdicts reads of a `prober policy` scan."""

    policy: ObservedPolicy
    reliable: bool = True
    warnings: list[str] = field(default_factory=list)


def test_check_equals_and_equals_strict() -> None:
    obs = serving(observed(catalog.get(FS12)), "RSA")
    exp = parse({"policy": {"equals": FS12, "equals_strict": FS12,
                            "no_weaker_than": FS12}}, "expect.yaml")
    loose, strict, weaker = policy_verdicts(exp, "t", _Scan(obs))
    assert loose.passed and loose.name == f"policy equals {FS12}"
    assert "as applicable (not applicable: RSA certificate only" in loose.message
    assert not strict.passed and "the literal entry differs" in strict.message
    assert weaker.passed
    # the old syntax still parses and means "equals"
    old = parse({"policy": {"equals": FS12}}, "expect.yaml")
    assert old.policy_equals == FS12 and old.policy_equals_strict is None
    # an endpoint that lacks a suite for another reason fails both
    obs.suites["TLSv1.2"].pop()
    loose, strict, _ = policy_verdicts(exp, "t", _Scan(obs))
    assert not loose.passed and not strict.passed
    assert loose.message.startswith(f"differs from {FS12}: observed = {FS12} minus ")
    with pytest.raises(ExpectationError, match="catalog list"):
        parse({"policy": {"equals_strict": "nope"}}, "x.yaml")
    with pytest.raises(ExpectationError, match="equals_strict"):
        parse({"policy": {"strict": FS12}}, "x.yaml")


def test_suite_label_is_openssl_name() -> None:
    assert suite_label("TLS_RSA_WITH_AES_128_CBC_SHA") == "AES128-SHA"
