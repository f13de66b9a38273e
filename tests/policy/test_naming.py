"""Catalog matching and the offline Mozilla check, on real data.

Observed policies are built the way a server would build them: the catalog's OpenSSL
cipher string expanded by the local ``openssl ciphers -V -s -tls1_x`` (so the set and the
order are OpenSSL's, not the catalog's), mapped to IANA names through the registries.
Expected names are derived from the catalog itself, not written down, except where a
test states a fact about the catalog data (which entries are aliases).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterable

import pytest

from prober.policy.model import ObservedPolicy
from prober.policy.naming import catalog
from prober.policy.naming.catalog import NamedPolicy
from prober.policy.naming.match import (
    PROTOCOL_WEIGHT,
    diff_policies,
    match_catalog,
    mozilla_compliance,
    sslyze_mozilla_profile,
    suite_label,
)
from prober.wire import registry as reg

pytestmark = pytest.mark.requires_bin("openssl")

_FLAG = {"TLSv1.3": "-tls1_3", "TLSv1.2": "-tls1_2", "TLSv1.1": "-tls1_1", "TLSv1.0": "-tls1"}


def openssl_expand(cipher_string: str, version: str) -> list[str]:
    """IANA names, in OpenSSL's order, of what ``cipher_string`` enables for ``version``."""
    argv = ["openssl", "ciphers", "-V", "-s", _FLAG[version]]
    if version == "TLSv1.3":
        argv += ["-ciphersuites", cipher_string, "ALL"]
    else:
        argv.append(cipher_string + ":@SECLEVEL=0")
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    codes = re.findall(r"0x([0-9A-F]{2}),0x([0-9A-F]{2}) - ", out)
    return [reg.suite_name(int(hi, 16) << 8 | int(lo, 16)) for hi, lo in codes]


def observed(policy: NamedPolicy, *, extra: str = "", versions: Iterable[str] | None = None,
             groups: list[str] | None = None, server_order: bool | None = True) -> ObservedPolicy:
    """What a server configured with ``policy``'s cipher string (+ ``extra``) accepts."""
    assert policy.protocols is not None and policy.tls13_suites is not None
    string = ":".join(policy.raw["ciphers"]) + extra
    vs = list(policy.protocols if versions is None else versions)
    suites = {v: openssl_expand(":".join(policy.tls13_suites) if v == "TLSv1.3" else string, v)
              for v in vs}
    return ObservedPolicy(versions=vs, suites=suites, server_order=dict.fromkeys(vs, server_order),
                          groups_tls13=list(groups) if groups and "TLSv1.3" in vs else None,
                          groups_tls12=list(groups) if groups else None)


def same_content(p: NamedPolicy, q: NamedPolicy) -> bool:
    """Independent of match.py: equal protocol, suite and TLS 1.3 suite sets."""
    return all(x is not None and y is not None and set(x) == set(y)
               for x, y in ((p.protocols, q.protocols), (p.suites, q.suites),
                            (p.tls13_suites, q.tls13_suites)))


def aliases(p: NamedPolicy) -> list[str]:
    return sorted((q.name for q in catalog.all_policies() if same_content(p, q)),
                  key=lambda n: (catalog.get(n).provider, n))


@pytest.mark.parametrize("name", [
    "ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-2016-08",
    "ELBSecurityPolicy-FS-1-2-Res-2020-10", "mozilla-intermediate-5.7", "mozilla-modern-5.7",
    "AppGwSslPolicy20220101",
])
def test_openssl_expansion_matches_every_alias(name: str) -> None:
    policy = catalog.get(name)
    obs = observed(policy)
    # the data path is real: OpenSSL's expansion is the catalog's list, in its order
    legacy = [v for v in obs.versions if v != "TLSv1.3"]
    if legacy:
        assert obs.suites["TLSv1.2"] == list(policy.suites or ())
    verdict = match_catalog(obs)
    names = [m.policy.name for m in verdict.matches]
    assert names == aliases(policy)
    assert name in names
    assert verdict.nearest == ()
    assert verdict.text().startswith("equals ")
    brief = verdict.brief()
    assert brief.removesuffix(", …") in names and brief.endswith(", …") == (len(names) > 1)
    for m in verdict.matches:
        assert m.policy.confidence == catalog.get(m.policy.name).confidence
        assert m.groups_compared is False  # groups were not observed


