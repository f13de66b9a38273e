"""Capture files to link-layer frames: pcap and pcapng, read as a stream.

pcap: either byte order, microsecond or nanosecond timestamps. pcapng: either byte
order (per section: a file may hold several sections of different byte order), any
number of interfaces of different link types, each with its own timestamp resolution
and offset; Enhanced, Simple and the obsolete Packet blocks. Other blocks are skipped.

A damaged file is never fatal: a record header that cannot be right ends the file
(the frames before it count) and is tallied in ``problems``. Only a file that is no
capture at all (wrong magic) raises :class:`CaptureFormatError`.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from prober.core.errors import InputError

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER = 0x1A2B3C4D
_BT_IDB, _BT_PB, _BT_SPB, _BT_EPB = 1, 2, 3, 6
_OPT_TSRESOL, _OPT_TSOFFSET = 9, 14

# beyond these a length field is damage, not data: no link layer carries more
MAX_FRAME = 1 << 18
MAX_BLOCK = 1 << 24
# the last second a timestamp can be shown in (9999-12-31T23:59:59Z)
MAX_TIME = 253402300799.0


class CaptureFormatError(InputError):
    """The bytes are not a pcap or pcapng file."""


@dataclass(frozen=True)
class Frame:
    ts: float  # seconds since the epoch
    linktype: int
    data: bytes  # the captured bytes
    wire_len: int  # the frame's length on the wire (more than len(data) when cut)


def sniff(head: bytes) -> str | None:
    """'pcap', 'pcapng' or None for the first four bytes of a file."""
    if len(head) < 4:
        return None
    if head[:4] == PCAPNG_SHB.to_bytes(4, "big"):
        return "pcapng"
    magic_be, magic_le = struct.unpack(">I", head[:4])[0], struct.unpack("<I", head[:4])[0]
    if PCAP_MAGIC_US in (magic_be, magic_le) or PCAP_MAGIC_NS in (magic_be, magic_le):
        return "pcap"
    return None


def read_frames(fh: BinaryIO, problems: Counter[str]) -> Iterator[Frame]:
    head = fh.read(4)
    kind = sniff(head)
    if kind == "pcap":
        yield from _pcap(fh, head, problems)
    elif kind == "pcapng":
        yield from _pcapng(fh, head, problems)
    else:
        raise CaptureFormatError("not a pcap or pcapng file (unknown magic "
                                 f"{head.hex() or 'none: empty file'})")


def _pcap(fh: BinaryIO, head: bytes, problems: Counter[str]) -> Iterator[Frame]:
    rest = fh.read(20)
    if len(rest) < 20:
        problems["pcap file header truncated"] += 1
        return
    endian = "<" if struct.unpack("<I", head)[0] in (PCAP_MAGIC_US, PCAP_MAGIC_NS) else ">"
    magic = struct.unpack(endian + "I", head)[0]
    scale = 1e-9 if magic == PCAP_MAGIC_NS else 1e-6
    _major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack(endian + "HHiIII", rest)
    # the upper bits of the link type field carry FCS information, not the type
    linktype = network & 0xFFFF
    rec = struct.Struct(endian + "IIII")
    while True:
        hdr = fh.read(16)
        if not hdr:
            return
        if len(hdr) < 16:
            problems["file truncated inside a record header"] += 1
            return
        sec, frac, incl, orig = rec.unpack(hdr)
        if incl > MAX_FRAME:
            problems["corrupt record header (rest of file skipped)"] += 1
            return
        data = fh.read(incl)
        if len(data) < incl:
            problems["file truncated inside a packet"] += 1
            return
        yield Frame(sec + frac * scale, linktype, data, max(orig, incl))


@dataclass
class _Iface:
    linktype: int
    snaplen: int
    ticks: float  # seconds per timestamp unit
    offset: int  # seconds added to every timestamp


def _pcapng(fh: BinaryIO, head: bytes, problems: Counter[str]) -> Iterator[Frame]:
    endian = "<"
    ifaces: list[_Iface] = []
    btype_raw = head
    while True:
        if len(btype_raw) < 4:
            if btype_raw:
                problems["file truncated inside a block header"] += 1
            return
        len_raw = fh.read(4)
        if len(len_raw) < 4:
            problems["file truncated inside a block header"] += 1
            return
        if btype_raw == PCAPNG_SHB.to_bytes(4, "big"):
            # a section header sets the byte order of everything up to the next one
            bom = fh.read(4)
            if len(bom) < 4:
                problems["file truncated inside a section header"] += 1
                return
            if struct.unpack("<I", bom)[0] == PCAPNG_BYTE_ORDER:
                endian = "<"
            elif struct.unpack(">I", bom)[0] == PCAPNG_BYTE_ORDER:
                endian = ">"
            else:
                problems["section header with a bad byte-order magic (rest skipped)"] += 1
                return
            total = struct.unpack(endian + "I", len_raw)[0]
            body_len = total - 12 - 4  # type, length, bom, trailing length
            prefix = bom
            ifaces = []
            btype = PCAPNG_SHB
        else:
            btype = struct.unpack(endian + "I", btype_raw)[0]
            total = struct.unpack(endian + "I", len_raw)[0]
            body_len = total - 12
            prefix = b""
        if total % 4 or total < 12 or total > MAX_BLOCK or body_len < 0:
            problems["corrupt block length (rest of file skipped)"] += 1
            return
        body = fh.read(body_len)
        trailer = fh.read(4)
        if len(body) < body_len or len(trailer) < 4:
            problems["file truncated inside a block"] += 1
            return
        if trailer != len_raw:
            problems["block lengths disagree (rest of file skipped)"] += 1
            return
        body = prefix + body
        try:
            frame = _block(btype, body, endian, ifaces, problems)
        except struct.error:
            problems["block too short for its type"] += 1
            frame = None
        if frame is not None:
            yield frame
        btype_raw = fh.read(4)


def _block(btype: int, body: bytes, endian: str, ifaces: list[_Iface],
           problems: Counter[str]) -> Frame | None:
    if btype == _BT_IDB:
        linktype, _res, snaplen = struct.unpack_from(endian + "HHI", body)
        ifaces.append(_idb_options(linktype, snaplen, body[8:], endian))
        return None
    if btype == _BT_EPB:
        iface_id, hi, lo, caplen, orig = struct.unpack_from(endian + "IIIII", body)
        data_at = 20
    elif btype == _BT_PB:
        iface_id, _drops, hi, lo, caplen, orig = struct.unpack_from(endian + "HHIIII", body)
        data_at = 20
    elif btype == _BT_SPB:
        (orig,) = struct.unpack_from(endian + "I", body)
        iface_id, hi, lo, data_at = 0, 0, 0, 4
        caplen = min(orig, len(body) - 4, ifaces[0].snaplen or orig) if ifaces else orig
    else:
        return None  # name resolution, statistics, custom blocks: nothing for us
    if iface_id >= len(ifaces):
        problems["packet on an interface that was never described"] += 1
        return None
    if caplen > len(body) - data_at:
        problems["packet longer than its block"] += 1
        return None
    iface = ifaces[iface_id]
    ts = ((hi << 32) | lo) * iface.ticks + iface.offset if btype != _BT_SPB else 0.0
    if not 0 <= ts <= MAX_TIME:
        # 64 bits of ticks times a resolution and an offset of the file's choosing
        problems["timestamp out of range (frame kept without a time)"] += 1
        ts = math.nan
    data = body[data_at:data_at + caplen]
    return Frame(ts, iface.linktype, data, max(orig, caplen))


def _idb_options(linktype: int, snaplen: int, opts: bytes, endian: str) -> _Iface:
    iface = _Iface(linktype, snaplen, 1e-6, 0)
    pos = 0
    while pos + 4 <= len(opts):
        code, length = struct.unpack_from(endian + "HH", opts, pos)
        value = opts[pos + 4:pos + 4 + length]
        pos += 4 + (length + 3) // 4 * 4
        if code == 0:
            break
        if code == _OPT_TSRESOL and length == 1:
            v = value[0]
            iface.ticks = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
        elif code == _OPT_TSOFFSET and length == 8:
            iface.offset = struct.unpack(endian + "q", value)[0]
    return iface
