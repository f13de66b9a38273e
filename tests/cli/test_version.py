"""`prober --version`: the version the build derived from git (setuptools-scm writes it
to prober/_version.py), or 0+unknown for a checkout that was never built."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import prober
from prober.cli.main import main

VERSION_FILE = Path(prober.__file__).parent / "_version.py"
# PEP 440, as setuptools-scm writes it: 0.1.dev113+g2976758aa.d20261206, 1.2.0, 0+unknown
PEP440 = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[a-z0-9.]+)?$")


def test_version_is_the_built_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    shown = capsys.readouterr().out.strip()
    assert shown == f"prober {prober.__version__}"
    assert PEP440.match(prober.__version__), prober.__version__
    if VERSION_FILE.is_file():
        assert f'"{prober.__version__}"' in VERSION_FILE.read_text()
    else:
        assert prober.__version__ == "0+unknown"
