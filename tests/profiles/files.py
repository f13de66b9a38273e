"""Profile files for loader tests: the smallest document the loader accepts."""

from __future__ import annotations

from pathlib import Path

MINIMAL = """\
schema: 1
name: {name}
tags: {tags}
description: {description}
hello:
  version: TLSv1.2
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
  extensions: [server_name, {{supported_groups: [x25519]}}]
"""


def write_profile(directory: Path, name: str, tags: list[str] | None = None,
                  description: str = "", file: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (file or f"{name}.yaml")
    path.write_text(MINIMAL.format(name=name, tags=f"[{', '.join(tags or [])}]",
                                   description=description or name))
    return path
