"""The one exception hierarchy of prober (README, "Errors").

Everything a user can get wrong — a target, a profile, an expectations or policy file, a
log file, a capture, a saved run — raises an :class:`InputError` whose message names the
input and, where there is one, the fix. The command line prints it on one line and exits
with status 2; a library caller catches :class:`ProberError`. What a server sends is never
an error: it is an outcome of the attempt.
"""

from __future__ import annotations


class ProberError(Exception):
    """Base of every error prober raises on purpose."""


class InputError(ProberError, ValueError):
    """Bad input from the user: one line naming it (exit status 2 on the command line)."""
