"""Finding and loading profiles by name, path, glob or set name.

Profile files are YAML (see ``profiles/README.md``), looked up by name in the
directories of ``prober.profiles.locations`` ($PROBER_PROFILES, the user directory, the
profiles shipped with prober). Every argument must resolve to at least one profile: a
set, a glob or a search path that yields nothing is an error naming it, never an empty
run.
"""

from __future__ import annotations

import glob
import os
from functools import cache
from pathlib import Path
from typing import Any

from prober.core.targets import SNI_NONE, SNI_TARGET
from prober.core.yamlfile import read_yaml
from prober.profiles import families, index, locations
from prober.profiles.compile import ProfileError, compile_hello
from prober.profiles.model import ORIGINS, PROFILE_SCHEMA, Profile, TransportSpec

DEFAULT_SET = "default"
_FILE_FIELDS = {"schema", "name", "description", "origin", "client", "source", "tags",
                "hello", "transport", "sni", "extra"}


def search_path() -> list[Path]:
    """The directories profiles are read from, in order (see prober.profiles.locations)."""
    try:
        return [s.path for s in locations.sources()]
    except locations.LocationError as e:
        raise ProfileError(str(e)) from None


def reset() -> None:
    """Forget what was read: the next lookup walks the search path again (it is read
    once per process, as the environment that defines it does not change)."""
    _entries.cache_clear()
    _by_path.cache_clear()
    _catalog.cache_clear()
    _file_tags.cache_clear()
    _generation[0] += 1


_generation = [0]


def generation() -> int:
    """How many times reset() ran: a cache of resolved profiles keyed on it (the fleet
    task's) is dropped with the loader's own."""
    return _generation[0]


def _read_yaml(path: Path) -> Any:

    return read_yaml(path, ProfileError)


def profile_from_doc(doc: Any, where: str) -> Profile:
    if not isinstance(doc, dict):
        raise ProfileError(f"{where}: a profile file holds one mapping")
    unknown = set(doc) - _FILE_FIELDS
    if unknown:
        raise ProfileError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if doc.get("schema", PROFILE_SCHEMA) != PROFILE_SCHEMA:
        raise ProfileError(f"{where}: schema {doc.get('schema')!r} is not {PROFILE_SCHEMA}")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise ProfileError(f"{where}: 'name' is required")
    origin = doc.get("origin", "handwritten")
    if origin not in ORIGINS:
        raise ProfileError(f"{where}: origin {origin!r} is not one of {', '.join(ORIGINS)}")
    if "hello" not in doc:
        raise ProfileError(f"{where}: 'hello' is required")
    try:
        spec = compile_hello(doc["hello"])
        transport = _transport(doc.get("transport") or {})
    except ProfileError as e:
        raise ProfileError(f"{where}: {e}") from None
    tags = doc.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ProfileError(f"{where}: tags must be a list of names")
    return Profile(name=name, spec=spec, description=str(doc.get("description", "")),
                   origin=origin, client=dict(doc.get("client") or {}),
                   source=str(doc.get("source", "")), tags=tags, transport=transport,
                   sni=SNI_TARGET if doc.get("sni", True) else SNI_NONE,
                   extra=dict(doc.get("extra") or {}),
                   path=where)


def _transport(doc: dict[str, Any]) -> TransportSpec:
    unknown = set(doc) - {"record_sizes", "segment_sizes", "pause_ms"}
    if unknown:
        raise ProfileError(f"transport: unknown field(s) {', '.join(sorted(unknown))}")
    try:
        t = TransportSpec(record_sizes=[int(x) for x in doc.get("record_sizes", [])],
                          segment_sizes=[int(x) for x in doc.get("segment_sizes", [])],
                          pause_ms=float(doc.get("pause_ms", 0)))
    except (TypeError, ValueError):
        raise ProfileError("transport: sizes are lists of integers, pause_ms a number") from None
    if any(x <= 0 for x in t.record_sizes + t.segment_sizes) or t.pause_ms < 0:
        raise ProfileError("transport: sizes must be positive and pause_ms not negative")
    return t


def load_file(path: str | Path) -> Profile:
    p = Path(path)
    return profile_from_doc(_read_yaml(p), str(p))


