"""The browser every report test reads its pages with: one headless Chromium per module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import missing
from tests.report import browser


@pytest.fixture(scope="module")
def chrome() -> Iterator[Any]:
    why = browser.available()
    if why is not None:
        missing(f"`{why}` not found (apt-get install chromium chromium-driver)")
    with browser.chromium() as drv:
        yield drv
