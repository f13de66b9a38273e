"""An input that names profiles and resolves to none is an error naming the input, exit 2,
never a run with fewer profiles than asked for: an empty set, a glob that matches
nothing, an installation whose profiles are gone (whatif used to simulate the 6 version
sweeps and call it "6 clients simulated")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from prober.cli.main import main
from prober.profiles import loader, locations
from prober.profiles.compile import ProfileError

CANDIDATE = "ELBSecurityPolicy-TLS13-1-2-2021-06"


@pytest.fixture
def emptied(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installation whose packaged profile directory exists and holds nothing."""
    empty = home / "site" / "prober" / "_profiles"
    empty.mkdir(parents=True)
    monkeypatch.setattr(locations, "shipped",
                        lambda: locations.Source(locations.PACKAGED, empty))
    loader.reset()
    return empty


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_an_empty_set_is_an_error_naming_it(emptied: Path) -> None:
    with pytest.raises(ProfileError, match=rf"profile set 'all' is empty: no profile file "
                       rf"found \(searched .*{re.escape(str(emptied))} \(packaged\)\)"):
        loader.resolve("all")
    with pytest.raises(ProfileError, match=r"unknown profile 'default': no profile file found"):
        loader.resolve_all([])  # what `probe` runs without -p


def test_cli_commands_on_an_empty_installation_exit_2(
        emptied: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["probe", "127.0.0.1:9"], ["probe", "127.0.0.1:9", "-p", "firefox-137-win11"],
                 ["profiles", "list"], ["profiles", "list", "--set", "all"]):
        assert main(argv) == 2, argv
        assert "no profile file found" in one_line(capsys), argv


def test_globs_that_match_nothing(home: Path, tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"profile glob 'nosuch-\*' matches no profile name"):
        loader.resolve("nosuch-*")
    with pytest.raises(ProfileError, match=r"profile glob '.*/\*\.yaml' matches no file"):
        loader.resolve(str(tmp_path / "none" / "*.yaml"))
    assert [p.name for p in loader.resolve("java-7*")] == ["java-7u25"]


def test_check_with_a_glob_that_matches_nothing(
        home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = tmp_path / "expect.yaml"
    exp.write_text("schema: 1\nprofiles:\n  - profiles: [chrom-*]\n    allow: ok\n")
    assert main(["check", "127.0.0.1:9", "--expect", str(exp)]) == 2
    assert "'chrom-*' matches no profile name" in one_line(capsys)


def test_whatif_refuses_to_shrink_its_default_clients(
        emptied: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["whatif", "--policy", CANDIDATE]) == 2
    err = one_line(capsys)
    assert err.startswith("prober: --clients (default: all sweep-versions): profile set "
                          "'all' is empty"), err
    assert "6 clients simulated" not in capsys.readouterr().out


def test_whatif_clients_that_name_nothing(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["whatif", "--policy", CANDIDATE, "--clients", "default", "chrom-*"]) == 2
    assert one_line(capsys).startswith("prober: --clients: profile glob 'chrom-*' matches")


def test_whatif_simulates_every_profile_by_default(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["whatif", "--policy", CANDIDATE]) == 0
    n = len(loader.available_names()) + len(loader.set_names()["sweep-versions"])
    assert f"\n{n} clients simulated:" in capsys.readouterr().out
