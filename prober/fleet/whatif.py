"""`fleet whatif`: who breaks across the fleet if every endpoint moved to one policy.

Each endpoint's policy today is the one a `fleet run --job policy` measured (per vantage
point: two fronts of one name may differ); its clients are the population of the log files
its inventory entry names, else the population (or profiles) given on the command line.
Both sides are simulated by `prober whatif`'s simulator, so a client breaks here exactly
when `prober whatif --current` would say so for that endpoint.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from prober.core.errors import InputError
from prober.fleet.inventory import Inventory, Logs
from prober.fleet.inventory import load as load_inventory
from prober.fleet.store import Store
from prober.logs.pipeline import LogInputError
from prober.logs.population import ClientGroup, Population, percent
from prober.policy.naming.catalog import NamedPolicy
from prober.policy.whatif import run as whatif
from prober.policy.whatif.run import BREAKS, STILL_FAILS, Client, log_clients
from prober.policy.whatif.simulate import CandidateError, candidate, measured, predict
from prober.report.table import tabulate

FLEET_WHATIF_SCHEMA = "prober.fleet.whatif/1"


class FleetWhatifError(InputError):
    """A store, run or population `fleet whatif` cannot use."""


@dataclass
class Clients:
    """Who connects to an endpoint: log groups (with their population) or profiles."""

    clients: list[Client]
    source: str  # "logs: a.log, b.log" / "--clients" / "profiles: all sweep-versions"
    population: Population | None = None
    skipped: list[ClientGroup] = field(default_factory=list)


def policy_run(store: Store, run: int | None) -> dict[str, Any]:
    """The run to read: ``run``, or the newest policy run; it must be a policy run."""
    if run is None:
        rows = store.rows("SELECT id FROM runs WHERE job='policy' ORDER BY id DESC LIMIT 1")
        if not rows:
            raise FleetWhatifError(f"store {store.path!r}: no policy run yet (run `prober "
                                   "fleet run INVENTORY --job policy` first)")
        run = int(rows[0]["id"])
    info = store.run_row(run)
    if info["job"] != "policy":
        raise FleetWhatifError(f"store {store.path!r}: run {run} is a {info['job']} run, "
                               "it holds no policy results (give a --job policy run)")
    return info


def run_inventory(info: dict[str, Any], path: str | None) -> Inventory:
    """The inventory naming the endpoints' logs: ``path``, else the one the run read."""
    where = path or str(info["inventory"])
    if not Path(where).is_file():
        raise FleetWhatifError(f"inventory {where!r} (read by run {info['id']}) is not a "
                               "file here: give --inventory FILE")
    return load_inventory(where)


def endpoint_clients(logs: Logs, inventory: str) -> Clients:
    """The population of an inventory entry's ``logs:``."""
    paths: list[str] = []
    for pattern in logs.files:
        found = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not found:
            raise FleetWhatifError(f"{inventory}: {logs.at}: no file matches {pattern!r}")
        paths += found
    try:
        clients, pop, skipped = log_clients(paths, logs.format)
    except LogInputError as e:
        raise FleetWhatifError(f"{inventory}: {logs.at}: {e}") from None
    return Clients(clients, "logs: " + ", ".join(Path(p).name for p in paths), pop, skipped)


@dataclass
class Assessed:
    endpoint: str
    vantage: str
    today: str  # the measured policy's name, else its version range
    clients: Clients
    report: whatif.Report

    def to_json(self) -> dict[str, Any]:
        doc = whatif.document(self.report)
        pop = self.clients.population
        out: dict[str, Any] = {
            "endpoint": self.endpoint, "vantage": self.vantage, "today": self.today,
            "today_simulated": self.report.today_label, "clients_source": self.clients.source,
            "summary": doc["summary"],
            "breaking": [c for c in doc["clients"] if c["status"] == BREAKS]}
        if pop is not None:
            out["population"] = {"connections": pop.total_connections,
                                 "client_ips": pop.client_ips, "unit": pop.unit}
        return out


@dataclass
class Skipped:
    endpoint: str
    vantage: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "vantage": self.vantage, "reason": self.reason}


@dataclass
class FleetWhatif:
    policy: NamedPolicy
    run: dict[str, Any]
    assessed: list[Assessed]
    skipped: list[Skipped]

    @property
    def breaking(self) -> list[Assessed]:
        return [a for a in self.assessed if a.report.count(BREAKS)]