def test_catalog_aliases_are_named_together() -> None:
    # facts of the catalog data: these entries document the same policy under two names
    for a, b in (("ELBSecurityPolicy-2016-08", "ELBSecurityPolicy-2015-05"),
                 ("ELBSecurityPolicy-TLS13-1-2-2021-06", "ELBSecurityPolicy-TLS13-1-2-PQ-2025-09")):
        names = [m.policy.name for m in match_catalog(observed(catalog.get(a))).matches]
        assert a in names and b in names


def test_near_match_in_words_people_act_on() -> None:
    elb = catalog.get("ELBSecurityPolicy-TLS13-1-2-2021-06")
    obs = observed(elb, extra=":AES128-SHA", versions=["TLSv1.2"])
    only = match_catalog(obs, candidates=[elb])
    assert not only.matched
    (near,) = only.nearest
    assert near.text() == "ELBSecurityPolicy-TLS13-1-2-2021-06 plus AES128-SHA; minus TLS 1.3"
    # a table cell (fleet report) counts what that text lists on each side
    assert only.brief() == "nearest ELBSecurityPolicy-TLS13-1-2-2021-06 (+1 −1)"
    # "minus TLS 1.3" takes the TLS 1.3 suites with it: one edit, not four
    assert near.distance == PROTOCOL_WEIGHT + 1
    diff = near.to_json()["difference"]
    assert diff["protocols"] == {"plus": [], "minus": ["TLSv1.3"]}
    assert diff["suites"] == {"plus": ["TLS_RSA_WITH_AES_128_CBC_SHA"], "minus": []}
    assert diff["tls13_suites"]["minus"] == list(elb.tls13_suites or ())
    assert diff["implied_by_protocols"] == ["tls13_suites"]

    # against the whole catalog, a TLS 1.2-only policy with ELB's suites is one edit away
    verdict = match_catalog(obs, nearest=40)
    closest = [p for p in catalog.all_policies() if p.protocols == ("TLSv1.2",)
               and p.suites is not None and set(p.suites) == set(elb.suites or ())]
    assert closest, "the catalog has a TLS 1.2-only policy with these suites"
    first = verdict.nearest[0]
    assert [p.name for p in first.policies] == sorted(p.name for p in closest)
    assert first.distance == 1
    assert first.diff.words() == "plus AES128-SHA"
    texts = [n.text() for n in verdict.nearest]
    assert any(t.startswith("ELBSecurityPolicy-TLS13-1-2-2021-06 plus AES128-SHA; minus TLS 1.3")
               for t in texts)
    distances = [n.distance for n in verdict.nearest]
    assert distances == sorted(distances)


def test_near_entries_group_identical_policies() -> None:
    m56 = catalog.get("mozilla-intermediate-5.6")
    obs = observed(m56, extra=":AES128-SHA")
    verdict = match_catalog(obs)
    first = verdict.nearest[0]
    expected = aliases(m56)
    assert len(expected) > 1
    assert [p.name for p in first.policies] == expected
    assert first.text() == (f"{expected[0]} plus AES128-SHA (also {', '.join(expected[1:])})")
    assert verdict.text() == "no catalog policy equals it; nearest: " + " | ".join(
        n.text() for n in verdict.nearest)


def test_match_on_reconstructed_entry_is_flagged() -> None:
    gcp = catalog.get("gcp-MODERN-TLS_1_2")
    assert gcp.confidence != "documented"
    verdict = match_catalog(observed(gcp))
    assert [m.policy.name for m in verdict.matches] == aliases(gcp)
    assert all(not m.policy.documented for m in verdict.matches)
    assert verdict.rests_on_undocumented
    assert f"gcp-MODERN-TLS_1_2 [{gcp.confidence}]" in verdict.text()
    assert "rests only on non-documented catalog entries" in verdict.text()
    assert verdict.to_json()["rests_on_undocumented"] is True

    # the same suites are also a documented policy: the match no longer rests on GCP alone
    restricted = catalog.get("gcp-RESTRICTED-TLS_1_2")
    verdict = match_catalog(observed(restricted))
    by_name = {m.policy.name: m for m in verdict.matches}
    assert any(m.policy.documented for m in verdict.matches)
    assert not verdict.rests_on_undocumented
    assert by_name["gcp-RESTRICTED-TLS_1_2"].to_json()["confidence"] == restricted.confidence
    assert f"gcp-RESTRICTED-TLS_1_2 [{restricted.confidence}]" in verdict.text()


