"""prober: an active TLS handshake prober and compatibility tester.

The command line (``prober``) is the supported interface; the one exception hierarchy
(:class:`ProberError`, :class:`InputError`) is what a caller of the package catches.
"""

from importlib import import_module

from prober.core.errors import InputError, ProberError


def _version() -> str:
    # prober/_version.py is written by the build (setuptools-scm, from git); a checkout
    # run from PYTHONPATH without ever being built or installed has none, hence the
    # import by name (mypy and the linters must not depend on a generated file)
    try:
        return str(import_module("prober._version").__version__)
    except ImportError:
        return "0+unknown"


__version__ = _version()
__all__ = ["InputError", "ProberError", "__version__"]