@cache
def _entries() -> tuple[index.Entry, ...]:
    cache_file = locations.cache_dir() / index.INDEX_FILE
    return tuple(index.scan(search_path(), cache_file, _read_yaml))


@cache
def _by_path() -> dict[Path, index.Entry]:
    return {e.path: e for e in _entries()}


def _load_indexed(path: Path) -> Profile:
    """A profile of the catalog, from the document the index holds when it has one."""
    e = _by_path().get(path)
    doc = e.doc if e is not None and e.doc is not None else _read_yaml(path)
    return profile_from_doc(doc, str(path))


@cache
def _catalog() -> dict[str, Path]:
    """Profile name -> file, over the search path (earlier directories win)."""
    out: dict[str, Path] = {}
    for e in _entries():
        if e.name is not None:
            out.setdefault(e.name, e.path)
    return out


@cache
def _file_tags() -> dict[str, list[str]]:
    # the tags of the file that won the name, not of the files it shadows
    out: dict[str, list[str]] = {}
    for name, path in _catalog().items():
        for tag in _by_path()[path].tags:
            out.setdefault(tag, []).append(name)
    return out


def set_names() -> dict[str, list[str]]:
    """Named profile sets: file tags, plus the generated sweeps and ``all``."""
    sets = {k: list(v) for k, v in _file_tags().items()}
    sets["sweep-versions"] = list(families.VERSION_FAMILY)
    sets["sweep-ciphers"] = families.sweep_cipher_names()
    sets["all"] = sorted(_catalog())
    return sets


def available_names() -> list[str]:
    return sorted(_catalog())


def require_files() -> None:
    """``ProfileError`` naming every place looked in when no profile file was found."""
    if not _catalog():
        raise ProfileError(f"no profile file found (searched {locations.search_text()})")


def files_per_directory() -> dict[Path, int]:
    """Profile files (named YAML documents) under each directory of the search path,
    shadowed ones included."""
    dirs = search_path()
    counts = dict.fromkeys(dirs, 0)
    for e in _entries():
        if e.name is not None:
            # the first directory that holds the file: the walk found it there
            home = next(d for d in dirs if e.path.is_relative_to(d))
            counts[home] += 1
    return counts


def resolve(arg: str) -> list[Profile]:
    """Profiles for one ``--profile`` argument: a file, a glob, a name or a set."""
    gen = families.generated(arg)
    if gen is not None:
        return [gen]
    if any(ch in arg for ch in "*?[") and ("/" in arg or arg.endswith((".yaml", ".yml"))):
        files = sorted(glob.glob(arg))
        if not files:
            raise ProfileError(f"profile glob {arg!r} matches no file")
        return [load_file(f) for f in files]
    p = Path(arg)
    if p.suffix in (".yaml", ".yml") or os.sep in arg:
        if not p.is_file():
            raise ProfileError(f"profile file {arg!r} does not exist")
        return [load_file(p)]
    cat = _catalog()
    if arg in cat:
        return [_load_indexed(cat[arg])]
    sets = set_names()
    if arg in sets:
        if not sets[arg]:
            raise ProfileError(f"profile set {arg!r} is empty: no profile file found "
                               f"(searched {locations.search_text()})")
        return [p for n in sets[arg] for p in resolve(n)]
    if any(ch in arg for ch in "*?["):
        import fnmatch

        names = [n for n in sorted(cat) if fnmatch.fnmatch(n, arg)]
        if not names:
            raise ProfileError(f"profile glob {arg!r} matches no profile name "
                               f"({len(cat)} profiles; `prober profiles list` shows them)")
        return [_load_indexed(cat[n]) for n in names]
    if not cat:
        raise ProfileError(f"unknown profile {arg!r}: no profile file found "
                           f"(searched {locations.search_text()})")
    hint = ", ".join(sorted(set(list(families.VERSION_FAMILY) + list(sets)))[:12])
    raise ProfileError(
        f"unknown profile {arg!r}: not a file, a profile name, cipher:NAME, group:NAME "
        f"or a set ({hint}, ...); `prober profiles list` shows them")


def resolve_all(args: list[str]) -> list[Profile]:
    out: list[Profile] = []
    seen: set[str] = set()
    for a in args or [DEFAULT_SET]:
        for p in resolve(a):
            if p.name not in seen:
                seen.add(p.name)
                out.append(p)
    return out
