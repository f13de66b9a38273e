"""Every profile file's name, tags and document, without parsing YAML on every start.

Resolving ``-p default`` needs every file's ``name`` and ``tags`` (a set is a tag) and
the documents of the profiles in the set. Parsing YAML is most of a start-up (0.8 s for
the shipped files with the pure-Python parser, 0.07 s with libyaml, plus importing
PyYAML), while the same documents load from JSON in about a millisecond. So the index
keeps, per file, its modification time and size, its name and tags and the parsed
document, in the user cache directory; a file whose mtime and size are unchanged is not
parsed again. A new or changed file is parsed and a deleted one dropped: the directory
walk decides what exists, never the index. A document JSON cannot carry exactly (a YAML
timestamp, binary) is not cached and is parsed when it is loaded. A cache that cannot be
read or written costs time, never a result.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INDEX_SCHEMA = 1
INDEX_FILE = "profile-index.json"
PATTERN = "*.y*ml"


@dataclass(frozen=True)
class Entry:
    path: Path
    name: str | None  # None: YAML that is not a profile (no name); never listed
    tags: tuple[str, ...] = ()
    # the parsed document when JSON holds it exactly, else None (parse the file again)
    doc: Any = None


def summary(doc: Any) -> tuple[str | None, tuple[str, ...]]:
    """What the index keeps of one parsed file."""
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        return None, ()
    tags = doc.get("tags") or []
    # a malformed tags field is reported when the profile is loaded, not here
    return doc["name"], tuple(str(t) for t in tags) if isinstance(tags, list) else ()


def _cacheable(doc: Any) -> Any:
    """``doc`` when it survives a JSON round trip unchanged, else None."""
    try:
        return doc if json.loads(json.dumps(doc)) == doc else None
    except (TypeError, ValueError):
        return None


def _read_cache(path: Path | None) -> dict[str, list[Any]]:
    if path is None:
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("schema") != INDEX_SCHEMA:
        return {}
    files = doc.get("files")
    return files if isinstance(files, dict) else {}


def _write_cache(path: Path, files: dict[str, list[Any]]) -> None:
    text = json.dumps({"schema": INDEX_SCHEMA, "files": files}, separators=(",", ":"))
    # written beside and renamed over, so a concurrent start reads the old or the new one
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".index-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def scan(dirs: list[Path], cache_file: Path | None,
         read: Callable[[Path], Any]) -> list[Entry]:
    """Every YAML file under ``dirs`` (each directory's files in sorted path order, the
    directories in the order given), with its name and tags; ``read`` parses a file that
    the cache does not vouch for (and raises for one that cannot be read)."""
    cached = _read_cache(cache_file)
    roots = tuple(str(d.resolve()) + os.sep for d in dirs)
    # entries of directories not on this search path (another $PROBER_PROFILES) stay
    files = {k: v for k, v in cached.items() if not k.startswith(roots)}
    out: list[Entry] = []
    for d in dirs:
        for f in sorted(d.rglob(PATTERN)):
            key = str(f.resolve())
            st = f.stat()
            hit = cached.get(key)
            if (isinstance(hit, list) and len(hit) == 5 and hit[0] == st.st_mtime_ns
                    and hit[1] == st.st_size):
                name, tags, doc = hit[2], tuple(hit[3]), hit[4]
            else:
                parsed = read(f)
                (name, tags), doc = summary(parsed), _cacheable(parsed)
            files[key] = [st.st_mtime_ns, st.st_size, name, list(tags), doc]
            out.append(Entry(f, name, tags, doc))
    if cache_file is not None and files != cached:
        _write_cache(cache_file, files)
    return out
