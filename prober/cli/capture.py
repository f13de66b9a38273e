"""`prober profiles capture`: record the ClientHellos real clients send, as profiles."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from prober.capture import live as cap
from prober.capture.live import profile_filename
from prober.cli.common import UsageError, run_loop
from prober.net import listener
from prober.profiles import locations
from prober.profiles.describe import versions_text
from prober.profiles.importer import write_yaml
from prober.profiles.model import Profile
from prober.report.output import say
from prober.wire.clienthello import ClientHello, record_version_of, spec_from_hello
from prober.wire.fingerprint import ja4

EXIT_OK = 0
EXIT_NOTHING = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def register(sub: Any) -> None:
    p = sub.add_parser(
        "capture", help="listen and turn the ClientHellos of real clients into profiles",
        description="Listen for TLS clients, record each ClientHello (reassembled across "
        "records and segments), end the connection with an alert (or, with --complete, a "
        "real handshake with a throwaway certificate) and write one profile per distinct "
        "client configuration.")
    p.add_argument("--listen", required=True, metavar="ADDR:PORT",
                   help="address to listen on, e.g. 127.0.0.1:8443 or [::1]:0 (0: any port; "
                   "the port is printed on stderr)")
    p.add_argument("--name", metavar="NAME",
                   help="profile name (further distinct hellos get NAME-2, NAME-3, ...)")
    p.add_argument("-n", "--count", type=int, default=1, metavar="N",
                   help="stop after N hellos (default 1)")
    p.add_argument("--out", metavar="DIR",
                   help="directory for the profile files (default: captured/ in the user "
                   f"profile directory, {locations.captured_dir()}, where `-p NAME` finds "
                   "them)")
    p.add_argument("--complete", action="store_true",
                   help="complete the handshake (throwaway certificate) and answer HTTP "
                   "requests, so clients that retry after a failure show their first hello")
    p.add_argument("-t", "--timeout", type=float, metavar="S",
                   help="stop listening after S seconds (default: wait for --count hellos)")
    p.add_argument("--client-name", default="", metavar="TEXT",
                   help="the client's name, written into the profile")
    p.add_argument("--client-version", default="", metavar="TEXT",
                   help="the client's exact version, written into the profile")
    p.add_argument("--client-detail", action="append", default=[], metavar="KEY=VALUE",
                   help="another fact about the client (e.g. library=OpenSSL/3.0.2), repeatable")
    p.add_argument("--description", default="", metavar="TEXT")
    p.add_argument("--tag", action="append", default=[], metavar="TAG",
                   help="set membership (repeatable)")
    p.set_defaults(func=cmd_capture)


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` or ``[V6]:PORT`` -> (addr, port); port 0 lets the kernel choose."""

    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise UsageError(f"--listen {text!r}: expected ADDR:PORT, e.g. 127.0.0.1:8443")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"--listen {text!r}: write IPv6 as [addr]:port")
    if not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen {text!r}: port {port!r} is not 0-65535")
    return host, int(port)


def cmd_capture(args: argparse.Namespace) -> int:

    host, port = parse_listen(args.listen)
    if args.count < 1:
        raise UsageError(f"--count must be at least 1, got {args.count}")
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {args.timeout}")
    out = Path(args.out) if args.out else locations.captured_dir()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out or str(out)!r} is not a directory")
    details = {}
    for item in args.client_detail:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--client-detail {item!r}: expected KEY=VALUE")
        details[key.strip()] = value.strip()
    book = cap.CaptureBook(args.name)
    opts = listener.ListenOptions(host=host, port=port, count=args.count, timeout=args.timeout,
                             complete=args.complete)
    mode = "complete" if args.complete else "alert"

    def listening(h: str, p: int) -> None:
        shown = f"[{h}]" if ":" in h else h
        until = f", at most {args.timeout:g} s" if args.timeout else ""
        how = ("completing handshakes with a throwaway certificate" if args.complete
               else "answering each hello with a fatal alert")
        say(f"prober: listening on {shown}:{p} ({how}); waiting for {args.count} "
            f"ClientHello{'s' if args.count > 1 else ''}{until}", file=sys.stderr, flush=True)

    def on_hello(c: listener.CapturedHello) -> None:
        group, new = book.add(c)
        say(_hello_line(c, group.name, new), flush=True)

    rc = EXIT_OK
    try:
        run_loop(listener.serve(opts, on_hello, listening))
    except OSError as e:
        raise UsageError(f"cannot listen on {args.listen}: {e.strerror or e}") from None
    except KeyboardInterrupt:
        rc = EXIT_INTERRUPTED
    if not book.groups:
        say(f"prober: no ClientHello captured on {args.listen}"
            + (f" within {args.timeout:g} s" if args.timeout else ""), file=sys.stderr)
        return EXIT_NOTHING if rc == EXIT_OK else rc
    info = cap.ClientInfo(name=args.client_name, version=args.client_version,
                          description=args.description, tags=list(args.tag), details=details)
    _write(book, info, mode, out)
    return rc


def _hello_line(c: Any, name: str, new: bool) -> str:

    hello = c.hello
    spec = spec_from_hello(hello, record_version_of(c.raw))
    versions = versions_text(Profile(name=name, spec=spec))
    fp = ja4(hello) if isinstance(hello, ClientHello) else "sslv2"
    what = f"new profile {name}" if new else f"same client as {name}"
    return (f"{c.peer}  {len(c.raw)} bytes  {versions}  {len(spec.cipher_suites)} suites  "
            f"JA4 {fp}  -> {what}")


def _write(book: Any, info: Any, mode: str, out: Path) -> None:

    for group, doc in book.documents(info, mode=mode):
        path = out / profile_filename(group.name)
        try:
            write_yaml(doc, path)
        except OSError as e:
            raise UsageError(f"cannot write {path}: {e.strerror}") from None
        n = len(group.hellos)
        say(f"wrote {path} ({n} connection{'s' if n > 1 else ''})")
