"""Reading the YAML files users write (profiles, expectations, policies).

The one YAML reader, bounded: a file may come from anyone (a profile shared in a
repository, an expectations file in a pull request), and a YAML loader has no limits of
its own that help.  A file larger than ``MAX_BYTES`` is refused before it is read.  The
document's events are then walked once (no recursion, whatever the nesting) and a
document nested deeper than ``MAX_DEPTH``, one whose aliases would expand it past
``MAX_NODES`` values or ``MAX_DEPTH`` levels (the "billion laughs"), or an alias inside
its own anchor (a cycle) is refused before anything is built: the pure-Python composer
recurses per level (a few thousand ``[`` were a RecursionError), and a structure that
refers to itself or expands to millions of values breaks whoever walks it next.  Every
refusal is the caller's ``error`` with one line naming the file.

libyaml (``yaml.CSafeLoader``) parses when PyYAML was built with it, else the pure-Python
safe loader: the same documents either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# a large captured profile is a few kilobytes; the biggest policy catalog under 100 kB
MAX_BYTES = 4 << 20
# profiles nest 4-5 levels; JSON documents a dozen
MAX_DEPTH = 64
# the document's values once aliases are expanded (a long list of suites is ~300)
MAX_NODES = 1_000_000


class _TooBig(Exception):
    pass


def read_yaml(path: str | Path, error: type[Exception]) -> Any:
    """The parsed document; ``error`` (one line naming the file) when unreadable."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            # read one byte past the limit: a pipe or /proc file has no size to stat
            data = fh.read(MAX_BYTES + 1)
    except OSError as e:
        raise error(f"{p}: cannot read: {e.strerror}") from None
    if len(data) > MAX_BYTES:
        raise error(f"{p}: larger than {MAX_BYTES >> 20} MiB: not read") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{p}: not UTF-8 text (byte {e.start})") from None
    return parse_yaml(text, str(p), error)


def parse_yaml(text: str, where: str, error: type[Exception]) -> Any:
    """The parsed document; ``error`` (one line naming ``where``) when it is not YAML or
    is beyond the bounds above."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        _check_shape(yaml.parse(text, Loader=loader))
        return yaml.load(text, Loader=loader)
    except _TooBig as e:
        raise error(f"{where}: {e}: not read") from None
    except yaml.MarkedYAMLError as e:
        if "maximum nesting depth" in str(e.problem):  # libyaml's own bound (1000)
            line = e.problem_mark.line + 1 if e.problem_mark else "?"
            raise error(f"{where}: nested deeper than {MAX_DEPTH} levels (line {line}): "
                        "not read") from None
        raise error(f"{where}: not valid YAML: {e}".splitlines()[0]) from None
    except yaml.YAMLError as e:
        raise error(f"{where}: not valid YAML: {e}".splitlines()[0]) from None


def _check_shape(events: Any) -> None:
    """Walk the parser's events: depth, values and levels with aliases expanded, cycles."""
    import yaml

    # per open collection: [values so far, levels below it, its anchor]
    stack: list[list[Any]] = []
    anchored: dict[str, tuple[int, int]] = {}  # closed anchor -> (values, levels)
    open_anchors: set[str] = set()

    def add(values: int, levels: int, line: int) -> None:
        if not stack:
            return
        top = stack[-1]
        top[0] += values
        top[1] = max(top[1], levels)
        if top[0] > MAX_NODES:
            raise _TooBig(f"more than {MAX_NODES:,} values once its aliases are expanded "
                          f"(line {line})")
        if len(stack) + levels > MAX_DEPTH:
            raise _TooBig(f"nested deeper than {MAX_DEPTH} levels once its aliases are "
                          f"expanded (line {line})")

    for ev in events:
        line = ev.start_mark.line + 1
        if isinstance(ev, yaml.CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise _TooBig(f"nested deeper than {MAX_DEPTH} levels (line {line})")
            stack.append([1, 0, ev.anchor])
            if ev.anchor:
                open_anchors.add(ev.anchor)
        elif isinstance(ev, yaml.CollectionEndEvent):
            values, levels, anchor = stack.pop()
            if anchor:
                anchored[anchor] = (values, levels + 1)
                open_anchors.discard(anchor)
            add(values, levels + 1, line)
        elif isinstance(ev, yaml.ScalarEvent):
            if ev.anchor:
                anchored[ev.anchor] = (1, 1)
            add(1, 1, line)
        elif isinstance(ev, yaml.AliasEvent):
            if ev.anchor in open_anchors:
                raise _TooBig(f"an alias refers to a value that contains it (line {line})")
            # an undefined alias is the loader's error to report
            add(*anchored.get(ev.anchor or "", (1, 1)), line)
