"""SQLite backend: one file, WAL journal, one transaction per batch of revisions.

Schema (two tables):

* ``log(rev PRIMARY KEY, key, op, value, prev_rev)`` — every write, in revision
  order. Values live only here; a live key's value is the log row of its
  current revision.
* ``kv(key PRIMARY KEY, rev)`` — the current revision of every live key.

A put inserts a log row and upserts ``kv``; a delete inserts a log row (the
object's last state) and removes the ``kv`` row. Compaction deletes log rows at
or below a revision that are not some key's current value, and remembers the
revision in ``meta`` so older watches answer 410 Gone.

Checkpoints: SQLite copies the WAL back into the database inside the commit
that crosses ``wal_autocheckpoint`` pages, with an fsync, on the event loop.
Small, frequent checkpoints (256 pages, ~1 MiB) keep that stall to a few
milliseconds; the default (1000) or larger gave 15-60 ms stalls that set the
p99 of writes (bench/bench_latency.py). A checkpointer thread was tried and
dropped: its fsyncs stalled the writer's own WAL writes, and under constant
writes the WAL never wrapped.

Durability: WAL with ``synchronous=NORMAL`` survives a crash or ``kill -9`` of
the process at any moment (a commit returns only after its WAL frame is written
to the OS); ``synchronous=FULL`` (``TINYKUBE_SYNC=full``) also survives power
loss, at the cost of an fsync per commit (per batch).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from .backend import DELETE, LogEntry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (rev INTEGER PRIMARY KEY, key TEXT NOT NULL, op INTEGER NOT NULL,
                                value BLOB NOT NULL, prev_rev INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, rev INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
"""


def _prefix_end(prefix: str) -> str:
    return prefix + "\U0010ffff"


class SqliteBackend:
    def __init__(self, path: Path, sync: str | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        new = not path.exists()
        if new:
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        sync = (sync or os.environ.get("TINYKUBE_SYNC", "normal")).upper()
        if sync not in ("NORMAL", "FULL", "OFF"):
            sync = "NORMAL"
        self.db.executescript(
            "PRAGMA journal_mode=WAL;"
            f"PRAGMA synchronous={sync};"
            "PRAGMA temp_store=MEMORY;"
            "PRAGMA cache_size=-65536;"
            "PRAGMA wal_autocheckpoint=256;" + _SCHEMA
        )
        row = self.db.execute("SELECT MAX(rev) FROM log").fetchone()
        self._rev = int(row[0] or 0)
        row = self.db.execute("SELECT value FROM meta WHERE name='compacted'").fetchone()
        self._compacted = int(row[0]) if row else 0
        # Revisions must never go backwards, even if compaction removed the newest log rows' neighbours.
        row = self.db.execute("SELECT value FROM meta WHERE name='floor'").fetchone()
        if row:
            self._rev = max(self._rev, int(row[0]))

    def load(self) -> Iterator[tuple[str, int, bytes]]:
        cur = self.db.execute("SELECT kv.key, kv.rev, log.value FROM kv JOIN log ON log.rev = kv.rev")
        while True:
            rows = cur.fetchmany(4096)
            if not rows:
                return
            yield from rows

    def current_revision(self) -> int:
        return self._rev

    def compacted_revision(self) -> int:
        return self._compacted

    def commit(self, rows: list[tuple[int, str, int, bytes, int]]) -> None:
        """Write a batch of revisions (oldest first) in one transaction: all or nothing."""
        db = self.db
        # The kv table only needs each key's final state in the batch.
        final: dict[str, tuple[int, int]] = {}
        for rev, key, op, _value, _prev in rows:
            final[key] = (op, rev)
        puts = [(key, rev) for key, (op, rev) in final.items() if op != DELETE]
        dels = [(key,) for key, (op, _rev) in final.items() if op == DELETE]
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO log (rev, key, op, value, prev_rev) VALUES (?, ?, ?, ?, ?)", rows)
            if puts:
                db.executemany("INSERT INTO kv (key, rev) VALUES (?, ?) "
                               "ON CONFLICT(key) DO UPDATE SET rev = excluded.rev", puts)
            if dels:
                db.executemany("DELETE FROM kv WHERE key = ?", dels)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._rev = rows[-1][0]

    def since(self, rev: int, prefix: str) -> Iterator[LogEntry]:
        cur = self.db.execute(
            "SELECT l.rev, l.key, l.op, l.value, p.value FROM log l LEFT JOIN log p ON p.rev = l.prev_rev "
            "WHERE l.rev > ? AND l.key >= ? AND l.key < ? ORDER BY l.rev",
            (rev, prefix, _prefix_end(prefix)),
        )
        for r in cur:
            yield LogEntry(r[0], r[1], r[2], r[3], r[4])

    def compact(self, rev: int) -> int:
        if rev <= self._compacted:
            return 0
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            n = db.execute("DELETE FROM log WHERE rev <= ? AND rev NOT IN (SELECT rev FROM kv)", (rev,)).rowcount
            db.execute("INSERT INTO meta (name, value) VALUES ('compacted', ?) "
                       "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (rev,))
            db.execute("INSERT INTO meta (name, value) VALUES ('floor', ?) "
                       "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (self._rev,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._compacted = rev
        return int(n)

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                total += p.stat().st_size
        return total

    def close(self) -> None:
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass
        self.db.close()
