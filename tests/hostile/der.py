"""Just enough DER to take a real certificate apart and put it back together wrong.

A node is ``(tag, value)``: ``value`` is the raw content for a primitive tag and the
list of child nodes for a constructed one (bit 0x20 of the tag).  Only the single-byte
tags and definite lengths that certificates use are handled.
"""

from __future__ import annotations

from typing import TypeAlias

Node: TypeAlias = tuple[int, bytes | list["Node"]]

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
OID = 0x06
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13
CONTEXT_0 = 0xA0
CONTEXT_3 = 0xA3


def _length(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    return int.from_bytes(data[pos + 1 : pos + 1 + n], "big"), pos + 1 + n


def _parse_one(data: bytes, pos: int) -> tuple[Node, int]:
    tag = data[pos]
    length, start = _length(data, pos + 1)
    end = start + length
    if end > len(data):
        raise ValueError("DER element overruns its container")
    raw = data[start:end]
    if tag & 0x20:
        kids: list[Node] = []
        i = 0
        while i < len(raw):
            kid, i = _parse_one(raw, i)
            kids.append(kid)
        return (tag, kids), end
    return (tag, raw), end


def parse(data: bytes) -> Node:
    node, end = _parse_one(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes after the DER element")
    return node


def tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        head = bytes([n])
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(size)]) + size
    return bytes([tag]) + head + content


def encode(node: Node) -> bytes:
    tag, value = node
    if isinstance(value, list):
        return tlv(tag, b"".join(encode(k) for k in value))
    return tlv(tag, value)


def oid(dotted: str) -> bytes:
    """The content bytes of an OBJECT IDENTIFIER."""
    parts = [int(p) for p in dotted.split(".")]
    out = bytearray([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        chunk = [p & 0x7F]
        p >>= 7
        while p:
            chunk.append(0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)
