"""One way for fixtures to start peers and stop every one of them at teardown."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .lifecycle import Peer

P = TypeVar("P", bound=Peer)


@contextlib.contextmanager
def started_peers(make: Callable[..., P]) -> Iterator[Callable[..., P]]:
    """A factory that builds a peer with ``make`` and starts it; on exit every peer it
    started is stopped, newest first, also when the test failed."""
    started: list[P] = []

    def factory(*args: Any, **kwargs: Any) -> P:
        srv = make(*args, **kwargs)
        started.append(srv)
        srv.start()
        return srv

    try:
        yield factory
    finally:
        for srv in reversed(started):
            srv.stop()
