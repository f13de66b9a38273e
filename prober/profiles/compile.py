"""Profile documents (names, as people write them) <-> hello templates (code points).

A profile file's ``hello`` section is compiled here; every error names the field and
the bad value. The reverse direction (``hello_to_doc``) writes named entries only where
re-encoding them gives back exactly the same bytes, and raw hex otherwise, so a
captured hello survives the round trip byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prober.core.errors import InputError
from prober.wire import registry as reg
from prober.wire.buffer import DecodeError, Reader
from prober.wire.clienthello import (
    ExtSpec,
    HelloSpec,
    KeyShareSpec,
    decode_alpn,
    ext_alpn,
    ext_compress_certificate,
    ext_renegotiation_info,
    ext_status_request,
    ext_supported_versions,
    ext_u8_list,
    ext_u16_list,
)
from prober.wire.constants import ExtensionType, extension_name, extension_value
from prober.wire.keyshare import typical_share_length


class ProfileError(InputError):
    """A profile that cannot be compiled; the message names the field and value."""


POINT_FORMATS = {"uncompressed": 0, "ansiX962_compressed_prime": 1, "ansiX962_compressed_char2": 2}
PSK_MODES = {"psk_ke": 0, "psk_dhe_ke": 1}
CERT_COMPRESSION = {"zlib": 1, "brotli": 2, "zstd": 3}
_EMPTY_EXTENSIONS = {
    ExtensionType.EXTENDED_MASTER_SECRET,
    ExtensionType.ENCRYPT_THEN_MAC,
    ExtensionType.SIGNED_CERTIFICATE_TIMESTAMP,
    ExtensionType.SESSION_TICKET,
    ExtensionType.POST_HANDSHAKE_AUTH,
    ExtensionType.EARLY_DATA,
}


def _lookup(kind: str, fn: Callable[[str], int], value: Any) -> int:
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ProfileError(f"{kind}: expected a name or code point, got {value!r}")
    try:
        return fn(value)
    except KeyError as e:
        raise ProfileError(f"{kind}: {e}") from None


def _named(kind: str, table: dict[str, int], value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value in table:
        return table[value]
    code = reg.parse_code(str(value))
    if code is not None:
        return code
    raise ProfileError(f"{kind}: unknown value {value!r} (known: {', '.join(table)})")


def _as_list(kind: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ProfileError(f"{kind}: expected a list, got {value!r}")
    return value


def compile_extension(item: Any) -> ExtSpec:
    if isinstance(item, str):
        name, arg = item, None
    elif isinstance(item, dict) and len(item) == 1:
        name, arg = next(iter(item.items()))
    else:
        raise ProfileError(f"extensions: each entry is a name or a one-key mapping, got {item!r}")
    key = str(name).strip().lower()
    if key == "raw":
        if not isinstance(arg, dict) or "type" not in arg:
            raise ProfileError("extensions.raw: needs {type: ..., data: hex}")
        t = arg["type"] if isinstance(arg["type"], int) else _ext_type(str(arg["type"]))
        try:
            return ExtSpec(t, bytes.fromhex(str(arg.get("data", ""))))
        except ValueError:
            raise ProfileError(f"extensions.raw: data is not hex: {arg.get('data')!r}") from None
    if key == "grease":
        code = 0x0A0A if arg is None else reg.parse_code(str(arg))
        if code is None:
            raise ProfileError(f"extensions.grease: not a code point: {arg!r}")
        t = code
        return ExtSpec(t, b"")
    t = _ext_type(key)
    where = f"extensions.{key}"
    if t == ExtensionType.SERVER_NAME:
        return ExtSpec(t, sni=True)
    if t in (ExtensionType.SUPPORTED_GROUPS,):
        vals = [_lookup(where, reg.group_value, v) for v in _as_list(where, arg)]
        return ExtSpec(t, ext_u16_list(vals))
    if t in (ExtensionType.SIGNATURE_ALGORITHMS, ExtensionType.SIGNATURE_ALGORITHMS_CERT):
        vals = [_lookup(where, reg.sig_value, v) for v in _as_list(where, arg)]
        return ExtSpec(t, ext_u16_list(vals))
    if t == ExtensionType.EC_POINT_FORMATS:
        arg = ["uncompressed"] if arg is None else arg
        formats = [_named(where, POINT_FORMATS, v) for v in _as_list(where, arg)]
        return ExtSpec(t, ext_u8_list(formats))
    if t == ExtensionType.PSK_KEY_EXCHANGE_MODES:
        arg = ["psk_dhe_ke"] if arg is None else arg
        return ExtSpec(t, ext_u8_list([_named(where, PSK_MODES, v) for v in _as_list(where, arg)]))
    if t == ExtensionType.SUPPORTED_VERSIONS:
        vals = [_lookup(where, reg.version_value, v) for v in _as_list(where, arg)]
        return ExtSpec(t, ext_supported_versions(vals))
    if t == ExtensionType.ALPN:
        return ExtSpec(t, ext_alpn([str(p) for p in _as_list(where, arg)]))
    if t == ExtensionType.KEY_SHARE:
        shares = []
        for v in _as_list(where, arg):
            if isinstance(v, dict):
                shares.append(KeyShareSpec(_lookup(where, reg.group_value, v.get("group")),
                                           int(v["length"]) if "length" in v else None))
            else:
                shares.append(KeyShareSpec(_lookup(where, reg.group_value, v)))
        return ExtSpec(t, key_shares=shares)
    if t == ExtensionType.PADDING:
        if isinstance(arg, dict) and "to" in arg:
            return ExtSpec(t, pad_to=int(arg["to"]))
        if isinstance(arg, dict) and "length" in arg:
            return ExtSpec(t, pad_len=int(arg["length"]))
        if isinstance(arg, int):
            return ExtSpec(t, pad_to=arg)
        raise ProfileError(f"{where}: give {{to: TOTAL_BYTES}} or {{length: N}}")
    if t == ExtensionType.RENEGOTIATION_INFO:
        return ExtSpec(t, ext_renegotiation_info())
    if t == ExtensionType.STATUS_REQUEST:
        return ExtSpec(t, ext_status_request())
    if t == ExtensionType.COMPRESS_CERTIFICATE:
        vals = [_named(where, CERT_COMPRESSION, v) for v in _as_list(where, arg)]
        return ExtSpec(t, ext_compress_certificate(vals))
    if t == ExtensionType.RECORD_SIZE_LIMIT:
        return ExtSpec(t, int(arg if arg is not None else 16385).to_bytes(2, "big"))
    if t in _EMPTY_EXTENSIONS:
        return ExtSpec(t, b"")
    if arg is None:
        return ExtSpec(t, b"")
    raise ProfileError(f"{where}: no named form; write it as raw: {{type: {t}, data: HEX}}")


def _ext_type(name: str) -> int:
    try:
        return extension_value(name)
    except KeyError:
        raise ProfileError(f"extensions: unknown extension {name!r}") from None


def compile_hello(doc: dict[str, Any]) -> HelloSpec:
    """Compile a profile's ``hello`` mapping into a template."""
    if not isinstance(doc, dict):
        raise ProfileError("hello: expected a mapping")
    known = {"record_version", "version", "cipher_suites", "compression", "session_id",
             "extensions", "sslv2", "grease", "stop_after_hrr"}
    unknown = set(doc) - known
    if unknown:
        raise ProfileError(f"hello: unknown field(s) {', '.join(sorted(unknown))}")
    sslv2 = bool(doc.get("sslv2", False))
    suites_raw = _as_list("hello.cipher_suites", doc.get("cipher_suites"))
    if not suites_raw:
        raise ProfileError("hello.cipher_suites: at least one suite is needed")
    if sslv2:
        suites = [_sslv2_spec(v) for v in suites_raw]
    else:
        suites = [_lookup("hello.cipher_suites", reg.suite_value, v) for v in suites_raw]
    version = _lookup("hello.version", reg.version_value, doc.get("version", "TLSv1.2"))
    record_version = _lookup("hello.record_version", reg.version_value,
                             doc.get("record_version", "TLSv1.0"))
    exts_raw = doc.get("extensions", [])
    exts = None if exts_raw is None else [compile_extension(e) for e in _as_list(
        "hello.extensions", exts_raw)]
    session_id = str(doc.get("session_id", "random"))
    if session_id not in ("random", "empty"):
        try:
            bytes.fromhex(session_id)
        except ValueError:
            raise ProfileError("hello.session_id: 'random', 'empty' or hex") from None
    comps = [int(c) for c in _as_list("hello.compression", doc.get("compression", [0]))]
    return HelloSpec(record_version=0x0002 if sslv2 else record_version, legacy_version=version,
                     cipher_suites=suites, compression_methods=comps,
                     extensions=None if sslv2 else exts, session_id=session_id, sslv2=sslv2,
                     stop_after_hrr=bool(doc.get("stop_after_hrr", False)))


