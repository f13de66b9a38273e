"""The cached profile index: a file is parsed again only when its mtime or size changed,
the directory walk (never the cache) decides what exists, and a cache that cannot be
used costs time only. And the YAML reader: libyaml reads the same documents."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from prober.core.yamlfile import read_yaml
from prober.profiles import index, loader
from prober.profiles.compile import ProfileError
from tests.profiles.files import write_profile

REPO = Path(__file__).resolve().parents[2]


class Reader:
    """The YAML reader, counting the files it is asked to parse."""

    def __init__(self) -> None:
        self.read: list[str] = []

    def __call__(self, path: Path) -> Any:
        self.read.append(path.name)
        return read_yaml(path, ProfileError)


def test_unchanged_files_are_not_parsed_again(tmp_path: Path) -> None:
    d, cache = tmp_path / "p", tmp_path / "cache" / "index.json"
    write_profile(d, "a", tags=["x"])
    write_profile(d / "sub", "b", tags=["x", "y"])
    (d / "notes.yaml").write_text("just: a mapping without a name\n")
    first = Reader()
    entries = index.scan([d], cache, first)
    assert sorted(first.read) == ["a.yaml", "b.yaml", "notes.yaml"]
    assert [(e.name, e.tags) for e in entries] == [("a", ("x",)), (None, ()), ("b", ("x", "y"))]
    again = Reader()
    assert index.scan([d], cache, again) == entries
    assert again.read == []


def test_changed_new_and_deleted_files(tmp_path: Path) -> None:
    d, cache = tmp_path / "p", tmp_path / "index.json"
    a = write_profile(d, "a")
    write_profile(d, "b")
    index.scan([d], cache, Reader())
    a.write_text(a.read_text().replace("tags: []", "tags: [changed]"))
    write_profile(d, "c")
    (d / "b.yaml").unlink()
    r = Reader()
    entries = index.scan([d], cache, r)
    assert sorted(r.read) == ["a.yaml", "c.yaml"]
    assert [(e.name, e.tags) for e in entries] == [("a", ("changed",)), ("c", ())]
    assert [Path(k).name for k in json.loads(cache.read_text())["files"]] == ["a.yaml", "c.yaml"]


def test_same_size_edit_is_seen_by_its_mtime(tmp_path: Path) -> None:
    d, cache = tmp_path / "p", tmp_path / "index.json"
    a = write_profile(d, "a", tags=["old"])
    index.scan([d], cache, Reader())
    a.write_text(a.read_text().replace("[old]", "[new]"))
    st = a.stat()
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert [e.tags for e in index.scan([d], cache, Reader())] == [("new",)]


def test_other_search_paths_keep_their_entries(tmp_path: Path) -> None:
    cache = tmp_path / "index.json"
    write_profile(tmp_path / "one", "a")
    write_profile(tmp_path / "two", "b")
    index.scan([tmp_path / "one"], cache, Reader())
    index.scan([tmp_path / "two"], cache, Reader())
    r = Reader()
    index.scan([tmp_path / "one"], cache, r)
    assert r.read == []


@pytest.mark.parametrize("damage", ["not json", '{"schema": 99, "files": {}}', "[]",
                                    '{"schema": 1, "files": {"x": "y"}}'])
def test_a_damaged_cache_is_rebuilt(tmp_path: Path, damage: str) -> None:
    d, cache = tmp_path / "p", tmp_path / "index.json"
    write_profile(d, "a")
    cache.write_text(damage)
    r = Reader()
    assert [e.name for e in index.scan([d], cache, r)] == ["a"]
    assert r.read == ["a.yaml"]
    assert json.loads(cache.read_text())["schema"] == index.INDEX_SCHEMA


def test_an_unwritable_cache_costs_time_only(tmp_path: Path) -> None:
    d = tmp_path / "p"
    write_profile(d, "a")
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would be")
    for _ in range(2):
        r = Reader()
        assert [e.name for e in index.scan([d], blocker / "index.json", r)] == ["a"]
        assert r.read == ["a.yaml"]


def test_documents_json_cannot_hold_are_read_from_yaml(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = home / "p"
    path = write_profile(d, "dated")
    # an unquoted timestamp is a datetime in YAML and a string in JSON: not cached
    path.write_text(path.read_text() + "extra: {seen: 2024-05-01 10:00:00}\n")
    monkeypatch.setenv("PROBER_PROFILES", str(d))
    for _ in range(2):  # cold, then with the index cached
        loader.reset()
        (p,) = loader.resolve("dated")
        assert str(p.extra["seen"]) == "2024-05-01 10:00:00"
    files = json.loads((home / "cache" / "prober" / index.INDEX_FILE).read_text())["files"]
    assert files[str(path.resolve())][4] is None


def test_a_warm_start_parses_no_yaml(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loader.resolve_all(["default"])
    loader.reset()

    def no_yaml(*_: Any) -> Any:
        raise AssertionError("a profile file was parsed although the index holds it")

    monkeypatch.setattr(loader, "_read_yaml", no_yaml)
    assert len(loader.resolve_all(["default", "all"])) == len(loader.available_names())


def test_libyaml_reads_every_shipped_profile_as_the_python_parser_does() -> None:
    assert yaml.__with_libyaml__, "PyYAML without libyaml: start-up is 10x slower"
    files = sorted((REPO / "profiles").rglob("*.yaml"))
    assert len(files) > 50
    for f in files:
        text = f.read_text(encoding="utf-8")
        assert yaml.load(text, Loader=yaml.CSafeLoader) == yaml.safe_load(text), f
