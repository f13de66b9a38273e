"""The one timestamp format of prober's JSON documents (a light module: the pcap import
uses it without loading the engine)."""

from __future__ import annotations

import datetime as dt
from typing import overload


@overload
def iso_ms(t: float) -> str: ...
@overload
def iso_ms(t: None) -> None: ...
def iso_ms(t: float | None) -> str | None:
    """A time.time() value as ISO 8601 UTC with milliseconds, as every document carries."""
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds")
