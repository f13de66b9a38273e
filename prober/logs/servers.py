"""TLS handshake error lines of servers: Go net/http, nginx, HAProxy.

These logs hold other lines too (start-up notices, request logs, application output):
those are counted as skipped by kind. Only a line that claims to be of the format and
is broken (an nginx line without its prefix, a Go handshake error without an address)
is malformed. The line shapes are those of log_formats.json; see its observed lines.
"""

from __future__ import annotations

import re

from prober.core.targets import is_ip
from prober.logs import formats as logs_formats
from prober.logs import reasons as R
from prober.logs.aws import split_hostport
from prober.logs.records import Conn, Item, Malformed

# --- Go --------------------------------------------------------------------------------

_GO_MARK = "http: TLS handshake error from "
_GO_TIME = re.compile(r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)")


class GoHttpLog:
    """``[2026/11/23 18:00:13 ]http: TLS handshake error from 198.51.100.7:50482: <error>``"""

    name = "go"

    def parse(self, line: str) -> Item:
        at = line.find(_GO_MARK)
        if at < 0:
            return "other Go log line"
        rest = line[at + len(_GO_MARK):]
        # the address ends at the first ": " (an IPv6 address is [bracketed]:port)
        addr, sep, error = rest.partition(": ")
        if not sep:
            raise Malformed("no ': <error>' after the client address")
        ip, _ = split_hostport(addr)
        error = error.strip()
        m = _GO_TIME.match(line)
        return Conn(ip, R.go_client_version(error), None, R.go_reason(error), error,
                    m.group(1) if m else None)


# --- nginx -----------------------------------------------------------------------------

_NGINX = re.compile(
    r"(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(debug|info|notice|warn|error|crit|alert|emerg)\] "
    r"\d+#\d+: (?:\*\d+ )?(.*)$")
_NGINX_CLIENT = re.compile(r", (?:udp )?client: ([^,\s]+)")
# nginx's own words for TLS trouble that is not an OpenSSL error -> reason
_NGINX_TEXT: tuple[tuple[str, str], ...] = (
    ("Connection reset by peer", R.RESET),
    ("peer closed connection in SSL handshake", R.EOF),
    ("client closed connection", R.EOF),
    ("timed out", R.TIMEOUT),
    ("plain HTTP request to HTTPS port", R.NOT_TLS),
    ("client sent no required SSL certificate", R.CLIENT_CERT),
    ("client SSL certificate verify error", R.CLIENT_CERT),
)
# TLS trouble nginx reports after the handshake ("while reading client request headers")
_NGINX_TLS = ("plain HTTP request to HTTPS port", "client sent no required SSL certificate",
              "client SSL certificate verify error")


class NginxErrorLog:
    """``2026/11/23 17:57:49 [info] 9267#9267: *1 SSL_do_handshake() failed (SSL: ...)
    while SSL handshaking, client: 127.0.0.1, server: 127.0.0.1:18443``"""

    name = "nginx"

    def parse(self, line: str) -> Item:
        m = _NGINX.match(line)
        if not m:
            raise Malformed("not an nginx error-log line (YYYY/MM/DD HH:MM:SS [level] pid#tid:)")
        msg = m.group(3)
        if "while SSL handshaking" not in msg and not any(n in msg for n in _NGINX_TLS):
            return "nginx line not about a TLS handshake"
        c = _NGINX_CLIENT.search(msg)
        if not c or not is_ip(c.group(1)):
            raise Malformed("TLS handshake line without a valid 'client: ADDRESS'")
        e = R.OPENSSL_ERROR.search(msg)
        # the OpenSSL error says it all; otherwise nginx's words up to the context part
        detail = e.group(0) if e else msg.split(" while ", 1)[0]
        return Conn(c.group(1), None, None, self._reason(msg), detail, m.group(1))

    @staticmethod
    def _reason(msg: str) -> str:
        if "Connection reset by peer" in msg:  # the errno beats the OpenSSL queue
            return R.RESET
        e = R.OPENSSL_ERROR.search(msg)
        if e:
            return R.openssl_reason(e.group(2))
        for needle, reason in _NGINX_TEXT:
            if needle in msg:
                return reason
        return R.OTHER


