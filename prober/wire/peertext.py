"""Text a peer chose (an ALPN protocol name, a banner), kept exactly, bytes and all.

The bytes are decoded as UTF-8 with ``surrogateescape``: a ``str`` that is the text
where the bytes are UTF-8 and carries each byte that is not as one lone surrogate
(U+DC80..U+DCFF), so :func:`raw` gives back exactly what came over the wire.  JSON
documents hold :func:`json_value`: the text itself where it is valid UTF-8 (json.dumps
escapes its control characters) and ``{"hex": "..."}`` where it is not.  What a person
sees of it is prober.report.escape's business.
"""

from __future__ import annotations

__all__ = ["decode", "from_json", "json_value", "raw", "shown"]


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def raw(text: str) -> bytes:
    """The bytes ``text`` was decoded from (any other lone surrogate as UTF-8 would
    write it, so this never raises)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def json_value(text: str) -> str | dict[str, str]:
    """``text`` where it is valid UTF-8, else ``{"hex": <its bytes>}``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return {"hex": raw(text).hex()}
    return text


def from_json(value: object) -> str | None:
    """A :func:`json_value` read back from a document (None for anything else)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("hex"), str):
        try:
            return decode(bytes.fromhex(value["hex"]))
        except ValueError:
            return None
    return None


def shown(text: str) -> str:
    """``text`` for a sentence (an outcome's detail): valid UTF-8 throughout, a byte that
    was not UTF-8 written ``\\xff``.  Controls stay: the renderers escape them."""
    return raw(text).decode("utf-8", "backslashreplace")
