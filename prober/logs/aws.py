"""AWS load-balancer and CDN logs: ALB connection log, ALB access log, NLB access log,
Classic ELB access log, CloudFront standard log.

Field positions come from log_formats.json. AWS only ever appends fields, so each
parser reads the fields it knows and ignores any that follow; a CloudFront file names
its fields in its ``#Fields`` line, which then decides the order.
"""

from __future__ import annotations

import re
from functools import lru_cache

from prober.core.targets import is_ip
from prober.logs import formats as logs_formats
from prober.logs import reasons as logs_reasons
from prober.logs.records import Conn, Item, Malformed
from prober.wire.constants import alert_name

# a token is a run of unquoted characters and "quoted strings" (which may hold spaces)
_TOKEN = re.compile(r'(?:[^ "]|"[^"]*")+')


def split_hostport(text: str) -> tuple[str, str]:
    """``192.0.2.1:443``, ``[2001:db8::1]:443`` or ``2001:db8::1:443`` -> (ip, port)."""
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not is_ip(host):
        raise Malformed(f"{text!r} is not address:port")
    return host, port


def _iso_time(text: str) -> bool:
    return len(text) >= 19 and text[4] == "-" and text[10] == "T"


def _dash(value: str) -> str | None:
    return None if value == "-" else value


class AlbConnectionLog:
    """``timestamp client_ip client_port listener_port tls_protocol tls_cipher
    tls_handshake_latency "subject" validity serial tls_verify_status conn_trace_id ...``"""

    name = "alb-conn"

    def __init__(self) -> None:
        pos = logs_formats.alb_connection()
        self._min = pos.min_fields
        self._time = pos["timestamp"]
        self._ip = pos["client_ip"]
        self._ports = (pos["client_port"], pos["listener_port"])
        self._proto = pos["tls_protocol"]
        self._cipher = pos["tls_cipher"]
        self._latency = pos["tls_handshake_latency"]
        self._subject = pos["leaf_client_cert_subject"]
        self._status = pos["tls_verify_status"]
        self._codes = logs_formats.alb_error_codes()
        # fields after the last one read stay unsplit: fewer strings per line
        self._split = max(self._min, self._status + 1) - 1
        # one attribute load per line instead of eight: this is the hot loop of 1 M lines
        self._hot = (self._split, self._subject, self._min, self._time, *self._ports,
                     self._ip, self._proto, self._cipher, self._status)

    def parse(self, line: str) -> Item:
        split, subj, least, ti, cp, lp, ipi, pi, ci, si = self._hot
        f = line.split(" ", split)
        if len(f) <= subj or f[subj] != '"-"':
            s = f[subj] if len(f) > subj else ""
            if len(s) < 2 or s[0] != '"' or s[-1] != '"':
                # the client-certificate subject is quoted and may hold spaces: re-split
                f = _TOKEN.findall(line)
        if len(f) < least:
            raise Malformed(f"{len(f)} fields, a connection-log line has at least {least}")
        t = f[ti]
        if t[10:11] != "T" or t[4:5] != "-":
            raise Malformed(f"timestamp {t[:40]!r} is not ISO 8601")
        if not (f[cp].isdigit() and f[lp].isdigit()):
            raise Malformed("client_port/listener_port are not numbers")
        ip = f[ipi]
        if not is_ip(ip):
            raise Malformed(f"client_ip {ip[:60]!r} is not an IP address")
        proto, cipher, status = f[pi], f[ci], f[si]
        if status == "Success":
            return Conn(ip, None if proto == "-" else proto, None if cipher == "-" else cipher,
                        None, None, t)
        if status.startswith("Failed:"):
            code = status[7:]
            return Conn(ip, _dash(proto), _dash(cipher), code, self._meaning(status, code), t)
        if status != "-":
            raise Malformed(f"tls_verify_status {status[:40]!r} is not Success, Failed:... or -")
        if proto == "-" and cipher == "-":
            return "plain TCP/HTTP listener (no TLS)"
        if f[self._latency] == "-":
            # TLS fields without a verdict or latency: the handshake did not complete
            return Conn(ip, _dash(proto), _dash(cipher), logs_reasons.UNSPECIFIED,
                        "tls_verify_status and tls_handshake_latency are -", t)
        return Conn(ip, _dash(proto), _dash(cipher), None, None, t)


    @lru_cache(maxsize=64)  # noqa: B019 - one parser per run, a few codes
    def _meaning(self, status: str, code: str) -> str:
        # "doc: unmapped runtime connection error; a third-party ..." -> its first clause
        text = self._codes.get(code, "code not in the AWS documentation")
        return f"{status}: {text.removeprefix('doc: ').split(';')[0]}"


