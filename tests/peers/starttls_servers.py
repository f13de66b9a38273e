"""Real STARTTLS servers from the Debian packages, each a test-scoped instance on an
ephemeral loopback port with a config and logs of its own: Exim (SMTP), Dovecot (IMAP
and POP3), vsftpd (FTP), slapd (LDAP), Prosody (XMPP client-to-server) and PostgreSQL
(its SSLRequest; run as the ``postgres`` user, as it refuses root).

The packages are installed without starting their system daemons (Makefile: a
policy-rc.d that refuses); nothing here touches /etc or a system instance. Every
server is started in the foreground and stopped by PID.

The SMTP server has a restricted policy (TLS 1.2 only, ECDHE-RSA with AES-GCM, server
order: :data:`SMTP_POLICY`), and answers by the address it was reached on:
127.0.0.1 offers STARTTLS, 127.0.0.2 does not offer it, 127.0.0.3 refuses it with a 550
(Exim's ``acl_smtp_starttls``). Dovecot does not offer STARTTLS on 127.0.0.2.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .lifecycle import ProcessPeer, poll_until, stop_process
from .pki import Pki
from .ports import free_port, wait_listening

HOST = "127.0.0.1"
NOT_OFFERED_HOST = "127.0.0.2"
REFUSED_HOST = "127.0.0.3"
SERVER_NAME = "demo.test"  # in every test certificate's SANs; the XMPP domain


@dataclass(frozen=True)
class SmtpPolicy:
    """What the restricted SMTP server accepts (the truth `prober policy` must find)."""

    versions: tuple[str, ...] = ("TLSv1.2",)
    # server order, as the GnuTLS priority string below gives it
    suites: tuple[str, ...] = ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                               "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
    groups: tuple[str, ...] = ("secp256r1", "x25519")
    gnutls_priority: str = ("NONE:+VERS-TLS1.2:+ECDHE-RSA:+AES-256-GCM:+AES-128-GCM:+AEAD:"
                            "+SIGN-ALL:+COMP-NULL:+GROUP-SECP256R1:+GROUP-X25519:+CTYPE-X509:"
                            "%SERVER_PRECEDENCE")


SMTP_POLICY = SmtpPolicy()


def missing(program: str) -> str | None:
    """Why a server cannot run here (None: it can)."""
    if shutil.which(program) is None and not Path(program).exists():
        return f"{program} is not installed (Makefile APT_PACKAGES)"
    if os.geteuid() != 0:
        return f"{program}'s test instance runs as root (it switches users)"
    return None


class _Server(ProcessPeer):
    """A STARTTLS server with the test PKI's RSA certificate (SAN demo.test)."""

    protocol = ""  # prober's --starttls name, which is also openssl s_client's
    binary = ""

    def __init__(self, pki: Pki) -> None:
        super().__init__(HOST)
        self.pki = pki

    @classmethod
    def find_binary(cls) -> str:
        return cls.binary

    def _certs(self, owner: str | None = None) -> tuple[Path, Path]:
        """Copies of the certificate and key in ``dir`` (some servers want the key
        private to their user)."""
        cert, key = self.pki.cert_key("rsa")
        c, k = self.dir / "cert.pem", self.dir / "key.pem"
        c.write_bytes(cert.read_bytes())
        k.write_bytes(key.read_bytes())
        k.chmod(0o600)
        if owner is not None:
            pw = pwd.getpwnam(owner)
            for f in (c, k):
                os.chown(f, pw.pw_uid, pw.pw_gid)
        return c, k


