"""Agreement with reality: every captured client x server policy, the real client and
prober's replay of its profile, against the same local nginx.

    .venv/bin/python scripts/agreement.py [--only ID]... [--policy ID]... [--fresh]
                                          [--json FILE]

For each client installed here it uses profiles/captured/<client>-<installed version>.yaml
(`--fresh` captures the client again into a temporary directory first). Prints one row
per cell, a client x policy matrix and the totals; exit 1 when any cell disagrees.
As root it runs in a network namespace of its own (only loopback exists there).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prober.capture.live import profile_filename  # noqa: E402
from scripts.capture import agree, runner, sandbox  # noqa: E402
from scripts.capture import clients as cl  # noqa: E402
from tests.peers import make_pki  # noqa: E402

CAPTURED = REPO / "profiles" / "captured"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    unknown = (set(args.only or ()) - set(cl.BY_ID)) | (set(args.policy or ()) - set(
        agree.BY_POLICY))
    if unknown:
        print(f"unknown: {', '.join(sorted(unknown))}; clients: {', '.join(cl.BY_ID)}; "
              f"policies: {', '.join(agree.BY_POLICY)}", file=sys.stderr)
        return 2
    if not sandbox.in_private_netns():
        rc = sandbox.rerun_in_private_netns([__file__, *(argv or sys.argv[1:])])
        if rc is not None:
            return rc
    chosen = [c for c in cl.CLIENTS if not args.only or c.id in args.only]
    policies = [p for p in agree.POLICIES if not args.policy or p.id in args.policy]
    with tempfile.TemporaryDirectory(prefix="prober-agreement-") as tmp:
        return run(chosen, policies, Path(tmp), fresh=args.fresh, json_out=args.json,
                   parallel=args.parallel)


def run(chosen: list[cl.Client], policies: list[agree.Policy], tmp: Path, *, fresh: bool,
        json_out: str | None, parallel: int = 3) -> int:
    t0 = time.monotonic()
    tools = tmp / "tools"
    pki = make_pki(tmp / "pki")
    profiles: list[tuple[cl.Client, str, Path]] = []
    for client in chosen:
        why = client.missing()
        if why:
            print(f"skip {client.id}: {why}")
            continue
        version = client.version()
        name = cl.profile_name(client, version)
        if client.prepare is not None:
            client.prepare(tools)
        path = CAPTURED / profile_filename(name)
        if fresh:
            got = runner.capture(client, version, tmp / "fresh", tools=tools,
                                 work=tmp / "work" / client.id / "capture")
            if got.path is None:
                print(f"skip {client.id}: no hello captured")
                continue
            path = got.path
        elif not path.exists():
            print(f"skip {client.id}: no profile for the installed version {version.version} "
                  f"({path.relative_to(REPO)}); run scripts/capture_clients.py or use --fresh")
            continue
        profiles.append((client, name, path))
    servers = {}
    try:
        for p in policies:
            servers[p.id] = agree.start_server(p, pki)
        cells = []
        for client, name, path in profiles:
            cells += agree.run_row(client, name, path, policies, servers, tools=tools,
                                   work=tmp / "work" / client.id, pki=pki,
                                   parallel=parallel)
    finally:
        for srv in servers.values():
            srv.stop()
    print("server policies (nginx stream, one per policy):")
    width = max(len(p.id) for p in policies)
    for p in policies:
        print(f"  {p.id:{width}}  {p.title}")
    print()
    print(agree.render(cells))
    print()
    print(agree.render_matrix(cells))
    print()
    print(agree.totals(cells))
    print(f"({len(profiles)} clients, {len(policies)} policies, "
          f"{time.monotonic() - t0:.0f} s)")
    if json_out:
        Path(json_out).write_text(json.dumps([c.to_json() for c in cells], indent=2) + "\n")
    return 0 if cells and all(c.agree for c in cells) else 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", metavar="ID",
                   help=f"only these clients (repeatable): {', '.join(cl.BY_ID)}")
    p.add_argument("--policy", action="append", metavar="ID",
                   help=f"only these policies (repeatable): {', '.join(agree.BY_POLICY)}")
    p.add_argument("--fresh", action="store_true",
                   help="capture each client now instead of using profiles/captured/")
    p.add_argument("--json", metavar="FILE", help="write the cells as JSON")
    p.add_argument("--parallel", type=int, default=3, metavar="N",
                   help="policies run side by side for one client (default 3)")
    return p


if __name__ == "__main__":
    raise SystemExit(main())
