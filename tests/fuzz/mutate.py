"""Mutations, driven by any source of choices: a seeded ``random.Random`` (the CI run,
the same every time) or atheris' FuzzedDataProvider (``make fuzz``: the fuzzer learns
which choices reach new code).  Both are read through :class:`Choices`."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

# values that sit on the edges of length fields and counters
_INTERESTING = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\x01", b"\x00\x00", b"\xff\xff",
                b"\x7f\xff", b"\x80\x00", b"\x00\x01", b"\x40\x00", b"\x00\x00\x00",
                b"\xff\xff\xff", b"\x01\x00\x00", b"\x00\xff\xff"]


class Choices(Protocol):
    def randint(self, a: int, b: int) -> int: ...
    def randbytes(self, n: int) -> bytes: ...
    def random(self) -> float: ...


class Seeded(random.Random):
    """The CI source: ``Seeded(seed)`` gives the same choices on every run."""


class FromFuzzer:
    """Choices read from atheris' FuzzedDataProvider (the fuzzer's input)."""

    def __init__(self, fdp: Any) -> None:
        self.fdp = fdp

    def randint(self, a: int, b: int) -> int:
        return int(self.fdp.ConsumeIntInRange(a, b))

    def randbytes(self, n: int) -> bytes:
        got = bytes(self.fdp.ConsumeBytes(n))
        return got + bytes(n - len(got))

    def random(self) -> float:
        # an input that has run out reads as 0; 1 - p makes that "no rare event"
        # (chance() is true below p), as running out of choices should
        return 1.0 - float(self.fdp.ConsumeProbability())


def pick(c: Choices, seq: Sequence[T]) -> T:
    return seq[c.randint(0, len(seq) - 1)]


def chance(c: Choices, p: float) -> bool:
    return c.random() < p


def mutate_bytes(c: Choices, data: bytes, ops: int | None = None) -> bytes:
    """A few byte-level edits: overwrite, flip, delete, insert, length-field values,
    duplicate a slice, truncate, zero a run."""
    b = bytearray(data)
    for _ in range(ops if ops is not None else c.randint(1, 4)):
        kind = c.randint(0, 8)
        pos = c.randint(0, len(b))
        at = min(pos, len(b) - 1)
        if kind == 0 and b:
            b[at] = c.randint(0, 255)
        elif kind == 1 and b:
            b[at] ^= 1 << c.randint(0, 7)
        elif kind == 2:
            del b[pos:pos + c.randint(1, 16)]
        elif kind == 3:
            b[pos:pos] = c.randbytes(c.randint(1, 16))
        elif kind == 4:
            b[pos:pos] = pick(c, _INTERESTING)
        elif kind == 5:
            v = pick(c, _INTERESTING)
            b[pos:pos + len(v)] = v
        elif kind == 6 and b:
            start = c.randint(0, len(b) - 1)
            b[pos:pos] = b[start:start + c.randint(1, 64)]
        elif kind == 7:
            del b[pos:]
        elif kind == 8:
            n = c.randint(1, 32)
            b[pos:pos + n] = bytes(len(b[pos:pos + n]))
    return bytes(b)


def split(c: Choices, data: bytes, largest: int) -> list[bytes]:
    """``data`` cut into pieces of one size of 1..``largest`` bytes (one piece when it
    fits, often); the size is chosen once, so a byte-by-byte cut costs one choice."""
    # (written so that a fuzzer input that has run out, which reads as the smallest
    # choices, gives the cheap cut: one piece, else the largest pieces)
    if len(data) <= largest and not chance(c, 0.5):
        return [data]
    n = largest - c.randint(0, largest - 1)
    return [data[i:i + n] for i in range(0, len(data), n)] or [b""]
