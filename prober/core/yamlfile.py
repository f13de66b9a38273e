"""Reading the YAML files users write (profiles, expectations, policies).

The one YAML reader, bounded: a file may come from anyone (a profile shared in a
repository, an expectations file in a pull request), and PyYAML itself has no limits.
A file larger than ``MAX_BYTES`` is refused before it is read; a document nested deeper
than ``MAX_DEPTH`` (PyYAML composes recursively: a few thousand ``[`` end in a
RecursionError), one whose aliases would expand it past ``MAX_NODES`` values (the
"billion laughs") or that refers to itself is refused while it is composed.  Every
refusal is the caller's ``error`` with one line naming the file.
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
    import yaml

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
    try:
        return yaml.load(text, Loader=_bounded_loader())
    except _TooBig as e:
        raise error(f"{p}: {e}") from None
    except yaml.YAMLError as e:
        raise error(f"{p}: not valid YAML: {e}".splitlines()[0]) from None


def _bounded_loader() -> type[Any]:
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        """SafeLoader that measures, while composing, how deep the document is and how
        many values it holds, every alias expanded."""

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._depth = 0
            # id(node) -> (values, levels) with aliases expanded, for each composed node
            self._measured: dict[int, tuple[int, int]] = {}

        def compose_node(self, parent: Any, index: Any) -> Any:
            line = self.peek_event().start_mark.line + 1  # type: ignore[no-untyped-call]
            if self.check_event(yaml.AliasEvent):
                node = super().compose_node(parent, index)
                if id(node) not in self._measured:
                    # its anchor is still being composed: the alias is inside it
                    raise _TooBig(f"an alias refers to a value that contains it (line "
                                  f"{line}): not read")
                return node
            if self._depth >= MAX_DEPTH:
                raise _TooBig(f"nested deeper than {MAX_DEPTH} levels (line {line}): "
                              "not read")
            self._depth += 1
            try:
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
            self._measure(node, line)
            return node

        def _measure(self, node: Any, line: int) -> None:
            if isinstance(node, yaml.SequenceNode):
                kids = node.value
            elif isinstance(node, yaml.MappingNode):
                kids = [n for pair in node.value for n in pair]
            else:
                kids = []
            # every child was composed (and measured) before its parent
            sizes = [self._measured[id(k)] for k in kids]
            values = 1 + sum(v for v, _ in sizes)
            levels = 1 + max((h for _, h in sizes), default=0)
            if values > MAX_NODES:
                raise _TooBig(f"more than {MAX_NODES:,} values once its aliases are "
                              f"expanded (line {line}): not read")
            if levels > MAX_DEPTH:
                raise _TooBig(f"nested deeper than {MAX_DEPTH} levels once its aliases are "
                              f"expanded (line {line}): not read")
            self._measured[id(node)] = (values, levels)

    return BoundedLoader
