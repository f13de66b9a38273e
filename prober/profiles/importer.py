"""Turning raw ClientHello bytes into profile documents (and YAML files).

Used by capture, pcap import and the import of published client hellos. The
document keeps the parsed parameters (so people can read and edit it) and the raw
bytes and fingerprints under ``extra`` (so nobody has to trust the parse).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prober.profiles.compile import hello_to_doc
from prober.profiles.model import PROFILE_SCHEMA
from prober.wire.clienthello import (
    ClientHello,
    read_client_hello,
    record_version_of,
    spec_from_hello,
)
from prober.wire.fingerprint import ja3, ja4, ja4_r


def doc_from_hello(raw: bytes, *, name: str, origin: str, description: str = "",
                   client: dict[str, str] | None = None, source: str = "",
                   tags: list[str] | None = None) -> dict[str, Any]:
    """A profile document for the hello in ``raw`` (TLS records or an SSLv2 hello)."""
    hello = read_client_hello(raw)
    spec = spec_from_hello(hello, record_version_of(raw))
    extra: dict[str, Any] = {"raw_hex": raw.hex()}
    sni_sent = True
    if isinstance(hello, ClientHello):
        extra.update(ja3=ja3(hello), ja4=ja4(hello), ja4_r=ja4_r(hello))
        sni_sent = any(e.sni for e in spec.extensions or ())
    doc: dict[str, Any] = {"schema": PROFILE_SCHEMA, "name": name}
    if description:
        doc["description"] = description
    doc["origin"] = origin
    if client:
        doc["client"] = client
    if source:
        doc["source"] = source
    if tags:
        doc["tags"] = tags
    if not sni_sent:
        doc["sni"] = False
    doc["hello"] = hello_to_doc(spec)
    doc["extra"] = extra
    return doc


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def write_yaml(doc: dict[str, Any], path: Path) -> None:
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _flow_lists(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
        # short scalar lists on one line keep a profile readable
        flow = all(not isinstance(x, (dict, list)) for x in data) and len(data) <= 40
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)

    _Dumper.add_representer(list, _flow_lists)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        yaml.dump(doc, fh, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