def _sslv2_spec(v: Any) -> int:
    if isinstance(v, int):
        return v
    s = str(v)
    code = reg.parse_code(s)
    if code is not None:
        return code
    for spec in reg.sslv2_specs().values():
        if s in (spec.name, spec.openssl_name):
            return spec.value
    return _lookup("hello.cipher_suites", reg.suite_value, s)


# --- template -> document ------------------------------------------------------------


def _suite_doc(v: int) -> str:
    cs = reg.suite(v)
    if cs is not None and reg.suite_value(cs.name) == v:
        return cs.name
    return reg.suite_name(v) if v in reg.GREASE_VALUES else f"0x{v:04X}"


def _sig_doc(v: int) -> str:
    n = reg.sig_name(v)
    return n if not n.startswith("0x") else f"0x{v:04X}"


def _group_doc(v: int) -> str:
    n = reg.group_name(v)
    try:
        return n if reg.group_value(n) == v else f"0x{v:04X}"
    except KeyError:
        return f"0x{v:04X}"


def ext_to_doc(e: ExtSpec) -> Any:
    t = e.type
    name = extension_name(t)
    if e.sni:
        return "server_name"
    if e.key_shares is not None:
        return {"key_share": [
            _group_doc(s.group) if s.length is None or _typical(s.group) == s.length
            else {"group": _group_doc(s.group), "length": s.length}
            for s in e.key_shares]}
    if e.pad_to is not None:
        return {"padding": {"to": e.pad_to}}
    if e.pad_len is not None:
        return {"padding": {"length": e.pad_len}}
    candidate: Any = None
    try:
        r = Reader(e.body)
        if t == ExtensionType.SUPPORTED_GROUPS:
            candidate = {name: [_group_doc(v) for v in r.pull_list(2, 2)]}
        elif t in (ExtensionType.SIGNATURE_ALGORITHMS, ExtensionType.SIGNATURE_ALGORITHMS_CERT):
            candidate = {name: [_sig_doc(v) for v in r.pull_list(2, 2)]}
        elif t == ExtensionType.EC_POINT_FORMATS:
            inv = {v: k for k, v in POINT_FORMATS.items()}
            candidate = {name: [inv.get(v, v) for v in r.pull_list(1, 1)]}
        elif t == ExtensionType.PSK_KEY_EXCHANGE_MODES:
            inv = {v: k for k, v in PSK_MODES.items()}
            candidate = {name: [inv.get(v, v) for v in r.pull_list(1, 1)]}
        elif t == ExtensionType.SUPPORTED_VERSIONS:
            candidate = {name: [reg.version_name(v) for v in r.pull_list(1, 2)]}
        elif t == ExtensionType.ALPN:
            candidate = {name: decode_alpn(e.body)}
        elif t == ExtensionType.COMPRESS_CERTIFICATE:
            inv = {v: k for k, v in CERT_COMPRESSION.items()}
            candidate = {name: [inv.get(v, v) for v in r.pull_list(1, 2)]}
        elif t == ExtensionType.RECORD_SIZE_LIMIT and len(e.body) == 2:
            candidate = {name: int.from_bytes(e.body, "big")}
        elif name == "grease" and not e.body:
            candidate = {"grease": f"0x{t:04X}"}
        elif name != "grease" and not name.startswith("0x"):
            candidate = name
    except (DecodeError, UnicodeError):
        candidate = None
    if candidate is not None:
        try:
            again = compile_extension(candidate)
            if again.type == t and again.body == e.body:
                return candidate
        except (ProfileError, KeyError, ValueError):
            pass
    return {"raw": {"type": f"0x{t:04X}", "data": e.body.hex()}}


def _typical(group: int) -> int | None:

    return typical_share_length(group)


def hello_to_doc(spec: HelloSpec) -> dict[str, Any]:
    """The profile ``hello`` mapping that compiles back to exactly this template."""
    doc: dict[str, Any] = {
        "record_version": reg.version_name(spec.record_version),
        "version": reg.version_name(spec.legacy_version),
    }
    if spec.sslv2:
        doc = {"sslv2": True, "version": reg.version_name(spec.legacy_version),
               "cipher_suites": [f"0x{v:06X}" for v in spec.cipher_suites]}
        return doc
    doc["cipher_suites"] = [_suite_doc(v) for v in spec.cipher_suites]
    if spec.compression_methods != [0]:
        doc["compression"] = list(spec.compression_methods)
    doc["session_id"] = spec.session_id
    doc["extensions"] = None if spec.extensions is None else [
        ext_to_doc(e) for e in spec.extensions]
    return doc
