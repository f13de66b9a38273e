"""Reader primitives: values, positions, and the DecodeError messages that flight
details quote ("malformed: need 2 bytes at offset 4, have 1")."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from prober.wire.buffer import DecodeError, Reader

_SIX = b"\x01\x02\x03\x04\x05\x06"


@pytest.mark.parametrize("data", [_SIX, bytearray(_SIX), memoryview(_SIX)],
                         ids=["bytes", "bytearray", "memoryview"])
def test_values_and_positions(data: bytes) -> None:
    r = Reader(data)
    assert r.pull_u8() == 0x01 and r.pos == 1
    assert r.pull_u16() == 0x0203 and r.pos == 3
    assert r.pull_u24() == 0x040506 and r.eof()
    r = Reader(data, 1, 5)
    assert r.pull_uint(4) == 0x02030405 and r.eof()
    assert Reader(b"\x00\x02ab!").pull_vector(2) == b"ab"
    assert Reader(b"\x00").pull_uint(0) == 0


@pytest.mark.parametrize("data,pull,message", [
    (b"\x00" * 4, lambda r: r.pull_u8(), "need 1 bytes at offset 4, have 0"),
    (b"\x00" * 5, lambda r: r.pull_u16(), "need 2 bytes at offset 4, have 1"),
    (b"\x00" * 5, lambda r: r.pull_u24(), "need 3 bytes at offset 4, have 1"),
    (b"\x00" * 5, lambda r: r.pull_uint(4), "need 4 bytes at offset 4, have 1"),
    (b"\x00" * 5, lambda r: r.pull_bytes(-1), "need -1 bytes at offset 4, have 1"),
    (b"\x00" * 4 + b"\xff", lambda r: r.pull_vector(1), "need 255 bytes at offset 5, have 0"),
    (b"\x00" * 4 + b"\x09", lambda r: r.sub(1), "vector of 9 bytes overruns its container at "
                                                "offset 5"),
])
def test_messages(data: bytes, pull: Callable[[Reader], object], message: str) -> None:
    with pytest.raises(DecodeError) as e:
        pull(Reader(data, 4))
    assert str(e.value) == message


def test_a_failed_pull_does_not_move() -> None:
    r = Reader(b"\x00\x05abc")
    with pytest.raises(DecodeError, match="need 5 bytes at offset 2, have 3"):
        r.pull_vector(2)
    assert r.pos == 2  # past the length, which was read, not past the body
    with pytest.raises(DecodeError):
        r.pull_uint(4)
    assert r.pos == 2
