"""Where profile files are read from, and where prober writes the ones it makes.

Read, in this order (the first file carrying a name wins):

1. ``$PROBER_PROFILES``: colon-separated directories; each must exist.
2. The user directory, ``$XDG_CONFIG_HOME/prober/profiles`` (``~/.config/prober/profiles``
   when unset): ``profiles from-pcap`` writes into ``imported/`` there and ``profiles
   capture`` into ``captured/``, so what they make is found by name at once.
3. The profiles shipped with prober: ``prober/_profiles`` inside the installed package
   (the build copies the repository's ``profiles/`` there, see setup.py), or, in a
   checkout that was never built (an editable install, PYTHONPATH), ``profiles/`` itself.

The index of names and tags is cached in ``$XDG_CACHE_HOME/prober`` (``~/.cache/prober``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

ENV_VAR = "PROBER_PROFILES"
PACKAGED = "packaged"
CHECKOUT = "checkout"
USER = "user"
ENV = f"${ENV_VAR}"


class LocationError(Exception):
    """A profile directory that was named or is part of the install is missing."""


@dataclass(frozen=True)
class Source:
    """One directory on the search path and why it is there."""

    kind: str  # ENV, USER, PACKAGED or CHECKOUT
    path: Path

    def describe(self) -> str:
        return f"{self.path} ({self.kind})"


def _xdg(var: str, default: str) -> Path:
    # the XDG spec says a relative value is invalid and must be ignored
    value = os.environ.get(var, "")
    return Path(value) if value and os.path.isabs(value) else Path.home() / default


def user_dir() -> Path:
    """The user's own profiles; created by the first command that writes there."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "prober" / "profiles"


def imported_dir() -> Path:
    """Where ``profiles from-pcap`` writes by default."""
    return user_dir() / "imported"


def captured_dir() -> Path:
    """Where ``profiles capture`` writes by default."""
    return user_dir() / "captured"


def cache_dir() -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache") / "prober"


def env_dirs() -> list[Path]:
    return [Path(p) for p in os.environ.get(ENV_VAR, "").split(":") if p]


def shipped() -> Source | None:
    """The profiles that come with prober: the packaged copy, else a checkout's own."""
    packaged = resources.files("prober") / "_profiles"
    # an installed package is a directory on disk (pip and pipx never install zipped)
    if isinstance(packaged, Path) and packaged.is_dir():
        return Source(PACKAGED, packaged)
    checkout = Path(__file__).resolve().parents[2] / "profiles"
    # beside an installed package that directory would be site-packages/profiles, which
    # is anybody's: only a source tree (it has pyproject.toml) counts
    if checkout.is_dir() and (checkout.parent / "pyproject.toml").is_file():
        return Source(CHECKOUT, checkout)
    return None


def sources() -> list[Source]:
    """The directories profiles are read from, in order; ``LocationError`` when one that
    was named in ``$PROBER_PROFILES`` or should come with the install is missing."""
    out = []
    for d in env_dirs():
        if not d.is_dir():
            raise LocationError(f"{ENV} names {str(d)!r}, which is not a directory")
        out.append(Source(ENV, d))
    if user_dir().is_dir():
        out.append(Source(USER, user_dir()))
    ship = shipped()
    if ship is None:
        where = Path(__file__).resolve().parents[1] / "_profiles"
        raise LocationError(f"the profiles shipped with prober are missing ({where} does "
                            "not exist): the installation is incomplete, reinstall prober")
    out.append(ship)
    return out


def search_text() -> str:
    """Every place looked in, for messages about profiles that were not found."""
    places = [f"{ENV} {':'.join(str(d) for d in env_dirs()) or '(unset)'}",
              f"{user_dir()} ({USER})"]
    ship = shipped()
    places.append(ship.describe() if ship else "no profiles shipped with this installation")
    return "; ".join(places)
