"""Fixtures for the real TLS/TCP peers in tests/peers.

Fixtures
--------
``pki`` (session)                   :class:`tests.peers.Pki` (RSA, ECDSA P-256, P-384 leaves)
``tls12_flight`` (session)          canned TLS 1.2 ServerHello..ServerHelloDone bytes
``openssl_server_factory``          ``factory(**OpenSSLServer kwargs) -> started OpenSSLServer``
``nginx_factory``                   ``factory(**NginxServer kwargs) -> started NginxServer``
``haproxy_factory``                 ``factory(**HaproxyServer kwargs) -> started HaproxyServer``
``python_tls_server_factory``       ``factory(context_factory=None) -> started PythonTLSServer``
``peer_stack``                      ``ExitStack``: ``peer_stack.enter_context(ResetAfterHello())``
``drop_lab`` (module)               a started :class:`tests.peers.DropLab` (root only)
``starttls_server`` (session)       ``get(protocol) -> (server, port)``: one real STARTTLS
                                    server per protocol per session (tests/peers/starttls_servers)

Everything a fixture starts is stopped (by PID) at teardown, also when the test fails.

Missing tools
-------------
``@pytest.mark.requires_bin("nginx", "curl")`` and the factories check that binaries
exist.  Locally a missing one *skips* the test; in CI (env ``CI=true``) it *fails* it,
because .ci/run -> ``make test`` -> ``make setup`` installs them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import (
    DropLab,
    NginxServer,
    OpenSSLServer,
    Pki,
    PythonTLSServer,
    load_tls12_flight,
    make_pki,
    stream_module_path,
)
from tests.peers.factory import started_peers
from tests.peers.haproxy_server import HaproxyServer
from tests.peers.netns import unavailable_reason
from tests.peers.python_server import ContextFactory

INSTALL_HINT = {
    "openssl": "openssl",
    "nginx": "nginx-light libnginx-mod-stream",
    "curl": "curl",
    "ip": "iproute2",
    "nft": "nftables",
    "gnutls-cli": "gnutls-bin",
    "haproxy": "haproxy",
    "tcpdump": "tcpdump",
    "nmap": "nmap",
    "tshark": "tshark",
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
    "iptables": "iptables",
    "editcap": "tshark",
    "mergecap": "tshark",
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Skip locally, fail in CI (where `make setup` should have installed everything)."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: tools are installed by `make setup`)", pytrace=False)
    pytest.skip(reason)


def need_bins(*names: str) -> None:
    for name in names:
        if shutil.which(name) is None:
            hint = INSTALL_HINT.get(name, name)
            missing(f"`{name}` not found (apt-get install {hint})")


def need_nginx_stream() -> None:
    need_bins("nginx")
    if stream_module_path() is None:
        missing("nginx has no stream module (apt-get install libnginx-mod-stream)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires_bin(*names): skip (fail when CI=true) unless these binaries are on PATH",
    )


@pytest.fixture(scope="session", autouse=True)
def private_profile_dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The suite sees the shipped profiles only: not the user's own profile directory,
    $PROBER_PROFILES or profile index, which would change every set (and every count and
    live result of a set) from one machine to the next. Subprocesses inherit it."""
    base = tmp_path_factory.mktemp("xdg")
    saved = {k: os.environ.get(k) for k in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME",
                                            "PROBER_PROFILES")}
    os.environ.update(XDG_CONFIG_HOME=str(base / "config"), XDG_CACHE_HOME=str(base / "cache"))
    os.environ.pop("PROBER_PROFILES", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("requires_bin"):
        need_bins(*marker.args)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), ecdsa384=True)


@pytest.fixture(scope="session")
def tls12_flight() -> bytes:
    return load_tls12_flight()


@pytest.fixture
def openssl_server_factory(pki: Pki) -> Iterator[Callable[..., OpenSSLServer]]:
    need_bins("openssl")
    with started_peers(lambda **kw: OpenSSLServer(pki, **kw)) as factory:
        yield factory


@pytest.fixture
def nginx_factory(pki: Pki) -> Iterator[Callable[..., NginxServer]]:
    need_nginx_stream()
    with started_peers(lambda **kw: NginxServer(pki, **kw)) as factory:
        yield factory


@pytest.fixture
def haproxy_factory(pki: Pki) -> Iterator[Callable[..., HaproxyServer]]:
    need_bins("haproxy")
    with started_peers(lambda **kw: HaproxyServer(pki, **kw)) as factory:
        yield factory


@pytest.fixture
def python_tls_server_factory(pki: Pki) -> Iterator[Callable[..., PythonTLSServer]]:
    def make(context_factory: ContextFactory | None = None, **kw: Any) -> PythonTLSServer:
        return PythonTLSServer(pki, context_factory, **kw)

    with started_peers(make) as factory:
        yield factory


@pytest.fixture
def peer_stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture(scope="module")
def drop_lab() -> Iterator[DropLab]:
    need_bins("ip", "nft")
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    with DropLab() as drop:
        yield drop


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# the namespace lab (tests/lab), shared by every module that asks for `lab`
from tests.lab.fixtures import lab  # noqa: E402, F401


@pytest.fixture(scope="session")
def dhparam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ffdhe2048 parameters for servers that offer finite-field DHE."""
    path = tmp_path_factory.mktemp("dh") / "ffdhe2048.pem"
    subprocess.run(["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
                    "group:ffdhe2048", "-out", str(path)], check=True, capture_output=True)
    return path


@pytest.fixture(scope="session")
def starttls_server(pki: Pki) -> Iterator[Callable[[str], tuple[Any, int]]]:
    """One instance per protocol for the whole session, started on first use (Dovecot
    serves both IMAP and POP3)."""
    from tests.peers import starttls_servers as st

    started: dict[type[Any], Any] = {}

    def get(protocol: str) -> tuple[Any, int]:
        cls = st.SERVERS[protocol]
        why = st.missing(st.binary_of(protocol))
        if why is not None:
            missing(why)
        if cls not in started:
            started[cls] = cls(pki).start(timeout=30)
        srv = started[cls]
        return srv, st.port_of(srv, protocol)

    try:
        yield get
    finally:
        for srv in started.values():
            srv.stop()
