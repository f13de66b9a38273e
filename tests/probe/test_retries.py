"""`prober probe` (and `whatif`'s live run, through the same engine) retries an attempt
turned away for load: against the lab's rate-limited service (nftables refuses new
connections beyond 10/s after a burst of 5 with an RST to the SYN) each retry is a new
attempt naming the one it retries (``retry_of``), the refused attempt stays in the
record, retries are bounded, and the summary counts each planned attempt once. A healthy
nginx and a closed port get no retries.

The lab tests need root (tests/lab/fixtures.py skips with the reason otherwise).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from prober.cli.main import main
from prober.core.engine import RETRY_BACKOFF_S, RETRY_BUDGET
from tests.lab import Lab
from tests.peers.ports import free_port


def _probe(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = tmp_path / f"run-{time.monotonic_ns()}.json"
    assert main(["probe", *args, "-q", "--json", str(out)]) == 0
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def _chain(atts: dict[int, dict[str, Any]], a: dict[str, Any]) -> list[int]:
    """The ids from ``a`` back to the planned attempt it retries, ``a`` first."""
    ids = [a["id"]]
    while "retry_of" in atts[ids[-1]]:
        ids.append(atts[ids[-1]]["retry_of"])
        assert len(ids) <= len(atts), ids  # a loop would be a bug
    return ids


def _check_retries(doc: dict[str, Any], planned: int) -> list[dict[str, Any]]:
    """What every probe document with retries must hold; returns the retries."""
    atts = {a["id"]: a for a in doc["attempts"]}
    assert len(atts) == len(doc["attempts"]), "an id was reused"
    retries = [a for a in doc["attempts"] if "retry_of" in a]
    # every planned attempt is kept as it was, the retries numbered after them
    assert set(range(1, planned + 1)) <= set(atts)
    assert all(a["id"] > planned for a in retries)
    for a in retries:
        first = atts[a["retry_of"]]
        # only an attempt turned away for load is retried, once, as the same hello
        assert first["outcome"] == "refused", first
        assert (first["profile"], first["repeat"]) == (a["profile"], a["repeat"])
        assert len(_chain(atts, a)) - 1 <= len(RETRY_BACKOFF_S)
    assert len({a["retry_of"] for a in retries}) == len(retries)
    assert len(retries) <= RETRY_BUDGET * len(doc["targets"])
    # the summary counts each planned attempt's last try, and the retries apart
    assert sum(c["attempts"] for c in doc["summary"]) == planned
    assert sum(sum(c["counts"].values()) for c in doc["summary"]) == planned
    assert sum(c.get("retries", 0) for c in doc["summary"]) == len(retries)
    assert doc["options"]["retries"] == len(RETRY_BACKOFF_S) or not retries
    return retries


@pytest.mark.root
def test_probe_retries_a_rate_limited_endpoint(lab: Lab) -> None:
    s = lab.scenario("rate-limited")
    n = 30
    html = lab.workdir / f"probe-rate-limited-{time.monotonic_ns()}.html"
    doc = lab.probe(s.target, "--sni", s.sni, "-p", "tls1.2-only", "--repeat", str(n),
                    "-t", "2", "--html", str(html))
    retries = _check_retries(doc, n)
    table = doc["_table"]
    assert retries, table
    # the back-off works: retries get in where the first tries were refused
    assert any(a["outcome"] == "ok" for a in retries), table
    (cell,) = doc["summary"]
    assert cell["retries"] == len(retries)
    word = "retry" if len(retries) == 1 else "retries"
    assert f"{n + len(retries)} attempts ({len(retries)} {word})" in table, table
    assert f"({len(retries)} {word})" in table.splitlines()[-1], table
    # the report links each retry to the attempt it repeats
    page = html.read_text()
    a = retries[0]
    assert f'retry of <a href="#a-{a["retry_of"]}">{a["retry_of"]}</a>' in page
    assert f"{n + len(retries)} attempts ({len(retries)} of them retries" in page
    # the page's matrix counts as the text's and the JSON summary do: each planned
    # attempt once, by its last try, with the retries beside
    assert (f'<td class="num">{n} <span class="small">({len(retries)} {word})</span></td>'
            in page), page


@pytest.mark.root
def test_probe_without_retries_keeps_the_refusals(lab: Lab) -> None:
    s = lab.scenario("rate-limited")
    doc = lab.probe(s.target, "--sni", s.sni, "-p", "tls1.2-only", "--repeat", "30",
                    "-t", "2", "--retries", "0")
    assert not [a for a in doc["attempts"] if "retry_of" in a], doc["_table"]
    assert len(doc["attempts"]) == 30
    assert doc["summary"][0]["counts"].get("refused", 0) >= 1, doc["_table"]
    assert "retries" not in doc["summary"][0]


@pytest.mark.root
def test_probe_of_the_healthy_lab_service_has_no_retries(lab: Lab) -> None:
    s = lab.scenario("healthy")
    doc = lab.probe(s.name_target, "-p", "tls1.2-only", "--repeat", "30")
    assert _check_retries(doc, 30) == [], doc["_table"]
    assert doc["summary"][0]["counts"] == {"ok": 30}


def test_probe_of_a_healthy_nginx_has_no_retries(tmp_path: Path, nginx_factory: Any) -> None:
    srv = nginx_factory()
    doc = _probe(tmp_path, f"127.0.0.1:{srv.port}", "-p", "tls1.2-only", "-p", "tls1.3-only",
                 "-n", "20")
    assert _check_retries(doc, 40) == []
    assert {c["outcome"] for c in doc["summary"]} == {"ok"}
    assert all("retries" not in c for c in doc["summary"])


def test_a_closed_port_is_not_retried(tmp_path: Path) -> None:
    # nothing ever connected: every refusal means "closed", not "too many"
    doc = _probe(tmp_path, f"127.0.0.1:{free_port()}", "-p", "tls1.2-only", "-n", "12")
    assert _check_retries(doc, 12) == []
    assert doc["summary"][0]["counts"] == {"refused": 12}


@pytest.mark.parametrize("bad", ["-1", "5"])
def test_retries_out_of_range_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    assert main(["probe", "127.0.0.1:1", "--retries", bad]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"prober: --retries must be 0-{len(RETRY_BACKOFF_S)}, got {bad}", err


WHATIF_CLIENTS = ["tls1.2-only", "tls1.3-only", "firefox-137-win11", "java-7u25",
                  "ie-11-win7", "android-4.4.2", "openssl-1.0.2e", "chrome-101-win10",
                  "safari-18.4", "curl-7.88.1"]


@pytest.mark.root
def test_whatif_live_rides_out_a_rate_limit(lab: Lab) -> None:
    """`whatif --against` runs every client's hello at once: beyond the burst they are
    refused, retried after the back-off, and each client's answer is its last try."""
    s = lab.scenario("rate-limited")
    healthy = lab.scenario("healthy")
    out = lab.workdir / f"whatif-rate-limited-{time.monotonic_ns()}.json"
    argv = [*lab.prober_argv("client1"), "whatif", "--policy",
            "ELBSecurityPolicy-FS-1-2-Res-2020-10", "--clients", *WHATIF_CLIENTS,
            "--against", s.name_target, "--current", healthy.name_target, "-t", "2",
            "--json", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    live = {c["client"]: c["live"] for c in doc["clients"]}
    today = {c["client"]: c["today"] for c in doc["clients"]}
    assert list(live) == WHATIF_CLIENTS
    # more hellos at once than the burst lets in: some were turned away and retried
    assert sum(lv.get("retries", 0) for lv in live.values()) >= 1, live
    # and every answer is the endpoint's, not the rate limit's
    assert all(lv["outcome"] != "refused" for lv in live.values()), live
    # the same clients against an endpoint with no limit: nothing retried
    assert all("retries" not in t for t in today.values()), today


@pytest.mark.root
def test_diff_counts_each_attempt_once(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    """`prober diff` of a rate-limited run against a calm one: each side's row counts
    each planned attempt once, as its last try (the refusals the retries got past are no
    difference of the server's answers), while each run's own findings still read every
    attempt: the rate limit is named on its side."""
    n = 30
    busy = lab.probe(lab.scenario("rate-limited").target, "--sni",
                     lab.scenario("rate-limited").sni, "-p", "tls1.2-only", "--repeat", str(n),
                     "-t", "2")
    retries = _check_retries(busy, n)
    assert retries, busy["_table"]
    calm = lab.probe(lab.scenario("healthy").name_target, "-p", "tls1.2-only", "--repeat",
                     str(n))
    files = []
    for name, doc in (("busy", busy), ("calm", calm)):
        f = lab.workdir / f"diff-{name}-{time.monotonic_ns()}.json"
        f.write_text(json.dumps({k: v for k, v in doc.items() if k != "_table"}))
        files.append(str(f))
    capsys.readouterr()
    assert main(["diff", *files, "--json", "-"]) == 0
    d = json.loads(capsys.readouterr().out)
    (row,) = d["rows"]
    assert row["a"]["attempts"] == n and sum(row["a"]["counts"].values()) == n, row
    last = {a["retry_of"]: a for a in retries}
    refused_last = sum(1 for a in retries if a["outcome"] == "refused"
                       and a["id"] not in last)
    assert row["a"]["counts"].get("refused", 0) == refused_last, row
    if not refused_last:
        assert not row["differs"], row  # a rate limit ridden out is no difference
    # the record keeps every try
    assert d["a"]["attempts"] == n + len(retries)
    assert "rate-limited" in d["own_findings"]["a_only"], d["own_findings"]
