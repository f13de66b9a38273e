"""`prober logs` and the client population.

Log lines are built here from the field tables of prober/data/log_formats.json (names,
positions, quoting) and its verbatim example lines; the server error lines come from its
lab observations and, further down, from real nginx, HAProxy and Go servers this test
starts and probes with `prober probe`.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from prober.cli.main import main
from prober.logs import formats as logs_formats
from prober.logs import reasons as R
from prober.logs.pipeline import load_population, read_logs
from prober.logs.population import Population
from prober.logs.records import Conn, Flow, LineParser
from prober.logs.servers import GoHttpLog, HaproxyLog, NginxErrorLog
from prober.logs.tally import FileStats, LogSummary, Tally
from prober.logs.vpc import WHY_NO_FIN, WHY_NO_FLAGS, WHY_RST
from tests.peers import Pki, free_port, wait_listening
from tests.peers.lifecycle import poll_until, stop_process

DATA: dict[str, Any] = json.loads(
    resources.files("prober.data").joinpath("log_formats.json").read_text("utf-8"))
FORMATS = DATA["formats"]


# --- building lines from the field tables ----------------------------------------------

def build_line(fmt: str, **values: str) -> str:
    """A line of ``fmt`` with every field at its documented position; fields not given
    get ``-``; fields documented as quoted are quoted. ``client:port`` may be passed as
    ``client_port_``-free keyword ``client``."""
    out = []
    for f in sorted(FORMATS[fmt]["fields"], key=lambda f: f["pos"]):
        key = f["name"].replace(":", "_").replace(" ", "_")
        value = values.pop(key, values.pop(f["name"], "-"))
        out.append(f'"{value}"' if f.get("quoted") else value)
    assert not values, f"unknown fields {values}"
    return " ".join(out)


def conn_line(ip: str, protocol: str = "TLSv1.2", cipher: str = "ECDHE-RSA-AES128-GCM-SHA256",
              status: str = "Success", *, subject: str = "-", port: str = "443",
              t: str = "2024-03-30T18:14:00.000001Z") -> str:
    return build_line(
        "aws_alb_connection_log", timestamp=t, client_ip=ip, client_port="50123",
        listener_port=port, tls_protocol=protocol, tls_cipher=cipher,
        tls_handshake_latency="0.004" if status == "Success" else "-",
        leaf_client_cert_subject=subject, tls_verify_status=status,
        conn_trace_id="TID_0123456789abcdef0123456789abcdef",
        elb="app/my-loadbalancer/50dc6c495c0c9188", ip_address="10.0.1.25")


def access_line(client: str, cipher: str, protocol: str, kind: str = "https") -> str:
    return build_line(
        "aws_alb_access_log", type=kind, time="2024-03-30T18:20:00.000000Z",
        elb="app/my-loadbalancer/50dc6c495c0c9188", client_port=client,
        target_port="10.0.0.1:80", request_processing_time="0.001",
        target_processing_time="0.002", response_processing_time="0.000",
        elb_status_code="200", target_status_code="200", received_bytes="100",
        sent_bytes="200", request="GET https://www.example.com:443/a b HTTP/1.1",
        user_agent="Mozilla/5.0 (X11; Linux x86_64) curl/8.0", ssl_cipher=cipher,
        ssl_protocol=protocol, trace_id="Root=1-58337281-1d84f3d73c47ec4e58577259",
        request_creation_time="2024-03-30T18:19:59.000000Z",
        conn_trace_id="TID_00000000000000000000000000000001")


def nlb_line(client: str, *, hs_time: str = "2", alert: str = "-", cipher: str = "-",
             protocol: str = "-") -> str:
    return build_line(
        "aws_nlb_access_log", type="tls", version="2.0", time="2024-10-25T17:33:59",
        elb="net/my-nlb/c6e77e28c25b2234", listener="g3d4b5e8bb8464cd", client_port=client,
        destination_port="10.0.0.1:443", connection_time="5", tls_handshake_time=hs_time,
        received_bytes="0", sent_bytes="0", incoming_tls_alert=alert,
        tls_cipher=cipher, tls_protocol_version=protocol,
        tls_connection_creation_time="2024-10-25T17:33:58")


def example_lines(fmt: str) -> list[str]:
    return [line for e in FORMATS[fmt]["examples"] for line in e["line"].split("\n")]


def write(path: Path, lines: list[str], *, gz: bool = False) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def groups(s: LogSummary) -> dict[tuple[str | None, str | None], tuple[int, int, int]]:
    """(protocol, OpenSSL suite) -> (connections, failed, client ips)."""
    return {(g.protocol, g.suite_openssl): (g.connections, g.failed, g.client_ips)
            for g in s.population.groups()}


def failures(s: LogSummary) -> dict[str, tuple[int, int]]:
    return {f.reason: (f.connections, f.client_ips) for f in s.failures}


# --- ALB connection log ----------------------------------------------------------------

def test_alb_connection_log_counts(tmp_path: Path) -> None:
    lines = (
        [conn_line("203.0.113.1", "TLSv1.3", "TLS_AES_128_GCM_SHA256")] * 5
        + [conn_line("2001:db8::7")] * 3  # IPv6 client
        + [conn_line(ip, "TLSv1.2", "ECDHE-RSA-AES256-SHA", "Failed:UnmappedConnectionError")
           for ip in ("198.51.100.7", "198.51.100.8") for _ in range(2)]
        + [conn_line("192.0.2.9", "-", "-", "Failed:UnmappedConnectionError")] * 2
        + [conn_line("192.0.2.10", "-", "-", "-", port="80")]  # plain listener
        + [conn_line("192.0.2.11", subject="CN=client one,O=Example Corp")]  # spaces in ""
    )
    corrupt = [lines[0][:40], "\x00\x01 not a log line", conn_line("300.1.2.3")]
    first = write(tmp_path / "conn_log_a.log", lines[:8] + corrupt[:1] + lines[8:], gz=True)
    second = write(tmp_path / "conn_log_b.log.gz", example_lines("aws_alb_connection_log")
                   + corrupt[1:])  # plain text despite its name
    s = read_logs([first, second])

    assert [(f.format, f.compressed, f.lines, f.connections, f.malformed) for f in s.files] == [
        ("alb-conn", True, 17, 15, 1), ("alb-conn", False, 6, 3, 2)]
    assert s.files[0].skipped == {"plain TCP/HTTP listener (no TLS)": 1}
    pop = s.population
    assert (pop.total_connections, pop.failed_connections, pop.client_ips) == (18, 8, 6)
    assert groups(s) == {
        ("TLSv1.3", "TLS_AES_128_GCM_SHA256"): (5, 0, 1),
        ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"): (6, 1, 3),
        ("TLSv1.2", "ECDHE-RSA-AES256-SHA"): (4, 4, 2),
        (None, None): (3, 3, 2),
    }
    g = pop.group("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA")  # IANA name works too
    assert g is not None and g.suite_iana == "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"
    assert failures(s) == {"UnmappedConnectionError": (7, 3), "ClientCertUntrusted": (1, 1)}
    assert s.malformed_total == 3
    assert [(Path(e.path).name, e.line) for e in s.malformed] == [
        ("conn_log_a.log", 9), ("conn_log_b.log.gz", 5), ("conn_log_b.log.gz", 6)]
    assert "fields" in s.malformed[0].why and "not an IP" in s.malformed[2].why
    assert s.files[0].first == "2024-03-30T18:14:00.000001Z"


def test_alb_access_log_requests(tmp_path: Path) -> None:
    lines = ([access_line("192.168.131.39:2817", "ECDHE-RSA-AES128-GCM-SHA256", "TLSv1.2")] * 2
             + [access_line("2001:db8::5:51234", "TLS_AES_128_GCM_SHA256", "TLSv1.3", "h2")]
             + [access_line("10.0.0.9:1234", "-", "-", "http")]
             + example_lines("aws_alb_access_log")
             + ["https 2018-07-02T22:23:00Z app/x 192.168.131.39:2817"])  # cut short
    s = read_logs([write(tmp_path / "access.log", lines)])
    assert s.files[0].format == "alb-access" and s.files[0].units == "requests"
    assert groups(s) == {
        ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"): (4, 0, 2),
        ("TLSv1.3", "TLS_AES_128_GCM_SHA256"): (2, 0, 2),
    }
    assert {c.ip for c in s.population.clients()} == {
        "192.168.131.39", "2001:db8::5", "10.0.1.252", "203.0.113.55"}
    assert s.files[0].skipped == {"request on a listener without TLS": 2}
    assert s.malformed_total == 1 and s.malformed[0].line == 9


def test_connection_and_access_logs_share_groups(tmp_path: Path) -> None:
    # TLS 1.3 suites: IANA names in the access log, the same names in the connection log
    a = write(tmp_path / "c.log", [conn_line("192.0.2.1", "TLSv1.3", "TLS_AES_128_GCM_SHA256")])
    b = write(tmp_path / "a.log", [access_line("192.0.2.2:1", "TLS_AES_128_GCM_SHA256",
                                               "TLSv1.3")])
    assert groups(read_logs([a, b])) == {("TLSv1.3", "TLS_AES_128_GCM_SHA256"): (2, 0, 2)}


def test_nlb_access_log(tmp_path: Path) -> None:
    lines = [
        *example_lines("aws_nlb_access_log"),
        nlb_line("198.51.100.3:4000", hs_time="-", alert="48"),
        nlb_line("[2001:db8::3]:4001", hs_time="-", alert="70"),
        nlb_line("198.51.100.4:4002", cipher="ECDHE-RSA-AES128-GCM-SHA256", protocol="tlsv12"),
    ]
    s = read_logs([write(tmp_path / "nlb.log", lines)])
    assert s.files[0].format == "nlb"
    assert groups(s) == {
        ("TLSv1.2", "ECDHE-RSA-AES128-SHA"): (2, 0, 1),
        ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256"): (1, 0, 1),
        (None, None): (3, 3, 3),
    }
    assert failures(s) == {R.UNSPECIFIED: (1, 1), R.CLIENT_REJECTED_CERT: (1, 1),
                           R.PROTOCOL_VERSION: (1, 1)}


# --- Classic ELB access log, CloudFront standard log -------------------------------------

CLB = "aws_classic_elb_access_log"
CF = "aws_cloudfront_standard_log"
CF_FIELDS = tuple(f["name"] for f in sorted(FORMATS[CF]["fields"], key=lambda f: f["pos"]))
TCP_CONN = "connection on a TCP/SSL listener without TLS fields"
NO_TLS = "request on a listener without TLS"
CF_HEADER = "CloudFront header line (#Version, #Fields)"
CF_PLAIN = "request over plain HTTP (no TLS)"


def elb_line(client: str, cipher: str, protocol: str, *, tcp: bool = False,
             request: str = "GET https://www.example.com:443/a b HTTP/1.1",
             t: str = "2024-03-30T18:30:00.123456Z") -> str:
    """A Classic ELB access-log line; ``tcp``: a TCP/SSL listener's, whose request fields
    are dashes."""
    http = {} if tcp else {"elb_status_code": "200", "backend_status_code": "200"}
    return build_line(
        CLB, time=t, elb="my-loadbalancer", client_port=client, backend_port="10.0.0.1:80",
        request_processing_time="0.000086", backend_processing_time="0.001048",
        response_processing_time="0.001337", received_bytes="0", sent_bytes="57",
        request="- - - " if tcp else request,
        user_agent="-" if tcp else "Mozilla/5.0 (X11; Linux x86_64) curl/8.0",
        ssl_cipher=cipher, ssl_protocol=protocol, **http)


def cf_header(fields: tuple[str, ...] = CF_FIELDS) -> list[str]:
    version = example_lines(CF)[0]
    assert version == "#Version: 1.0"
    return [version, "#Fields: " + " ".join(fields)]


def cf_line(ip: str, protocol: str, cipher: str, *, scheme: str = "https",
            fields: tuple[str, ...] = CF_FIELDS, time: str = "18:40:00", xff: str = "-") -> str:
    """The JSON's HTTPS example line with another viewer, protocol and cipher, its fields
    in the order ``fields``."""
    example = next(line for line in example_lines(CF) if not line.startswith("#"))
    values = dict(zip(CF_FIELDS, example.split("\t"), strict=True))
    values.update({"c-ip": ip, "cs-protocol": scheme, "ssl-protocol": protocol,
                   "ssl-cipher": cipher, "date": "2024-03-30", "time": time,
                   "x-forwarded-for": xff})
    return "\t".join(values[name] for name in fields)


def clients(s: LogSummary) -> dict[str, int]:
    return {c.ip: c.connections for c in s.population.clients()}


def test_classic_elb_access_log(tmp_path: Path) -> None:
    gcm = "ECDHE-RSA-AES128-GCM-SHA256"
    lines = ([elb_line("192.0.2.10:5000", gcm, "TLSv1.2")] * 4
             + [elb_line("2001:db8::10:5001", gcm, "TLSv1.2")] * 2  # IPv6, no brackets
             + [elb_line("[2001:db8::11]:5002", "ECDHE-RSA-AES256-GCM-SHA384", "TLSv1.2")]
             + [elb_line("198.51.100.20:5003", "ECDHE-RSA-AES128-SHA", "TLSv1")] * 2
             # SSL listener: TLS fields, request fields dashes
             + [elb_line("198.51.100.21:5004", "ECDHE-RSA-AES256-SHA", "TLSv1.1", tcp=True)] * 3
             + [elb_line("198.51.100.22:5005", "-", "-", tcp=True)]  # TCP listener
             + [elb_line("198.51.100.23:5006", "-", "-",
                         request="GET http://www.example.com:80/ HTTP/1.1")])  # HTTP listener
    corrupt = [lines[0][:60], elb_line("300.1.2.3:5007", "AES128-SHA", "TLSv1.2"),
               access_line("192.0.2.9:1", "AES128-SHA", "TLSv1.2")]
    first = write(tmp_path / "elb_a.log", lines[:5] + corrupt[:1] + lines[5:], gz=True)
    second = write(tmp_path / "elb_b.log", example_lines(CLB) + corrupt[1:])
    s = read_logs([first, second])

    assert [(f.format, f.compressed, f.lines, f.connections, f.malformed, f.units)
            for f in s.files] == [("classic-elb", True, 15, 12, 1, "requests"),
                                  ("classic-elb", False, 5, 2, 2, "requests")]
    assert s.files[0].skipped == {TCP_CONN: 1, NO_TLS: 1}
    assert s.files[1].skipped == {TCP_CONN: 1}
    pop = s.population
    assert (pop.total_connections, pop.failed_connections, pop.client_ips) == (14, 0, 6)
    assert groups(s) == {
        ("TLSv1.2", gcm): (6, 0, 2),
        ("TLSv1.1", "ECDHE-RSA-AES256-SHA"): (3, 0, 1),
        ("TLSv1.0", "ECDHE-RSA-AES128-SHA"): (2, 0, 1),  # logged as TLSv1
        ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384"): (1, 0, 1),
        ("TLSv1.2", "DHE-RSA-AES128-SHA"): (1, 0, 1),  # the AWS examples
        ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256"): (1, 0, 1),
    }
    assert clients(s) == {"192.0.2.10": 4, "2001:db8::10": 2, "2001:db8::11": 1,
                          "198.51.100.20": 2, "198.51.100.21": 3, "192.168.131.39": 2}
    assert s.failures == []
    assert s.malformed_total == 3
    assert [(Path(e.path).name, e.line) for e in s.malformed] == [
        ("elb_a.log", 6), ("elb_b.log", 4), ("elb_b.log", 5)]
    assert s.malformed[0].why == "3 fields, a Classic ELB access-log line has at least 15"
    assert s.malformed[1].why == "'300.1.2.3:5007' is not address:port"
    assert s.malformed[2].why == "time 'https' is not ISO 8601"  # an ALB access-log line
    assert (s.files[0].first, s.files[1].first) == ("2024-03-30T18:30:00.123456Z",
                                                    "2015-05-13T23:39:43.945958Z")


def test_cloudfront_standard_log(tmp_path: Path) -> None:
    gcm = "ECDHE-RSA-AES128-GCM-SHA256"
    body = ([cf_line("203.0.113.1", "TLSv1.3", "TLS_AES_128_GCM_SHA256")] * 5
            + [cf_line("2001:db8::20", "TLSv1.2", gcm, scheme="wss")] * 3
            + [cf_line("203.0.113.2", "TLSv1.2", gcm, xff="")]  # an empty field
            + [cf_line("198.51.100.30", "-", "-", scheme="http")] * 2)
    first = write(tmp_path / "E2EXAMPLE.2024-03-30-18.a.gz", [
        *cf_header(), *body[:5], "\t".join(body[0].split("\t")[:9]), *body[5:],
        cf_line("not-an-ip", "TLSv1.2", gcm), body[0].replace("\t", " ")], gz=True)

    # another field order: the #Fields line decides it
    order = CF_FIELDS[::-1]
    second = write(tmp_path / "E2EXAMPLE.2024-03-30-19.b", [
        *cf_header(order),
        *[cf_line("198.51.100.31", "TLSv1.1", "ECDHE-RSA-AES128-SHA", fields=order,
                  time=f"19:0{i}:00") for i in range(4)],
        *[cf_line("2001:db8::21", "TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256", fields=order,
                  time="19:30:00")] * 2,
        cf_line("198.51.100.32", "-", "-", scheme="http", fields=order),
        cf_line("198.51.100.33", "TLSv1.2", gcm),  # the documented order: wrong here
        "#Fields: date time c-ip",
        "2024-03-30\t19:40:00\t192.0.2.1",
    ])
    third = write(tmp_path / "aws-doc.log", [*example_lines(CF), "#Remark: not CloudFront"])
    s = read_logs([first, second, third])

    assert [(f.format, f.compressed, f.lines, f.connections, f.malformed, f.units)
            for f in s.files] == [("cloudfront", True, 16, 9, 3, "requests"),
                                  ("cloudfront", False, 12, 6, 2, "requests"),
                                  ("cloudfront", False, 5, 1, 1, "requests")]
    assert [dict(f.skipped) for f in s.files] == [{CF_HEADER: 2, CF_PLAIN: 2},
                                                  {CF_HEADER: 3, CF_PLAIN: 1},
                                                  {CF_HEADER: 2, CF_PLAIN: 1}]
    assert groups(s) == {
        ("TLSv1.3", "TLS_AES_128_GCM_SHA256"): (5, 0, 1),
        ("TLSv1.2", gcm): (5, 0, 3),
        ("TLSv1.1", "ECDHE-RSA-AES128-SHA"): (4, 0, 1),
        ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256"): (2, 0, 1),
    }
    assert clients(s) == {"203.0.113.1": 5, "2001:db8::20": 3, "203.0.113.2": 1,
                          "198.51.100.31": 4, "2001:db8::21": 2, "192.0.2.100": 1}
    assert [(Path(e.path).name, e.line, e.why) for e in s.malformed] == [
        ("E2EXAMPLE.2024-03-30-18.a.gz", 8, "9 tab-separated fields, the #Fields line names 33"),
        ("E2EXAMPLE.2024-03-30-18.a.gz", 15, "c-ip 'not-an-ip' is not an IP address"),
        ("E2EXAMPLE.2024-03-30-18.a.gz", 16, "1 tab-separated fields, the #Fields line names 33"),
        ("E2EXAMPLE.2024-03-30-19.b", 10, "date '-' is not YYYY-MM-DD"),
        ("E2EXAMPLE.2024-03-30-19.b", 12, "the #Fields line has no ssl-protocol, ssl-cipher"),
        ("aws-doc.log", 5, "a # line that is not #Version or #Fields"),
    ]
    assert s.malformed_total == 6
    assert [(f.first, f.last) for f in s.files] == [
        ("2024-03-30T18:40:00Z", "2024-03-30T18:40:00Z"),
        ("2024-03-30T19:00:00Z", "2024-03-30T19:30:00Z"),
        ("2019-12-04T21:02:31Z", "2019-12-04T21:02:31Z")]


def test_detection_of_aws_formats() -> None:
    from prober.cli.logs import FORMAT_CHOICES
    from prober.logs import detect as logs_detect

    tests = logs_detect.detectors()
    for key, fmt in (("aws_alb_connection_log", "alb-conn"), ("aws_alb_access_log", "alb-access"),
                     ("aws_nlb_access_log", "nlb"), (CLB, "classic-elb"), (CF, "cloudfront")):
        lines = example_lines(key)
        assert logs_detect.detect(lines) == fmt, key
        # no example line of one AWS format looks like another
        assert {name for line in lines for name, test in tests.items() if test(line)} == {fmt}
    # the JSON's #Fields line is the documented field list
    assert example_lines(CF)[1] == cf_header()[1]
    # corrupt lines first; CloudFront data lines without a header, in another order
    tcp = elb_line("[2001:db8::1]:80", "-", "-", tcp=True)
    assert logs_detect.detect(["\x00garbage", "2024-03-30T18:30:00Z x", tcp, tcp]) == (
        "classic-elb")
    assert logs_detect.detect(["#", *[cf_line("192.0.2.1", "-", "-", scheme="http",
                                              fields=CF_FIELDS[::-1])] * 3]) == "cloudfront"
    assert ("auto", *logs_detect.FORMATS) == FORMAT_CHOICES


def test_command_request_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elb = write(tmp_path / "elb.log", [elb_line("192.0.2.1:1", "AES128-SHA", "TLSv1.2"),
                                       "2024-03-30T18:30:00.123456Z my-loadbalancer"])
    cf = write(tmp_path / "cf.log", [*cf_header(), cf_line("192.0.2.2", "TLSv1.3",
                                                           "TLS_AES_256_GCM_SHA384")], gz=True)
    assert main(["logs", str(elb), str(cf)]) == 0
    text = capsys.readouterr().out
    assert ("Classic ELB access logs and CloudFront standard logs have one line per HTTP "
            "request: their counts are requests, and failed handshakes are not in them. "
            "Classic ELB TCP/SSL listeners log one line per connection.") in text
    assert f"{elb}:2: 2 fields, a Classic ELB access-log line has at least 15" in text
    out = tmp_path / "o.json"
    assert main(["logs", str(cf), "--format", "cloudfront", "--json", str(out), "-q"]) == 0
    doc = json.loads(out.read_text())
    assert [(f["format"], f["units"], f["connections"]) for f in doc["files"]] == [
        ("cloudfront", "requests", 1)]
    assert doc["mix"][0]["suite_iana"] == "TLS_AES_256_GCM_SHA384"
    # the wrong --format: every line malformed, nothing fatal
    s = read_logs([cf], format="classic-elb")
    assert (s.malformed_total, s.population.total_connections) == (3, 0)
    s = read_logs([elb], format="cloudfront")
    assert (s.malformed_total, s.population.total_connections) == (2, 0)


def test_whatif_with_a_cloudfront_log(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    policy = "ELBSecurityPolicy-TLS13-1-2-2021-06"
    # (protocol, cipher, requests, client IPs)
    mix = [("TLSv1.3", "TLS_AES_128_GCM_SHA256", 50, 20),  # allowed
           ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", 30, 10),  # allowed
           ("TLSv1.2", "ECDHE-RSA-AES128-SHA", 8, 4),  # suite not in the policy
           ("TLSv1.1", "ECDHE-RSA-AES256-SHA", 7, 3),  # protocol not in the policy
           ("TLSv1", "ECDHE-RSA-AES128-SHA", 5, 2)]
    lines = cf_header()
    for gi, (proto, cipher, n, ips) in enumerate(mix):
        lines += [cf_line(f"2001:db8:{gi}::{1 + i % ips}" if gi % 2 else
                          f"198.51.{100 + gi}.{1 + i % ips}", proto, cipher) for i in range(n)]
    lines += [cf_line("203.0.113.9", "-", "-", scheme="http")] * 10  # not TLS clients
    lines.append("2024-03-30\t18:40:00\tcut short")
    log = write(tmp_path / "cloudfront.gz", lines, gz=True)
    out = tmp_path / "whatif.json"
    assert main(["whatif", "--policy", policy, "--clients", str(log), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert {c["client"]: (c["status"], c["connections"], c["client_ips"])
            for c in doc["clients"]} == {
        "TLSv1.3 / TLS_AES_128_GCM_SHA256": ("works", 50, 20),
        "TLSv1.2 / ECDHE-RSA-AES128-GCM-SHA256": ("works", 30, 10),
        "TLSv1.2 / ECDHE-RSA-AES128-SHA": ("fails", 8, 4),
        "TLSv1.1 / ECDHE-RSA-AES256-SHA": ("fails", 7, 3),
        "TLSv1.0 / ECDHE-RSA-AES128-SHA": ("fails", 5, 2)}
    s = doc["summary"]
    assert (s["connections"], s["connections_breaking"], s["share_breaking"],
            s["client_ips_breaking"], s["connections_not_simulated"]) == (100, 20, 0.2, 9, 0)
    assert ("20.0% of the requests in these logs (9 client IPs, TLSv1.2 / "
            "ECDHE-RSA-AES128-SHA, TLSv1.1 / ECDHE-RSA-AES256-SHA, TLSv1.0 / "
            f"ECDHE-RSA-AES128-SHA) would fail under {policy}") in text


# --- VPC flow logs ---------------------------------------------------------------------

# field case 1 (DESIGN.md): a refused handshake is 3 packets each way, flags 2 / 22;
# a healthy connection 18 / 16 packets, flags 3 / 19
CUSTOM = ("version account-id interface-id srcaddr dstaddr srcport dstport protocol "
          "packets bytes start end action log-status tcp-flags")


def flow(src: str, dst: str, sport: int, dport: int, packets: int, flags: int | str,
         action: str = "ACCEPT", proto: int = 6) -> str:
    return (f"2 123456789010 eni-1235b8ca123456789 {src} {dst} {sport} {dport} {proto} "
            f"{packets} {packets * 100} 1711822440 1711822500 {action} OK {flags}")


def field_case_flows() -> list[str]:
    alb = "10.0.1.25"
    return [
        flow("203.0.113.9", alb, 33678, 443, 3, 2), flow(alb, "203.0.113.9", 443, 33678, 3, 22),
        flow("203.0.113.9", alb, 33680, 443, 3, 2), flow(alb, "203.0.113.9", 443, 33680, 3, 22),
        flow("2001:db8::9", alb, 40000, 443, 3, 2), flow(alb, "2001:db8::9", 443, 40000, 3, 22),
        flow("198.51.100.1", alb, 63147, 443, 18, 3),
        flow(alb, "198.51.100.1", 443, 63147, 16, 19),
        flow("198.51.100.2", alb, 5000, 443, 3, 2, action="REJECT"),  # SG, not TLS
        flow("198.51.100.2", alb, 5001, 22, 3, 22),  # another port
        flow("198.51.100.2", alb, 5002, 443, 1, 2, proto=17),  # UDP
        flow("198.51.100.5", alb, 5003, 443, 2, 6),  # RST to a SYN: never got to TLS
        flow("198.51.100.6", alb, 5004, 443, 4, 1),  # mid-connection, no SYN here
        "2 123456789010 eni-1235b8ca123456789 - - - - - - - 1431280876 1431280934 - NODATA -",
    ]


def test_vpc_flow_custom_format_with_header(tmp_path: Path) -> None:
    path = write(tmp_path / "flows.log", [CUSTOM, *field_case_flows(), "2 1234 short"], gz=True)
    s = read_logs([path])
    assert s.files[0].format == "vpc-flow" and s.files[0].compressed
    assert s.flow_records == 11 and s.flow_clients == 6
    rows = {(f.client_ip, f.why): (f.records, f.packets, f.flags, f.all_records)
            for f in s.flows}
    assert rows == {
        ("203.0.113.9", WHY_NO_FIN): (2, 6, (2,), 4),
        ("203.0.113.9", WHY_RST): (2, 6, (22,), 4),
        ("2001:db8::9", WHY_NO_FIN): (1, 3, (2,), 2),
        ("2001:db8::9", WHY_RST): (1, 3, (22,), 2),
    }
    assert s.suspicious_records == 6
    assert s.files[0].skipped == {"flow-log header line": 1, "flow not to or from port 443": 1,
                                  "flow that is not TCP": 1, "flow-log NODATA record": 1}
    assert s.malformed_total == 1 and s.malformed[0].line == 16
    assert s.population.total_connections == 0
    assert s.files[0].first == "2024-03-30T18:14:00Z"


def test_vpc_default_format_and_given_fields(tmp_path: Path) -> None:
    default = [" ".join(line.split()[:14]) for line in field_case_flows()]
    s = read_logs([write(tmp_path / "default.log", default)])
    # no tcp-flags in the default format: only the packet count can speak
    assert {(f.client_ip, f.why): f.records for f in s.flows} == {
        ("203.0.113.9", WHY_NO_FLAGS): 4, ("2001:db8::9", WHY_NO_FLAGS): 2,
        ("198.51.100.6", WHY_NO_FLAGS): 1}

    # a custom order without header: --vpc-fields; the AWS v3 example lines
    example = FORMATS["aws_vpc_flow_log"]["examples"][-1]
    fields = example["kind"].split("format: ", 1)[1].split(" (")[0]
    lines = example["line"].split("\n")
    path = write(tmp_path / "v3.log", lines)
    s = read_logs([path], vpc_fields=fields.split(), port=5001, max_packets=8)
    assert s.files[0].format == "vpc-flow" and s.malformed_total == 0
    assert {(f.client_ip, f.why, f.records) for f in s.flows} == {
        ("52.213.180.42", WHY_NO_FIN, 2)}
    s = read_logs([path], vpc_fields=fields.split(), port=5001, max_packets=7)
    assert {(f.client_ip, f.packets) for f in s.flows} == {("52.213.180.42", 7)}


def test_vpc_fields_option_on_the_command_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    order = "srcaddr dstaddr srcport dstport packets tcp-flags"
    path = write(tmp_path / "cw.log", ["203.0.113.9 10.0.1.25 33678 8443 3 2",
                                       "10.0.1.25 203.0.113.9 8443 33678 3 22"])
    out = tmp_path / "o.json"
    assert main(["logs", str(path), "--vpc-fields", "${" + "} ${".join(order.split()) + "}",
                 "--port", "8443", "--json", str(out), "-q"]) == 0
    doc = json.loads(out.read_text())
    assert doc["flows"]["suspicious_records"] == 2
    assert main(["logs", str(path), "--vpc-fields", "srcaddr dstaddr bogus"]) == 2
    assert "unknown flow-log field(s) bogus" in capsys.readouterr().err


# --- server error lines ----------------------------------------------------------------

# the lab's probes (log_formats.json "observed") -> reason, per server; None: not a
# handshake failure line (the server logged something else, or nothing)
EXPECTED: dict[str, dict[str, str | None]] = {
    "tls10_only": {"go": R.PROTOCOL_VERSION, "nginx": R.PROTOCOL_VERSION,
                   "haproxy": R.UNSPECIFIED, "haproxy@": R.PROTOCOL_VERSION},
    "tls11_only": {"go": R.PROTOCOL_VERSION, "nginx": R.PROTOCOL_VERSION,
                   "haproxy": R.UNSPECIFIED},
    "tls12_no_shared_cipher": {"go": R.NO_SHARED_CIPHER, "nginx": R.NO_SHARED_CIPHER,
                               "haproxy": R.UNSPECIFIED, "haproxy@": R.NO_SHARED_CIPHER},
    "tls13_no_shared_cipher": {"go": R.NO_SHARED_CIPHER, "nginx": R.NO_SHARED_CIPHER,
                               "haproxy": R.UNSPECIFIED, "haproxy@": R.NO_SHARED_CIPHER},
    "tls12_sha1_sigalgs_only": {"nginx": R.NO_SHARED_SIGALG, "haproxy": R.UNSPECIFIED,
                                "haproxy@": R.NO_SHARED_SIGALG},
    "alpn_h3_only": {"go": R.NO_ALPN, "nginx": R.NO_ALPN, "haproxy": None},
    "client_rejects_server_cert_tls12": {
        "go": R.CLIENT_REJECTED_CERT, "nginx": R.CLIENT_REJECTED_CERT,
        "haproxy": R.UNSPECIFIED, "haproxy@": R.CLIENT_REJECTED_CERT},
    "client_rejects_server_cert_tls13": {"go": R.OTHER, "nginx": R.CLIENT_REJECTED_CERT,
                                         "haproxy": R.UNSPECIFIED},
    "plain_http_to_tls_port": {"nginx": R.NOT_TLS, "haproxy": R.UNSPECIFIED,
                               "haproxy@": R.NOT_TLS},
    "tcp_connect_then_close": {"go": R.EOF, "nginx": R.EOF, "haproxy": R.EOF, "haproxy@": R.EOF},
    "truncated_client_hello": {"go": R.EOF, "nginx": R.EOF, "haproxy": R.EOF},
    "random_bytes": {"go": R.NOT_TLS, "nginx": None, "haproxy": R.UNSPECIFIED,
                     "haproxy@": R.NOT_TLS},
    "hello_ie_6_xp_sslv2": {"go": R.SSLV2_HELLO, "nginx": R.PROTOCOL_VERSION,
                            "haproxy": R.UNSPECIFIED, "haproxy@": R.PROTOCOL_VERSION},
    "hello_java_6u45": {"go": R.SSLV2_HELLO, "nginx": R.PROTOCOL_VERSION,
                        "haproxy": R.UNSPECIFIED},
    "hello_chrome_101_win10": {"go": R.EOF, "nginx": R.EOF, "haproxy": R.UNSPECIFIED},
    "mtls_no_client_cert": {"go": R.CLIENT_CERT, "nginx": R.CLIENT_CERT,
                            "haproxy": R.UNSPECIFIED},
    "mtls_untrusted_client_cert": {"go": R.CLIENT_CERT, "nginx": R.CLIENT_CERT,
                                   "haproxy": R.CLIENT_CERT, "haproxy@": R.CLIENT_CERT},
    "mtls_good_client_cert": {"nginx": R.PROTOCOL_VERSION, "haproxy": None, "haproxy@": None},
}
for _legacy in ("hello_ie_8_xp", "hello_android_237", "hello_openssl_098y", "hello_java_7u25"):
    EXPECTED[_legacy] = {"go": R.PROTOCOL_VERSION, "nginx": R.PROTOCOL_VERSION,
                         "haproxy": R.UNSPECIFIED}
for _probe in ("mtls_no_client_cert_tls13", "mtls_untrusted_client_cert_tls13"):
    EXPECTED[_probe] = {"go": R.CLIENT_CERT, "nginx": R.PROTOCOL_VERSION,
                        "haproxy": R.UNSPECIFIED if "no_client" in _probe else R.CLIENT_CERT}

SERVERS: dict[str, tuple[str, Callable[[], LineParser]]] = {
    "go": ("go_net_http", GoHttpLog), "nginx": ("nginx", NginxErrorLog),
    "haproxy": ("haproxy", HaproxyLog)}


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_observed_server_lines_normalise(server: str) -> None:
    key, parser_cls = SERVERS[server]
    parser = parser_cls()
    seen = 0
    for probe, lines in logs_formats.observed_lines(key).items():
        name, _, variant = probe.partition("@")
        want = EXPECTED[name].get(server + ("@" if variant else ""), "absent")
        for line in lines:
            assert want != "absent", f"{server} {probe}: no expectation"
            item = parser.parse(line)
            got = item.failure if isinstance(item, Conn) else None
            assert got == want, f"{server} {probe}: {line}"
            if isinstance(item, Conn):
                assert item.client_ip == "127.0.0.1"
            seen += 1
    assert seen == sum(len(v) for v in logs_formats.observed_lines(key).values()) > 10


def test_server_logs_detected_and_counted(tmp_path: Path) -> None:
    files = []
    for server, (key, _) in SERVERS.items():
        lines = [line for ls in logs_formats.observed_lines(key).values() for line in ls]
        files.append(write(tmp_path / f"{server}.log", lines, gz=server == "nginx"))
    go_v6 = ("2026/11/23 18:00:14 http: TLS handshake error from [2001:db8::4]:38576: "
             "tls: client offered only unsupported versions: [302 301]")
    nginx_extra = [
        "2026/11/23 17:57:49 [notice] 9267#9267: using the \"epoll\" event method",
        "2026/11/23 17:57:50 [info] 9267#9267: *2 peer closed connection in SSL handshake "
        "(104: Connection reset by peer) while SSL handshaking, client: 2001:db8::5, "
        "server: [::]:443",
        "17:57:50 [info] truncated",
    ]
    haproxy_syslog = ("Dec  3 18:27:14 localhost haproxy[6103]: 198.51.100.7:42614 "
                      "[03/Dec/2026:18:27:14.997] fe/1: SSL handshake failure "
                      "(error:0A000175:SSL routines::inappropriate fallback)")
    files.append(write(tmp_path / "app.log", ["starting app", go_v6, "listening on :443"]))
    files.append(write(tmp_path / "nginx2.log", nginx_extra))
    haproxy_v6 = ("2001:db8::7:42615 [03/Dec/2026:18:27:15.001] fe/1: "
                  "Connection closed during SSL handshake")
    files.append(write(tmp_path / "haproxy2.log", [haproxy_syslog, "Proxy fe_tls started.",
                                                   haproxy_v6]))
    s = read_logs(files)
    assert [f.format for f in s.files] == ["go", "nginx", "haproxy", "go", "nginx", "haproxy"]
    assert [(f.connections, sum(f.skipped.values()), f.malformed) for f in s.files] == [
        (21, 0, 0), (23, 1, 0), (33, 2, 0), (1, 2, 0), (1, 1, 1), (2, 1, 0)]
    assert s.population.group("TLSv1.1", None) is not None  # Go's "[302 301]": up to 1.1
    assert failures(s)[R.INAPPROPRIATE_FALLBACK] == (1, 1)
    assert failures(s)[R.RESET] == (1, 1)
    ips = {c.ip for c in s.population.clients()}
    assert ips == {"127.0.0.1", "2001:db8::4", "2001:db8::5", "198.51.100.7", "2001:db8::7"}


# --- command line ----------------------------------------------------------------------

def test_command_tables_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conn = write(tmp_path / "conn.log", [
        conn_line("198.51.100.7", "TLSv1.2", "ECDHE-RSA-AES256-SHA",
                  "Failed:UnmappedConnectionError"),
        conn_line("203.0.113.1", "TLSv1.3", "TLS_AES_128_GCM_SHA256"),
        "2024-03-30T18:14:00.000001Z 198.51.100.7 bad",
    ], gz=True)
    flows = write(tmp_path / "flows.log", [CUSTOM, *field_case_flows()])
    out = tmp_path / "out.json"
    assert main(["logs", str(conn), str(flows), "--json", str(out), "--top", "3"]) == 0
    text = capsys.readouterr().out
    for title in ("TOP CLIENTS", "PROTOCOL / SUITE MIX", "FAILURES BY REASON",
                  "SUSPICIOUS FLOWS", "MALFORMED LINES: 1"):
        assert title in text
    assert f"{conn}:3: 3 fields" in text
    assert "UnmappedConnectionError" in text and "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA" in text
    doc = json.loads(out.read_text())
    assert doc["schema"] == "prober.logs/1"
    assert doc["totals"] == {"lines": 18, "connections": 2, "failed": 1, "client_ips": 2,
                             "flow_records": 11, "suspicious_flow_records": 6,
                             "skipped": 4, "malformed": 1}
    assert doc["malformed"]["examples"][0]["line"] == 3
    assert doc["mix"][0]["share"] == 0.5
    assert doc["files"][0]["compressed"] is True

    assert main(["logs", str(conn), "--json", "-", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["connections"] == 2


def test_command_input_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path / "conn.log", [conn_line("192.0.2.1")])
    for argv, message in (
        ([str(tmp_path / "missing.log")], "cannot read"),
        ([str(tmp_path)], "it is a directory"),
        ([str(write(tmp_path / "prose.txt", ["hello", "world"]))], "cannot tell the log format"),
        ([str(good), "--port", "0"], "--port 0"),
    ):
        assert main(["logs", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("prober: ") and message in err and err.count("\n") == 1, err
    # an unreadable file, or one of no known format, fails before anything is counted
    for bad in (tmp_path / "missing.log", tmp_path / "prose.txt"):
        assert main(["logs", str(good), str(bad)]) == 2
        assert capsys.readouterr().out == ""


def test_forced_format_and_truncated_gzip(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    lines = [conn_line(f"192.0.2.{i}") for i in range(1, 201)]
    blob = gzip.compress(("\n".join(lines) + "\n").encode())
    cut = write(tmp_path / "cut.log", [])
    cut.write_bytes(blob[: len(blob) // 2])
    s = read_logs([cut])
    assert s.files[0].error is not None and 0 < s.files[0].connections < 200
    assert s.files[0].connections == s.files[0].lines - s.files[0].malformed
    # the wrong --format: every line is malformed and counted, nothing is fatal
    s = read_logs([write(tmp_path / "c.log", lines[:3])], format="nginx")
    assert (s.malformed_total, s.population.total_connections) == (3, 0)
    empty = write(tmp_path / "empty.log", [""])
    stats = read_logs([empty]).files[0]
    assert (stats.format, stats.lines, stats.skipped) == ("empty", 1, {"blank line": 1})
    assert main(["logs", str(cut), "-q"]) == 0


def test_streaming_memory_is_per_distinct_key() -> None:
    def lines() -> Iterator[str]:
        for i in range(50_000):
            yield conn_line(f"192.0.2.{i % 7}", "TLSv1.2",
                            ("ECDHE-RSA-AES128-GCM-SHA256", "AES128-SHA")[i % 2])
    from prober.logs.aws import AlbConnectionLog

    tally = Tally()
    stats = FileStats("gen")
    tally.feed(lines(), AlbConnectionLog(), stats)
    assert stats.connections == 50_000 and len(tally.conns) == 14


# --- population ------------------------------------------------------------------------

def test_population_impact() -> None:
    pop = Population()
    for i in range(41):  # 64 connections of 41 clients with an old client
        pop.add(f"198.51.100.{i}", "TLSv1.1", "ECDHE-RSA-AES256-SHA", count=2 if i < 23 else 1)
    pop.add("203.0.113.1", "TLSv1.3", "TLS_AES_128_GCM_SHA256", count=1900)
    pop.add("203.0.113.2", "tlsv12", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", count=30,
            failed=True)
    pop.add("198.51.100.0", None, None, count=6, failed=True)
    assert pop.total_connections == 2000 and pop.failed_connections == 36
    assert pop.client_ips == 43
    old = pop.group("TLSv1.1", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA")
    assert old is not None and (old.connections, old.client_ips) == (64, 41)
    assert old.label == "TLSv1.1 / ECDHE-RSA-AES256-SHA" and old.known
    impact = pop.impact(lambda g: g.protocol == "TLSv1.1")
    assert impact.describe() == ("3.2% of the connections in these logs "
                                 "(41 client IPs, TLSv1.1 / ECDHE-RSA-AES256-SHA)")
    both = pop.impact(g for g in pop.groups() if g.protocol in ("TLSv1.1", None))
    assert (both.connections, both.client_ips) == (70, 41)  # 198.51.100.0 is in both
    assert [(g.protocol, g.connections) for g in pop.groups()] == [
        ("TLSv1.3", 1900), ("TLSv1.1", 64), ("TLSv1.2", 30), (None, 6)]
    assert pop.ips(old) == frozenset(f"198.51.100.{i}" for i in range(41))
    assert pop.clients()[0].ip == "203.0.113.1"
    other = Population()
    other.add("203.0.113.1", "TLSv1.3", "TLS_AES_128_GCM_SHA256")
    pop.merge(other)
    assert pop.total_connections == 2001 and pop.to_json()["groups"][0]["connections"] == 1901


def test_load_population(tmp_path: Path) -> None:
    path = write(tmp_path / "c.log", [conn_line("192.0.2.1")] * 3, gz=True)
    pop = load_population([path], format="alb-conn")
    assert [(g.label, g.connections) for g in pop.groups()] == [
        ("TLSv1.2 / ECDHE-RSA-AES128-GCM-SHA256", 3)]


# --- real servers: their own handshake error lines -------------------------------------

PROBES = ["-p", "tls1.0-only", "-p", "cipher:ECDHE-RSA-AES256-SHA", "-p", "tls1.2-only"]


def probe(port: int) -> None:
    assert main(["probe", f"127.0.0.1:{port}", *PROBES, "-q", "-t", "3"]) == 0


def wait_lines(path: Path, n: int, needle: str, timeout: float = 20.0) -> None:
    """Until ``path`` holds ``n`` lines with ``needle`` (servers write a line a little
    after the client is done); fails saying so instead of leaving the assertions below
    to compare a log that is still being written."""
    def text() -> str:
        return path.read_text(errors="replace") if path.exists() else ""

    if not poll_until(lambda: text().count(needle) >= n, timeout, step=0.05):
        got = text()
        pytest.fail(f"{path.name}: {got.count(needle)} of {n} lines with {needle!r} "
                    f"after {timeout} s:\n{got[-3000:]}")


def real_reasons(path: Path, fmt: str) -> list[str | None]:
    s = read_logs([path])
    assert s.files[0].format == fmt and s.malformed_total == 0, s.malformed
    return sorted((f.reason for f in s.failures for _ in range(f.connections)), key=str)


@pytest.mark.requires_bin("nginx")
def test_real_nginx_lines(nginx_factory: Any) -> None:
    srv = nginx_factory(mode="http", protocols="TLSv1.2 TLSv1.3",
                        ciphers="ECDHE-RSA-AES128-GCM-SHA256")
    probe(srv.port)
    log = srv.dir / "error.log"
    wait_lines(log, 3, "while SSL handshaking")
    # tls1.2-only completes; prober then resets, which nginx logs as a reset
    assert real_reasons(log, "nginx") == sorted(
        [R.PROTOCOL_VERSION, R.NO_SHARED_CIPHER, R.RESET])


@pytest.mark.requires_bin("haproxy")
def test_real_haproxy_lines(tmp_path: Path, pki: Pki) -> None:
    pem = tmp_path / "crt.pem"
    pem.write_text(pki.rsa_cert.read_text() + pki.rsa_key.read_text())
    legacy, errfmt = free_port(), free_port()
    bind = f"ssl crt {pem} ssl-min-ver TLSv1.2 ciphers ECDHE-RSA-AES128-GCM-SHA256"
    fmt = ('%ci:%cp [%tr] %ft %ac/%fc %[fc_err]/%[ssl_fc_err,hex]/%[ssl_c_err]/'
           '%[ssl_c_ca_err]/%[ssl_fc_is_resumed] %[ssl_fc_sni]/%sslv/%sslc '
           'fc_err_str=\\"%[fc_err_str]\\" ssl_fc_err_str=\\"%[ssl_fc_err_str]\\"')
    # nbthread 1: the point is the lines' format, not concurrency; with several threads
    # HAProxy < 2.8 formats ssl_fc_err_str in OpenSSL's shared static buffer, so a line can
    # carry another connection's text (the product's answer to that is tested on its own
    # in test_haproxy_packed_code_beats_shared_string)
    (tmp_path / "haproxy.cfg").write_text(f"""
