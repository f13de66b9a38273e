"""Server configurations written from what a named policy's publisher says, for nginx and
HAProxy, and what OpenSSL itself says such a server can serve.

Independent of the catalog code (``prober.policy.naming`` and
``scripts/build_mozilla_catalog.py``): AWS ELB policies are transcribed here from AWS's
"Protocols by policy" / "Ciphers by policy" tables (``AWS_ELB``; ``aws_published`` reads
the same table fields for the full matrix), Mozilla configurations are derived from the
published guideline files the way Mozilla's ssl-config-generator renders them
(``mozilla``). What a configured server can serve comes from ``openssl ciphers -s -V``, the
server library's own expansion of the configured string.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from prober.wire import registry as reg

REPO = Path(__file__).resolve().parents[2]
GUIDELINES = REPO / "prober" / "data" / "mozilla_guidelines"
_VERSIONS = ("TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1.0", "SSLv3")
_NGINX = {"TLSv1.0": "TLSv1", "TLSv1.1": "TLSv1.1", "TLSv1.2": "TLSv1.2", "TLSv1.3": "TLSv1.3",
          "SSLv3": "SSLv3"}
_FLAG = {"TLSv1.3": "-tls1_3", "TLSv1.2": "-tls1_2", "TLSv1.1": "-tls1_1", "TLSv1.0": "-tls1"}
# the OpenSSL this machine's servers run: the generator's "OpenSSL < 3.5" condition
OPENSSL = tuple(int(x) for x in re.findall(
    r"\d+", subprocess.run(["openssl", "version"], capture_output=True, text=True,
                           check=True).stdout)[:2])
# the certificate set-ups of the tests: what the servers hold
CERTS = ("rsa", "ecdsa", "both")
_AUTH = {"rsa": {"RSA"}, "ecdsa": {"ECDSA"}, "ecdsa384": {"ECDSA"}, "both": {"RSA", "ECDSA"}}


@dataclass(frozen=True)
class PolicyConfig:
    """One policy as a server configuration."""

    name: str  # the catalog name it should be named as
    protocols: tuple[str, ...]  # newest first, as published (SSLv3 included if it is)
    ciphers: tuple[str, ...]  # TLS <= 1.2, OpenSSL names, in the published order
    tls13: tuple[str, ...] = ()  # TLS 1.3 suites in order (() = none published)
    groups: tuple[str, ...] | None = None  # OpenSSL group names; None = the server's own
    server_order: bool = True
    source: str = ""
    # what the publisher's generator leaves out on this library (documented conditions)
    left_out: tuple[str, ...] = field(default=(), compare=False)

    @property
    def legacy(self) -> tuple[str, ...]:
        return tuple(v for v in self.protocols if v != "TLSv1.3")

    @property
    def dh(self) -> bool:
        return any(c.startswith(("DHE-", "EDH-")) for c in self.ciphers)

    @property
    def cipher_string(self) -> str:
        s = ":".join(self.ciphers)
        # OpenSSL 3 serves TLS 1.0/1.1 (SHA-1 signatures) only at security level 0; the
        # Mozilla generator writes the same for OpenSSL 3
        return "@SECLEVEL=0:" + s if {"TLSv1.1", "TLSv1.0", "SSLv3"} & set(self.protocols) \
            else s

    def key(self) -> tuple[Any, ...]:
        """What makes two configurations the same server."""
        return (self.protocols, self.ciphers, self.tls13, self.groups, self.server_order)


def _aws(name: str, protocols: str, ciphers: str, tls13: str = "") -> PolicyConfig:
    return PolicyConfig(name, tuple(protocols.split()), tuple(ciphers.split(":")),
                        tuple(tls13.split(":")) if tls13 else (),
                        source="AWS ELB 'Ciphers by policy' table")


_TLS13 = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
_GCM = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384")
_2016 = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA256:"
         "ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"
         "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-SHA384:"
         "ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:"
         "AES128-GCM-SHA256:AES128-SHA256:AES128-SHA:AES256-GCM-SHA384:AES256-SHA256:AES256-SHA")

# six ELB policies, transcribed from AWS's tables (protocols; ciphers in the table's order)
AWS_ELB = {c.name: c for c in (
    _aws("ELBSecurityPolicy-FS-1-2-Res-2020-10", "TLSv1.2", _GCM),
    _aws("ELBSecurityPolicy-2016-08", "TLSv1.2 TLSv1.1 TLSv1.0", _2016),
    _aws("ELBSecurityPolicy-TLS-1-2-Ext-2018-06", "TLSv1.2", _2016),
    _aws("ELBSecurityPolicy-FS-1-1-2019-08", "TLSv1.2 TLSv1.1",
         "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA256:"
         "ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"
         "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
         "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES256-SHA:"
         "ECDHE-ECDSA-AES256-SHA"),
    _aws("ELBSecurityPolicy-TLS13-1-2-2021-06", "TLSv1.3 TLSv1.2",
         "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-SHA256:"
         "ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
         "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384", _TLS13),
    _aws("ELBSecurityPolicy-TLS13-1-2-Res-2021-06", "TLSv1.3 TLSv1.2", _GCM, _TLS13),
)}


def aws_published(entry: dict[str, Any]) -> PolicyConfig | None:
    """An ELB entry's published fields (protocols, ciphers in table order, TLS 1.3 suites,
    groups where given) as a configuration; None when the table does not give them."""
    if entry.get("protocols") is None or entry.get("ciphers") is None:
        return None
    protocols = tuple(entry["protocols"])
    tls13 = tuple(entry.get("tls13_ciphersuites") or ())
    if "TLSv1.3" in protocols and not tls13:
        return None
    groups = entry.get("groups")
    return PolicyConfig(entry["name"], protocols, tuple(entry["ciphers"]), tls13,
                        tuple(groups) if groups else None, source=entry.get("source", ""))


# --- Mozilla: the guideline files as the generator renders them -------------------------

def guideline(version: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((GUIDELINES / f"{version}.json").read_text())
    return doc


def guideline_versions() -> list[str]:
    return sorted((f.stem for f in GUIDELINES.glob("[0-9]*.json")),
                  key=lambda v: tuple(map(int, v.split("."))))


def mozilla(version: str, level: str) -> PolicyConfig:
    """Mozilla's configuration ``level`` of guideline ``version`` for this machine's OpenSSL,
    as ssl-config-generator renders it: protocols, the OpenSSL cipher list, TLS 1.3
    suites, ``tls_curves`` (without X25519MLKEM768 below OpenSSL 3.5, as the generator
    does), server order as ``server_preferred_order`` says (guideline 4.0 predates the
    field; its generator always set server order)."""
    cfg = guideline(version)["configurations"][level]
    if isinstance(cfg.get("ciphers"), dict):
        ciphers, tls13 = cfg["ciphers"]["openssl"], cfg["ciphersuites"]
    elif "openssl_ciphers" in cfg:
        ciphers, tls13 = cfg["openssl_ciphers"], cfg["openssl_ciphersuites"]
    else:  # 4.0 calls its TLS <= 1.2 list "ciphersuites"
        ciphers, tls13 = cfg["ciphersuites"], []
    protocols = tuple(sorted(({"TLSv1": "TLSv1.0"}.get(v, v) for v in cfg["tls_versions"]),
                             key=_VERSIONS.index))
    groups = list(cfg["tls_curves"])
    left_out: tuple[str, ...] = ()
    if OPENSSL < (3, 5) and "X25519MLKEM768" in groups:
        groups.remove("X25519MLKEM768")
        left_out = ("X25519MLKEM768",)
    return PolicyConfig(f"mozilla-{level}-{version}", protocols, tuple(ciphers), tuple(tls13),
                        tuple(groups), bool(cfg.get("server_preferred_order", True)),
                        f"Mozilla guideline {version} ({level})", left_out)


def mozilla_all() -> list[PolicyConfig]:
    return [mozilla(v, lvl) for v in guideline_versions()
            for lvl in ("modern", "intermediate", "old")
            if lvl in guideline(v)["configurations"]]


def prescribed_cert(version: str, level: str) -> str:
    """The certificate set-up a guideline level prescribes (rsa, ecdsa or both)."""
    types = set(guideline(version)["configurations"][level]["certificate_types"])
    return "both" if types == {"rsa", "ecdsa"} else types.pop()


# --- servers ------------------------------------------------------------------------------

def nginx_kwargs(cfg: PolicyConfig, cert: str, dhparam: Path) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "protocols": " ".join(_NGINX[v] for v in reversed(cfg.protocols)), "cert": cert,
        "prefer_server_ciphers": cfg.server_order,
        "ecdh_curve": ":".join(cfg.groups) if cfg.groups else None}
    if cfg.ciphers:  # a TLS 1.3-only policy keeps nginx's default (it is not used)
        kw["ciphers"] = cfg.cipher_string
    if cfg.tls13:
        kw["conf_commands"] = {"Ciphersuites": ":".join(cfg.tls13)}
    if cfg.dh:
        kw["extra_ssl"] = f"ssl_dhparam {dhparam};"
    return kw


def haproxy_kwargs(cfg: PolicyConfig, cert: str, dhparam: Path) -> dict[str, Any]:
    lo, hi = cfg.protocols[-1], cfg.protocols[0]
    return {"cert": cert, "ciphers": cfg.cipher_string if cfg.ciphers else None,
            "ciphersuites": ":".join(cfg.tls13) if cfg.tls13 else None,
            "curves": ":".join(cfg.groups) if cfg.groups else None,
            "min_version": lo, "max_version": hi,
            "prefer_client_ciphers": not cfg.server_order,
            "global_lines": [f"ssl-dh-param-file {dhparam}"] if cfg.dh else []}


# --- what OpenSSL says such a server serves -------------------------------------------------

@cache
def _expand(string: str, version: str) -> tuple[tuple[str, str, str], ...]:
    """(IANA name, Kx, Au) of what ``string`` enables at ``version``, in OpenSSL's order."""
    argv = ["openssl", "ciphers", "-V", "-s", _FLAG[version]]
    if version == "TLSv1.3":
        argv += ["-ciphersuites", string, "ALL"]
    else:
        argv.append(string)
    r = subprocess.run(argv, capture_output=True, text=True, check=False)
    out = []
    for hi, lo, kx, au in re.findall(
            r"0x([0-9A-F]{2}),0x([0-9A-F]{2}) - \S+\s+\S+\s+Kx=(\S+)\s+Au=(\S+)", r.stdout):
        out.append((reg.suite_name(int(hi, 16) << 8 | int(lo, 16)), kx, au))
    return tuple(out)


