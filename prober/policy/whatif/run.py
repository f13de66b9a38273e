"""What-if of a candidate policy: who breaks, compared with today and with a live staging run.

Pure: it takes hello templates, predictions and (already measured) live results, and
returns rows, tables and a JSON document. The command module does the I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from prober import __version__
from prober.core import outcome as oc
from prober.core.attempt import AttemptResult
from prober.logs.population import percent
from prober.policy.whatif.simulate import Candidate, Prediction, predict
from prober.profiles.compile import ProfileError
from prober.profiles.families import cipher_profile
from prober.profiles.model import Profile
from prober.wire import registry as reg
from prober.wire.certificates import describe
from prober.wire.clienthello import HelloSpec

if TYPE_CHECKING:
    from prober.logs.population import ClientGroup, Population

WHATIF_SCHEMA = "prober.whatif/2"

# how a client fares under the candidate, compared with today
BREAKS = "breaks"  # fails under the candidate, works today
STILL_FAILS = "still fails"
FIXED = "starts working"
CHANGES = "changes"  # works both ways, with another version or suite
SAME = "unchanged"
FAILS = "fails"  # no comparison asked for
WORKS = "works"


@dataclass(frozen=True)
class Client:
    """One client to simulate: a profile, or a (protocol, suite) group of connections
    seen in logs, simulated as a client offering exactly that protocol and suite."""

    name: str
    profile: Profile  # what is sent when the client is run live
    group: ClientGroup | None = None

    @property
    def spec(self) -> HelloSpec:
        return self.profile.spec

    @property
    def connections(self) -> int:
        return self.group.connections if self.group is not None else 0

    @classmethod
    def of(cls, profile: Profile) -> Client:
        return cls(profile.name, profile)


def population_clients(pop: Population) -> tuple[list[Client], list[ClientGroup]]:
    """A client per log group whose protocol and suite are known, and the groups that
    cannot be simulated (no protocol or suite in the logs, or a suite no registry knows)."""

    clients: list[Client] = []
    skipped: list[ClientGroup] = []
    for g in pop.groups():
        if not g.known or g.suite_iana is None or g.protocol not in reg.VERSION_NAMES.values():
            skipped.append(g)
            continue
        try:
            profile = cipher_profile(f"cipher:{g.suite_iana}@{g.protocol}")
        except ProfileError:
            skipped.append(g)
            continue
        clients.append(Client(g.label, replace(profile, name=g.label), g))
    return clients, skipped


def log_clients(paths: Sequence[str], log_format: str = "auto"
                ) -> tuple[list[Client], Population, list[ClientGroup]]:
    """The clients of log files (any format `prober logs` reads): their population, a
    client per simulable group, and the groups that cannot be simulated. Raises
    :class:`prober.logs.pipeline.LogInputError` as ``load_population`` does."""
    from prober.logs.pipeline import load_population

    pop = load_population(paths, format=log_format)
    clients, skipped = population_clients(pop)
    return clients, pop, skipped


@dataclass(frozen=True)
class Live:
    """A live attempt reduced to what a prediction says."""

    ok: bool
    outcome: str
    detail: str
    version: str | None = None
    suite: str | None = None
    group: str | None = None
    cert_key_type: str | None = None  # "RSA", "ECDSA" when the certificate was seen
    # the hello was turned away for load this many times first, and tried again
    retries: int = 0

    @classmethod
    def of(cls, r: AttemptResult, retries: int = 0) -> Live:
        f = r.obs.flight if r.obs is not None else None
        if r.outcome != oc.Outcome.OK or f is None:
            return cls(False, r.outcome, r.detail, retries=retries)
        version = reg.version_name(f.version) if f.version is not None else None
        suite = reg.suite_name(f.suite) if f.suite is not None else None
        gv = f.group if f.group is not None else f.hrr_group
        group = reg.group_name(gv) if gv is not None else None
        key = None
        if f.certificates:

            key = describe(f.certificates[0]).get("key_type")
        return cls(True, r.outcome, r.detail, version, suite, group, key, retries)

    def summary(self) -> str:
        return self.detail if self.ok else f"{self.outcome}: {self.detail}"


Outcome = Prediction | Live


def agree(predicted: Prediction, live: Live) -> bool:
    """Simulation and reality agree: both fail, or both succeed with one version and suite."""
    if predicted.ok != live.ok:
        return False
    return not predicted.ok or (predicted.version, predicted.suite) == (live.version, live.suite)


@dataclass
class Row:
    client: Client
    candidate: Prediction
    today: Outcome | None = None
    live: Live | None = None  # the staging endpoint carrying the candidate

    @property
    def status(self) -> str:
        c, t = self.candidate, self.today
        if t is None:
            return WORKS if c.ok else FAILS
        if not c.ok:
            return BREAKS if t.ok else STILL_FAILS
        if not t.ok:
            return FIXED
        return SAME if (c.version, c.suite) == (t.version, t.suite) else CHANGES

    @property
    def disagrees(self) -> bool:
        return self.live is not None and not agree(self.candidate, self.live)


@dataclass
class Report:
    candidate: Candidate
    rows: list[Row]
    today_label: str | None = None  # "ELBSecurityPolicy-2016-08 (simulated)" / "host:443 (live)"
    today_assumptions: tuple[str, ...] = ()
    against_label: str | None = None
    population: Population | None = None  # the logs given as --clients
    skipped_groups: list[ClientGroup] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def breaking(self) -> list[Row]:
        """Rows that fail under the candidate and work today (or: that fail, with no today)."""
        return [r for r in self.rows if not r.candidate.ok and (r.today is None or r.today.ok)]

    def count(self, status: str) -> int:
        return sum(1 for r in self.rows if r.status == status)


def simulate(clients: Sequence[Client], cand: Candidate) -> list[Prediction]:
    return [predict(c.spec, cand) for c in clients]


def build_report(clients: Sequence[Client], cand: Candidate, *,
                 today: Sequence[Outcome] | None = None, today_label: str | None = None,
                 today_assumptions: tuple[str, ...] = (),
                 live: Sequence[Live] | None = None, against_label: str | None = None,
                 population: Population | None = None,
                 skipped_groups: Sequence[ClientGroup] = ()) -> Report:
    preds = simulate(clients, cand)
    rows = [Row(c, p, today[i] if today is not None else None,
                live[i] if live is not None else None)
            for i, (c, p) in enumerate(zip(clients, preds, strict=True))]
    return Report(cand, rows, today_label, today_assumptions, against_label, population,
                  list(skipped_groups))


# --- rendering ---------------------------------------------------------------------------


def _who(row: Row, pop: Population | None) -> str:
    g = row.client.group
    if g is None or pop is None:
        return row.client.name

    return f"{row.client.name} ({percent(pop.share(g))}, {g.client_ips} IPs)"


def _table(rows: list[list[str]], headers: list[str]) -> str:
    from prober.report.table import tabulate

    return tabulate(rows, headers=headers, tablefmt="plain", disable_numparse=True)


def _outcome_word(o: Outcome) -> str:
    if isinstance(o, Live):
        return "ok" if o.ok else o.outcome
    return "ok" if o.ok else "fails"


def render(rep: Report) -> str:
    cand = rep.candidate
    out = [f"candidate {cand.name}: {cand.describe()}"]
    out += [f"  assumed: {a}" for a in cand.assumptions]
    if rep.population is not None:
        out.append("  assumed: a log group is a client offering exactly its protocol and "
                   "suite (its real hello may offer more)")
    out += [f"  {n}" for n in rep.notes]
    n = len(rep.rows)
    fails = sum(1 for r in rep.rows if not r.candidate.ok)
    out.append(f"{n} client{'s' if n != 1 else ''} simulated: {n - fails} would connect, "
               f"{fails} would fail")
    if rep.population is not None:
        out += _population_lines(rep, rep.population)
    if rep.today_label is not None:
        out += _today_section(rep)
    else:
        out += _plain_section(rep)
    if rep.against_label is not None:
        out += _against_section(rep)
    return "\n".join(out)


def _population_lines(rep: Report, pop: Population) -> list[str]:
    name = rep.candidate.name
    today = " and work today" if rep.today_label is not None else ""
    groups = [r.client.group for r in rep.breaking() if r.client.group is not None]
    lines = [f"{pop.impact(groups).describe()} would fail under {name}{today}"]
    if len(groups) > 1:
        lines += [f"  {pop.impact([g]).describe()}" for g in groups]
    if rep.skipped_groups:

        gone = pop.impact(rep.skipped_groups)
        lines.append(f"  not simulated: {percent(gone.share)} of the connections "
                     f"({gone.client_ips} client IPs) logged without a protocol and suite "
                     "(failed before negotiation, or a suite no registry knows)")
    return lines


def _plain_section(rep: Report) -> list[str]:
    rows = sorted(rep.rows, key=lambda r: r.candidate.ok)
    body = [[_who(r, rep.population), _outcome_word(r.candidate), r.candidate.summary()]
            for r in rows]
    return ["", _table(body, ["client", "predicted", "version / suite or reason"])]


def _today_section(rep: Report) -> list[str]:
    breaks = [r for r in rep.rows if r.status == BREAKS]
    out = [f"today: {rep.today_label}"]
    out += [f"  assumed for today: {a}" for a in rep.today_assumptions]
    out.append(f"{len(breaks)} break under the candidate but work today; "
               f"{rep.count(STILL_FAILS)} already fail today; {rep.count(FIXED)} start "
               f"working; {rep.count(CHANGES)} change version or suite; "
               f"{rep.count(SAME)} unchanged")
    order = {BREAKS: 0, FIXED: 1, CHANGES: 2, STILL_FAILS: 3, SAME: 4}
    rows = sorted(rep.rows, key=lambda r: order[r.status])
    body = []
    for r in rows:
        assert r.today is not None
        body.append([_who(r, rep.population), r.status, r.candidate.summary(), r.today.summary()])
    out += ["", _table(body, ["client", "change", "under the candidate", "today"])]
    return out


def _against_section(rep: Report) -> list[str]:
    checked = [r for r in rep.rows if r.live is not None]
    bad = [r for r in checked if r.disagrees]
    out = ["", f"simulation vs {rep.against_label}: {len(checked) - len(bad)}/{len(checked)} "
               "agree"]
    if bad:
        body = []
        for r in bad:
            assert r.live is not None
            body.append([r.client.name, r.candidate.summary(), r.live.summary()])
        out += ["", _table(body, ["client", "simulated", "live"])]
    return out


# --- JSON --------------------------------------------------------------------------------


def outcome_json(o: Outcome) -> dict[str, Any]:
    if isinstance(o, Live):
        return {"ok": o.ok, "outcome": o.outcome, "detail": o.detail, "version": o.version,
                "suite": o.suite, "group": o.group, **({"retries": o.retries} if o.retries else {})}
    return {"ok": o.ok, "version": o.version, "suite": o.suite,
            "suite_openssl": o.suite_openssl, "group": o.group, "hrr": o.hrr,
            "certificate": o.cert, "reason": o.reason or None, "alert": o.alert}


def document(rep: Report) -> dict[str, Any]:

    c = rep.candidate
    clients = []
    for r in rep.rows:
        item: dict[str, Any] = {"client": r.client.name, "status": r.status,
                                "candidate": outcome_json(r.candidate)}
        g = r.client.group
        if g is not None:
            item["connections"] = g.connections
            item["client_ips"] = g.client_ips
        if r.today is not None:
            item["today"] = outcome_json(r.today)
        if r.live is not None:
            item["live"] = outcome_json(r.live)
            item["agrees"] = not r.disagrees
        clients.append(item)
    summary: dict[str, Any] = {"clients": len(rep.rows),
                               "fail": sum(1 for r in rep.rows if not r.candidate.ok)}
    if rep.today_label is not None:
        summary.update({k.replace(" ", "_"): rep.count(k)
                        for k in (BREAKS, STILL_FAILS, FIXED, CHANGES, SAME)})
    if rep.against_label is not None:
        summary["agree"] = sum(1 for r in rep.rows if r.live is not None and not r.disagrees)
    if rep.population is not None:
        impact = rep.population.impact(
            [r.client.group for r in rep.breaking() if r.client.group is not None])
        summary["connections"] = rep.population.total_connections
        summary["connections_breaking"] = impact.connections
        summary["share_breaking"] = round(impact.share, 6)
        summary["client_ips_breaking"] = impact.client_ips
        summary["connections_not_simulated"] = sum(g.connections for g in rep.skipped_groups)
    return {
        "schema": WHATIF_SCHEMA,
        "tool": {"name": "prober", "version": __version__},
        "candidate": {"name": c.name, "protocols": [reg.version_name(v) for v in c.protocols],
                      "tls13_suites": [reg.suite_name(s) for s in c.tls13_suites],
                      "suites": [reg.suite_name(s) for s in c.suites],
                      "groups": [reg.group_name(g) for g in c.groups], "certificate": c.cert,
                      "server_order": c.server_order, "chacha_priority": c.chacha_priority,
                      "assumptions": list(c.assumptions)},
        "today": rep.today_label, "against": rep.against_label,
        "summary": summary, "clients": clients,
    }
