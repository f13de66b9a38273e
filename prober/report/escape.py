"""Making text safe to show: where strings that someone else chose are neutralised on
their way to a terminal, an XML report or an HTML page.

A server chooses its certificate's names, its ALPN protocol, its banner; a capture or a
log file holds what clients sent. Any of them may carry terminal control sequences
(ESC [2J clears the screen, CR rewrites the line, a newline forges a table row), bidi
overrides that reorder what a reader sees, zero-width characters, or code points XML
cannot carry at all. The renderers keep the exact values (JSON holds them exactly) and
pass what they print through here, at one place per format: table cells in
:mod:`prober.report.table`, every printed line in :mod:`prober.report.output`, JUnit in
``prober.check.junit``.

What is made visible: every C0 and C1 control and DEL (category Cc), every format
character (Cf: bidi embeddings, overrides and isolates, LRM/RLM, zero-width space and
joiners, the BOM, soft hyphen, tag characters), the line and paragraph separators (Zl,
Zp), lone surrogates (Cs) and the noncharacters (U+FFFE, U+FFFF, U+FDD0..U+FDEF, ...).
Each becomes its Python escape (``\\r``, ``\\x1b``, ``\\u202e``, ``\\U000e0041``); a lone
surrogate U+DC80..U+DCFF, which is how prober carries a byte that was not UTF-8
(``surrogateescape``), is shown as that byte (``\\xff``).
"""

from __future__ import annotations

import html
import unicodedata
from functools import lru_cache

__all__ = ["for_html", "for_terminal", "for_terminal_block", "for_xml", "for_xml_block",
           "text_of"]

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# a report's own layout: kept by the *_block forms, escaped inside a single value
_LAYOUT = frozenset("\n\t")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _noncharacter(o: int) -> bool:
    return 0xFDD0 <= o <= 0xFDEF or (o & 0xFFFE) == 0xFFFE


@lru_cache(maxsize=4096)
def _escaped(ch: str) -> str:
    """``ch`` itself when it is safe to show, else its visible escape."""
    o = ord(ch)
    # str.isprintable is false for every unsafe category and for the noncharacters
    # (unassigned, Cn); of the rest, spaces (Zs), private use and unassigned code
    # points are harmless
    if ch.isprintable() or (unicodedata.category(ch) not in _UNSAFE_CATEGORIES
                            and not _noncharacter(o)):
        return ch
    if ch in _NAMED:
        return _NAMED[ch]
    if 0xDC80 <= o <= 0xDCFF:
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x100:
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def _escape(text: str, keep: frozenset[str]) -> str:
    if text.isprintable():  # the common case, at C speed
        return text
    return "".join(c if c in keep else _escaped(c) for c in text)


def for_terminal(text: str) -> str:
    """One value (a table cell, a name): nothing in it can move the cursor, change the
    terminal's state, start a new line or reorder what is shown."""
    return _escape(text, frozenset())


def for_terminal_block(text: str) -> str:
    """A rendered report: its newlines and tabs are the layout and stay; everything else
    :func:`for_terminal` escapes is escaped.  Values inside should already have gone
    through :func:`for_terminal` (a newline in a value would otherwise start a line)."""
    return _escape(text, _LAYOUT)


def for_xml(text: str) -> str:
    """One value for XML 1.0 (an attribute, a line of element text): what XML forbids
    even as a character reference (C0 controls, lone surrogates, U+FFFE/U+FFFF) and what
    would mislead a reader of the rendered report (C1, CR, LF, tab, bidi, zero-width)
    become visible escapes.  ``<`` and ``&`` are the serializer's business."""
    return _escape(text, frozenset())


def for_xml_block(text: str) -> str:
    """Element text made of lines that are already safe: as :func:`for_xml`, keeping
    the newlines and tabs."""
    return _escape(text, _LAYOUT)


def for_html(text: str, *, block: bool = False) -> str:
    """Text for an HTML page: markup characters as entities, then the control rule
    (``block`` keeps newlines and tabs, for a ``<pre>``)."""
    return html.escape(_escape(text, _LAYOUT if block else frozenset()), quote=True)


def text_of(value: object) -> str:
    """A document value as text to show: ``{"hex": ...}`` (bytes that were not UTF-8, as
    JSON documents carry them) back to its bytes, escaped as :func:`for_terminal` does;
    ``None`` as an empty string; anything else ``str``, escaped."""
    if value is None:
        return ""
    if isinstance(value, dict) and set(value) == {"hex"} and isinstance(value["hex"], str):
        try:
            raw = bytes.fromhex(value["hex"])
        except ValueError:
            return for_terminal(str(value))
        return for_terminal(raw.decode("utf-8", "surrogateescape"))
    return for_terminal(value if isinstance(value, str) else str(value))
