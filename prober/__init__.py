"""prober: an active TLS handshake prober and compatibility tester.

The command line (``prober``) is the supported interface; the one exception hierarchy
(:class:`ProberError`, :class:`InputError`) is what a caller of the package catches.
"""

from prober.core.errors import InputError, ProberError

__version__ = "0.1.0"
__all__ = ["InputError", "ProberError", "__version__"]
