"""Where profiles are read from, in order: ``$PROBER_PROFILES``, the user directory
(``$XDG_CONFIG_HOME/prober/profiles``), the copy packaged inside ``prober/_profiles`` (or,
in a checkout never built, ``profiles/``); and where from-pcap and capture write."""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from prober.cli.main import main
from prober.profiles import loader, locations
from prober.profiles.compile import ProfileError
from tests.profiles.files import write_profile

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def test_a_checkout_reads_its_own_profiles(home: Path) -> None:
    ship = locations.shipped()
    assert ship is not None and ship.kind == locations.CHECKOUT
    assert ship.path == REPO / "profiles"
    assert loader.search_path() == [REPO / "profiles"]
    assert "firefox-137-win11" in loader.available_names()


def test_prober_profiles_dirs_come_first_in_order_and_win(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = write_profile(home / "a", "firefox-137-win11", description="my firefox")
    write_profile(home / "a", "only-a", tags=["team"])
    write_profile(home / "b", "only-a", tags=["team"], description="shadowed")
    write_profile(home / "b", "only-b", tags=["team"])
    monkeypatch.setenv("PROBER_PROFILES", f"{home / 'a'}:{home / 'b'}")
    loader.reset()
    assert loader.search_path() == [home / "a", home / "b", REPO / "profiles"]
    (p,) = loader.resolve("firefox-137-win11")
    assert p.description == "my firefox" and p.path == str(mine)
    team = loader.resolve("team")
    assert [t.name for t in team] == ["only-a", "only-b"]
    assert team[0].description == "only-a"  # a's file, not the one in b it shadows


def test_a_prober_profiles_dir_that_does_not_exist_is_an_error(
        home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PROBER_PROFILES", str(home / "typo"))
    loader.reset()
    with pytest.raises(ProfileError, match=r"\$PROBER_PROFILES names '.*typo', which is not"):
        loader.resolve("default")
    assert main(["probe", "127.0.0.1:9", "-p", "default"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "typo" in err


def test_the_user_directory_follows_xdg_config_home(home: Path) -> None:
    user = home / "config" / "prober" / "profiles"
    write_profile(user / "captured", "my-client", tags=["default"])
    loader.reset()
    assert loader.search_path() == [user, REPO / "profiles"]
    default = [p.name for p in loader.resolve("default")]
    assert "my-client" in default and "firefox-137-win11" in default


def test_the_user_directory_wins_over_shipped_profiles(home: Path) -> None:
    write_profile(home / "config" / "prober" / "profiles", "firefox-137-win11",
                  description="edited copy")
    loader.reset()
    (p,) = loader.resolve("firefox-137-win11")
    assert p.description == "edited copy"


def test_user_and_cache_directories_without_xdg(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(home / "h"))
    for var in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var)
    assert locations.user_dir() == home / "h" / ".config" / "prober" / "profiles"
    assert locations.cache_dir() == home / "h" / ".cache" / "prober"
    # the XDG spec: a relative value is invalid and ignored
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative")
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert locations.user_dir() == home / "h" / ".config" / "prober" / "profiles"
    assert locations.cache_dir() == home / "h" / ".cache" / "prober"


def _installed_copy(tmp_path: Path, profiles: bool) -> tuple[Path, dict[str, str]]:
    """The package as an installation lays it out: in a site directory of its own, far
    from any checkout, with (or without) the packaged profiles inside it."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "prober", site / "prober",
                    ignore=shutil.ignore_patterns("__pycache__", "_profiles"))
    if profiles:
        write_profile(site / "prober" / "_profiles" / "clients", "packaged-client",
                      tags=["default"])
    env = {k: v for k, v in os.environ.items()
           if k not in ("PROBER_PROFILES", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    env.update(PYTHONPATH=str(site), HOME=str(tmp_path / "home"))
    (tmp_path / "elsewhere").mkdir()
    return site, env


def test_the_packaged_copy_is_found_wherever_the_package_is(tmp_path: Path) -> None:
    site, env = _installed_copy(tmp_path, profiles=True)

    def prober(*argv: str) -> str:
        r = subprocess.run([PY, "-m", "prober", *argv], cwd=tmp_path / "elsewhere", env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    out = prober("profiles", "dirs")
    assert re.search(rf"packaged\s+{re.escape(str(site / 'prober' / '_profiles'))}\s+1 profiles",
                     out), out
    assert "packaged-client" in prober("profiles", "list", "--set", "default")
    assert str(site / "prober" / "_profiles" / "clients" / "packaged-client.yaml") in prober(
        "profiles", "show", "packaged-client")


def test_an_installation_without_its_profiles_says_so(tmp_path: Path) -> None:
    _, env = _installed_copy(tmp_path, profiles=False)
    r = subprocess.run([PY, "-m", "prober", "probe", "127.0.0.1:9", "-p", "default"],
                       cwd=tmp_path / "elsewhere", env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("prober: the profiles shipped with prober are missing")
    assert r.stderr.count("\n") == 1


def _pcap_with_one_hello(path: Path, hello: bytes) -> None:
    """A classic pcap holding one Ethernet/IPv4/TCP frame that carries ``hello``."""
    tcp = struct.pack(">HHIIBBHHH", 40000, 443, 1000, 1, 5 << 4, 0x18, 65535, 0, 0)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(hello), 1, 0x4000, 64, 6,
                     0, bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    frame = bytes(6) + bytes([2, 0, 0, 0, 0, 1]) + b"\x08\x00" + ip + tcp + hello
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(head + struct.pack("<IIII", 1700000000, 0, len(frame), len(frame)) + frame)


def test_from_pcap_writes_into_the_user_directory_by_default(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = loader.load_file(REPO / "profiles" / "captured" / "curl-7.88.1.yaml").extra["raw_hex"]
    pcap = home / "one.pcap"
    _pcap_with_one_hello(pcap, bytes.fromhex(raw))
    assert main(["profiles", "from-pcap", str(pcap)]) == 0
    imported = home / "config" / "prober" / "profiles" / "imported"
    assert f"to {imported}/" in capsys.readouterr().out
    (written,) = imported.glob("*.yaml")
    loader.reset()
    name = loader.load_file(written).name
    assert name in loader.available_names()  # `-p NAME` finds it without a path


def test_capture_writes_into_the_user_directory_by_default(home: Path) -> None:
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config")}
    proc = subprocess.Popen(
        [PY, "-m", "prober", "profiles", "capture", "--listen", "127.0.0.1:0", "--timeout",
         "30", "--name", "here"], cwd=home, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, line
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        with (socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=10) as s,
              pytest.raises((ssl.SSLError, OSError))):
            ctx.wrap_socket(s).close()  # the capture ends it with an alert
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    written = home / "config" / "prober" / "profiles" / "captured" / "here.yaml"
    assert f"wrote {written}" in out
    assert written.is_file()


def test_help_names_the_default_directories(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user = home / "config" / "prober" / "profiles"
    for sub in ("from-pcap", "capture"):
        with pytest.raises(SystemExit):
            main(["profiles", sub, "--help"])
        # argparse wraps help lines, long paths too: compare without any whitespace
        text = "".join(capsys.readouterr().out.split())
        assert str(user / ("imported" if sub == "from-pcap" else "captured")) in text


def test_fleet_task_profiles_follow_a_loader_reset(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the fleet task compiles each profile list once per process; a reset must drop that
    from prober.fleet.tasks import _profiles

    write_profile(home / "a", "mine", description="first")
    write_profile(home / "b", "mine", description="second")
    monkeypatch.setenv("PROBER_PROFILES", str(home / "a"))
    loader.reset()
    assert [p.description for p in _profiles(("mine",), loader.generation())] == ["first"]
    monkeypatch.setenv("PROBER_PROFILES", str(home / "b"))
    loader.reset()
    assert [p.description for p in _profiles(("mine",), loader.generation())] == ["second"]
