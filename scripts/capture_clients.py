"""Capture the ClientHellos of the real clients installed here into profiles/captured/.

    .venv/bin/python scripts/capture_clients.py [--only ID]... [--force] [--no-install]
                                                [--out DIR] [--list]

Installs missing clients (Debian packages, PyPI modules), then, in a network namespace
of its own where only loopback exists (when run as root), points each client at
`prober profiles capture --complete` and writes `<client>-<version>.yaml`. Idempotent:
a client whose profile for the installed version exists is skipped (--force captures
again). Bounded: each client gets at most its own deadline (20-40 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prober.capture.live import profile_filename  # noqa: E402
from scripts.capture import clients as cl  # noqa: E402
from scripts.capture import runner, sandbox  # noqa: E402

DEFAULT_OUT = REPO / "profiles" / "captured"


def install_missing(chosen: list[cl.Client]) -> None:
    """apt-get / pip install what the chosen clients need and do not have."""
    apt = sorted({p for c in chosen if c.missing() and c.bins for p in c.apt})
    pip = sorted({m for c in chosen if c.pip for m in c.pip if c.missing()})
    if apt:
        if not sandbox.is_root():
            print(f"not root: cannot apt-get install {' '.join(apt)}", file=sys.stderr)
        else:
            print(f"installing Debian packages: {' '.join(apt)}", flush=True)
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, timeout=900)
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *apt],
                           env=env, check=False, timeout=1800)
    if pip:
        print(f"installing from PyPI: {' '.join(pip)}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *pip], check=False,
                       timeout=900)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    chosen = [c for c in cl.CLIENTS if not args.only or c.id in args.only]
    unknown = set(args.only or ()) - set(cl.BY_ID)
    if unknown:
        print(f"unknown client(s): {', '.join(sorted(unknown))}; known: "
              f"{', '.join(cl.BY_ID)}", file=sys.stderr)
        return 2
    if args.list:
        for c in cl.CLIENTS:
            print(f"{c.id:18} {c.title:28} {c.missing() or 'installed'}")
        return 0
    if not sandbox.in_private_netns():
        if not args.no_install:
            install_missing(chosen)
        rc = sandbox.rerun_in_private_netns([__file__, *(argv or sys.argv[1:]),
                                             "--no-install"])
        if rc is not None:
            return rc
        print("(not root: running in this network namespace; clients use loopback flags)",
              file=sys.stderr)
    return capture_all(chosen, Path(args.out), force=args.force)


def capture_all(chosen: list[cl.Client], out: Path, *, force: bool) -> int:
    rows: list[tuple[str, str, str, str]] = []
    failed = 0
    with tempfile.TemporaryDirectory(prefix="prober-capture-clients-") as tmp:
        tools = Path(tmp) / "tools"
        for client in chosen:
            why = client.missing()
            if why:
                rows.append((client.id, "-", "-", f"skipped: {why}"))
                continue
            version = client.version()
            name = cl.profile_name(client, version)
            target = out / profile_filename(name)
            if target.exists() and not force:
                rows.append((client.id, version.version, str(target.relative_to(REPO)
                                                           if target.is_relative_to(REPO)
                                                           else target), "up to date"))
                continue
            if client.prepare is not None:
                client.prepare(tools)
            work = Path(tmp) / client.id
            t0 = time.monotonic()
            got = runner.capture(client, version, out, tools=tools, work=work, name=name)
            took = f"{time.monotonic() - t0:.1f} s"
            if got.path is None:
                failed += 1
                rows.append((client.id, version.version, "-", f"NO HELLO ({took}): "
                             + (got.client_output.strip().splitlines() or ["no output"])[-1]))
            else:
                shown = got.path.relative_to(REPO) if got.path.is_relative_to(REPO) else got.path
                rows.append((client.id, version.version, str(shown), f"captured ({took})"))
            print(f"{client.id}: {rows[-1][3]}", flush=True)
    width = [max(len(r[i]) for r in [*rows, ("client", "version", "profile", "")])
             for i in range(3)]
    print()
    print(f"{'client':{width[0]}}  {'version':{width[1]}}  {'profile':{width[2]}}  result")
    for r in rows:
        print(f"{r[0]:{width[0]}}  {r[1]:{width[1]}}  {r[2]:{width[2]}}  {r[3]}")
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", metavar="ID",
                   help=f"only these clients (repeatable): {', '.join(cl.BY_ID)}")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="where the profiles go")
    p.add_argument("--force", action="store_true", help="capture again even when up to date")
    p.add_argument("--no-install", action="store_true", help="install nothing")
    p.add_argument("--list", action="store_true", help="list the clients and exit")
    return p


if __name__ == "__main__":
    if shutil.which("unshare") is None:
        print("note: no unshare(1): clients run in this network namespace", file=sys.stderr)
    raise SystemExit(main())
