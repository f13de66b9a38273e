"""Inventory, allowlist and store on their own (no network)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from prober.core.errors import InputError
from prober.fleet import inventory
from prober.fleet.allowlist import Allowlist, AllowlistError
from prober.fleet.runner import FleetOptions, plan
from prober.fleet.store import Store


def test_inventory_groups_labels_overrides(tmp_path: Path) -> None:
    (tmp_path / "expect.yaml").write_text("schema: 1\nmin_version: TLSv1.2\n")
    p = tmp_path / "inv.yaml"
    p.write_text("""\
schema: 1
defaults: {cap: 3, labels: {owner: net}}
groups:
  - name: prod
    labels: {environment: prod}
    policy: ELBSecurityPolicy-TLS13-1-2-2021-06
    expect: expect.yaml
    endpoints:
      - shop.example.com
      - target: api.example.com:8443
        sni: internal.example.com
        address: 192.0.2.7
        cap: 1
        vantages: {office-lan: {address: 10.0.0.7, sni: false}}
""")
    inv = inventory.load(p)
    shop, api = inv.entries
    assert shop.name == "shop.example.com:443" and shop.cap == 3
    assert shop.labels == {"owner": "net", "environment": "prod"}
    assert shop.expect_doc == {"schema": 1, "min_version": "TLSv1.2"}
    assert api.target.address == "192.0.2.7" and api.target.sni == "internal.example.com"
    lan = api.target_for("office-lan")
    assert lan.address == "10.0.0.7" and lan.sni is None
    assert api.target_for("outside") == api.target


@pytest.mark.parametrize("text,needle", [
    ("schema: 1\ngroups: [{endpoints: [a.test], colour: red}]\n", "colour"),
    ("schema: 1\ngroups: [{endpoints: ['a.test:99999']}]\n", "99999"),
    ("schema: 1\ngroups: [{endpoints: [a.test], policy: NoSuchPolicy}]\n", "NoSuchPolicy"),
    ("schema: 1\ngroups: [{endpoints: [a.test], expect: missing.yaml}]\n", "missing.yaml"),
    ("schema: 1\ngroups: [{endpoints: [a.test, a.test]}]\n", "listed twice"),
    ("schema: 1\ngroups: [{endpoints: [{target: a.test, address: nope}]}]\n", "nope"),
    ("schema: 2\ngroups: []\n", "schema"),
    ("{unclosed", "YAML"),
])
def test_inventory_errors_are_one_line_input_errors(tmp_path: Path, text: str,
                                                    needle: str) -> None:
    p = tmp_path / "inv.yaml"
    p.write_text(text)
    with pytest.raises(InputError) as e:
        inventory.load(p)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_plain_targets_file(tmp_path: Path) -> None:
    p = tmp_path / "targets.txt"
    p.write_text("# fleet\na.test\n[2001:db8::1]:8443  # v6\n")
    inv = inventory.load(p)
    assert [e.name for e in inv.entries] == ["a.test:443", "[2001:db8::1]:8443"]


def test_allowlist() -> None:
    a = Allowlist.parse(["10.0.0.0/8:443,8000-8100", "::1/128:*"])
    assert a.permits("10.1.2.3", 8050) and not a.permits("10.1.2.3", 22)
    assert a.permits("::1", 5) and not a.permits("11.0.0.1", 443)
    for bad in ("10.0.0.0/8", "10.0.0.0/33:443", "10.0.0.0/8:0", "10.0.0.0/8:a"):
        with pytest.raises(AllowlistError):
            Allowlist.parse([bad])


def test_store_keeps_the_first_result_of_a_key(tmp_path: Path) -> None:
    p = tmp_path / "inv.txt"
    p.write_text("a.test\n")
    store = Store(tmp_path / "s.sqlite")
    run = plan(inventory.load(p), store, FleetOptions(), "embedded")
    result = {"run": run, "endpoint": "a.test:443", "vantage": "local", "task": "probe",
              "status": "done", "reason": None, "agent": "x", "address": "192.0.2.1",
              "started_at": time.time(), "finished_at": time.time(), "policy": None,
              "attempts": [{"id": 1, "profile": "p", "repeat": 0, "outcome": "ok"}],
              "verdicts": [], "findings": [{"id": "f", "severity": "low", "cause": ""}]}
    assert store.record(result) is True
    assert store.record(result) is False  # the same task delivered twice
    counts = [store.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("tasks", "attempts", "findings")]
    assert counts == [1, 1, 1]
    assert store.finish_run(run) == "complete"


@pytest.mark.parametrize("args, named", [
    (["-c", "0"], "--concurrency"), (["--concurrency", "5000"], "--concurrency"),
    (["--lease-ttl", "0.5"], "--lease-ttl"), (["--vantage", "a b"], "--vantage")])
def test_agent_bad_options_are_one_line_errors(args: list[str], named: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from prober.cli.main import main

    base = {"--broker": "redis://127.0.0.1:1/0", "--vantage": "v",
            "--allow": "127.0.0.1/32:443"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = ["agent", *[x for kv in base.items() for x in kv]]
    assert main(argv) == 2  # refused before any broker connection is tried
    err = capsys.readouterr().err.strip()
    assert named in err and len(err.splitlines()) == 1, err