class EximSmtp(_Server):
    program = "exim"
    protocol = "smtp"
    binary = "exim4"
    startup_log = ("stderr.log", "log/mainlog", "log/paniclog")

    def _launch(self) -> None:
        (self.dir / "spool").mkdir(exist_ok=True)
        (self.dir / "log").mkdir(exist_ok=True)
        cert, key = self._certs()
        conf = self.dir / "exim.conf"
        conf.write_text(f"""# written by tests/peers/starttls_servers.py
primary_hostname = mail.{SERVER_NAME}
keep_environment =
spool_directory = {self.dir}/spool
log_file_path = {self.dir}/log/%slog
pid_file_path = {self.dir}/exim.pid
daemon_smtp_ports = {self.port}
local_interfaces = {HOST} : {NOT_OFFERED_HOST} : {REFUSED_HOST}
# no limit on concurrent sessions: a policy scan opens several at once
smtp_accept_max = 0
host_lookup =
rfc1413_hosts =
tls_advertise_hosts = ${{if eq{{$received_ip_address}}{{{NOT_OFFERED_HOST}}}{{}}{{*}}}}
tls_certificate = {cert}
tls_privatekey = {key}
tls_require_ciphers = {SMTP_POLICY.gnutls_priority}
exim_user = root
exim_group = root
never_users =
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_starttls = acl_check_starttls
begin acl
acl_check_rcpt:
  deny
acl_check_starttls:
  deny condition = ${{if eq{{$received_ip_address}}{{{REFUSED_HOST}}}}}
       message = TLS refused for this listener
  accept
begin routers
begin transports
""")
        self._spawn([self.binary, "-C", str(conf), "-bdf", "-oX", str(self.port)],
                    "stderr.log")


class Dovecot(_Server):
    """IMAP on ``port``, POP3 on ``pop3_port``."""

    program = "dovecot"
    protocol = "imap"
    binary = "dovecot"
    startup_log = ("stderr.log", "dovecot.log")

    def __init__(self, pki: Pki) -> None:
        super().__init__(pki)
        self.pop3_port = 0

    def _launch(self) -> None:
        self.pop3_port = free_port(HOST)
        cert, key = self._certs()
        d = self.dir
        conf = d / "dovecot.conf"
        conf.write_text(f"""# written by tests/peers/starttls_servers.py
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
listen = {HOST}, {NOT_OFFERED_HOST}
protocols = imap pop3
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
# no DHE: this instance has no DH parameters (a DHE hello would end in an internal error)
ssl_cipher_list = ECDHE+AESGCM:ECDHE+CHACHA20
disable_plaintext_auth = yes
passdb {{
  driver = static
  args = password=unused
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/home
}}
local {NOT_OFFERED_HOST} {{
  ssl = no
  disable_plaintext_auth = no
}}
service imap-login {{
  inet_listener imap {{
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
""")
        self._spawn([self.binary, "-F", "-c", str(conf)], "stderr.log")

    def _wait_ready(self, timeout: float) -> None:
        super()._wait_ready(timeout)
        wait_listening(HOST, self.pop3_port, timeout, alive=self._proc)


class Vsftpd(_Server):
    program = "vsftpd"
    protocol = "ftp"
    binary = "vsftpd"
    startup_log = ("stderr.log", "vsftpd.log")

    def _launch(self) -> None:
        (self.dir / "empty").mkdir(exist_ok=True)
        cert, key = self._certs()
        conf = self.dir / "vsftpd.conf"
        conf.write_text(f"""listen=YES
listen_ipv6=NO
listen_address={HOST}
listen_port={self.port}
background=NO
anonymous_enable=YES
anon_root={self.dir}/empty
no_anon_password=YES
allow_anon_ssl=YES
local_enable=NO
ssl_enable=YES
rsa_cert_file={cert}
rsa_private_key_file={key}
ssl_sslv2=NO
ssl_sslv3=NO
ssl_tlsv1=NO
require_ssl_reuse=NO
secure_chroot_dir={self.dir}/empty
seccomp_sandbox=NO
xferlog_enable=NO
vsftpd_log_file={self.dir}/vsftpd.log
dual_log_enable=YES
""")
        self._spawn([self.binary, str(conf)], "stderr.log")


class Slapd(_Server):
    program = "slapd"
    protocol = "ldap"
    binary = "slapd"
    startup_log = ("stderr.log",)

    def _launch(self) -> None:
        cert, key = self._certs()
        conf = self.dir / "slapd.conf"
        conf.write_text(f"""include /etc/ldap/schema/core.schema
pidfile {self.dir}/slapd.pid
argsfile {self.dir}/slapd.args
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
TLSProtocolMin 3.3
""")
        # -d 256: stats logging (connections, operations, the StartTLS) in the foreground
        self._spawn([self.binary, "-d", "256", "-h", f"ldap://{HOST}:{self.port}/",
                     "-f", str(conf)], "stderr.log")


