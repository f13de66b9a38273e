"""Certificates taken apart as DER and put back together wrong: the mutations of the
certificate description's fuzz target, also used inside server flights."""

from __future__ import annotations

from tests.fuzz.mutate import Choices, chance, mutate_bytes, pick
from tests.hostile import der

# tags a field of a certificate may carry instead of its own
_TAGS = [der.SEQUENCE, der.SET, der.INTEGER, der.BIT_STRING, der.OCTET_STRING, der.OID,
         der.UTF8_STRING, der.PRINTABLE_STRING, der.CONTEXT_0, der.CONTEXT_3, 0x05, 0x01,
         0x16, 0x17, 0x18, 0x1E, 0x1C, 0x14, 0x82, 0x87, 0xA1]
# string contents servers put in names
_STRINGS = [b"\x1b[2J\x07", b"\xff\xfe\x80", b"\x00", b"a" * 300, b"\xe2\x80\xae", b"",
            "例え".encode(), b"\xed\xa0\x80"]


def _nodes(node: der.Node, path: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    out = [path]
    value = node[1]
    if isinstance(value, list):
        for i, kid in enumerate(value):
            out += _nodes(kid, (*path, i))
    return out


def _get(node: der.Node, path: tuple[int, ...]) -> der.Node:
    for i in path:
        value = node[1]
        assert isinstance(value, list)
        node = value[i]
    return node


def _set(node: der.Node, path: tuple[int, ...], new: der.Node | None) -> der.Node:
    """``node`` with the node at ``path`` replaced by ``new`` (removed when None)."""
    if not path:
        return new if new is not None else (der.SEQUENCE, [])
    tag, value = node
    assert isinstance(value, list)
    kids = list(value)
    if len(path) == 1:
        if new is None:
            del kids[path[0]]
        else:
            kids[path[0]] = new
    else:
        kids[path[0]] = _set(kids[path[0]], path[1:], new)
    return tag, kids


def mutate_der(c: Choices, data: bytes) -> bytes:
    """A certificate with one field changed where it is parsed (a string's content, a
    tag, an integer, a node removed or doubled), re-encoded with consistent lengths;
    else (or when the DER does not parse) its bytes edited."""
    try:
        root = der.parse(data)
    except (ValueError, IndexError):
        return mutate_bytes(c, data)
    if chance(c, 0.15):
        return mutate_bytes(c, data)
    paths = _nodes(root)
    path = pick(c, paths)
    tag, value = _get(root, path)
    kind = c.randint(0, 5)
    new: der.Node | None
    if kind == 0:
        new = (pick(c, _TAGS), value)
    elif kind == 1 and isinstance(value, bytes):
        new = (tag, pick(c, _STRINGS) if chance(c, 0.5) else mutate_bytes(c, value))
    elif kind == 2 and path:
        new = None
    elif kind == 3 and path:
        parent = path[:-1]
        ptag, pvalue = _get(root, parent)
        assert isinstance(pvalue, list)
        doubled = (ptag, [*pvalue, pvalue[path[-1]]])
        return der.encode(_set(root, parent, doubled))
    elif kind == 4:
        new = (tag, [(pick(c, _TAGS), c.randbytes(c.randint(0, 8)))])
    else:
        new = (tag, c.randbytes(c.randint(0, 40)))
    return der.encode(_set(root, path, new))
