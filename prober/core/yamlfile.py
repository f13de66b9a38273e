"""Reading the YAML files users write (profiles, expectations, policies)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_yaml(path: str | Path, error: type[Exception]) -> Any:
    """The parsed document; ``error`` (one line naming the file) when unreadable."""
    import yaml

    p = Path(path)
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise error(f"{p}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise error(f"{p}: not valid YAML: {e}".splitlines()[0]) from None
