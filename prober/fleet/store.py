"""The results store: one SQLite file, plain tables, queried with plain SQL (docs/fleet.md
has the schema). Only the coordinator writes it, one transaction per task result; the
first result for a (run, endpoint, vantage, task) key wins, so a task that ran twice (a
redelivery after an agent died) is stored once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prober.core.errors import InputError
from prober.fleet.tasks import cert_expiry

STORE_SCHEMA = 1
DEFAULT_STORE = "prober-fleet.sqlite"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  started_at REAL NOT NULL, finished_at REAL,
  status TEXT NOT NULL,              -- running | complete | incomplete
  inventory TEXT NOT NULL, job TEXT NOT NULL,
  mode TEXT NOT NULL,                -- embedded | celery
  options TEXT NOT NULL              -- JSON
);
CREATE TABLE IF NOT EXISTS vantages (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  name TEXT NOT NULL, PRIMARY KEY (run_id, name));
CREATE TABLE IF NOT EXISTS targets (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  endpoint TEXT NOT NULL, grp TEXT NOT NULL, host TEXT NOT NULL, port INTEGER NOT NULL,
  address TEXT, sni TEXT, labels TEXT NOT NULL, expected_policy TEXT, expect_file TEXT,
  overrides TEXT NOT NULL,
  PRIMARY KEY (run_id, endpoint));
CREATE TABLE IF NOT EXISTS tasks (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  endpoint TEXT NOT NULL, vantage TEXT NOT NULL, task TEXT NOT NULL,
  status TEXT NOT NULL,              -- queued | done | refused | failed
  spec TEXT NOT NULL,                -- the task as sent (JSON), to resend on --resume
  agent TEXT, address TEXT, started_at REAL, finished_at REAL, reason TEXT,
  PRIMARY KEY (run_id, endpoint, vantage, task));
CREATE TABLE IF NOT EXISTS attempts (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  endpoint TEXT NOT NULL, vantage TEXT NOT NULL, task TEXT NOT NULL, attempt INTEGER NOT NULL,
  profile TEXT NOT NULL, repeat INTEGER NOT NULL, outcome TEXT NOT NULL, detail TEXT,
  address TEXT, sni TEXT, version TEXT, suite TEXT, grp TEXT, cert_sha256 TEXT,
  cert_not_after TEXT, doc TEXT NOT NULL,
  PRIMARY KEY (run_id, endpoint, vantage, task, attempt));
CREATE TABLE IF NOT EXISTS policies (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  endpoint TEXT NOT NULL, vantage TEXT NOT NULL,
  name TEXT, equals TEXT NOT NULL, text TEXT NOT NULL, versions TEXT NOT NULL,
  reliable INTEGER NOT NULL, cert_not_after TEXT, doc TEXT NOT NULL,
  PRIMARY KEY (run_id, endpoint, vantage));
CREATE TABLE IF NOT EXISTS findings (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  endpoint TEXT NOT NULL, vantage TEXT NOT NULL, task TEXT NOT NULL,
  id TEXT NOT NULL, severity TEXT NOT NULL, cause TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS verdicts (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  endpoint TEXT NOT NULL, vantage TEXT NOT NULL, task TEXT NOT NULL,
  expectation TEXT NOT NULL, passed INTEGER NOT NULL, message TEXT NOT NULL,
  evidence TEXT NOT NULL);
-- added within schema 1: CREATE IF NOT EXISTS gives an older store this table when opened
CREATE TABLE IF NOT EXISTS diagnoses (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  endpoint TEXT NOT NULL, vantage TEXT NOT NULL,
  doc TEXT NOT NULL,                 -- the prober.diagnose document without its attempts
  PRIMARY KEY (run_id, endpoint, vantage));
CREATE INDEX IF NOT EXISTS findings_key ON findings (run_id, endpoint, vantage);
CREATE INDEX IF NOT EXISTS verdicts_key ON verdicts (run_id, endpoint, vantage);
"""


