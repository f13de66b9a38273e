"""Build the Mozilla entries of the policy catalog from Mozilla's published guideline files.

    python scripts/build_mozilla_catalog.py [--guidelines DIR] [--out FILE] [--check]

DIR holds the guideline JSON files as mozilla/ssl-config-generator publishes them
(``4.0.json``, ``5.0.json`` … ``6.0.json``) and a ``sources.json`` naming the commit each
came from (default: the copy vendored in ``prober/data/mozilla_guidelines``). FILE is the
catalog file written (default ``prober/data/policies/mozilla.json``). ``--check`` writes
nothing and exits 1 when FILE differs from what DIR builds (``tests/policy/
test_catalog_build.py`` runs the same comparison).

One entry per (guideline version, configuration level): protocols, TLS 1.3 suites, the
OpenSSL cipher list in Mozilla's order with its IANA names, groups, certificate types and
the rest of the level's fields. Three published layouts are read: 4.0 (``ciphersuites``
holds the TLS <= 1.2 OpenSSL list, no TLS 1.3), 5.0 (``openssl_ciphers`` and
``openssl_ciphersuites``) and 5.1+ (``ciphers`` with ``openssl`` and ``iana`` lists,
``ciphersuites`` for TLS 1.3).

Library-condition variants: the generator (``src/js/state.js``) leaves ``X25519MLKEM768``
out of the groups it configures when the server's OpenSSL is older than 3.5, so an entry
whose groups name it gets a ``variants`` item without it. That is the only condition the
publisher documents that changes what an endpoint shows; nothing else is inferred.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prober.wire import registry as reg  # noqa: E402

DEFAULT_GUIDELINES = REPO / "prober" / "data" / "mozilla_guidelines"
DEFAULT_OUT = REPO / "prober" / "data" / "policies" / "mozilla.json"
LEVELS = ("modern", "intermediate", "old")
# the guideline files spell TLS 1.0 "TLSv1"; the catalog spells versions as the registry
_VERSION = {"TLSv1": "TLSv1.0"}
_VERSION_ORDER = ("TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1.0", "SSLv3")
# what the generator's state.js leaves out below OpenSSL 3.5 (its own comment names the
# other hybrids as a possible future filter; today only this one is filtered)
PQ_GROUP = "X25519MLKEM768"
PQ_VARIANT = {
    "id": "openssl-below-3.5",
    "label": "without X25519MLKEM768 (Mozilla's generator, OpenSSL < 3.5)",
    "condition": "OpenSSL older than 3.5",
    "why": ("Mozilla's ssl-config-generator leaves X25519MLKEM768 out of the configured "
            "groups when the server's OpenSSL is older than 3.5"),
    "source": "github mozilla/ssl-config-generator src/js/state.js (858f8f74, 2026-05-03)",
}
# copied from the levels as published, after the fields the catalog derives
_COPIED = ("certificate_types", "certificate_curves", "certificate_signatures",
           "rsa_key_size", "dh_param_size", "ecdh_param_size", "server_preferred_order",
           "hsts_min_age", "oldest_clients", "ocsp_staple", "maximum_certificate_lifespan",
           "recommended_certificate_lifespan")


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def _iana(openssl_names: list[str], where: str) -> list[str]:
    out = []
    for n in openssl_names:
        try:
            out.append(reg.suite_name(reg.suite_value(n)))
        except KeyError:
            raise SystemExit(f"{where}: cipher {n!r} is in no registry") from None
    return out


def _level_parts(cfg: dict[str, Any]) -> tuple[list[str], list[str], list[str] | None]:
    """(TLS 1.3 suites, TLS <= 1.2 OpenSSL names, Mozilla's IANA list or None) of one level,
    whichever of the three published layouts it uses."""
    ciphers = cfg.get("ciphers")
    if isinstance(ciphers, dict):  # 5.1 and later
        return list(cfg["ciphersuites"]), list(ciphers["openssl"]), list(ciphers["iana"])
    if "openssl_ciphers" in cfg:  # 5.0
        return list(cfg["openssl_ciphersuites"]), list(cfg["openssl_ciphers"]), None
    # 4.0: "ciphersuites" is the TLS <= 1.2 list and there is no TLS 1.3
    return [], list(cfg["ciphersuites"]), None


def build_entry(version: str, level: str, cfg: dict[str, Any], src: dict[str, str],
                latest: bool) -> dict[str, Any]:
    where = f"{version}.json {level}"
    tls13, openssl, iana_published = _level_parts(cfg)
    protocols = sorted((_VERSION.get(v, v) for v in cfg["tls_versions"]),
                       key=_VERSION_ORDER.index)
    groups = list(cfg["tls_curves"])
    entry: dict[str, Any] = {
        "name": f"mozilla-{level}-{version}",
        "provider": "mozilla",
        "protocols": protocols,
        "tls13_ciphersuites": tls13,
        "ciphers": openssl,
        "ciphers_iana": _iana(openssl, where),
        "groups": groups,
        "notes": (f"Mozilla Server Side TLS guideline {version}, \"{level}\" configuration. "
                  "groups use Mozilla/OpenSSL spellings (prime256v1 = secp256r1)."),
        "source": (f"github mozilla/ssl-config-generator src/static/guidelines/{version}.json "
                   f"({src['commit']} {src['date']}); "
                   f"https://ssl-config.mozilla.org/guidelines/{version}.json"),
        "confidence": "documented",
    }
    if iana_published is not None:
        entry["ciphers_iana_as_published"] = iana_published
    entry.update(guideline_version=version, level=level, latest=latest)
    for k in _COPIED:
        if k in cfg:
            entry[k] = cfg[k]
    entry.setdefault("certificate_curves", None)
    if PQ_GROUP in groups:
        entry["variants"] = [{**PQ_VARIANT, "name": f"{entry['name']} {PQ_VARIANT['label']}",
                              "groups": [g for g in groups if g != PQ_GROUP]}]
    return entry


def build(guidelines: Path) -> dict[str, Any]:
    """The whole catalog document (``_meta`` and ``policies``) built from ``guidelines``."""
    sources = json.loads((guidelines / "sources.json").read_text(encoding="utf-8"))
    docs = {f.stem: json.loads(f.read_text(encoding="utf-8"))
            for f in guidelines.glob("*.json") if f.stem[:1].isdigit()}
    versions = sorted(docs, key=_version_key)
    if not versions:
        raise SystemExit(f"{guidelines}: no guideline files")
    missing = [v for v in versions if v not in sources["files"]]
    if missing:
        raise SystemExit(f"{guidelines}/sources.json: no entry for {', '.join(missing)}")
    # "latest" marks the newest guideline that defines each level (6.0 has no "old")
    newest = {lvl: max((v for v in versions if lvl in docs[v]["configurations"]),
                       key=_version_key) for lvl in LEVELS}
    policies = [build_entry(v, lvl, docs[v]["configurations"][lvl], sources["files"][v],
                            newest[lvl] == v)
                for v in versions for lvl in LEVELS if lvl in docs[v]["configurations"]]
    copied = sources["copied_at"]
    return {
        "_meta": {
            "provider": "Mozilla Server Side TLS guidelines (ssl-config.mozilla.org)",
            "latest_version": versions[-1],
            "notes": [
                f"Built by scripts/build_mozilla_catalog.py from the guideline files in "
                f"prober/data/mozilla_guidelines (a copy of {sources['repository']} "
                f"{sources['path']} at {copied['commit']}, {copied['date']}); do not edit "
                "by hand.",
                "Every guideline version and every level it defines is an entry, so an "
                "endpoint can be matched to an older guideline; the newest guideline "
                "defining a level has latest=true.",
                "variants: library conditions the publisher documents that change what an "
                "endpoint shows (the generator leaves X25519MLKEM768 out below OpenSSL 3.5).",
                "Mozilla recommends ffdhe2048 DH parameters where dh_param_size is set.",
            ],
            "source_repo": f"{sources['repository']} (HEAD {copied['commit']}, {copied['date']})",
        },
        "policies": policies,
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--guidelines", type=Path, default=DEFAULT_GUIDELINES, metavar="DIR")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="FILE")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when FILE differs from what DIR builds; write nothing")
    args = p.parse_args(argv)
    doc = build(args.guidelines)
    if args.check:
        try:
            current = json.loads(args.out.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            print(f"{args.out}: unreadable ({e})", file=sys.stderr)
            return 1
        if current != doc:
            print(f"{args.out} differs from what {args.guidelines} builds; run "
                  "scripts/build_mozilla_catalog.py", file=sys.stderr)
            return 1
        print(f"{args.out}: {len(doc['policies'])} entries, as built")
        return 0
    args.out.write_text(render(doc), encoding="utf-8")
    print(f"wrote {args.out}: {len(doc['policies'])} entries from "
          f"{len({e['guideline_version'] for e in doc['policies']})} guideline versions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
