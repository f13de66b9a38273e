"""pytest fixture for the netns lab.

``lab`` (session): a started :class:`tests.lab.Lab`.  Import it into a test module
(``from tests.lab.fixtures import lab``), or into tests/conftest.py to share it with
every module.  Imported into several modules it is still built once per test process:
the first use builds it, the fixture instance that built it closes it.

Skips (with the reason) when not root; a missing tool (ip, nft, iptables, nginx with the
stream module, tcpdump) skips locally and fails under CI=true, like every other peer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import need_bins, need_nginx_stream

from .lab import Lab
from .netns import unavailable_reason

_shared: Lab | None = None


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    global _shared
    if os.geteuid() != 0:
        pytest.skip("the netns lab needs root (network namespaces, veth, nftables): "
                    "run the tests as root")
    need_bins("ip", "nft", "iptables", "tcpdump")
    need_nginx_stream()
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    if _shared is not None:
        yield _shared
        return
    built = Lab()
    built.start()
    _shared = built
    try:
        yield built
    finally:
        _shared = None
        built.stop()
