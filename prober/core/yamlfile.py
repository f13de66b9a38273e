"""Reading the YAML files users write (profiles, expectations, policies).

libyaml's loader (``yaml.CSafeLoader``) when PyYAML was built with it, which parses the
profile files about ten times faster than the pure-Python one; the same documents either
way (both are the YAML 1.1 safe loader).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def parse_yaml(text: str, where: str, error: type[Exception]) -> Any:
    """The parsed document; ``error`` (one line naming ``where``) when it is not YAML."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as e:
        raise error(f"{where}: not valid YAML: {e}".splitlines()[0]) from None


def read_yaml(path: str | Path, error: type[Exception]) -> Any:
    """The parsed document; ``error`` (one line naming the file) when unreadable."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise error(f"{p}: cannot read: {e.strerror}") from None
    return parse_yaml(text, str(p), error)