# --- HAProxy ---------------------------------------------------------------------------

_HAPROXY = re.compile(
    r"(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+):(\d+) "
    r"\[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d(?:\.\d+)?)\] (.*)$")
# legacy connection-error line: "<frontend>/<bind>: <message>[ (<openssl error>)]"
_HAPROXY_LEGACY = re.compile(r"[^\s/]+/[^\s:]+: (.+?)(?: \((error:[^)]*)\))?$")
# HAProxy's own messages on its log/stdout: start-up, reloads, warnings
_HAPROXY_OWN = ("[NOTICE]", "[WARNING]", "[ALERT]", "Proxy ", "Stopping ", "Pausing ")
_KV = re.compile(r'(\w+)=("[^"]*"|\S+)')
# the docs' suggested error-log-format: %[fc_err]/%[ssl_fc_err,hex]/%[ssl_c_err]/...
_HAPROXY_ERRFMT = re.compile(r"\b(\d+)/([0-9A-Fa-f]{16})/\d+/\d+/")


class HaproxyLog:
    """The legacy line ``ip:port [date] fe/bind: SSL handshake failure[ (error:...)]``,
    or an ``error-log-format`` line carrying ``fc_err_str``/``ssl_fc_err_str`` or the
    documented ``fc_err/ssl_fc_err,hex/...`` fields; a syslog prefix is allowed."""

    name = "haproxy"

    def parse(self, line: str) -> Item:
        m = _HAPROXY.search(line)
        if not m:
            if "haproxy[" in line or line.startswith(_HAPROXY_OWN):
                return "HAProxy line without a client (start-up, notices)"
            raise Malformed("no 'ADDRESS:PORT [dd/Mon/yyyy:HH:MM:SS.mmm]' client part")
        ip = m.group(1).strip("[]")
        if not is_ip(ip):
            raise Malformed(f"client {ip[:60]!r} is not an IP address")
        rest = m.group(4)
        legacy = _HAPROXY_LEGACY.match(rest)
        if legacy:
            reason = R.haproxy_reason(legacy.group(1))
            if reason is None:
                return "HAProxy connection error not about TLS"
            if reason == R.UNSPECIFIED and legacy.group(2):  # HAProxy >= 2.8 adds it
                reason = R.openssl_reason(legacy.group(2))
            return Conn(ip, None, None, reason, legacy.group(0).split(": ", 1)[1])
        return self._custom(ip, rest)

    @staticmethod
    def _custom(ip: str, rest: str) -> Item:
        kv = {k: v.strip('"') for k, v in _KV.findall(rest)}
        fc_text = kv.get("fc_err_str")
        if fc_text == "Success" or kv.get("fc_err") == "0":
            proto, suite = kv.get("ssl_fc_protocol"), kv.get("ssl_fc_cipher")
            if proto and suite and proto != "-":
                return Conn(ip, proto, suite)
            return "HAProxy traffic line without TLS fields"
        num = _HAPROXY_ERRFMT.search(rest)
        # The packed code wins over ssl_fc_err_str: HAProxy < 2.8 formats that string in
        # OpenSSL's one static buffer, so with nbthread > 1 a line can carry the text of
        # another thread's failure (haproxy/haproxy#2181); the number is per connection.
        ssl_text = R.packed_openssl_text(num.group(2)) if num else None
        if not ssl_text and kv.get("ssl_fc_err_str", "-") != "-":
            ssl_text = kv["ssl_fc_err_str"]
        if ssl_text:
            return Conn(ip, None, None, R.openssl_reason(ssl_text), ssl_text)
        if fc_text:
            reason = R.haproxy_reason(fc_text)
        elif num:
            name = logs_formats.haproxy_error_ids().get(int(num.group(1)))
            reason = R.haproxy_reason_by_name(name) if name else None
            fc_text = f"fc_err {num.group(1)} ({name or 'unknown'})"
        else:
            reason = None
        if reason is not None and fc_text:
            return Conn(ip, None, None, reason, fc_text)
        return "HAProxy traffic line"