def test_groups_compared_where_both_sides_know_them() -> None:
    moz = catalog.get("mozilla-intermediate-5.7")
    assert moz.groups is not None
    groups = [reg.group_name(reg.group_value(g)) for g in moz.groups]
    verdict = match_catalog(observed(moz, groups=groups))
    (m,) = [m for m in verdict.matches if m.policy.name == moz.name]
    assert m.groups_compared

    more = observed(moz, groups=[*groups, "x448"])
    assert more.groups_tls13 is not None
    more.groups_tls13.append("X25519MLKEM768")
    assert not match_catalog(more, candidates=[moz]).matched
    (near,) = match_catalog(more, candidates=[moz]).nearest
    assert near.text() == "mozilla-intermediate-5.7 plus group x448, group X25519MLKEM768"
    assert near.distance == 2

    fewer = observed(moz, groups=groups[:-1])
    (near,) = match_catalog(fewer, candidates=[moz]).nearest
    assert near.diff.words() == f"minus group {groups[-1]}"

    # a TLS 1.2-only endpoint is not blamed for lacking a TLS 1.3-only hybrid group
    m58 = catalog.get("mozilla-intermediate-5.8")
    assert m58.groups is not None and "X25519MLKEM768" in m58.groups
    tls12 = [g for g in (reg.group_name(reg.group_value(x)) for x in m58.groups)
             if reg.group(reg.group_value(g)).kind == "ecdhe"]  # type: ignore[union-attr]
    obs12 = observed(m58, versions=["TLSv1.2"], groups=tls12)
    (near,) = match_catalog(obs12, candidates=[m58]).nearest
    assert near.diff.words() == "minus TLS 1.3"
    assert near.diff.groups is not None and near.diff.groups.empty

    # groups unknown in the catalog (ELB documents none): compared nowhere, still a match
    elb = catalog.get("ELBSecurityPolicy-TLS13-1-2-2021-06")
    assert elb.groups is None
    verdict = match_catalog(observed(elb, groups=["x25519", "x448"]))
    (m,) = [m for m in verdict.matches if m.policy.name == elb.name]
    assert not m.groups_compared


def test_order_agreement_is_reported_next_to_the_match() -> None:
    elb = catalog.get("ELBSecurityPolicy-FS-1-2-Res-2020-10")
    same = match_catalog(observed(elb), candidates=[elb]).matches[0]
    assert same.order.status == "same"
    assert same.order.versions == {"TLSv1.2": "same"}

    obs = observed(elb)
    obs.suites["TLSv1.2"].reverse()
    (m,) = match_catalog(obs, candidates=[elb]).matches  # order never fails a match
    assert m.order.status == "differs"
    first, second = suite_label(obs.suites["TLSv1.2"][0]), suite_label((elb.suites or ())[0])
    assert m.order.detail == (f"TLS 1.2: the server puts {first} before {second}, "
                              "the catalog the other way round")
    verdict = match_catalog(obs, candidates=[elb])
    assert verdict.text() == f"equals {elb.name}; server order differs from {elb.name}"

    client = match_catalog(observed(elb, server_order=False), candidates=[elb]).matches[0]
    assert client.order.status == "not-compared"
    assert client.order.versions["TLSv1.2"].endswith("the server follows the client's order")

    appgw = catalog.get("AppGwSslPolicy20220101")
    assert not appgw.order_is_priority
    (m,) = match_catalog(observed(appgw), candidates=[appgw]).matches
    assert m.order.status == "not-compared"
    assert "not a priority order" in m.order.versions["TLSv1.2"]


def test_partially_documented_entries_are_consistent_not_matches() -> None:
    rfc = [p for p in catalog.all_policies()
           if p.protocols == ("TLSv1.3",) and p.tls13_suites is None]
    assert rfc, "the catalog has TLS 1.3-only entries without their suites"
    modern = catalog.get("mozilla-modern-5.7")
    verdict = match_catalog(observed(modern))
    consistent = {c.name for c in verdict.consistent}
    assert {p.name for p in rfc} <= consistent
    assert not consistent & {m.policy.name for m in verdict.matches}
    assert {p.name for p in catalog.all_policies() if p.protocols is None} == set(verdict.skipped)


