"""Golden outputs of the `prober` CLI: proof that a refactor changes no behaviour.

    .venv/bin/python scripts/goldens.py             # run every call, compare with the goldens
    .venv/bin/python scripts/goldens.py --update    # run every call, (re)write the goldens
    .venv/bin/python scripts/goldens.py --self-test # prove the comparison sees what it must

It starts real peers on 127.0.0.1 (tests/peers: nginx, openssl s_server, HAProxy, Python
ssl, misbehaving listeners, a closed port; the demo endpoint of `python -m prober.demo
serve`), runs every command and sub-command of `python -m prober` as a subprocess
(success and error paths), and records for each call its argv, exit code, stdout, stderr
and the files it wrote (JSON, JSONL, JUnit XML, profile YAML). One file per call goes
to scripts/goldens/expected/NN-name.json. Without --update the calls are run again and
compared: a unified diff per differing call, exit status 1 when any differs, 0 when
every call is identical.

What is volatile from run to run is masked, and nothing else: the complete list is
MASKED_JSON_KEYS and MASKED_TEXT below (plus the one layout rule, LAYOUT_RULE). Inputs
that must not vary are pinned instead: the environment of every call (ENV_PINNED),
fixed log fixtures (scripts/goldens/inputs/), small repeat counts, one connection at a
time where the order of events would otherwise race.

The harness imports nothing from `prober` (it must keep working when the package's
modules move); it uses tests/peers to start the servers. Only loopback is contacted.
Every call runs `python -m prober ARGS`, as a user's `prober ARGS` would.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime as dt
import difflib
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOLDENS = REPO / "scripts" / "goldens"
EXPECTED = GOLDENS / "expected"
# how the demo endpoint is started: `prober demo serve`; GOLDENS_LEGACY_DEMO=1 runs a tree
# from before that command existed (`python -m prober.demo serve`), to record new calls there
DEMO_SERVE = (["-m", "prober.demo"] if os.environ.get("GOLDENS_LEGACY_DEMO") == "1"
              else ["-m", "prober", "demo"])
INPUTS = GOLDENS / "inputs"

# =========================================================================================
# WHAT IS MASKED: the complete list. A masked value becomes "<MASK:what>", or
# "<MASK:what:name>" when it is a value the harness knows (the port of its nginx peer,
# the fingerprint of its RSA certificate): a refactor that sends a probe to the wrong
# peer still shows up.
# =========================================================================================

# JSON documents (and parsed YAML): the value of these keys, wherever they occur. A null
# value stays null (null vs. a value is behaviour); a mapping or a list keeps its keys and
# its length and has each non-null leaf masked. "parent.key": the key under parent only.
MASKED_JSON_KEYS: dict[str, str] = {
    # timestamps
    "started_at": "wall-clock time the run/attempt started",
    "finished_at": "wall-clock time the run finished",
    "first_seen": "time of a packet captured during the run",
    "last_seen": "time of a packet captured during the run",
    "not_before": "validity of a throwaway certificate made when the run starts",
    "not_after": "validity of a throwaway certificate made when the run starts",
    # durations
    "timings_ms": "durations of an attempt's phases (connect, hello_sent, first_byte, ...)",
    "median_ms": "median time to the server's first byte",
    "connect_ms": "TCP connect duration (diagnose control connection)",
    "rst_after_ms": "time from the ClientHello to the RST (diagnose figure)",
    "silence_ms": "how long hung attempts waited in silence (diagnose figure)",
    "rtt_us": "the kernel's smoothed round-trip time estimate",
    "elapsed_s": "duration of a policy scan / diagnose run",
    "duration_s": "duration of the sslyze checks (policy --deep)",
    # ports (ephemeral: chosen by the kernel per run; named when they are a peer's)
    "port": "port of a local peer",
    "local_port": "source port of an attempt",
    "server_ports": "ports of the local peers a captured hello went to",
    # throwaway certificates and what varies with them
    "sha256": "fingerprint of a certificate made for this run (named when known)",
    "server_bytes": "size of the server's flight: its certificates are made per run and "
                    "ECDSA signatures (DER integers) vary in length",
    # randoms, session ids, key shares
    "raw_hex": "the captured ClientHello's bytes: random, session id and key shares",
    # the machine
    "hostname": "name of the machine (probe/diagnose vantage)",
    "capture.host": "name of the machine (captured profile YAML)",
    # the tool
    "tool.version": "the tool's version: from git (setuptools-scm), it changes with every "
                    "commit",
}

# Text: stdout, stderr, text files (JUnit XML), argv, and every string inside JSON, in
# this order. (name, regex, why); a regex matches the volatile value only (lookarounds
# hold the context); None: done in code with what the run knows (Normaliser.text).
MASKED_TEXT: list[tuple[str, str | None, str]] = [
    ("tmp", None, "the run's temporary directory (peer files, --json outputs, captures)"),
    ("repo", None, "where the checkout lives (profile files are shown by path)"),
    ("cert-sha256", None, "SHA-256 (hex, or colon-separated) of a certificate this run "
                          "made; only the harness's own certificates, named"),
    ("time", r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?"
             r"(?:Z|[+-]\d{2}:?\d{2})?)?",
     "a date or date-time in [run start - 2 days, run start + 3651 days]: the wall clock "
     "or the validity of a throwaway certificate (fixture and catalog dates lie outside "
     "and stay)"),
    ("port", None, "a port one of the harness's peers listens on, named, where it is written "
                   "as a port: HOST:PORT or ('HOST', PORT)"),
    ("port", r"(?<=(?<![\w.])127\.0\.0\.1:)\d{1,5}(?!\d)|(?<=(?<![\w.])localhost:)\d{1,5}"
             r"(?!\d)|(?<=\[::1\]:)\d{1,5}(?!\d)",
     "after a loopback address: a port in the kernel's ephemeral range (a source port)"),
    ("hostname", r"(?<=capture on )HOSTNAME\b",
     "name of the machine: the `source` of a captured profile"),
    ("ms", r"(?<![\w.])-?\d+(?:\.\d+)?(?= ?ms\b)", "a duration in milliseconds"),
    ("s", r"(?<= in )\d+\.\d+(?= s\b)",
     "a run's duration: '10 attempts in 0.1 s', '27 connections in 0.16 s'"),
    ("s", r"(?<=\()\d+\.\d+(?= s\)[;,])",
     "a run's duration in parentheses: 'every outcome as expected (2.8 s);'"),
    ("s", r'(?<=\btime=")\d+(?:\.\d+)?(?=")', "a JUnit XML time attribute (a duration)"),
    ("version", r"(?<=\bprober )\d+(?:\.\d+)*(?:\.dev\d+)?(?:\+[0-9A-Za-z.]+)?(?![\w.])"
                r"|(?<=\bprober/)\d+(?:\.\d+)*(?:\.dev\d+)?(?:\+[0-9A-Za-z.]+)?(?![\w.])",
     "the tool's version: from git (setuptools-scm), it changes with every commit"),
    ("median", None, "the last field of each row of a table whose header ends in "
                     "'median ms' (probe and diagnose tables)"),
]

# The one layout rule: in a paragraph (lines between blank lines) that holds a masked
# value, runs of whitespace, line breaks included, compare as one space: table column
# widths and the points where long lines wrap there depend on the width of the value
# that was masked ("0.25 ms" vs "12.5 ms"). Paragraphs without a mask compare exactly.
LAYOUT_RULE = "whitespace runs in a paragraph holding a mask compare as one space"

# The environment of every call: nothing of the caller's leaks in, and every locale,
# width and hash-order dependent output is pinned.
ENV_PINNED: dict[str, str] = {
    "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC", "COLUMNS": "100", "LINES": "50",
    "PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8", "PYTHONDONTWRITEBYTECODE": "1",
    "NO_COLOR": "1", "TERM": "dumb",
}

MASK = "<MASK:"
CALL_TIMEOUT_S = 60.0
TIME_WINDOW = (dt.timedelta(days=2), dt.timedelta(days=3651))  # before, after the start

# =========================================================================================
# The normaliser
# =========================================================================================


def _rx(name: str) -> re.Pattern[str]:
    """The regex of the first MASKED_TEXT entry ``name`` that has one."""
    for n, r, _ in MASKED_TEXT:
        if n == name and r is not None:
            return re.compile(r)
    raise KeyError(name)


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def _mask(what: str, name: str | None = None) -> str:
    return f"{MASK}{what}:{name}>" if name else f"{MASK}{what}>"


_TIME_RE = _rx("time")
_LOOPBACK_PORT_RE = _rx("port")
_PLAIN_MASKS: list[tuple[str, re.Pattern[str]]] = [
    (n, re.compile(r)) for n, r, _ in MASKED_TEXT if r is not None and n in ("ms", "s", "version")]
_MEDIAN_HEADER = re.compile(r"\bmedian ms\s*$")
_MEDIAN_CELL = re.compile(r"(?<=\s)-?\d+(?:\.\d+)?(?=\s*$)")
_HEX64 = re.compile(r"(?<![0-9A-Fa-f:])(?:[0-9a-f]{64}|[0-9A-F]{64}|(?:[0-9A-Fa-f]{2}:){31}"
                    r"[0-9A-Fa-f]{2})(?![0-9A-Fa-f:])")
PORT_KEYS = ("port", "local_port", "server_ports")


@dataclasses.dataclass
class Normaliser:
    """Masks what MASKED_JSON_KEYS and MASKED_TEXT list, with what this run knows: its
    temporary directory, the ports of its peers, its certificates, the clock."""

    tmp: str = "/nonexistent-goldens-tmp"
    ports: dict[int, str] = dataclasses.field(default_factory=dict)
    certs: dict[str, str] = dataclasses.field(default_factory=dict)  # sha256 hex -> name
    hostname: str = dataclasses.field(default_factory=socket.gethostname)
    now: dt.datetime = dataclasses.field(default_factory=lambda: dt.datetime.now(dt.UTC))
    ephemeral: tuple[int, int] = dataclasses.field(default_factory=_ephemeral_range)

    def __post_init__(self) -> None:
        self._port_re: re.Pattern[str] | None = None
        if self.ports:
            alt = "|".join(sorted((str(p) for p in self.ports), key=len, reverse=True))
            # only where a port is written as one: HOST:PORT, or ('HOST', PORT) (Python's
            # repr of an address); the same digits elsewhere (a JA3 string, a fixture's
            # flow record, a TCP MSS) are not the port
            self._port_re = re.compile(rf"(?<=[\w\]]:)(?:{alt})(?!\d)|(?<=', )(?:{alt})(?=\))")
        self._host_re = re.compile(_rx("hostname").pattern.replace(
            "HOSTNAME", re.escape(self.hostname)))
        self._window = (self.now - TIME_WINDOW[0], self.now + TIME_WINDOW[1])

    # -- text ------------------------------------------------------------------------------
    def text(self, s: str) -> str:
        """One string with every text mask applied (the layout rule is compare's)."""
        for path, what in ((self.tmp, "tmp"), (str(REPO), "repo")):
            s = s.replace(path, _mask(what))
        s = _HEX64.sub(self._cert, s)
        s = _TIME_RE.sub(self._time, s)
        if self._port_re is not None:
            s = self._port_re.sub(lambda m: _mask("port", self.ports[int(m.group(0))]), s)
        s = _LOOPBACK_PORT_RE.sub(self._loopback_port, s)
        s = self._host_re.sub(lambda m: _mask("hostname"), s)
        for name, rx in _PLAIN_MASKS:
            s = rx.sub(_mask(name), s)
        return s

    def _cert(self, m: re.Match[str]) -> str:
        name = self.certs.get(m.group(0).replace(":", "").lower())
        return _mask("cert-sha256", name) if name else m.group(0)

    def _time(self, m: re.Match[str]) -> str:
        try:
            when = dt.datetime.fromisoformat(m.group(0).replace(" ", "T"))
        except ValueError:
            return m.group(0)
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return _mask("time") if self._window[0] <= when <= self._window[1] else m.group(0)

    def _is_ephemeral(self, port: int) -> bool:
        return self.ephemeral[0] <= port <= self.ephemeral[1]

    def _loopback_port(self, m: re.Match[str]) -> str:
        return _mask("port") if self._is_ephemeral(int(m.group(0))) else m.group(0)

    def lines(self, s: str) -> list[str]:
        """Output text as masked lines, the 'median ms' column of tables too."""
        out: list[str] = []
        in_table = False
        for line in self.text(s).split("\n"):
            if not line.strip():
                in_table = False
            elif _MEDIAN_HEADER.search(line):
                in_table = True
            elif in_table:
                line = _MEDIAN_CELL.sub(_mask("median"), line)
            out.append(line)
        if out and out[-1] == "":
            out.pop()  # the final newline
        return out

    # -- JSON ------------------------------------------------------------------------------
    def json(self, obj: Any, parent: str = "") -> Any:
        if isinstance(obj, dict):
            out: dict[str, Any] = {}
            for k, v in obj.items():
                key = str(k)
                if key in MASKED_JSON_KEYS or f"{parent}.{key}" in MASKED_JSON_KEYS:
                    out[key] = self._masked(v, key)
                else:
                    out[key] = self.json(v, key)
            return out
        if isinstance(obj, list):
            return [self.json(v, parent) for v in obj]
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, (dt.date, dt.datetime)):  # YAML timestamps
            return self.text(obj.isoformat())
        return obj

    def _masked(self, v: Any, key: str) -> Any:
        if v is None:
            return None
        if isinstance(v, dict):
            return {str(k): self._masked(x, key) for k, x in v.items()}
        if isinstance(v, list):
            return [self._masked(x, key) for x in v]
        if key in PORT_KEYS:
            if isinstance(v, str) and v.startswith(MASK):
                return v
            port = int(v) if isinstance(v, (int, str)) and str(v).isdigit() else -1
            if port in self.ports:
                return _mask("port", self.ports[port])
            return _mask("port") if self._is_ephemeral(port) else v
        if key == "sha256" and isinstance(v, str):
            if v.startswith(MASK):
                return v
            return _mask("cert-sha256", self.certs.get(v.replace(":", "").lower()))
        return _mask(key)


