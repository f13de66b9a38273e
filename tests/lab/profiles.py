"""Client profiles the lab hands to ``prober probe`` for the cases no shipped profile
covers: TLS_FALLBACK_SCSV, and a hello spread over TCP segments.

They are written as ordinary profile files (profiles/README.md) into a directory the
lab puts on ``$PROBER_PROFILES``, so ``-p lab-tls1.1-scsv`` works like any profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_TLS12_SUITES = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
                 "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
                 "ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256", "AES128-SHA"]
_TLS13_SUITES = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                 "TLS_CHACHA20_POLY1305_SHA256"]
_SIGALGS = ["ecdsa_secp256r1_sha256", "rsa_pss_rsae_sha256", "rsa_pkcs1_sha256",
            "ecdsa_secp384r1_sha384", "rsa_pss_rsae_sha384", "rsa_pkcs1_sha384",
            "rsa_pkcs1_sha1", "ecdsa_sha1"]


def _legacy(name: str, version: str, description: str, *, scsv: bool) -> dict[str, Any]:
    suites = ["ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES256-SHA",
              "AES128-SHA", "AES256-SHA"]
    if version == "TLSv1.2":
        suites = _TLS12_SUITES
    return {
        "schema": 1, "name": name, "description": description, "origin": "handwritten",
        "tags": ["lab"],
        "hello": {
            "record_version": "TLSv1.0", "version": version,
            "cipher_suites": suites + (["TLS_FALLBACK_SCSV"] if scsv else []),
            "extensions": [
                "server_name",
                {"supported_groups": ["x25519", "secp256r1", "secp384r1"]},
                {"ec_point_formats": ["uncompressed"]},
                *([{"signature_algorithms": _SIGALGS}] if version == "TLSv1.2" else []),
                "renegotiation_info",
            ],
        },
    }


def _modern(name: str, description: str, *, group: str,
            transport: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": 1, "name": name, "description": description, "origin": "handwritten",
        "tags": ["lab"],
        "hello": {
            "record_version": "TLSv1.0", "version": "TLSv1.2",
            "cipher_suites": _TLS13_SUITES + _TLS12_SUITES,
            "extensions": [
                "server_name",
                {"supported_groups": [group, "x25519", "secp256r1"]},
                {"ec_point_formats": ["uncompressed"]},
                {"signature_algorithms": _SIGALGS[:6]},
                {"supported_versions": ["TLSv1.3", "TLSv1.2"]},
                {"psk_key_exchange_modes": ["psk_dhe_ke"]},
                {"key_share": [group]},
                "extended_master_secret",
                "renegotiation_info",
            ],
        },
        "transport": transport,
    }


PROFILES: tuple[dict[str, Any], ...] = (
    _legacy("lab-tls1.1-scsv", "TLSv1.1",
            "TLS 1.1 maximum with TLS_FALLBACK_SCSV: a client retrying lower after a failure",
            scsv=True),
    _legacy("lab-tls1.2-scsv", "TLSv1.2",
            "TLS 1.2 maximum with TLS_FALLBACK_SCSV: a client retrying lower after a failure",
            scsv=True),
    _modern("lab-split-hello", "a small x25519 hello sent as two TCP segments 100 ms apart "
            "(the second starts inside the TLS record)", group="x25519",
            transport={"segment_sizes": [100], "pause_ms": 100}),
    # the SNI name starts 106 bytes into this hello: a record boundary at 110 cuts it
    _modern("lab-split-records", "a small x25519 hello in two TLS records (one TCP "
            "segment), the first ending 4 bytes into the server name", group="x25519",
            transport={"record_sizes": [110]}),
    _modern("lab-mlkem-small-segments", "an X25519MLKEM768 hello (~1.8 kB) sent in TCP "
            "segments of 600 bytes", group="X25519MLKEM768",
            transport={"segment_sizes": [600, 600, 600, 600]}),
)


def write_profiles(directory: Path) -> Path:
    """Write every lab profile into ``directory`` (for ``$PROBER_PROFILES``)."""
    directory.mkdir(parents=True, exist_ok=True)
    for doc in PROFILES:
        (directory / f"{doc['name']}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return directory