def test_diff_policies_for_what_if() -> None:
    current, target = (catalog.get("ELBSecurityPolicy-2016-08"),
                       catalog.get("ELBSecurityPolicy-TLS13-1-2-2021-06"))
    diff = diff_policies(target, current)  # the move from current to target
    assert diff.protocols is not None and diff.suites is not None
    assert diff.protocols.minus == ("TLSv1.1", "TLSv1.0")
    assert diff.protocols.plus == ("TLSv1.3",)
    lost = [s for s in current.suites or () if s not in set(target.suites or ())]
    assert list(diff.suites.minus) == lost
    assert diff.tls13_suites is not None
    assert diff.tls13_suites.plus == target.tls13_suites  # TLS 1.3 brings its suites
    assert diff.text() == (
        "ELBSecurityPolicy-2016-08 plus TLS 1.3, " + ", ".join(target.tls13_suites or ())
        + "; minus TLS 1.1, TLS 1.0, " + ", ".join(map(suite_label, lost)))
    assert diff_policies(current, current).equal
    assert diff_policies(current, current).words() == "same"

    # observed against observed, and observed against a policy
    a, b = observed(target), observed(target, extra=":AES256-SHA")
    d = diff_policies(b, a, a_name="after", b_name="before")
    assert d.text() == "before plus AES256-SHA"
    assert diff_policies(a, target).equal


def test_verdict_is_json_and_deterministic() -> None:
    obs = observed(catalog.get("mozilla-intermediate-5.6"), extra=":AES128-SHA",
                   groups=["x25519", "secp256r1"])
    first, again = match_catalog(obs).to_json(), match_catalog(obs).to_json()
    assert json.loads(json.dumps(first)) == first == again
    assert first["distance_metric"]
    assert first["compared"] + len(first["skipped"]) == len(catalog.all_policies())


def test_offline_mozilla_compliance_against_sslyze_profile_data() -> None:
    version, source, doc = sslyze_mozilla_profile()
    assert source.endswith(f"{version}.json") or version in source
    cfg = doc["configurations"]["intermediate"]
    obs = ObservedPolicy(
        versions=["TLSv1.3", "TLSv1.2"],
        suites={"TLSv1.3": list(cfg["ciphersuites"]), "TLSv1.2": list(cfg["ciphers"]["iana"])},
        server_order={"TLSv1.3": False, "TLSv1.2": False},
        groups_tls13=[*cfg["tls_curves"]], groups_tls12=[*cfg["tls_curves"]])
    ok = mozilla_compliance(obs, "intermediate")
    assert ok.compliant is True and ok.issues == {}
    assert ok.profile_version == str(doc["version"])
    assert ok.not_checked  # certificate and vulnerabilities need a live scan
    assert "compliant on protocols, suites and curves" in ok.text()

    modern = mozilla_compliance(obs, "modern")
    assert modern.compliant is False
    assert set(modern.issues) == {"tls_versions", "ciphers"}
    assert modern.issues["tls_versions"].startswith("TLS 1.2 accepted")

    obs.suites["TLSv1.2"].append("TLS_RSA_WITH_AES_128_CBC_SHA")
    obs.versions.append("TLSv1.0")
    obs.suites["TLSv1.0"] = ["TLS_RSA_WITH_AES_128_CBC_SHA"]
    assert obs.groups_tls13 is not None
    obs.groups_tls13 += ["x448", "X25519MLKEM768"]
    bad = mozilla_compliance(obs, "intermediate")
    assert bad.compliant is False
    assert bad.issues["ciphers"] == "suites AES128-SHA accepted"
    assert bad.issues["tls_versions"].startswith("TLS 1.0 accepted")
    assert bad.issues["tls_curves"] == "curves x448 accepted"
    assert any("X25519MLKEM768" in n for n in bad.notes)  # not judged, not hidden
    assert json.loads(json.dumps(bad.to_json()))["compliant"] is False


def test_offline_mozilla_matches_catalog_transcription() -> None:
    version, _source, _doc = sslyze_mozilla_profile()
    for level in ("modern", "intermediate", "old"):
        entry = catalog.get(f"mozilla-{level}-{version}")
        verdict = mozilla_compliance(observed(entry), level)
        assert verdict.compliant is True, (level, verdict.issues)
