"""The HTML environment every capability renders its report with (``--html``).

Each capability keeps its own templates (``prober/<capability>/templates/``) and fills
them from its own result model; this module only builds the Jinja2 environment: the
capability's templates first, then the shared page frame (``base.html.j2``: inline CSS,
no script, nothing fetched). Autoescape is on for every template, and every value
printed goes through ``visible_controls`` first, so what a server sent (a banner, a
certificate subject) can neither add markup nor hide or reorder text on the page.
"""

from __future__ import annotations

from typing import Any

from jinja2 import ChainableUndefined, ChoiceLoader, Environment, PackageLoader
from markupsafe import Markup

from prober import __version__
from prober.report.escape import for_terminal_block


# a saved run may lack optional fields: ChainableUndefined prints them as nothing
def visible_controls(text: str) -> str:
    """Control and format characters as visible escapes (``\\x1b``), by the one rule of
    prober.report.escape; newlines and tabs stay (templates lay text out in blocks)."""
    return for_terminal_block(text)


def _finalize(value: Any) -> Any:
    # Markup is already-safe output of our own code (an SVG drawing): left as it is
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible_controls(value)
    return value


def ms(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f} ms"


def pct(part: int, whole: int) -> str:
    return "–" if not whole else f"{100 * part / whole:.0f}%"


def environment(package: str, *below: str) -> Environment:
    """The environment of one capability (``prober.diagnose``…): its ``templates/``, then
    those of the capabilities ``below`` it whose parts it reuses (their macros)."""
    env = Environment(
        loader=ChoiceLoader([PackageLoader(p, "templates") for p in (package, *below)]
                            + [PackageLoader("prober.report", "templates")]),
        autoescape=True, undefined=ChainableUndefined, finalize=_finalize,
        trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.filters["ctl"] = visible_controls
    env.filters["ms"] = ms
    env.globals["pct"] = pct
    env.globals["version"] = __version__
    return env
