"""Fixtures for the hostile-server tests.

``hostile(answer)`` starts a :class:`tests.hostile.tls13_server.HostileTls13` that
answers every ClientHello with a real ServerHello and then ``answer(session)``; every
listener it started is stopped at teardown (also when the test failed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.hostile.tls13_server import Answer, HostileTls13
from tests.peers.factory import started_peers


@pytest.fixture
def hostile() -> Iterator[Callable[[Answer], HostileTls13]]:
    with started_peers(HostileTls13) as factory:
        yield factory
