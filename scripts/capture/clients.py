"""The real clients: how to install each, ask its exact version, and point it at a server.

Every client connects to ``Call.name`` (demo.test, so SNI is sent) at ``Call.address``
and skips certificate checks (Firefox instead trusts the CA it is given), because the
question is what it *negotiates*, not whether it trusts a test certificate. Clients
without a command line (Go, Java, Node.js, Python) run small programs kept here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scripts.capture import sandbox

HERE = Path(__file__).resolve().parent
# clients with no flag of their own that maps demo.test to an address (Firefox has a pref)
NEEDS_HOSTS_FILE = {"wget"}

_PY_SSL = """
import socket, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sys.argv[3]) as s:
            s.sendall(b"GET / HTTP/1.1\\r\\nHost: " + sys.argv[3].encode()
                      + b"\\r\\nConnection: close\\r\\n\\r\\n")
            while s.recv(4096):
                pass
            print("negotiated", s.version(), s.cipher()[0])
except (OSError, ssl.SSLError) as e:
    print("error:", e)
    sys.exit(1)
"""

_PY_HTTPX = """
import sys, httpx
addr, port, name = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    with httpx.Client(verify=False, timeout=10) as c:
        # connect to the address; SNI and Host carry the name (no resolver asked)
        r = c.get(f"https://{addr}:{port}/", headers={"Host": name},
                  extensions={"sni_hostname": name})
        so = r.extensions["network_stream"].get_extra_info("ssl_object")
        print("negotiated", so.version(), so.cipher()[0])
except httpx.HTTPError as e:
    print("error:", e)
    sys.exit(1)
"""

_NODE = """
const tls = require('tls');
const [addr, port, name] = process.argv.slice(1);
const s = tls.connect({host: addr, port: +port, servername: name, rejectUnauthorized: false},
  () => {
    const c = s.getCipher();
    console.log('negotiated', s.getProtocol(), c.standardName || c.name);
    s.end('GET / HTTP/1.1\\r\\nHost: ' + name + '\\r\\nConnection: close\\r\\n\\r\\n');
  });