# =========================================================================================
# Comparing: exact, except the layout rule
# =========================================================================================


def _paragraphs(lines: Sequence[str]) -> list[list[str]]:
    """Runs of non-blank lines, and each blank line as a paragraph of its own."""
    out: list[list[str]] = []
    cur: list[str] = []
    for line in lines:
        if line.strip():
            cur.append(line)
            continue
        if cur:
            out.append(cur)
            cur = []
        out.append([line])
    if cur:
        out.append(cur)
    return out


def _canonical_paragraph(par: list[str]) -> Any:
    if any(MASK in line for line in par):
        return ["<layout-free>", " ".join(" ".join(par).split())]
    return par


def canonical(obj: Any) -> Any:
    """What is compared: a recorded call with the layout rule applied to its text."""
    if isinstance(obj, dict):
        if set(obj) == {"text"} and isinstance(obj["text"], list):
            return {"text": [_canonical_paragraph(p) for p in _paragraphs(obj["text"])]}
        return {k: canonical(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [canonical(v) for v in obj]
    return obj


def _for_display(expected: Any, actual: Any) -> Any:
    """``actual`` with every text paragraph that equals its expected twin under the
    layout rule laid out as the expected one: the diff then shows only real changes."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(actual) == {"text"} and set(expected) == {"text"}:
            ep, ap = _paragraphs(expected["text"]), _paragraphs(actual["text"])
            if len(ep) == len(ap):
                lines: list[str] = []
                for e, a in zip(ep, ap, strict=True):
                    same = _canonical_paragraph(e) == _canonical_paragraph(a)
                    lines += e if same else a
                return {"text": lines}
            return actual
        return {k: _for_display(expected.get(k), v) for k, v in actual.items()}
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [_for_display(e, a) for e, a in zip(expected, actual, strict=True)]
    return actual


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def compare(expected: Any, actual: Any, name: str = "call") -> str | None:
    """None when equal (under the layout rule), else a unified diff."""
    if canonical(expected) == canonical(actual):
        return None
    shown = _for_display(expected, actual)
    diff = difflib.unified_diff(dumps(expected).splitlines(), dumps(shown).splitlines(),
                                f"expected/{name}", f"actual/{name}", lineterm="", n=3)
    text = "\n".join(diff)
    return text or f"--- {name}: differs only in layout outside masked paragraphs"


# =========================================================================================
# Peers
# =========================================================================================


@dataclasses.dataclass
class Lab:
    """Everything the calls run against, and what the normaliser must know about it."""

    tmp: Path
    ports: dict[str, int] = dataclasses.field(default_factory=dict)
    certs: dict[str, str] = dataclasses.field(default_factory=dict)  # sha256 -> kind

    def port(self, name: str) -> int:
        return self.ports[name]

    def at(self, name: str, host: str = "127.0.0.1") -> str:
        return f"{host}:{self.ports[name]}"


def _sha256_of_pem(path: Path) -> str:
    pem = path.read_text()
    first = pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest()


def _reserved_port(stack: contextlib.ExitStack) -> int:
    """A port for a listener started later (`profiles capture`): held, bound but not
    listening with SO_REUSEADDR, for the whole run, so no client connection takes it as
    its source port meanwhile; the listener binds it all the same (SO_REUSEADDR too)."""
    s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    return port


def _wait(cond: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            raise RuntimeError(f"goldens: timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def _stop(p: subprocess.Popen[Any], sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
    """End a process this harness started, by its PID."""
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(grace)


@contextlib.contextmanager
def started_lab(tmp: Path) -> Iterator[Lab]:
    sys.path.insert(0, str(REPO))
    from tests.peers import (
        FinAfterHello,
        HttpSpeaker,
        NginxServer,
        OpenSSLServer,
        PartialFlight,
        PythonTLSServer,
        ResetAfterHello,
        SilentReader,
        SshBanner,
        closed_port,
        make_pki,
        wait_listening,
    )
    from tests.peers.haproxy_server import HaproxyServer

    for tool in ("nginx", "openssl", "haproxy", "tcpdump"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"goldens: `{tool}` is needed (make setup installs it)")
    lab = Lab(tmp)
    pki = make_pki(tmp / "pki", ecdsa384=True)
    for kind in ("rsa", "ecdsa", "ecdsa384"):
        lab.certs[_sha256_of_pem(pki.cert_key(kind)[0])] = kind
    with contextlib.ExitStack() as stack:
        peers: dict[str, Any] = {
            # TLS 1.2 + 1.3, RSA and ECDSA certificates, nginx's default suites
            "nginx": NginxServer(pki, cert="both", dir=tmp / "nginx"),
            # TLS 1.2 only, RSA, s_server's defaults (DHE too)
            "openssl": OpenSSLServer(pki, cert="rsa", min_protocol="TLSv1.2",
                                     max_protocol="TLSv1.2"),
            "haproxy": HaproxyServer(pki, cert="ecdsa"),
            "python": PythonTLSServer(pki),
            "reset": ResetAfterHello(),
            "fin": FinAfterHello(),
            "silent": SilentReader(),
            "http": HttpSpeaker(),
            "ssh": SshBanner(),
            "partial": PartialFlight(100, "reset"),
        }
        for name, peer in peers.items():
            stack.enter_context(peer)
            lab.ports[name] = peer.port
        lab.ports["nginx-internal-http"] = peers["nginx"].http_port
        lab.ports["closed"] = closed_port()
        lab.ports["capture"] = _reserved_port(stack)
        # the demo endpoint, exactly as the project's own CI gate starts it
        port_file = tmp / "demo.ports"
        log = stack.enter_context(open(tmp / "demo-serve.log", "wb"))
        demo = subprocess.Popen([sys.executable, *DEMO_SERVE, "serve", "--port-file",
                                 str(port_file)], cwd=tmp, env=call_env(tmp), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        stack.callback(_stop, demo)
        _wait(lambda: port_file.exists() or demo.poll() is not None, 30, "the demo endpoint")
        if not port_file.exists():
            raise RuntimeError(f"goldens: demo endpoint failed:\n"
                               f"{(tmp / 'demo-serve.log').read_text()}")
        demo_ports = dict(line.split("=") for line in port_file.read_text().split())
        lab.ports["demo-front"] = int(demo_ports["FRONT"])
        lab.ports["demo-silent"] = int(demo_ports["SILENT"])
        for name in ("demo-front", "demo-silent"):
            wait_listening("127.0.0.1", lab.ports[name], 10)
        yield lab


def call_env(tmp: Path) -> dict[str, str]:
    home = tmp / "home"
    tmpdir = tmp / "tmpdir"
    home.mkdir(exist_ok=True)
    tmpdir.mkdir(exist_ok=True)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
            "HOME": str(home), "TMPDIR": str(tmpdir), **ENV_PINNED}


# =========================================================================================
# Calls
# =========================================================================================


@dataclasses.dataclass
class Call:
    """One run of the CLI: ``argv`` after ``python -m prober`` (or ``module``)."""

    name: str
    argv: list[str]
    files: dict[str, Path] = dataclasses.field(default_factory=dict)  # label -> written file
    stdout_json: bool = False  # stdout is a JSON document (--json -)
    module: str = "prober"
    cwd: Path | None = None  # default: the repository root
    timeout: float = CALL_TIMEOUT_S
    # runs the call (its argument) inside whatever else must run at the same time
    around: Callable[[Callable[[], Raw]], Raw] | None = None
    needs: tuple[str, ...] = ()  # calls whose output files this one reads (for --only)


@dataclasses.dataclass
class Raw:
    argv: list[str]
    exit_code: int
    stdout: str
    stderr: str
    files: dict[str, Any]


def _read_output(path: Path) -> Any:
    """A written file as recorded: parsed JSON/JSONL/YAML, else text lines."""
    if not path.exists():
        return {"missing": True}
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    text = data.decode("utf-8", errors="replace")
    if path.suffix == ".jsonl":
        return {"jsonl": [json.loads(line) for line in text.splitlines() if line.strip()]}
    if path.suffix == ".json":
        try:
            return {"json": json.loads(text)}
        except json.JSONDecodeError:
            pass
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return {"yaml": yaml.safe_load(text)}
    return {"text": text}


def run_call(call: Call, lab: Lab) -> Raw:
    argv = [sys.executable, "-m", call.module, *call.argv]

    def go() -> Raw:
        try:
            p = subprocess.run(argv, cwd=call.cwd or REPO, env=call_env(lab.tmp),
                               stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=call.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"goldens: {call.name} did not finish within "
                               f"{call.timeout:g} s") from None
        return Raw(argv=argv, exit_code=p.returncode,
                   stdout=p.stdout.decode("utf-8", errors="replace"),
                   stderr=p.stderr.decode("utf-8", errors="replace"),
                   files={label: _read_output(path) for label, path in call.files.items()})

    return call.around(go) if call.around else go()


def record(raw: Raw, call: Call, norm: Normaliser) -> dict[str, Any]:
    """What is stored and compared for one call."""
    shown = ["python" if a == sys.executable else a for a in raw.argv]
    files: dict[str, Any] = {}
    for label, content in raw.files.items():
        if "text" in content:
            files[label] = {"text": norm.lines(content["text"])}
        else:
            files[label] = norm.json(content)
    out: dict[str, Any] = {
        "name": call.name,
        "argv": [norm.text(a) for a in shown],
        "exit_code": raw.exit_code,
        "stderr": {"text": norm.lines(raw.stderr)},
        "files": files,
    }
    out["stdout"] = {"text": norm.lines(raw.stdout)}
    if call.stdout_json and raw.exit_code == 0:
        with contextlib.suppress(json.JSONDecodeError):  # not JSON after all: kept as text
            out["stdout"] = {"json": norm.json(json.loads(raw.stdout))}
    return out


TRACEBACK_RE = re.compile(r"Traceback \(most recent call last\)|^\s*File \"[^\"]+\.py\", line",
                          re.M)


def traceback_in(raw: Raw) -> bool:
    return bool(TRACEBACK_RE.search(raw.stdout) or TRACEBACK_RE.search(raw.stderr))


# -- calls that need more than one process --------------------------------------------------


def _pcap_frames(path: Path) -> int:
    """Records in a pcap file (the classic format tcpdump -w writes)."""
    try:
        data = path.read_bytes()
    except OSError:
        return 0
    if len(data) < 24:
        return 0
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    n, off = 0, 24
    while off + 16 <= len(data):
        (caplen,) = struct.unpack_from(f"{endian}I", data, off + 8)
        if off + 16 + caplen > len(data):
            break
        off += 16 + caplen
        n += 1
    return n


def under_tcpdump(pcap: Path, port: int, frames: int) -> Callable[[Callable[[], Raw]], Raw]:
    """Run the call while tcpdump records, on lo, the SYN and the data segment (the
    ClientHello) of each connection to ``port``: two frames per connection whatever the
    kernel does with ACKs, so the capture is the same in every run."""

    def around(go: Callable[[], Raw]) -> Raw:
        err = pcap.with_suffix(".tcpdump.log")
        with open(err, "wb") as errf:
            td = subprocess.Popen(
                ["tcpdump", "-U", "--immediate-mode", "-n", "-i", "lo", "-w", str(pcap),
                 f"tcp dst port {port} and (tcp[tcpflags] & (tcp-syn|tcp-push) != 0)"],
                stdout=subprocess.DEVNULL, stderr=errf, stdin=subprocess.DEVNULL)
        try:
            _wait(lambda: b"listening on" in err.read_bytes() or td.poll() is not None, 10,
                  "tcpdump to start")
            if td.poll() is not None:
                raise RuntimeError(f"goldens: tcpdump failed: {err.read_text()}")
            raw = go()
            _wait(lambda: _pcap_frames(pcap) >= frames, 10, f"{frames} frames in {pcap}")
        finally:
            _stop(td, signal.SIGINT)
        got = _pcap_frames(pcap)
        if got != frames:
            raise RuntimeError(f"goldens: {pcap} holds {got} frames, expected {frames}")
        return raw

    return around


def with_capture_listener(capture: Call, lab: Lab, sink: dict[str, Raw]
                          ) -> Callable[[Callable[[], Raw]], Raw]:
    """Start `prober profiles capture` (``capture``) in the background, run the call (a
    probe against it), then collect the capture's own result into ``sink``."""
    from tests.peers import wait_listening

    def around(go: Callable[[], Raw]) -> Raw:
        argv = [sys.executable, "-m", capture.module, *capture.argv]
        out, err = lab.tmp / "capture.stdout", lab.tmp / "capture.stderr"
        with open(out, "wb") as o, open(err, "wb") as e:
            p = subprocess.Popen(argv, cwd=REPO, env=call_env(lab.tmp), stdout=o, stderr=e,
                                 stdin=subprocess.DEVNULL)
        try:
            wait_listening("127.0.0.1", lab.port("capture"), 15, alive=p)
            raw = go()
            p.wait(capture.timeout)
        finally:
            _stop(p)
        sink[capture.name] = Raw(
            argv=argv, exit_code=p.returncode, stdout=out.read_text(), stderr=err.read_text(),
            files={label: _read_output(path) for label, path in capture.files.items()})
        return raw

    return around


def build_calls(lab: Lab, sink: dict[str, Raw]) -> list[Call]:
    """Every command and sub-command, success and error paths. Order matters: later
    calls read what earlier ones wrote (diff, from-pcap)."""
    out = lab.tmp / "out"
    out.mkdir(exist_ok=True)
    inp = str(INPUTS.relative_to(REPO))  # relative: the path is part of the output
    nginx, front = lab.at("nginx"), lab.at("demo-front")
    targets_file = out / "targets.txt"
    targets_file.write_text(f"# the Python ssl server and HAProxy\n{lab.at('python')}\n\n"
                            f"{lab.at('haproxy')}  \n")
    same = ["-p", "tls1.2-only", "-p", "tls1.3-only", "-p", "tls1.1-only",
            "-p", "firefox-137-win11", "-p", "cipher:ECDHE-RSA-AES256-SHA",
            "-p", "group:X25519MLKEM768"]
    misbehaving = [lab.at(n) for n in ("reset", "fin", "silent", "http", "ssh", "partial",
                                       "closed")]
    pcap = out / "hellos.pcap"
    capture_dir = out / "captured"
    capture = Call("profiles-capture", [
        "profiles", "capture", "--listen", lab.at("capture"), "--count", "2",
        "--out", str(capture_dir), "-t", "20", "--name", "golden-client",
        "--client-name", "prober", "--client-version", "golden", "--tag", "golden",
        "--client-detail", "via=goldens"],
        files={"golden-client.yaml": capture_dir / "golden-client.yaml",
               "golden-client-2.yaml": capture_dir / "golden-client-2.yaml"}, timeout=30,
        needs=("probe-against-capture",))
    demo_dir = out / "demo"
    demo_dir.mkdir(exist_ok=True)
    j = out.joinpath  # where --json FILE goes

    calls = [
        # -- top level -------------------------------------------------------------------
        Call("version", ["--version"]),
        Call("no-command", []),
        Call("unknown-command", ["frobnicate"]),
        Call("outcomes", ["outcomes"]),
        # -- profiles --------------------------------------------------------------------
        Call("profiles-list", ["profiles", "list"]),
        Call("profiles-list-set", ["profiles", "list", "--set", "java"]),
        Call("profiles-show", ["profiles", "show", "firefox-137-win11"]),
        Call("profiles-show-generated", ["profiles", "show", "cipher:AES128-SHA@TLSv1.1"]),
        Call("profiles-show-unknown", ["profiles", "show", "no-such-profile"]),
        Call("profiles-list-unknown-set", ["profiles", "list", "--set", "no-such-set"]),
        Call("profiles-no-action", ["profiles"]),
        # -- probe -----------------------------------------------------------------------
        Call("probe-nginx", ["probe", nginx, *same, "-n", "2", "--json",
                             str(j("probe-nginx.json"))],
             files={"probe-nginx.json": j("probe-nginx.json")}),
        Call("probe-haproxy", ["probe", lab.at("haproxy"), *same, "-n", "2", "--json",
                               str(j("probe-haproxy.json"))],
             files={"probe-haproxy.json": j("probe-haproxy.json")}),
        # one attempt at a time: the JSONL lines come in a fixed order
        Call("probe-misbehaving", ["probe", *misbehaving, "-p", "tls1.2-only", "-t", "1",
                                   "-c", "1", "--json", str(j("probe-misbehaving.json")),
                                   "--jsonl", str(j("probe-misbehaving.jsonl"))],
             files={"probe-misbehaving.json": j("probe-misbehaving.json"),
                    "probe-misbehaving.jsonl": j("probe-misbehaving.jsonl")}),
        Call("probe-openssl-sni-default-set", [
            "probe", f"demo.test:{lab.port('openssl')}", "--address", "127.0.0.1",
            "--json", str(j("probe-openssl.json"))],
            files={"probe-openssl.json": j("probe-openssl.json")}),
        Call("probe-targets-file-json-stdout", [
            "probe", "-f", str(targets_file), "-p", "tls1.3-only", "-p", "group:secp384r1",
            "-p", "java", "--no-sni", "--fresh-keys", "--connect-timeout", "2",
            "--read-timeout", "2", "--per-target", "2", "--rate", "500", "--json", "-"],
            stdout_json=True),
        Call("probe-bad-port", ["probe", "host:99999"]),
        Call("probe-unknown-profile", ["probe", nginx, "-p", "no-such-profile"]),
        Call("probe-bad-repeat", ["probe", nginx, "--repeat", "0"]),
        Call("probe-no-target", ["probe"]),
        Call("probe-missing-targets-file", ["probe", "-f", str(out / "no-such-targets.txt")]),
        Call("probe-unwritable-json", ["probe", nginx, "-p", "tls1.2-only", "--json",
                                       str(out / "no-such-dir" / "x.json")]),
        # -- policy ----------------------------------------------------------------------
        # -c 1: with connections in parallel, the order (and ids) of the attempts in the
        # JSON follow the order in which answers arrive
        Call("policy-nginx", ["policy", nginx, "-c", "1", "--json",
                              str(j("policy-nginx.json"))],
             files={"policy-nginx.json": j("policy-nginx.json")}),
        Call("policy-openssl-sni", ["policy", f"demo.test:{lab.port('openssl')}",
                                    "--address", "127.0.0.1", "-c", "1",
                                    "--json", str(j("policy-openssl.json"))],
             files={"policy-openssl.json": j("policy-openssl.json")}),
        Call("policy-haproxy", ["policy", lab.at("haproxy"), "-t", "2", "--budget", "60"]),
        Call("policy-demo-front", ["policy", front, "-c", "1", "--json",
                                   str(j("policy-front.json"))],
             files={"policy-front.json": j("policy-front.json")}),
        Call("policy-deep", ["policy", nginx, "--deep", "-t", "2", "-c", "1", "--json",
                             str(j("policy-deep.json"))],
             files={"policy-deep.json": j("policy-deep.json")}),
        Call("policy-closed-port", ["policy", lab.at("closed"), "-t", "1"]),
        Call("policy-sni-conflict", ["policy", nginx, "--sni", "demo.test", "--no-sni"]),
        Call("policy-bad-budget", ["policy", nginx, "--budget", "0"]),
        # -- whatif ----------------------------------------------------------------------
        Call("whatif-catalog", ["whatif", "--policy", "ELBSecurityPolicy-TLS13-1-2-2021-06",
                                "--current", "ELBSecurityPolicy-2016-08",
                                "--json", str(j("whatif-catalog.json"))],
             files={"whatif-catalog.json": j("whatif-catalog.json")}),
        Call("whatif-live", ["whatif", "--policy", "ELBSecurityPolicy-FS-1-2-Res-2020-10",
                             "--clients", "default", "sweep-versions", "--against", front,
                             "--current", lab.at("openssl"), "-t", "2",
                             "--json", str(j("whatif-live.json"))],
             files={"whatif-live.json": j("whatif-live.json")}),
        Call("whatif-policy-file", ["whatif", "--policy", f"{inp}/candidate-policy.yaml",
                                    "--clients", "browsers", "java",
                                    "cipher:ECDHE-RSA-AES128-GCM-SHA256", "cipher:AES128-SHA",
                                    "--order", "client", "--cert", "ecdsa"]),
        Call("whatif-logs", ["whatif", "--policy", "ELBSecurityPolicy-TLS13-1-2-2021-06",
                             "--clients", f"{inp}/alb-conn.log", "--current",
                             "ELBSecurityPolicy-2016-08", "--json", "-"], stdout_json=True),
        Call("whatif-unknown-policy", ["whatif", "--policy", "ELBSecurityPolicy-NOPE"]),
        Call("whatif-bad-cert", ["whatif", "--policy", "ELBSecurityPolicy-2016-08",
                                 "--cert", "dsa"]),
        Call("whatif-against-closed-port", [
            "whatif", "--policy", "ELBSecurityPolicy-2016-08", "--clients", "tls1.2-only",
            "--against", lab.at("closed"), "-t", "1"]),
        # -- diagnose --------------------------------------------------------------------
        Call("diagnose-nginx", ["diagnose", nginx, "-n", "2", "--sweep-repeat", "1", "-t", "1",
                                "--expect-issuer", "prober test CA",
                                "--json", str(j("diagnose-nginx.json"))],
             files={"diagnose-nginx.json": j("diagnose-nginx.json")}),
        Call("diagnose-demo-front", ["diagnose", front, "-n", "2", "--sweep-repeat", "1",
                                     "-t", "1", "--json", str(j("diagnose-front.json"))],
             files={"diagnose-front.json": j("diagnose-front.json")}),
        Call("diagnose-silent-json-stdout", ["diagnose", lab.at("demo-silent"), "-n", "1",
                                             "--sweep-repeat", "1", "-t", "0.5", "-q",
                                             "--json", "-"], stdout_json=True),
        Call("diagnose-bad-pin", ["diagnose", nginx, "--pin-sha256", "abc"]),
        Call("diagnose-bad-idle-timeout", ["diagnose", nginx, "--idle-timeout", "0.5"]),
        # -- diff ------------------------------------------------------------------------
        Call("diff-diagnose", ["diff", str(j("diagnose-nginx.json")),
                               str(j("diagnose-front.json")), "--label-a", "inside",
                               "--label-b", "outside", "--json", str(j("diff-diagnose.json"))],
             files={"diff-diagnose.json": j("diff-diagnose.json")},
             needs=("diagnose-nginx", "diagnose-demo-front")),
        Call("diff-probe", ["diff", str(j("probe-nginx.json")), str(j("probe-haproxy.json"))],
             needs=("probe-nginx", "probe-haproxy")),
        Call("diff-not-json", ["diff", f"{inp}/not-json.json", str(j("probe-nginx.json"))],
             needs=("probe-nginx",)),
        Call("diff-missing-file", ["diff", str(out / "no-such.json"),
                                   str(j("probe-nginx.json"))], needs=("probe-nginx",)),
        Call("diff-not-a-run", ["diff", str(j("whatif-catalog.json")),
                                str(j("probe-nginx.json"))],
             needs=("whatif-catalog", "probe-nginx")),
        # -- check -----------------------------------------------------------------------
        Call("check-ci-gate", ["check", front, "--expect", ".ci/expect.yaml",
                               "--junit", str(j("gate.xml")), "--json", str(j("gate.json"))],
             files={"gate.xml": j("gate.xml"), "gate.json": j("gate.json")}),
        Call("check-failing", ["check", nginx, "--expect", f"{inp}/expect-nginx-fails.yaml",
                               "--junit", str(j("failing.xml")),
                               "--json", str(j("failing.json"))],
             files={"failing.xml": j("failing.xml"), "failing.json": j("failing.json")}),
        Call("check-invalid-expectations", ["check", nginx, "--expect",
                                            f"{inp}/expect-invalid.yaml"]),
        Call("check-missing-expectations", ["check", nginx, "--expect",
                                            f"{inp}/no-such-expect.yaml"]),
        # -- logs ------------------------------------------------------------------------
        Call("logs-every-format", [
            "logs", *(f"{inp}/{f}" for f in (
                "alb-conn.log", "alb-conn-2.log.gz", "alb-access.log", "nlb.log",
                "classic-elb.log", "cloudfront.log", "vpc-flow.log", "go-http.log",
                "nginx-error.log", "haproxy.log")),
            "--top", "5", "--examples", "3", "--json", str(j("logs.json"))],
            files={"logs.json": j("logs.json")}),
        Call("logs-vpc-fields-json-stdout", [
            "logs", f"{inp}/vpc-flow-custom.log", "--format", "vpc-flow", "--vpc-fields",
            "srcaddr dstaddr srcport dstport packets tcp-flags", "--max-packets", "3",
            "--json", "-"], stdout_json=True),
        Call("logs-forced-format-quiet", ["logs", f"{inp}/nginx-error.log", "--format",
                                          "nginx", "-q", "--json", str(j("logs-nginx.json"))],
             files={"logs-nginx.json": j("logs-nginx.json")}),
        Call("logs-unknown-format", ["logs", f"{inp}/not-a-log.txt"]),
        Call("logs-missing-file", ["logs", f"{inp}/no-such.log"]),
        Call("logs-bad-port", ["logs", f"{inp}/vpc-flow.log", "--port", "0"]),
        Call("logs-bad-vpc-fields", ["logs", f"{inp}/vpc-flow-custom.log", "--vpc-fields",
                                     "srcaddr nonsense"]),
        # -- profiles from-pcap (the hellos of a probe, captured by tcpdump on lo) ----------
        Call("probe-under-tcpdump", [
            "probe", f"demo.test:{lab.port('reset')}", "--address", "127.0.0.1",
            "-p", "firefox-137-win11", "-p", "tls1.2-only", "-p", "curl-7.88.1",
            "-c", "1"], around=under_tcpdump(pcap, lab.port("reset"), frames=6)),
        Call("profiles-from-pcap", ["profiles", "from-pcap", str(pcap), "--out",
                                    str(out / "imported"), "--json", str(j("from-pcap.json"))],
             files={"from-pcap.json": j("from-pcap.json")}, needs=("probe-under-tcpdump",)),
        Call("profiles-from-pcap-not-a-capture", ["profiles", "from-pcap",
                                                  f"{inp}/not-a-log.txt", "--out",
                                                  str(out / "imported-2")]),
        Call("profiles-from-pcap-missing-file", ["profiles", "from-pcap",
                                                 str(out / "no-such.pcap"), "--out",
                                                 str(out / "imported-3")]),
        # -- profiles capture (a probe is its client) ---------------------------------------
        Call("probe-against-capture", ["probe", lab.at("capture"), "-p", "firefox-137-win11",
                                       "-p", "tls1.2-only", "-c", "1"],
             around=with_capture_listener(capture, lab, sink)),
        capture,  # recorded from the background run above, not run again
        Call("profiles-capture-nothing", ["profiles", "capture", "--listen", "127.0.0.1:0",
                                          "-t", "1"]),
        Call("profiles-capture-port-taken", ["profiles", "capture", "--listen",
                                             lab.at("nginx"), "-t", "1"]),
        Call("profiles-capture-bad-listen", ["profiles", "capture", "--listen", "nowhere"]),
        # -- the demo (`make demo`) --------------------------------------------------------
        Call("demo", ["demo"], cwd=demo_dir,
             files={"out/demo.json": demo_dir / "out" / "demo.json",
                    "out/demo-silent.json": demo_dir / "out" / "demo-silent.json"}),
        Call("demo-bad-arguments", ["demo", "bogus"], cwd=demo_dir),
        # -- the option set every connecting command shares (added with the layout work:
        # recorded from the tree before it, so the goldens show what changed) ------------
        Call("probe-sni-and-no-sni", ["probe", nginx, "-p", "tls1.2-only", "--sni", "x.test",
                                      "--no-sni", "--json", str(j("probe-sni-no-sni.json"))],
             files={"probe-sni-no-sni.json": j("probe-sni-no-sni.json")}),
        Call("probe-zero-timeout", ["probe", nginx, "-p", "tls1.2-only", "-t", "0"]),
        Call("check-timeout-options", ["check", front, "--expect", ".ci/expect.yaml", "-t", "3",
                                       "--read-timeout", "4"]),
        Call("whatif-connect-timeout", ["whatif", "--policy",
                                        "ELBSecurityPolicy-FS-1-2-Res-2020-10", "--clients",
                                        "tls1.2-only", "--against", front,
                                        "--connect-timeout", "2"]),
        Call("diagnose-sni-and-no-sni", ["diagnose", nginx, "--sni", "x.test", "--no-sni"]),
    ]
    return calls


# =========================================================================================
# Running, updating, comparing
# =========================================================================================


def golden_name(index: int, call: Call) -> str:
    return f"{index:02d}-{call.name}.json"


def run_all(keep: bool, only: set[str] | None = None) -> tuple[dict[str, Any], list[str], float]:
    """Every call, recorded and normalised: {file name: record}, the calls left out
    because their output held a traceback, and the wall time."""
    t0 = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="prober-goldens-"))
    records: dict[str, Any] = {}
    bugs: list[str] = []
    try:
        with started_lab(tmp) as lab:
            norm = Normaliser(tmp=str(tmp), ports={p: n for n, p in lab.ports.items()},
                              certs=lab.certs)
            sink: dict[str, Raw] = {}
            calls = build_calls(lab, sink)
            wanted = _with_needs(calls, only) if only else None
            for i, call in enumerate(calls, 1):
                if wanted is not None and call.name not in wanted:
                    continue
                t = time.monotonic()
                raw = sink.pop(call.name) if call.name in sink else run_call(call, lab)
                took = time.monotonic() - t
                print(f"  {i:02d} {call.name:<40} exit {raw.exit_code:<3} {took:5.1f} s",
                      file=sys.stderr, flush=True)
                if traceback_in(raw):
                    bugs.append(f"{call.name}: traceback in the output (left out of the "
                                f"goldens)\n{raw.stderr[-2000:]}")
                    continue
                records[golden_name(i, call)] = record(raw, call, norm)
    finally:
        if keep:
            print(f"goldens: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return records, bugs, time.monotonic() - t0


def _with_needs(calls: list[Call], only: set[str]) -> set[str]:
    """--only: the chosen calls and, transitively, the calls whose outputs they read."""
    by_name = {c.name: c for c in calls}
    unknown = only - set(by_name)
    if unknown:
        raise SystemExit(f"goldens: no such call: {', '.join(sorted(unknown))}")
    todo, out = list(only), set()
    while todo:
        name = todo.pop()
        if name not in out:
            out.add(name)
            todo += by_name[name].needs
    return out


def load_expected() -> dict[str, Any]:
    return {p.name: json.loads(p.read_text(encoding="utf-8"))
            for p in sorted(EXPECTED.glob("*.json"))}


def compare_all(expected: dict[str, Any], actual: dict[str, Any],
                only: set[str] | None = None) -> list[str]:
    """A unified diff (or a line) per call that differs, missing or extra."""
    problems: list[str] = []
    for name in sorted(set(expected) | set(actual)):
        call = (expected.get(name) or actual.get(name) or {}).get("name", name)
        if only and call not in only:
            continue
        if name not in actual:
            problems.append(f"--- {name}: in the goldens, not produced by this run")
        elif name not in expected:
            problems.append(f"+++ {name}: produced by this run, not in the goldens")
        else:
            d = compare(expected[name], actual[name], name)
            if d:
                problems.append(d)
    return problems


def write_expected(records: dict[str, Any]) -> None:
    EXPECTED.mkdir(parents=True, exist_ok=True)
    for old in EXPECTED.glob("*.json"):
        if old.name not in records:
            old.unlink()
    for name, rec in records.items():
        (EXPECTED / name).write_text(dumps(rec), encoding="utf-8")


# =========================================================================================
# Self-test: on the stored goldens only (no peers). Every masked value changed: no
# difference; one detail, outcome or exit code changed: a difference.
# =========================================================================================

_PLACEHOLDER = re.compile(r"<MASK:([\w-]+)(?::([\w-]+))?>")


TRICKY_PORTS = (41000, 49199, 32768, 50123, 43000, 52393, 42496, 49195, 52392, 43001, 50101,
                39424, 41001, 49171, 44544, 42000)


@dataclasses.dataclass
class StandIns:
    """Concrete values to put back where a golden has masks: what another run (other
    ports, another time, other durations, other certificates, another machine) gives."""

    seed: int
    now: dt.datetime
    names: dict[str, int] = dataclasses.field(default_factory=dict)  # port name -> port

    def __post_init__(self) -> None:
        self.tmp = f"/tmp/prober-goldens-standin{self.seed}"
        self.hostname = f"standin-host-{self.seed}"

    def port(self, name: str | None) -> int:
        if name is None:  # an ephemeral source port: not one of the named ones
            return 33000 + self.seed * 7
        if name not in self.names:
            # first the numbers that also occur in the outputs as something else (flow
            # records of the fixtures, suite ids in JA3 strings, TCP MSS values): a peer
            # port may well be one of them, and they must not be masked then
            taken = set(self.names.values())
            free = [p for p in TRICKY_PORTS[self.seed % 2::2] if p not in taken]
            self.names[name] = free[0] if free else 40000 + 1000 * self.seed + len(taken)
        return self.names[name]

    def cert(self, name: str | None) -> str:
        base = name or "unknown"
        return hashlib.sha256(f"{base}/{self.seed}".encode()).hexdigest()

    def value(self, what: str, name: str | None) -> str:
        if what == "port":
            return str(self.port(name))
        if what == "cert-sha256":
            return self.cert(name)
        if what == "time":
            return self.now.isoformat(timespec="milliseconds")
        if what == "tmp":
            return self.tmp
        if what == "repo":
            return str(REPO)
        if what == "hostname":
            return self.hostname
        if what in ("ms", "median"):
            return f"{3.1 + 9.77 * self.seed:.2f}"
        if what == "s":
            return f"{0.4 + 11.3 * self.seed:.1f}"
        if what == "version":
            return f"0.{self.seed}.dev{40 + self.seed}+g{self.seed:07x}"
        return f"standin-{what}-{self.seed}"  # the value of a masked JSON key

    def normaliser(self) -> Normaliser:
        return Normaliser(tmp=self.tmp, ports={p: n for n, p in self.names.items()},
                          certs={self.cert(n): n for n in ("rsa", "ecdsa", "ecdsa384")},
                          hostname=self.hostname, now=self.now)


def _unmask_text(s: str, si: StandIns) -> str:
    return _PLACEHOLDER.sub(lambda m: si.value(m.group(1), m.group(2)), s)


def unmask(obj: Any, si: StandIns, key: str = "") -> Any:
    if isinstance(obj, dict):
        return {k: unmask(v, si, k) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unmask(v, si, key) for v in obj]
    if isinstance(obj, str):
        m = _PLACEHOLDER.fullmatch(obj)
        if m and m.group(1) == "port" and key in PORT_KEYS:
            return si.port(m.group(2))  # a port in JSON is a number
        return _unmask_text(obj, si)
    return obj


def as_another_run(rec: dict[str, Any], si: StandIns) -> dict[str, Any]:
    """``rec`` as a run with other volatile values would have recorded it: every mask
    replaced by a concrete stand-in (text keeps its layout), then normalised again."""
    raw = unmask(rec, si)
    norm = si.normaliser()

    def again(obj: Any, key: str = "") -> Any:
        if isinstance(obj, dict):
            if set(obj) == {"text"}:
                return {"text": norm.lines("\n".join(obj["text"]))}
            if set(obj) <= {"json", "jsonl", "yaml"} and obj:
                return {k: norm.json(v) for k, v in obj.items()}
            return {k: again(v, k) for k, v in obj.items()}
        if isinstance(obj, list):
            return [again(v, key) for v in obj]
        if isinstance(obj, str):
            return norm.text(obj)
        return obj

    out: dict[str, Any] = again(raw)
    return out


def _first_text_line(rec: dict[str, Any], contains: str) -> tuple[str, int] | None:
    for stream in ("stdout", "stderr"):
        text = rec.get(stream, {}).get("text")
        if isinstance(text, list):
            for i, line in enumerate(text):
                if contains in line:
                    return stream, i
    return None


def _find_key(obj: Any, key: str, pred: Callable[[Any], bool]) -> dict[str, Any] | None:
    """The first mapping in ``obj`` whose ``key`` satisfies ``pred``."""
    if isinstance(obj, dict):
        if key in obj and pred(obj[key]):
            return obj
        children: list[Any] = list(obj.values())
    elif isinstance(obj, list):
        children = obj
    else:
        return None
    for v in children:
        found = _find_key(v, key, pred)
        if found is not None:
            return found
    return None


def self_test(expected: dict[str, Any], log: Callable[[str], None] = print) -> list[str]:
    """Returns the failures (empty: the comparison does what it must)."""
    failures: list[str] = []

    def must_differ(what: str, a: Any, b: Any) -> None:
        ok = compare(a, b, what) is not None
        log(f"  {'ok  ' if ok else 'FAIL'}  reported  {what}")
        if not ok:
            failures.append(f"not reported: {what}")

    def must_equal(what: str, a: Any, b: Any) -> None:
        d = compare(a, b, what)
        log(f"  {'ok  ' if d is None else 'FAIL'}  ignored   {what}")
        if d is not None:
            failures.append(f"reported although only masked values changed: {what}\n{d}")

    if not expected:
        return ["no goldens to test: run scripts/goldens.py --update first"]

    # 1. every golden, as two other runs would record it: no difference
    now = dt.datetime.now(dt.UTC)
    masks = sum(len(_PLACEHOLDER.findall(dumps(rec))) for rec in expected.values())
    for seed, shift in ((1, dt.timedelta(hours=5)), (2, dt.timedelta(days=1, minutes=7))):
        si = StandIns(seed, now + shift)
        bad = [n for n, rec in expected.items() if compare(rec, as_another_run(rec, si), n)]
        unmasked = sum(len(_PLACEHOLDER.findall(dumps(unmask(rec, si))))
                       for rec in expected.values())
        if masks == 0 or unmasked != 0:
            failures.append(f"stand-ins #{seed}: {masks} masked values, {unmasked} left")
        must_equal(f"all {len(expected)} goldens with all {masks} masked values (ports, "
                   f"times, durations, certificates, temp paths, host name) replaced by "
                   f"other ones (stand-ins #{seed})" + (f": {', '.join(bad)}" if bad else ""),
                   0, 0 if not bad else 1)

    # 2. behaviour changed: a difference, also when masked values changed as well
    probe = next((r for n, r in sorted(expected.items()) if r.get("name") == "probe-nginx"),
                 None)
    if probe is None:
        return [*failures, "no probe-nginx golden to mutate"]
    other = as_another_run(probe, StandIns(3, now + dt.timedelta(hours=2)))

    b = copy.deepcopy(other)
    cell = _find_key(b["files"]["probe-nginx.json"], "detail",
                     lambda v: isinstance(v, str) and v.startswith("TLSv1.2"))
    if cell is not None:
        cell["detail"] = cell["detail"].replace("TLSv1.2", "TLSv1.1", 1)
    must_differ("probe JSON: one detail string (TLSv1.2 -> TLSv1.1)", probe, b)

    b = copy.deepcopy(other)
    att = _find_key(b["files"]["probe-nginx.json"], "outcome", lambda v: v == "alert")
    if att is not None:
        att["outcome"] = "reset"
    must_differ("probe JSON: one attempt's outcome (alert -> reset)", probe, b)

    b = copy.deepcopy(other)
    b["exit_code"] = 1
    must_differ("probe: exit code 0 -> 1", probe, b)

    b = copy.deepcopy(other)
    where = _first_text_line(b, " alert ")
    if where is not None:
        b[where[0]]["text"][where[1]] = b[where[0]]["text"][where[1]].replace(
            " alert ", " reset ", 1)
    must_differ("probe table: one outcome in a paragraph compared without layout", probe, b)

    b = copy.deepcopy(other)
    b["stdout"]["text"].append("")
    must_differ("probe: one more (blank) line of output", probe, b)

    b = copy.deepcopy(other)
    b["argv"] = [a.replace("<MASK:port:nginx>", "<MASK:port:haproxy>") for a in b["argv"]]
    must_differ("probe: sent to another peer (a named port)", probe, b)

    b = copy.deepcopy(other)
    cert = _find_key(b["files"]["probe-nginx.json"], "sha256", lambda v: True)
    if cert is not None:
        cert["sha256"] = "<MASK:cert-sha256>"
    must_differ("probe JSON: a certificate that is not one of the run's", probe, b)

    b = copy.deepcopy(other)
    t = _find_key(b["files"]["probe-nginx.json"], "timings_ms", lambda v: isinstance(v, dict))
    if t is not None:
        t["timings_ms"]["extra_phase"] = "<MASK:timings_ms>"
    must_differ("probe JSON: a masked mapping gains a key", probe, b)

    # layout: re-aligned columns and re-wrapped lines, as other widths of masked values
    # give, are no difference where a paragraph holds a mask; elsewhere they are
    def relaid(lines: list[str], masked: bool) -> list[str]:
        out: list[str] = []
        for par in _paragraphs(lines):
            if any(MASK in line for line in par) == masked and par[0].strip():
                words = " ".join(par).split()
                half = max(1, len(words) // 2)
                out += ["   ".join(words[:half]), " ".join(words[half:])]
            else:
                out += par
        return out

    b = copy.deepcopy(other)
    b["stdout"]["text"] = relaid(b["stdout"]["text"], masked=True)
    must_equal("probe table: columns re-aligned and lines re-wrapped in paragraphs with "
               "masks", probe, b)
    plist = next((r for r in expected.values() if r.get("name") == "profiles-list"), None)
    if plist is not None:
        b = copy.deepcopy(plist)
        b["stdout"]["text"] = relaid(b["stdout"]["text"], masked=False)
        must_differ("profiles list: the same re-layout where no value is masked", plist, b)

    diag = next((r for n, r in sorted(expected.items()) if r.get("name") == "diagnose-nginx"),
                None)
    if diag is not None:
        b = as_another_run(diag, StandIns(5, now))
        where = _first_text_line(b, "accepts TLSv1.3")
        if where is not None:
            b[where[0]]["text"][where[1]] = b[where[0]]["text"][where[1]].replace(
                "accepts TLSv1.3", "accepts TLSv1.2", 1)
        must_differ("diagnose: one word of a wrapped finding (compared without layout)",
                    diag, b)

    err = next((r for n, r in sorted(expected.items())
                if r.get("exit_code") == 2 and r["stderr"]["text"]), None)
    if err is not None:
        b = copy.deepcopy(err)
        b["stderr"]["text"][0] += "!"
        must_differ(f"{err['name']}: one character of the error message", err, b)
        b = copy.deepcopy(err)
        b["exit_code"] = 0
        must_differ(f"{err['name']}: exit code 2 -> 0", err, b)

    # 3. the normaliser masks only what it lists
    n1 = StandIns(4, now).normaliser()
    fixed = "2024-03-30T18:14:00.000001Z 198.51.100.12 50123 443 port 443 TLSv1.2 0.004"
    kept = n1.text(fixed)
    must_differ("fixture timestamps, addresses, ports outside the ephemeral range and "
                "plain numbers are kept", kept, kept.replace("18:14", "18:15"))
    if kept != fixed:
        failures.append(f"masked what is not volatile: {fixed!r} -> {kept!r}")
    return failures


# =========================================================================================


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--update", action="store_true",
                    help="write scripts/goldens/expected/ from this run")
    ap.add_argument("--self-test", action="store_true",
                    help="check, on the stored goldens, that the comparison reports a changed "
                    "behaviour and ignores a changed masked value")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="run and compare only this call (repeatable; calls it reads from "
                    "are run too); with --update, only these goldens are rewritten")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the run's temp directory")
    args = ap.parse_args(argv)

    if args.self_test:
        failures = self_test(load_expected())
        print(f"self-test: {'PASS' if not failures else 'FAIL'}"
              + (f" ({len(failures)} failures)" if failures else ""))
        for f in failures:
            print(f, file=sys.stderr)
        return 0 if not failures else 1

    only = set(args.only) if args.only else None
    records, bugs, took = run_all(args.keep_tmp, only)
    for b in bugs:
        print(f"goldens: BUG: {b}", file=sys.stderr)
    if args.update:
        if only:
            current = load_expected()
            current.update({n: r for n, r in records.items() if r["name"] in only})
            records = current
        write_expected(records)
        print(f"goldens: wrote {len(records)} calls to {EXPECTED.relative_to(REPO)} "
              f"in {took:.0f} s")
        return 1 if bugs else 0
    problems = compare_all(load_expected(), records, only)
    for p in problems:
        print(p)
    n = len(only) if only else len(records)
    if problems:
        print(f"goldens: {len(problems)} of {n} calls differ ({took:.0f} s)")
        return 1
    print(f"goldens: all {n} calls identical ({took:.0f} s)")
    return 1 if bugs else 0


if __name__ == "__main__":
    raise SystemExit(main())
