"""The command line, the only user-facing layer (see docs/architecture.md)."""

from prober.cli.main import main

__all__ = ["main"]