def servable(cfg: PolicyConfig, cert: str) -> dict[str, list[str]]:
    """Per version this OpenSSL speaks, the suites (IANA) a server configured with ``cfg``
    and certificate set-up ``cert`` serves, in OpenSSL's order (DH parameters given)."""
    out: dict[str, list[str]] = {}
    for v in cfg.protocols:
        if v == "SSLv3":
            continue  # OpenSSL 3 has no SSLv3
        if v == "TLSv1.3":
            names = [n for n, _kx, _au in _expand(":".join(cfg.tls13), v)] if cfg.tls13 else []
        else:
            names = [n for n, _kx, au in _expand(cfg.cipher_string, v)
                     if au in _AUTH[cert] | {"None"}]
        if names:
            out[v] = names
    return out


def published(cfg: PolicyConfig, cert: str) -> set[str]:
    """The published TLS <= 1.2 suites (IANA) a server holding ``cert`` could serve: those
    whose authentication is one of its key types (anonymous ones need none)."""
    out = set()
    for c in cfg.ciphers:
        cs = reg.suite(reg.suite_value(c))
        assert cs is not None, c
        if cs.auth in _AUTH[cert] | {"anon"}:
            out.add(cs.name)
    return out


def _label(iana: str) -> str:
    return reg.suite_openssl_name(reg.suite_value(iana)) or iana