def assess(store: Store, info: dict[str, Any], policy: NamedPolicy,
           per_endpoint: dict[str, Clients], default: Clients) -> FleetWhatif:
    """Every (endpoint, vantage) of the run: assessed from its stored policy, or skipped
    with the reason (no policy result, a scan that named nothing usable)."""
    rid = int(info["id"])
    # the candidate with the policy's own certificate setting is checked before any
    # endpoint: a policy the simulator cannot read is an input error, not N skips
    try:
        candidate(policy)
    except CandidateError as e:
        raise FleetWhatifError(f"--policy: {e}") from None
    policies = {(p["endpoint"], p["vantage"]): p for p in store.rows(
        "SELECT endpoint, vantage, name, reliable, doc FROM policies WHERE run_id=?", rid)}
    out = FleetWhatif(policy, info, [], [])
    for t in store.rows("SELECT endpoint, vantage, status, reason FROM tasks WHERE run_id=? "
                        "ORDER BY endpoint, vantage", rid):
        key = (t["endpoint"], t["vantage"])
        p = policies.get(key)
        if p is None:
            why = t["reason"] or "no policy result"
            out.skipped.append(Skipped(*key, f"task {t['status']}: {why}"))
            continue
        doc = json.loads(p["doc"])
        if not p["reliable"]:
            out.skipped.append(Skipped(*key, f"the policy scan is not reliable "
                                             f"({doc.get('text', '')})"))
            continue
        if not doc["policy"].get("versions"):
            out.skipped.append(Skipped(*key, f"the policy scan found no version accepted "
                                             f"(task {t['status']})"))
            continue
        label = f"{key[0]} from {key[1]}, measured in run {rid}"
        try:
            today = measured(doc["policy"], label)
        except CandidateError as e:
            out.skipped.append(Skipped(*key, f"cannot simulate the measured policy: {e}"))
            continue
        # the candidate as it would run on this endpoint: with the certificate(s) it serves
        cand = candidate(policy, today.cert)
        who = per_endpoint.get(key[0], default)
        rep = whatif.build_report(
            who.clients, cand, today=[predict(c.spec, today) for c in who.clients],
            today_label=f"{label} (simulated: {today.describe()})",
            today_assumptions=today.assumptions, population=who.population,
            skipped_groups=who.skipped)
        name = p["name"] or _versions(doc["policy"])
        out.assessed.append(Assessed(key[0], key[1], name, who, rep))
    return out


def _versions(policy: dict[str, Any]) -> str:
    return "measured: " + ", ".join(policy.get("versions") or [])


def document(fw: FleetWhatif) -> dict[str, Any]:
    return {"schema": FLEET_WHATIF_SCHEMA, "policy": fw.policy.name,
            "run": {"id": fw.run["id"], "job": fw.run["job"], "status": fw.run["status"],
                    "inventory": fw.run["inventory"]},
            "summary": {"assessed": len(fw.assessed), "breaking": len(fw.breaking),
                        "skipped": len(fw.skipped)},
            "endpoints": [a.to_json() for a in fw.assessed],
            "skipped": [s.to_json() for s in fw.skipped]}


def _breaks_cell(a: Assessed) -> str:
    n = a.report.count(BREAKS)
    pop = a.clients.population
    if pop is None:
        return f"{n} of {len(a.report.rows)} clients"
    impact = pop.impact([r.client.group for r in a.report.breaking()
                         if r.client.group is not None])
    return (f"{impact.connections:,} of {pop.total_connections:,} {pop.unit} "
            f"({percent(impact.share)})")


def text(fw: FleetWhatif) -> str:
    cand = candidate(fw.policy)
    lines = [f"fleet whatif {fw.policy.name} over run {fw.run['id']} ({fw.run['status']}): "
             f"{len(fw.assessed)} endpoint x vantage assessed, {len(fw.breaking)} with "
             f"clients that break, {len(fw.skipped)} skipped",
             f"candidate: {cand.describe()} (each endpoint with its own certificate type)",
             "today: each endpoint's policy as the run measured it, simulated", ""]
    table = [[a.endpoint, a.vantage, a.today, a.clients.source, str(a.report.count(BREAKS)),
              str(a.report.count(STILL_FAILS)), _breaks_cell(a)] for a in fw.assessed]
    if table:
        lines.append(tabulate(table, headers=["endpoint", "vantage", "today", "clients",
                                              "break", "already fail", "broken"],
                              tablefmt="plain", disable_numparse=True))
    else:
        lines.append("no endpoint assessed")
    lines += ["", "WHO BREAKS (works today, fails under the candidate)"]
    if not fw.breaking:
        lines.append("  nobody")
    for a in fw.breaking:
        pop = a.clients.population
        for r in a.report.rows:
            if r.status != BREAKS:
                continue
            g = r.client.group
            who = (f"{r.client.name} ({g.connections:,} {pop.unit}, {g.client_ips} IPs)"
                   if g is not None and pop is not None else r.client.name)
            lines.append(f"  {a.endpoint} from {a.vantage}: {who}: {r.candidate.summary()}")
    if fw.skipped:
        lines += ["", f"SKIPPED ({len(fw.skipped)}: no usable policy result in run "
                      f"{fw.run['id']})"]
        lines += [f"  {s.endpoint} from {s.vantage}: {s.reason}" for s in fw.skipped]
    return "\n".join(lines)


def populations(inv: Inventory | None, endpoints: Sequence[str]) -> dict[str, Clients]:
    """The per-endpoint populations an inventory names (each log set read once)."""
    out: dict[str, Clients] = {}
    if inv is None:
        return out
    read: dict[Logs, Clients] = {}
    wanted = set(endpoints)
    for e in inv.entries:
        if e.logs is None or e.name not in wanted:
            continue
        key = replace(e.logs, at="")
        if key not in read:
            read[key] = endpoint_clients(e.logs, inv.path)
        out[e.name] = read[key]
    return out