global
    nbthread 1
    log stdout format raw local0 info
defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend fe_tls
    bind 127.0.0.1:{legacy} {bind}
    http-request return status 200
frontend fe_errfmt
    bind 127.0.0.1:{errfmt} {bind}
    error-log-format "{fmt}"
    http-request return status 200
""")
    out_path = tmp_path / "haproxy.log"
    with open(out_path, "wb") as out:
        proc = subprocess.Popen([shutil.which("haproxy") or "haproxy", "-db", "-f",
                                 str(tmp_path / "haproxy.cfg")], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        wait_listening("127.0.0.1", legacy, alive=proc)
        wait_listening("127.0.0.1", errfmt, alive=proc)
        probe(legacy)
        probe(errfmt)
        wait_lines(out_path, 6, "SSL handshake failure")
    finally:
        stop_process(proc)
    s = read_logs([out_path])
    assert s.files[0].format == "haproxy" and s.malformed_total == 0
    by_line = [(e.split("]")[1].split()[0], r) for e, r in _reasons_per_line(out_path)]
    assert sorted(by_line, key=str) == sorted([
        ("fe_tls/1:", R.UNSPECIFIED), ("fe_tls/1:", R.UNSPECIFIED), ("fe_tls/1:", R.UNSPECIFIED),
        ("fe_errfmt~", R.PROTOCOL_VERSION), ("fe_errfmt~", R.NO_SHARED_CIPHER),
        # the completed handshake prober resets: HAProxy has no OpenSSL reason for it
        ("fe_errfmt~", R.UNSPECIFIED)], key=str)


def test_haproxy_packed_code_beats_shared_string() -> None:
    """HAProxy < 2.8 writes ssl_fc_err_str through OpenSSL's static buffer, so with
    several threads a line can carry another connection's text; CI once saw a TLS 1.0
    refusal logged as "no shared cipher" next to its own code 0A000102."""
    head = "198.51.100.7:40000 [23/Nov/2026:10:00:00.000] fe_errfmt~ 1/1 34/"
    tail = ('/0/0/0 -/-/- fc_err_str="SSL handshake failure" '
            'ssl_fc_err_str="error:0A0000C1:SSL routines::no shared cipher"')
    mixed = HaproxyLog().parse(head + "000000000A000102" + tail)
    assert isinstance(mixed, Conn) and mixed.failure == R.PROTOCOL_VERSION
    # without the code the string is all there is, and it is used
    alone = HaproxyLog().parse(
        "198.51.100.7:40001 [23/Nov/2026:10:00:00.000] fe_errfmt~ "
        'fc_err_str="SSL handshake failure" '
        'ssl_fc_err_str="error:0A0000C1:SSL routines::no shared cipher"')
    assert isinstance(alone, Conn) and alone.failure == R.NO_SHARED_CIPHER


def _reasons_per_line(path: Path) -> list[tuple[str, str | None]]:
    parser = HaproxyLog()
    out = []
    for line in path.read_text().splitlines():
        item = parser.parse(line)
        if isinstance(item, Conn):
            out.append((line, item.failure))
    return out


GO_SERVER = """package main