class Prosody(_Server):
    program = "prosody"
    protocol = "xmpp"
    binary = "prosody"
    startup_log = ("stderr.log", "prosody.log")

    def _launch(self) -> None:
        (self.dir / "data").mkdir(exist_ok=True)
        cert, key = self._certs()
        conf = self.dir / "prosody.cfg.lua"
        conf.write_text(f"""-- written by tests/peers/starttls_servers.py
pidfile = "{self.dir}/prosody.pid"
data_path = "{self.dir}/data"
daemonize = false
run_as_root = true
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{self.dir}/prosody.log" }} }}
c2s_ports = {{ {self.port} }}
c2s_interfaces = {{ "{HOST}" }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
c2s_direct_tls_ports = {{ }}
legacy_ssl_ports = {{ }}
modules_enabled = {{ "tls", "saslauth", "disco", "ping" }}
modules_disabled = {{ "s2s", "http", "posix" }}
c2s_require_encryption = true
authentication = "internal_plain"
ssl = {{ certificate = "{cert}", key = "{key}", protocol = "tlsv1_2+" }}
VirtualHost "{SERVER_NAME}"
  ssl = {{ certificate = "{cert}", key = "{key}" }}
""")
        self._spawn([self.binary, "-F", "--config", str(conf)], "stderr.log")


class Postgres(_Server):
    """PostgreSQL as the ``postgres`` user, in a cluster of its own under ``dir``."""

    program = "postgres"
    protocol = "postgres"
    binary = "/usr/lib/postgresql/15/bin/postgres"
    startup_log = ("stderr.log",)
    user = "postgres"

    @classmethod
    def find_binary(cls) -> str:
        for v in ("17", "16", "15", "14", "13"):
            p = f"/usr/lib/postgresql/{v}/bin/postgres"
            if Path(p).exists():
                return p
        return shutil.which("postgres") or cls.binary

    def _launch(self) -> None:
        pw = pwd.getpwnam(self.user)
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        cert, key = self._certs(owner=self.user)
        data = self.dir / "data"
        binary = self.find_binary()
        if not (data / "PG_VERSION").exists():
            subprocess.run([str(Path(binary).with_name("initdb")), "-D", str(data), "-A",
                            "trust", "-U", "postgres", "--no-sync"], user=self.user,
                           group=pw.pw_gid, check=True, capture_output=True, timeout=60,
                           cwd=self.dir)
        argv = [binary, "-D", str(data), "-p", str(self.port), "-k", str(self.dir),
                "-c", f"listen_addresses={HOST}", "-c", "ssl=on",
                "-c", f"ssl_cert_file={cert}", "-c", f"ssl_key_file={key}",
                "-c", "ssl_min_protocol_version=TLSv1.2", "-c", "log_connections=on",
                "-c", "fsync=off"]
        with open(self.dir / "stderr.log", "ab") as out:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=self.dir,
                                          user=self.user, group=pw.pw_gid)

    def _wait_ready(self, timeout: float) -> None:
        super()._wait_ready(timeout)
        poll_until(lambda: "ready to accept connections" in self._read("stderr.log"), timeout)

    def stop(self) -> None:
        # SIGINT: PostgreSQL's fast shutdown (SIGTERM would wait for clients to leave)
        p, self._proc = self._proc, None
        if p is not None:
            stop_process(p, signal.SIGINT)


# the server class of each protocol (POP3 is Dovecot's second port)
SERVERS: dict[str, type[_Server]] = {
    "smtp": EximSmtp, "imap": Dovecot, "pop3": Dovecot, "ftp": Vsftpd, "ldap": Slapd,
    "xmpp": Prosody, "postgres": Postgres}


def binary_of(protocol: str) -> str:
    return SERVERS[protocol].find_binary()


def port_of(server: _Server, protocol: str) -> int:
    return server.pop3_port if protocol == "pop3" and isinstance(server, Dovecot) \
        else server.port