def expected_verdict(cfg: PolicyConfig, cert: str) -> tuple[str | None, set[str]]:
    """What the catalog match should say of a server configured with ``cfg`` holding
    ``cert``, from OpenSSL's expansion and the published definition alone:
    ("equal" | "equal-as-applicable" | None, what a not-named verdict lacks)."""
    srv = servable(cfg, cert)
    pub = published(cfg, cert)
    legacy = {s for v, ss in srv.items() if v != "TLSv1.3" for s in ss}
    # the versions the published suites for this certificate reach
    reach = [v for v in cfg.legacy if any(
        v in reg.suite(reg.suite_value(s)).tls_versions for s in pub)]  # type: ignore[union-attr]
    reach += ["TLSv1.3"] if cfg.tls13 else []
    missing = {_label(s) for s in pub - legacy}
    missing |= {f"TLS 1.3 suite {s}" for s in set(cfg.tls13) - set(srv.get("TLSv1.3", []))}
    missing |= {"SSL 3.0" if v == "SSLv3" else f"TLS {v[4:]}" for v in reach if v not in srv}
    if missing or legacy - pub:
        return None, missing
    everything = {reg.suite_name(reg.suite_value(c)) for c in cfg.ciphers}
    strict = pub == everything and set(reach) == set(cfg.protocols) and not cfg.left_out
    return ("equal" if strict else "equal-as-applicable"), set()