class StoreError(InputError):
    """A store file that cannot be opened or is not a prober fleet store."""


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.executescript(SCHEMA_SQL)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.DatabaseError as e:
            raise StoreError(f"store {self.path!r}: {e}") from None
        if row is None:
            with self.db:
                self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(STORE_SCHEMA),))
        elif row[0] != str(STORE_SCHEMA):
            raise StoreError(f"store {self.path!r}: schema {row[0]}, this prober reads "
                             f"{STORE_SCHEMA}")

    def close(self) -> None:
        self.db.close()

    # -- the coordinator's writes -------------------------------------------------------

    def begin_run(self, inventory: str, job: str, mode: str, options: dict[str, Any],
                  vantages: list[str]) -> int:
        with self.db:
            cur = self.db.execute(
                "INSERT INTO runs (started_at, status, inventory, job, mode, options) "
                "VALUES (?, 'running', ?, ?, ?, ?)",
                (time.time(), inventory, job, mode, json.dumps(options)))
            run = int(cur.lastrowid or 0)
            self.db.executemany("INSERT INTO vantages VALUES (?, ?)",
                                [(run, v) for v in vantages])
        return run

    def add_targets(self, run: int, rows: Iterable[dict[str, Any]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO targets VALUES (:run, :endpoint, :grp, :host, :port, "
                ":address, :sni, :labels, :expected_policy, :expect_file, :overrides)",
                ({**r, "run": run} for r in rows))

    def plan_tasks(self, specs: Iterable[dict[str, Any]]) -> None:
        """Written in the order given, which is the order ``queued`` reads them back in
        (a run's shards are runs of consecutive tasks). Consumed as it is written: a
        fleet's plan is never whole in memory."""
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO tasks (run_id, endpoint, vantage, task, status, spec) "
                "VALUES (?, ?, ?, ?, 'queued', ?)",
                ((s["run"], s["endpoint"], s["vantage"], s["task"], json.dumps(s))
                 for s in specs))

    def record(self, r: dict[str, Any]) -> bool:
        """Store one task result; False when its key already holds a result."""
        key = (r["run"], r["endpoint"], r["vantage"], r["task"])
        with self.db:
            cur = self.db.execute(
                "UPDATE tasks SET status=?, agent=?, address=?, started_at=?, finished_at=?, "
                "reason=? WHERE run_id=? AND endpoint=? AND vantage=? AND task=? "
                "AND status='queued'",
                (r["status"], r["agent"], r["address"], r["started_at"], r["finished_at"],
                 r["reason"], *key))
            if cur.rowcount != 1:
                return False
            self.db.executemany(
                "INSERT INTO attempts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(*key, a["id"], a["profile"], a["repeat"], a["outcome"], a.get("detail"),
                  a.get("address"), a.get("sni"), (a.get("negotiated") or {}).get("version"),
                  (a.get("negotiated") or {}).get("suite"),
                  (a.get("negotiated") or {}).get("group"),
                  (a.get("certificate") or {}).get("sha256"),
                  (a.get("certificate") or {}).get("not_after"), json.dumps(a))
                 for a in r["attempts"]])
            p = r.get("policy")
            if p is not None:
                self.db.execute(
                    "INSERT INTO policies VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (key[0], key[1], key[2], p["name"], json.dumps(p["equals"]), p["text"],
                     json.dumps(p["versions"]), int(bool(p["reliable"])), cert_expiry(r),
                     json.dumps(p)))
            d = r.get("diagnosis")
            if d is not None:
                self.db.execute("INSERT INTO diagnoses VALUES (?,?,?,?)",
                                (key[0], key[1], key[2], json.dumps(d)))
            self.db.executemany(
                "INSERT INTO findings VALUES (?,?,?,?,?,?,?)",
                [(*key, f["id"], f["severity"], f["cause"]) for f in r["findings"]])
            self.db.executemany(
                "INSERT INTO verdicts VALUES (?,?,?,?,?,?,?,?)",
                [(*key, v["expectation"], int(bool(v["passed"])), v["message"],
                  json.dumps(v.get("evidence") or [])) for v in r["verdicts"]])
        return True

    def finish_run(self, run: int) -> str:
        left = self.db.execute("SELECT count(*) FROM tasks WHERE run_id=? AND status='queued'",
                               (run,)).fetchone()[0]
        status = "complete" if left == 0 else "incomplete"
        with self.db:
            self.db.execute("UPDATE runs SET status=?, finished_at=? WHERE id=?",
                            (status, time.time(), run))
        return status

    def prune(self, keep: int) -> list[int]:
        """Delete all but the newest ``keep`` runs (with everything they hold)."""
        old = [r[0] for r in self.db.execute(
            "SELECT id FROM runs ORDER BY id DESC LIMIT -1 OFFSET ?", (max(0, keep),))]
        with self.db:
            self.db.executemany("DELETE FROM runs WHERE id=?", [(i,) for i in old])
        return old

    # -- reads ----------------------------------------------------------------------------

    def run_row(self, run: int | None) -> dict[str, Any]:
        q = ("SELECT * FROM runs WHERE id=?", (run,)) if run is not None else (
            "SELECT * FROM runs ORDER BY id DESC LIMIT 1", ())
        cur = self.db.execute(*q)
        row = cur.fetchone()
        if row is None:
            raise StoreError(f"store {self.path!r}: no run {run}" if run is not None
                             else f"store {self.path!r}: no runs yet")
        return dict(zip([c[0] for c in cur.description], row, strict=True))

    def queued(self, run: int, first: int = 0, last: int | None = None,
               page: int = 256) -> Iterator[tuple[int, dict[str, Any]]]:
        """The run's tasks still without a result, as (row, spec) in the order they were
        planned, read a page at a time (no cursor stays open while the caller writes the
        store); ``first``/``last``: only rows in that range."""
        if last is None:
            last = self.db.execute("SELECT max(rowid) FROM tasks WHERE run_id=?",
                                   (run,)).fetchone()[0] or 0
        while True:
            # `+run_id`: by the rowid range, not the key's index on run_id, which would
            # read and sort the whole run for every page and every shard
            rows = self.db.execute(
                "SELECT rowid, spec FROM tasks WHERE +run_id=? AND status='queued' AND "
                "rowid BETWEEN ? AND ? ORDER BY rowid LIMIT ?",
                (run, first, last, page)).fetchall()
            for rowid, spec in rows:
                yield rowid, json.loads(spec)
            if len(rows) < page:
                return
            first = rows[-1][0] + 1

    def queued_counts(self, run: int) -> dict[str, int]:
        """How many tasks of each vantage point still have no result."""
        return dict(self.db.execute(
            "SELECT vantage, count(*) FROM tasks WHERE run_id=? AND status='queued' "
            "GROUP BY vantage ORDER BY vantage", (run,)).fetchall())

    def diagnosis(self, run: int, endpoint: str, vantage: str) -> dict[str, Any] | None:
        """The stored diagnose document of a task, its attempts put back: the document
        `prober diagnose --json` writes (what `prober diff` reads)."""
        row = self.db.execute("SELECT doc FROM diagnoses WHERE run_id=? AND endpoint=? AND "
                              "vantage=?", (run, endpoint, vantage)).fetchone()
        if row is None:
            return None
        doc: dict[str, Any] = json.loads(row[0])
        doc["attempts"] = [json.loads(d) for (d,) in self.db.execute(
            "SELECT doc FROM attempts WHERE run_id=? AND endpoint=? AND vantage=? AND "
            "task='diagnose' ORDER BY attempt", (run, endpoint, vantage))]
        return doc

    def rows(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return list(self.each(sql, *params))

    def each(self, sql: str, *params: Any) -> Iterator[dict[str, Any]]:
        """``rows``, one at a time: for what a run holds per attempt, which is the one
        part of a store that grows with the fleet times its profiles (write nothing to
        the store while iterating)."""
        cur = self.db.execute(sql, params)
        names = [c[0] for c in cur.description]
        for r in cur:
            yield dict(zip(names, r, strict=True))

    def export(self, run: int) -> Iterator[dict[str, Any]]:
        """The run as JSONL records: one per table row, with a ``table`` field."""
        for table in ("runs", "vantages", "targets", "tasks", "attempts", "policies",
                      "diagnoses", "findings", "verdicts"):
            col = "id" if table == "runs" else "run_id"
            for row in self.each(f"SELECT * FROM {table} WHERE {col}=?", run):
                for k in ("doc", "spec", "options", "labels", "overrides", "equals",
                          "versions", "evidence"):
                    if isinstance(row.get(k), str):
                        row[k] = json.loads(row[k])
                yield {"table": table, **row}
