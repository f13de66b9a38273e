"""The golden-output harness (scripts/goldens.py) compares what it must, on stored data.

No peers, no subprocess: the recorded goldens in scripts/goldens/expected/ are changed in
memory. A changed detail, outcome or exit code must be reported; a changed port,
timestamp, duration or certificate (the masked values) must not.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any

import pytest

from scripts import goldens as g

EXPECTED = g.load_expected()
NOW = dt.datetime.now(dt.UTC)


def golden(name: str) -> dict[str, Any]:
    for rec in EXPECTED.values():
        if rec["name"] == name:
            return copy.deepcopy(rec)
    raise AssertionError(f"no golden for the call {name!r}")


def another_run(rec: dict[str, Any], seed: int = 1) -> dict[str, Any]:
    """``rec`` as a run with other ports, times, durations and certificates records it."""
    return g.as_another_run(rec, g.StandIns(seed, NOW + dt.timedelta(hours=seed)))


def test_the_goldens_are_there_and_cover_every_command() -> None:
    assert len(EXPECTED) >= 30
    argvs = [" ".join(r["argv"]) for r in EXPECTED.values()]
    for command in ("prober probe ", "prober profiles list", "prober profiles show",
                    "prober profiles from-pcap", "prober profiles capture", "prober outcomes",
                    "prober policy ", "--deep", "prober whatif ", "prober diagnose ",
                    "prober diff ", "prober check ", "prober logs "):
        assert any(command in a for a in argvs), command
    # recorded before `prober demo` existed, and after
    assert any("prober.demo" in a or "prober demo" in a for a in argvs)
    codes = {r["exit_code"] for r in EXPECTED.values()}
    assert {0, 1, 2} <= codes  # success, a failed check / nothing captured, input errors


def test_no_traceback_and_no_source_path_in_the_goldens() -> None:
    for name, rec in EXPECTED.items():
        text = g.dumps(rec)
        assert "Traceback" not in text, name
        assert not re.search(r"prober/[\w/]+\.py", text), name


def test_the_self_test_passes() -> None:
    lines: list[str] = []
    assert g.self_test(EXPECTED, log=lines.append) == [], "\n".join(lines)
    assert len(lines) >= 10


@pytest.mark.parametrize("seed", [1, 2])
def test_other_ports_times_durations_and_certificates_are_no_difference(seed: int) -> None:
    for name in ("probe-nginx", "probe-misbehaving", "diagnose-demo-front", "check-ci-gate",
                 "policy-deep", "profiles-capture", "profiles-from-pcap", "demo"):
        rec = golden(name)
        si = g.StandIns(seed, NOW + dt.timedelta(hours=seed))
        # every mask of the golden is really replaced by a concrete value ...
        assert "<MASK:" in g.dumps(rec) and "<MASK:" not in g.dumps(g.unmask(rec, si))
        # ... and what that other run records is no difference
        assert g.compare(rec, g.as_another_run(rec, si), name) is None, name


def test_a_changed_detail_string_is_a_difference() -> None:
    rec = golden("probe-misbehaving")
    b = another_run(rec)
    summary = b["files"]["probe-misbehaving.json"]["json"]["summary"]
    cell = next(c for c in summary if c["outcome"] == "partial")
    cell["detail"] = cell["detail"].replace("100 bytes", "101 bytes")
    diff = g.compare(rec, b, "probe-misbehaving")
    assert diff is not None and "101 bytes" in diff


def test_a_changed_outcome_is_a_difference() -> None:
    rec = golden("probe-nginx")
    b = another_run(rec)
    attempts = b["files"]["probe-nginx.json"]["json"]["attempts"]
    first_alert = next(a for a in attempts if a["outcome"] == "alert")
    first_alert["outcome"] = "eof"
    assert g.compare(rec, b, "probe-nginx") is not None
    # in the text table too, where whitespace is compared loosely
    b = another_run(rec)
    i = next(i for i, line in enumerate(b["stdout"]["text"]) if " alert " in line)
    b["stdout"]["text"][i] = b["stdout"]["text"][i].replace(" alert ", " eof ", 1)
    assert g.compare(rec, b, "probe-nginx") is not None


@pytest.mark.parametrize(("name", "new_code"), [("check-failing", 0), ("probe-bad-port", 1),
                                                ("demo", 1)])
def test_a_changed_exit_code_is_a_difference(name: str, new_code: int) -> None:
    rec = golden(name)
    b = another_run(rec)
    b["exit_code"] = new_code
    diff = g.compare(rec, b, name)
    assert diff is not None and '"exit_code"' in diff


def test_a_port_or_a_timestamp_alone_is_no_difference() -> None:
    rec = golden("probe-nginx")
    b = copy.deepcopy(rec)
    doc = b["files"]["probe-nginx.json"]["json"]
    # what another run writes: other source ports, other times (re-masked as such)
    norm = g.Normaliser(tmp="/tmp/elsewhere", ports={45678: "nginx"}, now=NOW)
    doc["attempts"][0]["local_port"] = norm.json({"local_port": 51515})["local_port"]
    doc["vantage"]["started_at"] = norm.json({"started_at": "2030-01-01"})["started_at"]
    assert g.compare(rec, b, "probe-nginx") is None
    # but a source port that is suddenly missing is a difference
    doc["attempts"][0]["local_port"] = None
    assert g.compare(rec, b, "probe-nginx") is not None


def test_the_normaliser_masks_what_it_lists_and_nothing_else() -> None:
    norm = g.Normaliser(tmp="/tmp/prober-goldens-x", ports={45678: "nginx"},
                        certs={"ab" * 32: "rsa"}, hostname="box", now=NOW)
    today = NOW.date().isoformat()
    line = (f"127.0.0.1:45678 → 127.0.0.1 (SNI none), from 127.0.0.1, 4 attempts in 0.1 s; "
            f"RST 2.25 ms after; expires {today}; {'ab' * 32}; /tmp/prober-goldens-x/a.json; "
            f"from 127.0.0.1:51234; demo.test:45678; ('127.0.0.1', 45678)")
    assert norm.text(line) == (
        "127.0.0.1:<MASK:port:nginx> → 127.0.0.1 (SNI none), from 127.0.0.1, 4 attempts in "
        "<MASK:s> s; RST <MASK:ms> ms after; expires <MASK:time>; <MASK:cert-sha256:rsa>; "
        "<MASK:tmp>/a.json; from 127.0.0.1:<MASK:port>; demo.test:<MASK:port:nginx>; "
        "('127.0.0.1', <MASK:port:nginx>)")
    kept = ("2024-03-30T18:14:00.000001Z 198.51.100.12 45678 443 TLSv1.2 0.004; "
            "771,4865-45678-49199; 127.0.0.1:443; at most 20 s; in 364 days; cd" + "ef" * 31)
    assert norm.text(kept) == kept
    table = "profile  outcome  median ms\ntls1.2-only  ok 2/2  3.4\n\nafter  1.5\n"
    assert norm.lines(table) == ["profile  outcome  median ms",
                                 "tls1.2-only  ok 2/2  <MASK:median>", "", "after  1.5"]


def test_json_masks_keep_nulls_keys_and_unknown_certificates_apart() -> None:
    norm = g.Normaliser(ports={45678: "nginx"}, certs={"ab" * 32: "rsa"}, now=NOW)
    doc = {"port": 45678, "local_port": 40000, "timings_ms": {"connect": 1.2, "first_byte": None},
           "certificate": {"sha256": "cd" * 32}, "repeat": 3, "options": {"port": 443},
           "median_ms": None, "snd_mss": 45678}
    assert norm.json(doc) == {
        "port": "<MASK:port:nginx>", "local_port": "<MASK:port>",
        "timings_ms": {"connect": "<MASK:timings_ms>", "first_byte": None},
        "certificate": {"sha256": "<MASK:cert-sha256>"}, "repeat": 3,
        "options": {"port": 443}, "median_ms": None, "snd_mss": 45678}


def test_every_masked_json_key_and_text_mask_is_documented() -> None:
    assert all(why.strip() for why in g.MASKED_JSON_KEYS.values())
    assert all(why.strip() for _, _, why in g.MASKED_TEXT)
    used = set(re.findall(r"<MASK:([\w-]+)", "".join(g.dumps(r) for r in EXPECTED.values())))
    documented = {k.split(".")[-1] for k in g.MASKED_JSON_KEYS} | {n for n, _, _ in
                                                                  g.MASKED_TEXT}
    assert used <= documented, used - documented