import (
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	srv := &http.Server{TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}}}
	log.Fatal(srv.ServeTLS(ln, os.Args[1], os.Args[2]))
}
"""


def test_real_go_lines(tmp_path: Path, pki: Pki) -> None:
    go = shutil.which("go")
    if go is None:
        pytest.skip("`go` not found (apt-get install golang-go)")
    (tmp_path / "main.go").write_text(GO_SERVER)
    build = subprocess.run([go, "build", "-o", "srv", "main.go"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120,
                           env={**_go_env(tmp_path)})
    assert build.returncode == 0, build.stderr
    err_path = tmp_path / "stderr.log"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([str(tmp_path / "srv"), str(pki.rsa_cert), str(pki.rsa_key)],
                                stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        wait_listening("127.0.0.1", port, alive=proc)
        probe(port)
        wait_lines(err_path, 3, "TLS handshake error")
    finally:
        stop_process(proc)
    s = read_logs([err_path])
    assert s.files[0].format == "go" and s.malformed_total == 0
    assert sorted(f.reason for f in s.failures for _ in range(f.connections)) == sorted(
        [R.PROTOCOL_VERSION, R.NO_SHARED_CIPHER, R.RESET])
    assert s.population.group("TLSv1.0", None) is not None  # "versions: [301]"


def _go_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("HOME", str(tmp_path))
    env["GO111MODULE"] = "off"  # one file, standard library only: no module needed
    env.setdefault("GOCACHE", str(Path(env["HOME"]) / ".cache" / "go-build"))
    return env


def test_flow_item_types() -> None:
    # the parsers' contract: a Flow for flows to/from the port, a str for skipped ones
    from prober.logs.vpc import VpcFlowLog

    parser = VpcFlowLog(CUSTOM.split())
    item = parser.parse(field_case_flows()[1])
    assert isinstance(item, Flow) and (item.client_ip, item.server, item.flags) == (
        "203.0.113.9", "10.0.1.25:443", 22)
    assert isinstance(parser.parse(field_case_flows()[-1]), str)


def test_stdin_gzip() -> None:
    data = gzip.compress((conn_line("192.0.2.1") + "\n").encode())
    run = subprocess.run([sys.executable, "-m", "prober", "logs", "-", "--json", "-", "-q"],
                         input=data, capture_output=True, check=True)
    doc = json.loads(run.stdout)
    assert doc["files"][0]["compressed"] is True and doc["totals"]["connections"] == 1
