"""`prober catalog list|show`, and every error about a policy name pointing at it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prober.cli.main import main
from prober.policy.naming import catalog


def test_list_every_policy_and_by_provider(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "list"]) == 0
    out = capsys.readouterr().out
    for p in catalog.all_policies():
        assert f"\n{p.name} " in out or out.startswith(p.name)
    assert f"{len(catalog.all_policies())} policies" in out

    assert main(["catalog", "list", "--provider", "aws", "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "prober.catalog/1"
    providers = {p["provider"] for p in doc["policies"]}
    assert providers == {"aws-elb", "aws-cloudfront"}
    assert len(doc["policies"]) == len(catalog.by_provider("aws"))

    assert main(["catalog", "list", "--provider", "mozilla"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("mozilla-")]
    assert len(lines) == 32
    assert any("openssl-below-3.5" in ln for ln in lines if "-5.8 " in ln)


def test_show_one_policy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["catalog", "show", "ELBSecurityPolicy-2016-08"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ELBSecurityPolicy-2016-08  (aws-elb, documented)")
    assert "versions: TLS 1.2, TLS 1.1, TLS 1.0" in out
    assert "TLS ≤1.2 suites (18, in order):" in out
    row = "1    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256  ECDHE-ECDSA-AES128-GCM-SHA256  ECDSA"
    assert row in out
    assert "groups: not documented" in out
    assert "alternative order (2023_docs_and_s2n)" in out
    assert "source: AWS ELB user guide" in out

    out_file = tmp_path / "m.json"
    assert main(["catalog", "show", "mozilla-old-5.8", "--json", str(out_file)]) == 0
    doc = json.loads(out_file.read_text())["policy"]
    p = catalog.get("mozilla-old-5.8")
    assert doc["suites"] == list(p.suites or ())
    assert doc["certificate_types"] == ["rsa"]
    assert [v["id"] for v in doc["variants"]] == ["openssl-below-3.5"]
    # case-insensitive, as everywhere a policy is named
    assert main(["catalog", "show", "elbsecuritypolicy-2016-08"]) == 0


@pytest.mark.parametrize("argv", [
    ["catalog", "show", "ELBSecurityPolicy-2099"],
    ["whatif", "--policy", "ELBSecurityPolicy-2099"],
])
def test_unknown_name_points_at_the_catalog(argv: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "`prober catalog list`" in err
    assert "prober policies" not in err


def test_expectations_point_at_the_catalog(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "expect.yaml"
    f.write_text("schema: 1\npolicy: {equals: ELBSecurityPolicy-2099}\n")
    assert main(["check", "127.0.0.1:9", "--expect", str(f)]) == 2
    err = capsys.readouterr().err
    assert "policy.equals" in err and "`prober catalog list`" in err


def test_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog"]) == 2
    assert main(["catalog", "list", "--provider", "nope"]) == 2
    assert "--provider" in capsys.readouterr().err