class AlbAccessLog:
    """One line per HTTP request; only completed handshakes reach it."""

    name = "alb-access"

    def __init__(self) -> None:
        pos = logs_formats.alb_access()
        self._types = frozenset(pos.enums["type"])
        self._type = pos["type"]
        self._time = pos["time"]
        self._client = pos["client:port"]
        self._cipher = pos["ssl_cipher"]
        self._proto = pos["ssl_protocol"]
        # older revisions have fewer fields: require only up to the TLS ones we read
        self._min = max(self._type, self._time, self._client, self._cipher, self._proto) + 1

    def parse(self, line: str) -> Item:
        f = _TOKEN.findall(line)
        if len(f) < self._min:
            raise Malformed(f"{len(f)} fields, an access-log line has at least {self._min}")
        if f[self._type] not in self._types:
            raise Malformed(f"type {f[self._type][:20]!r} is not one of {sorted(self._types)}")
        t = f[self._time]
        if not _iso_time(t):
            raise Malformed(f"time {t[:40]!r} is not ISO 8601")
        ip, _ = split_hostport(f[self._client])
        proto, cipher = f[self._proto], f[self._cipher]
        if proto == "-" and cipher == "-":
            return "request on a listener without TLS"
        return Conn(ip, _dash(proto), _dash(cipher), None, None, t)


class NlbAccessLog:
    """One line per TLS connection, failed handshakes included (``tls_handshake_time -``)."""

    name = "nlb"

    def __init__(self) -> None:
        pos = logs_formats.nlb_access()
        self._min = pos.min_fields
        self._type, self._version = pos["type"], pos["version"]
        self._kinds = (frozenset(pos.enums["type"]), frozenset(pos.enums["version"]))
        self._time = pos["time"]
        self._client = pos["client:port"]
        self._hs_time = pos["tls_handshake_time"]
        self._alert = pos["incoming_tls_alert"]
        self._cipher = pos["tls_cipher"]
        self._proto = pos["tls_protocol_version"]

    def parse(self, line: str) -> Item:
        f = line.split(" ")
        if len(f) < self._min:
            raise Malformed(f"{len(f)} fields, an NLB access-log line has at least {self._min}")
        if f[self._type] not in self._kinds[0] or f[self._version] not in self._kinds[1]:
            raise Malformed(f"starts {f[self._type][:10]!r} {f[self._version][:10]!r}, "
                            "not an NLB TLS entry (tls 2.0)")
        ip, _ = split_hostport(f[self._client])
        t = f[self._time]
        proto, cipher = _dash(f[self._proto]), _dash(f[self._cipher])
        if f[self._hs_time] != "-":
            return Conn(ip, proto, cipher, None, None, t)
        alert = f[self._alert]
        if alert.isdigit():

            return Conn(ip, proto, cipher, logs_reasons.alert_reason(int(alert)),
                        f"incoming_tls_alert {alert} ({alert_name(int(alert))})", t)
        return Conn(ip, proto, cipher, logs_reasons.UNSPECIFIED,
                    "tls_handshake_time is - (the NLB logs no reason)", t)


