"""The log-format reference (``prober/data/log_formats.json``) as the parsers need it.

Field positions, enum values, error codes and the server reason tables are read from
the data file rather than retyped here, so a correction to the reference reaches the
parsers. Everything is loaded once, lazily.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@cache
def _data() -> dict[str, Any]:
    text = resources.files("prober.data").joinpath("log_formats.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _format(key: str) -> dict[str, Any]:
    fmt: dict[str, Any] = _data()["formats"][key]
    return fmt


def _server(key: str) -> dict[str, Any]:
    srv: dict[str, Any] = _data()["server_tls_error_logs"][key]
    return srv


@dataclass(frozen=True)
class Positions:
    """0-based index of each named field of a positional format, and the field count
    of its oldest documented revision (lines shorter than that are malformed)."""

    index: dict[str, int]
    min_fields: int
    enums: dict[str, tuple[str, ...]]

    def __getitem__(self, name: str) -> int:
        return self.index[name]


def _positions(key: str, min_key: str) -> Positions:
    fmt = _format(key)
    index = {f["name"]: f["pos"] - 1 for f in fmt["fields"] if isinstance(f.get("pos"), int)}
    enums = {f["name"]: tuple(f["values"]) for f in fmt["fields"] if f.get("values")}
    return Positions(index, int(fmt["field_count"][min_key]), enums)


@cache
def alb_connection() -> Positions:
    return _positions("aws_alb_connection_log", "first_release_2023")


@cache
def alb_access() -> Positions:
    return _positions("aws_alb_access_log", "doc_2023")


@cache
def nlb_access() -> Positions:
    return _positions("aws_nlb_access_log", "doc_2023")


@cache
def classic_elb_access() -> Positions:
    return _positions("aws_classic_elb_access_log", "doc")


@cache
def cloudfront_fields() -> tuple[str, ...]:
    """CloudFront standard-log field names in the documented order: the order of a file
    without a ``#Fields`` line."""
    fields = _format("aws_cloudfront_standard_log")["fields"]
    return tuple(f["name"] for f in sorted(fields, key=lambda f: f["pos"]))


@cache
def alb_error_codes() -> dict[str, str]:
    """``tls_verify_status`` codes after ``Failed:`` -> what AWS says they mean."""
    codes: dict[str, str] = _format("aws_alb_connection_log")["error_codes"]
    return dict(codes)


@cache
def vpc_field_names() -> tuple[str, ...]:
    """Every documented flow-log field name, default-format fields first."""
    return tuple(f["name"] for f in _format("aws_vpc_flow_log")["fields"])


@cache
def vpc_default_fields() -> tuple[str, ...]:
    return parse_vpc_fields(_format("aws_vpc_flow_log")["default_format"])


def parse_vpc_fields(spec: str) -> tuple[str, ...]:
    """``${version} ${srcaddr} ...`` (the console/API form) or ``version srcaddr ...``
    (the header line AWS writes) -> field names."""
    return tuple(tok.removeprefix("${").removesuffix("}") for tok in spec.split())


@cache
def tcp_flag_bits() -> dict[str, int]:
    bits: dict[str, int] = _format("aws_vpc_flow_log")["tcp_flags"]["bits"]
    return dict(bits)


@cache
def go_alert_texts() -> dict[str, int]:
    """Go's wording of each TLS alert (``remote error: tls: <text>``) -> alert number."""
    texts: dict[str, str] = _server("go_net_http")["alert_texts_go"]
    return {text: int(num) for num, text in texts.items()}


@cache
def haproxy_messages() -> dict[str, str]:
    """HAProxy connection-error text (legacy line and ``fc_err_str``) -> its name
    (``SSL_HANDSHAKE``, ``SSL_EMPTY``...): the ids shift between versions, texts do not."""
    return {m["text"]: m["name"] for m in _server("haproxy")["messages_fc_err"]}


@cache
def haproxy_error_ids() -> dict[int, str]:
    """``fc_err`` number -> name, as numbered by the documented HAProxy version (the
    numbering shifts between versions: only a fallback when no text was logged)."""
    return {m["id"]: m["name"] for m in _server("haproxy")["messages_fc_err"]
            if isinstance(m.get("id"), int)}


@cache
def openssl_reasons() -> dict[int, str]:
    """OpenSSL 3 SSL-library reason number -> reason text (``no shared cipher``)."""
    return {int(r["reason"]): r["text"] for r in _data()["openssl3_ssl_reasons"]["reasons"]}


@cache
def observed_lines(server: str) -> dict[str, list[str]]:
    """Verbatim lab lines of a server (``go_net_http``, ``nginx``, ``haproxy``) by probe
    name; HAProxy's error-log-format lines are under ``<probe>@error-log-format``."""
    out: dict[str, list[str]] = {}
    srv = _server(server)
    for key, suffix in (("observed", ""), ("observed_legacy", ""),
                        ("observed_error_log_format", "@error-log-format")):
        for entry in srv.get(key, []):
            out.setdefault(entry["probe"] + suffix, []).extend(entry["lines"])
    return out


def examples(key: str) -> list[dict[str, str]]:
    """The verbatim example lines of a format (``aws_alb_connection_log``...)."""
    return list(_format(key)["examples"])
