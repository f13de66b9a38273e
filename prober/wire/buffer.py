"""A small read/write buffer: one pull/push pair per wire primitive."""

from __future__ import annotations

import struct


class DecodeError(ValueError):
    """Bytes that do not follow the structure they claim to have."""


class Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def eof(self) -> bool:
        return self.pos >= self.end

    # Each primitive checks its own bounds instead of calling pull_bytes: the nested
    # calls were a fifth of what parsing a ServerHello costs. The messages stay
    # pull_bytes' own, word for word: flight details quote them.

    def pull_bytes(self, n: int) -> bytes:
        pos = self.pos
        if n < 0 or pos + n > self.end:
            raise DecodeError(f"need {n} bytes at offset {pos}, have {self.end - pos}")
        self.pos = pos + n
        return self.data[pos : pos + n]

    def pull_uint(self, width: int) -> int:
        pos = self.pos
        if width < 0 or pos + width > self.end:
            raise DecodeError(f"need {width} bytes at offset {pos}, have {self.end - pos}")
        self.pos = pos + width
        return int.from_bytes(self.data[pos : pos + width], "big")

    def pull_u8(self) -> int:
        pos = self.pos
        if pos + 1 > self.end:
            raise DecodeError(f"need 1 bytes at offset {pos}, have {self.end - pos}")
        self.pos = pos + 1
        return self.data[pos]

    def pull_u16(self) -> int:
        pos = self.pos
        if pos + 2 > self.end:
            raise DecodeError(f"need 2 bytes at offset {pos}, have {self.end - pos}")
        self.pos = pos + 2
        d = self.data
        return d[pos] << 8 | d[pos + 1]

    def pull_u24(self) -> int:
        pos = self.pos
        if pos + 3 > self.end:
            raise DecodeError(f"need 3 bytes at offset {pos}, have {self.end - pos}")
        self.pos = pos + 3
        d = self.data
        return d[pos] << 16 | d[pos + 1] << 8 | d[pos + 2]

    def pull_vector(self, len_width: int) -> bytes:
        n = self.pull_uint(len_width)
        pos = self.pos
        if pos + n > self.end:
            raise DecodeError(f"need {n} bytes at offset {pos}, have {self.end - pos}")
        self.pos = pos + n
        return self.data[pos : pos + n]

    def sub(self, len_width: int) -> Reader:
        """A reader over the next length-prefixed vector, advancing past it."""
        n = self.pull_uint(len_width)
        if self.pos + n > self.end:
            raise DecodeError(f"vector of {n} bytes overruns its container at offset {self.pos}")
        r = Reader(self.data, self.pos, self.pos + n)
        self.pos += n
        return r

    def pull_list(self, len_width: int, item_width: int) -> list[int]:
        r = self.sub(len_width)
        if r.remaining() % item_width:
            raise DecodeError(f"list length {r.remaining()} is not a multiple of {item_width}")
        fmt = _FORMATS.get(item_width)
        if fmt is not None:
            # one struct call instead of a pull per item: hellos list 100+ suites
            return list(struct.unpack_from(f"!{r.remaining() // item_width}{fmt}", r.data, r.pos))
        return [r.pull_uint(item_width) for _ in range(r.remaining() // item_width)]


def u8(v: int) -> bytes:
    return v.to_bytes(1, "big")


def u16(v: int) -> bytes:
    return v.to_bytes(2, "big")


def u24(v: int) -> bytes:
    return v.to_bytes(3, "big")


def vec(data: bytes, len_width: int) -> bytes:
    return len(data).to_bytes(len_width, "big") + data


_FORMATS = {1: "B", 2: "H", 4: "I"}


def int_list(values: list[int], item_width: int, len_width: int) -> bytes:
    fmt = _FORMATS.get(item_width)
    if fmt is not None:
        # one struct call instead of a to_bytes per item: hellos carry 100+ suites
        return vec(struct.pack(f"!{len(values)}{fmt}", *values), len_width)
    return vec(b"".join(v.to_bytes(item_width, "big") for v in values), len_width)
