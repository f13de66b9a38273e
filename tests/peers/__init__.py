"""Real TLS/TCP peers for the integration tests (servers, misbehaving listeners, a
packet-dropping network namespace) and the PKI they use.  See each module's docstring;
pytest fixtures wrapping them live in tests/conftest.py."""

from .misbehaving import (
    HTTP_400,
    SMTP_BANNER,
    SSH_BANNER,
    BannerListener,
    FinAfterHello,
    HttpSpeaker,
    LoopListener,
    PartialFlight,
    ResetAfterHello,
    SilentReader,
    SmtpBanner,
    SshBanner,
    closed_port,
)
from .netns import DropLab
from .nginx_server import NginxServer, NginxSession, stream_module_path
from .openssl_server import OpenSSLServer, ServerHello
from .pki import Pki, make_pki
from .ports import free_port, is_listening, wait_listening
from .python_server import PythonTLSServer
from .tls_bytes import client_hello, load_tls12_flight, record_tls12_flight

__all__ = [
    "HTTP_400",
    "SMTP_BANNER",
    "SSH_BANNER",
    "BannerListener",
    "DropLab",
    "FinAfterHello",
    "HttpSpeaker",
    "LoopListener",
    "NginxServer",
    "NginxSession",
    "OpenSSLServer",
    "PartialFlight",
    "Pki",
    "PythonTLSServer",
    "ResetAfterHello",
    "ServerHello",
    "SilentReader",
    "SmtpBanner",
    "SshBanner",
    "client_hello",
    "closed_port",
    "free_port",
    "is_listening",
    "load_tls12_flight",
    "make_pki",
    "record_tls12_flight",
    "stream_module_path",
    "wait_listening",
]
