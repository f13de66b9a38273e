"""Human descriptions of a profile: one table row, or the whole hello spelled out."""

from __future__ import annotations

from prober.profiles.compile import ext_to_doc
from prober.profiles.model import Profile
from prober.wire import registry as reg
from prober.wire.buffer import DecodeError
from prober.wire.clienthello import ClientHello, build
from prober.wire.constants import extension_name
from prober.wire.fingerprint import ja3, ja3_string, ja4, ja4_r


def sample_hello(p: Profile) -> ClientHello | None:
    """The hello as sent to a target with a name (for fingerprints and display)."""
    built = build(p.spec, p.sni.resolve("example.com"))
    return built.hello


def versions_text(p: Profile) -> str:
    vs = [reg.version_name(v) for v in p.spec.offered_versions()]
    return vs[0] if len(vs) == 1 else f"{vs[-1]}–{vs[0]}"


def summary_row(p: Profile) -> list[str]:
    groups = [reg.group_name(g) for g in p.spec.offered_groups() if not reg.is_grease(g)]
    g = ",".join(groups[:3]) + ("…" if len(groups) > 3 else "")
    ch = sample_hello(p)
    return [p.name, versions_text(p), str(len(p.spec.cipher_suites)), g,
            ja4(ch) if ch else "-", p.origin]


def full_text(p: Profile) -> str:
    spec = p.spec
    lines = [f"name:        {p.name}", f"origin:      {p.origin}"]
    if p.description:
        lines.append(f"description: {p.description}")
    if p.client:
        lines.append("client:      " + ", ".join(f"{k} {v}" for k, v in p.client.items()))
    if p.source:
        lines.append(f"source:      {p.source}")
    if p.path:
        lines.append(f"file:        {p.path}")
    lines.append(f"versions:    {', '.join(reg.version_name(v) for v in spec.offered_versions())}"
                 f" (record {reg.version_name(spec.record_version)}, "
                 f"client_version {reg.version_name(spec.legacy_version)})")
    ch = sample_hello(p)
    if ch is not None:
        lines.append(f"JA3:         {ja3(ch)}  ({ja3_string(ch)[:60]}…)")
        lines.append(f"JA4:         {ja4(ch)}")
        lines.append(f"JA4_r:       {ja4_r(ch)}")
        lines.append(f"size:        {len(ch.encode()) + 5} bytes in one record")
    lines.append(f"cipher suites ({len(spec.cipher_suites)}):")
    for v in spec.cipher_suites:
        if spec.sslv2 and v > 0xFFFF:
            s = reg.sslv2_spec(v)
            lines.append(f"  0x{v:06X}  {s.name if s else '?'}")
            continue
        cs = reg.suite(v)
        lines.append(f"  0x{v:04X}  {reg.suite_name(v):50} {(cs.openssl_name if cs else '') or ''}")
    if spec.extensions is None:
        lines.append("extensions:  none (no extensions block)")
    else:
        lines.append(f"extensions ({len(spec.extensions)}), in order:")
        for e in spec.extensions:
            lines.append(f"  {extension_name(e.type):32} {_ext_value(p, e.type, ch)}")
    t = p.transport
    if t.record_sizes or t.segment_sizes:
        lines.append(f"transport:   records {t.record_sizes or '-'}, segments "
                     f"{t.segment_sizes or '-'}, pause {t.pause_ms} ms")
    return "\n".join(lines)


def _ext_value(p: Profile, ext_type: int, ch: ClientHello | None) -> str:

    e = next(x for x in p.spec.extensions or () if x.type == ext_type)
    try:
        doc = ext_to_doc(e)
    except DecodeError:
        return e.body.hex()
    if isinstance(doc, dict):
        (_, v), = doc.items()
        return str(v)
    return "(target name)" if doc == "server_name" else ""