class ClassicElbAccessLog:
    """One line per HTTP request (HTTP/HTTPS listeners) or per connection (TCP/SSL
    listeners, whose request fields are ``"- - - "`` and ``-``); ``ssl_cipher`` and
    ``ssl_protocol`` are written only after a completed negotiation."""

    name = "classic-elb"
    TCP_REQUEST = '"- - - "'  # what TCP/SSL listeners write as the request

    def __init__(self) -> None:
        pos = logs_formats.classic_elb_access()
        self._time = pos["time"]
        self._client = pos["client:port"]
        self._request = pos["request"]
        self._cipher = pos["ssl_cipher"]
        self._proto = pos["ssl_protocol"]
        self._min = max(pos.min_fields,
                        max(self._time, self._client, self._request, self._cipher,
                            self._proto) + 1)

    def parse(self, line: str) -> Item:
        f = _TOKEN.findall(line)
        if len(f) < self._min:
            raise Malformed(f"{len(f)} fields, a Classic ELB access-log line has at least "
                            f"{self._min}")
        t = f[self._time]
        if not _iso_time(t):
            raise Malformed(f"time {t[:40]!r} is not ISO 8601")
        ip, _ = split_hostport(f[self._client])
        request = f[self._request]
        if len(request) < 2 or request[0] != '"' or request[-1] != '"':
            raise Malformed(f"request {request[:40]!r} is not quoted")
        proto, cipher = f[self._proto], f[self._cipher]
        if proto == "-" and cipher == "-":
            if request == self.TCP_REQUEST:
                return "connection on a TCP/SSL listener without TLS fields"
            return "request on a listener without TLS"
        return Conn(ip, _dash(proto), _dash(cipher), None, None, t)


class CloudFrontLog:
    """Tab-separated, one line per viewer request (per connection for WebSocket); the
    ``#Fields`` line gives the field order of the lines after it, the documented order
    holds until one is seen. ``ssl-protocol``/``ssl-cipher`` are ``-`` for plain HTTP."""

    name = "cloudfront"
    NEEDED = ("c-ip", "ssl-protocol", "ssl-cipher")
    HEADER = "CloudFront header line (#Version, #Fields)"

    def __init__(self) -> None:
        self._use(logs_formats.cloudfront_fields(), exact=False)

    def _use(self, fields: tuple[str, ...], *, exact: bool) -> None:
        idx = {name: i for i, name in enumerate(fields)}
        get = idx.get
        self._missing = [name for name in self.NEEDED if name not in idx]
        self._ip, self._proto, self._cipher = (get(n, 0) for n in self.NEEDED)
        self._date, self._time = get("date"), get("time")
        # a #Fields line describes its lines exactly; without one, older revisions have
        # fewer fields: require only up to the ones read
        read = [i for i in (self._ip, self._proto, self._cipher, self._date, self._time)
                if i is not None]
        self._count = len(fields) if exact else None
        self._min = max(read) + 1

    def parse(self, line: str) -> Item:
        if line[:1] == "#":
            if line.startswith("#Fields:"):
                names = tuple(line[len("#Fields:"):].split())
                if not names:
                    raise Malformed("#Fields line without field names")
                self._use(names, exact=True)
                return self.HEADER
            if line.startswith("#Version:"):
                return self.HEADER
            raise Malformed("a # line that is not #Version or #Fields")
        if self._missing:
            raise Malformed(f"the #Fields line has no {', '.join(self._missing)}")
        f = line.split("\t")
        if self._count is not None:
            if len(f) != self._count:
                raise Malformed(f"{len(f)} tab-separated fields, the #Fields line names "
                                f"{self._count}")
        elif len(f) < self._min:
            raise Malformed(f"{len(f)} tab-separated fields, a CloudFront line has at least "
                            f"{self._min}")
        t = None
        if self._date is not None:
            d = f[self._date]
            if len(d) != 10 or d[4] != "-" or d[7] != "-" or not d[:4].isdigit():
                raise Malformed(f"date {d[:40]!r} is not YYYY-MM-DD")
            t = d if self._time is None else f"{d}T{f[self._time]}Z"
        ip = f[self._ip]
        if not is_ip(ip):
            raise Malformed(f"c-ip {ip[:60]!r} is not an IP address")
        proto, cipher = f[self._proto], f[self._cipher]
        if proto == "-" and cipher == "-":
            return "request over plain HTTP (no TLS)"
        return Conn(ip, _dash(proto), _dash(cipher), None, None, t)