s.setTimeout(10000, () => { console.log('error: timeout'); process.exit(1); });
s.on('data', () => {});
s.on('error', (e) => { console.log('error:', e.message); process.exit(1); });
"""

# Firefox prefs: no update, telemetry, safe browsing, captive portal, push, prefetch or
# DoH traffic; demo.test resolves to loopback inside the browser too
_FIREFOX_PREFS = {
    "app.update.auto": False, "app.update.enabled": False, "app.normandy.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "browser.aboutwelcome.enabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False, "toolkit.telemetry.unified": False,
    "toolkit.telemetry.server": "",
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "network.dns.disablePrefetch": True, "network.prefetch-next": False,
    "network.http.speculative-parallel-limit": 0, "network.trr.mode": 5,
    "security.OCSP.enabled": 0, "security.certerrors.mitm.priming.enabled": False,
    "extensions.update.enabled": False, "extensions.systemAddon.update.enabled": False,
    "extensions.getAddons.cache.enabled": False, "services.settings.server": "",
    "dom.push.connection.enabled": False, "media.gmp-manager.url": "",
    "browser.region.network.url": "", "geo.provider.network.url": "",
    "network.dns.localDomains": "demo.test",
}

_CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
    "--disable-client-side-phishing-detection", "--no-pings", "--no-default-browser-check",
    "--ignore-certificate-errors",
]


@dataclass(frozen=True)
class Call:
    """One run of a client: where to connect and where it may write."""

    address: str
    port: int
    name: str
    work: Path  # scratch directory of this run (browser profiles)
    tools: Path  # compiled helper programs
    ca: Path | None = None  # CA a verifying client (Firefox) should trust

    @property
    def url(self) -> str:
        return f"https://{self.name}:{self.port}/"


@dataclass(frozen=True)
class Version:
    version: str
    details: dict[str, str] = field(default_factory=dict)  # library, runtime, ...


@dataclass(frozen=True)
class Client:
    id: str  # profile names start with it: "<id>-<version>"
    title: str
    bins: tuple[str, ...]
    version: Callable[[], Version]
    argv: Callable[[Call], list[str]]
    apt: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()  # importable module names, installed from PyPI when missing
    heavy: bool = False  # browsers and JVMs: seconds per run
    timeout: float = 20.0
    env: Callable[[Call], dict[str, str]] | None = None
    prepare: Callable[[Path], None] | None = None  # build helpers into the tools dir, once
    setup: Callable[[Call], None] | None = None  # per run: browser profile, ...
    stdin: bytes | None = None  # what it reads on standard input (else end of file at once)
    # output that means "handshake and request done": stop it there (tstclnt waits forever)
    done_marker: str | None = None

    def finished(self, log: Path) -> bool:
        if self.done_marker is None:
            return False
        try:
            return re.search(self.done_marker, log.read_text(errors="replace")) is not None
        except OSError:
            return False

    def missing(self) -> str | None:
        """Why this client cannot run here (None when it can)."""
        if self.id in NEEDS_HOSTS_FILE and not (sandbox.is_root() and shutil.which("unshare")):
            # without a hosts file of its own it would ask DNS for demo.test
            return "needs root and unshare(1) for a private hosts file (it has no --resolve)"
        for b in self.bins:
            if shutil.which(b) is None:
                return f"`{b}` not found (apt-get install {' '.join(self.apt) or b})"
        for mod in self.pip:
            if subprocess.run([sys.executable, "-c", f"import {mod}"], capture_output=True,
                              check=False).returncode:
                return f"Python module {mod} missing (pip install {mod})"
        return None

    def run_env(self, call: Call) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env(call) if self.env else {})
        return env


def _out(argv: list[str]) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return r.stdout + r.stderr


def _first(pattern: str, text: str, what: str) -> str:
    m = re.search(pattern, text)
    if not m:
        raise RuntimeError(f"cannot read the version of {what} from: {text[:200]!r}")
    return m.group(1)


def _dpkg_version(package: str) -> str:
    v = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], capture_output=True,
                       text=True, check=False).stdout
    return re.sub(r"^\d+:", "", v).split("-")[0] if v else "?"


# --- versions (from each client's own --version where it has one) -----------------------


def _v_openssl() -> Version:
    text = _out(["openssl", "version"])
    return Version(_first(r"OpenSSL (\S+)", text, "openssl"), {"banner": text.strip()})


def _v_curl() -> Version:
    text = _out(["curl", "--version"]).splitlines()[0]
    lib = _first(r" ((?:OpenSSL|GnuTLS|NSS|BoringSSL|LibreSSL|wolfSSL)/\S+)", text, "curl")
    return Version(_first(r"^curl (\S+)", text, "curl"), {"library": lib})


def _v_gnutls() -> Version:
    return Version(_first(r"gnutls-cli (\S+)", _out(["gnutls-cli", "--version"]), "gnutls-cli"))


def _v_tstclnt() -> Version:
    # tstclnt has no --version: the NSS it runs on is the Debian package's
    v = _dpkg_version("libnss3")
    return Version(v, {"library": f"NSS/{v} (dpkg libnss3)"})


def _v_firefox() -> Version:
    text = _out(["firefox-esr", "--version"])
    return Version(_first(r"Firefox (\S+)", text, "firefox-esr"),
                   {"library": f"NSS/{_bundled_nss()} (bundled)"})


def _bundled_nss() -> str:
    # Debian's firefox-esr ships an NSS newer than the system's, next to libxul
    for lib in Path("/usr/lib/firefox-esr").glob("libnss3.so"):
        m = re.search(rb"Version: NSS (\d+\.\d+(?:\.\d+)?)", lib.read_bytes())
        if m:
            return m.group(1).decode()
    return "?"


def _v_chromium() -> Version:
    return Version(_first(r"Chromium (\S+)", _out(["chromium", "--version"]), "chromium"),
                   {"library": "BoringSSL (bundled)"})


def _v_go() -> Version:
    return Version(_first(r"go version go(\S+)", _out(["go", "version"]), "go"),
                   {"library": "crypto/tls via net/http"})


def _v_java() -> Version:
    text = _out(["java", "-version"])
    return Version(_first(r'version "([^"]+)"', text, "java"),
                   {"runtime": _first(r"Runtime Environment \(build ([^)]+)\)", text, "java")})


def _v_node() -> Version:
    ver = _out(["node", "--version"]).strip().lstrip("v")
    lib = _out(["node", "-p", "process.versions.openssl"]).strip()
    return Version(ver, {"library": f"OpenSSL/{lib}"})


def _python_facts() -> dict[str, str]:
    import ssl

    return {"python": ".".join(map(str, sys.version_info[:3])), "library": ssl.OPENSSL_VERSION}


def _v_python() -> Version:
    facts = _python_facts()
    return Version(facts["python"], {"library": facts["library"]})


def _v_httpx() -> Version:
    ver = _out([sys.executable, "-c", "import httpx; print(httpx.__version__)"]).strip()
    return Version(ver, _python_facts())


def _v_wget() -> Version:
    text = _out(["wget", "--version"])
    lib = "GnuTLS" if "+ssl/gnutls" in text else "OpenSSL" if "+ssl/openssl" in text else "?"
    return Version(_first(r"GNU Wget (\S+)", text, "wget"), {"library": lib})


# --- helpers built once per run ----------------------------------------------------------


def _build_go(tools: Path) -> None:
    tools.mkdir(parents=True, exist_ok=True)
    # standard library only: no module mode, no proxy; cgo (when gcc is there) lets go
    # use its precompiled standard library (a build in seconds instead of half a minute)
    env = {**os.environ, "GO111MODULE": "off", "GOFLAGS": "", "GOPROXY": "off",
           "CGO_ENABLED": "1" if shutil.which("gcc") else "0"}
    subprocess.run(["go", "build", "-o", str(tools / "tlsclient"), str(HERE / "tlsclient.go")],
                   env=env, check=True, capture_output=True, timeout=300)


def _build_java(tools: Path) -> None:
    tools.mkdir(parents=True, exist_ok=True)
    subprocess.run(["javac", "-d", str(tools), str(HERE / "TlsClient.java")], check=True,
                   capture_output=True, timeout=300)


# --- browsers ----------------------------------------------------------------------------


def _firefox_profile(call: Call) -> None:
    prof = call.work / "firefox-profile"
    shutil.rmtree(prof, ignore_errors=True)
    prof.mkdir(parents=True)
    (prof / "user.js").write_text("".join(
        f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in _FIREFOX_PREFS.items()))
    if call.ca is not None and shutil.which("certutil"):
        # trusting the test CA lets --screenshot finish loading the page and exit
        subprocess.run(["certutil", "-N", "-d", f"sql:{prof}", "--empty-password"],
                       check=True, capture_output=True, timeout=60)
        subprocess.run(["certutil", "-A", "-n", "prober-test-ca", "-t", "CT,,", "-i",
                        str(call.ca), "-d", f"sql:{prof}"], check=True, capture_output=True,
                       timeout=60)


def _nss_db(call: Call) -> None:
    db = call.work / "nssdb"
    shutil.rmtree(db, ignore_errors=True)
    db.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True,
                   capture_output=True, timeout=60)


def _firefox_argv(call: Call) -> list[str]:
    prof = call.work / "firefox-profile"
    return ["firefox-esr", "--headless", "--no-remote", "--profile", str(prof),
            "--screenshot", str(call.work / "firefox.png"), call.url]


def _chromium_argv(call: Call) -> list[str]:
    return ["chromium", *_CHROMIUM_FLAGS, f"--user-data-dir={call.work / 'chromium-profile'}",
            f"--host-resolver-rules=MAP {call.name} {call.address}, MAP * ~NOTFOUND",
            "--dump-dom", call.url]


def _home(call: Call) -> dict[str, str]:
    return {"HOME": str(call.work), "MOZ_HEADLESS": "1"}


CLIENTS: tuple[Client, ...] = (
    Client("openssl-s_client", "OpenSSL s_client", ("openssl",), _v_openssl,
           lambda c: ["openssl", "s_client", "-connect", f"{c.address}:{c.port}",
                      "-servername", c.name], apt=("openssl",)),
    Client("curl", "curl", ("curl",), _v_curl,
           lambda c: ["curl", "-sSkv", "--max-time", "10", "-o", "/dev/null", "--resolve",
                      f"{c.name}:{c.port}:{c.address}", c.url], apt=("curl",)),
    Client("gnutls-cli", "GnuTLS gnutls-cli", ("gnutls-cli",), _v_gnutls,
           lambda c: ["gnutls-cli", "--insecure", "--sni-hostname", c.name, "-p", str(c.port),
                      c.address], apt=("gnutls-bin",)),
    Client("nss-tstclnt", "NSS tstclnt", ("tstclnt", "certutil"), _v_tstclnt,
           lambda c: ["tstclnt", "-d", f"sql:{c.work / 'nssdb'}", "-h", c.address, "-p",
                      str(c.port), "-a", c.name, "-o"],
           apt=("libnss3-tools",), setup=_nss_db,
           stdin=b"GET / HTTP/1.0\r\nHost: demo.test\r\n\r\n", done_marker=r"HTTP/1\.[01] "),
    Client("python-ssl", "Python ssl", (), _v_python,
           lambda c: [sys.executable, "-c", _PY_SSL, c.address, str(c.port), c.name]),
    Client("python-httpx", "Python httpx", (), _v_httpx,
           lambda c: [sys.executable, "-c", _PY_HTTPX, c.address, str(c.port), c.name],
           pip=("httpx",)),
    Client("wget", "GNU Wget", ("wget",), _v_wget,
           lambda c: ["wget", "-q", "-O", "/dev/null", "--no-check-certificate", "--tries=1",
                      "--timeout=10", "--no-hsts", c.url], apt=("wget",)),
    Client("nodejs", "Node.js tls.connect", ("node",), _v_node,
           lambda c: ["node", "-e", _NODE, c.address, str(c.port), c.name], apt=("nodejs",)),
    Client("go-crypto-tls", "Go crypto/tls (net/http)", ("go",), _v_go,
           lambda c: [str(c.tools / "tlsclient"), f"{c.address}:{c.port}", c.url],
           apt=("golang-go",), prepare=_build_go),
    Client("openjdk", "OpenJDK SSLSocket", ("java", "javac"), _v_java,
           lambda c: ["java", "-cp", str(c.tools), "TlsClient", c.address, str(c.port), c.name],
           apt=("openjdk-17-jdk-headless",), heavy=True, prepare=_build_java),
    Client("chromium", "Chromium headless", ("chromium",), _v_chromium, _chromium_argv,
           apt=("chromium",), heavy=True, timeout=40, env=_home),
    Client("firefox-esr", "Firefox ESR headless", ("firefox-esr", "certutil"), _v_firefox,
           _firefox_argv, apt=("firefox-esr", "libnss3-tools"), heavy=True, timeout=40,
           env=_home, setup=_firefox_profile),
)

BY_ID = {c.id: c for c in CLIENTS}



def profile_name(client: Client, version: Version) -> str:
    from prober.profiles.importer import slug

    # the file name's own spelling (profiles/captured/<name>.yaml)
    return slug(f"{client.id}-{version.version}")
