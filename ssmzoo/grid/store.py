"""Grid results in SQLite: one row per cell, written in one transaction when the cell ends.

The database (``DIR/grid.sqlite``, WAL journal) has three tables: ``cells`` (primary key: the
cell's key, so a cell can never appear twice; ``runner`` names the runner that trained it),
``meta`` (the grid's name, its TOML text and the keys of the latest run's plan, in order) and
``claims`` (the cells being trained now: which runner holds each and until when its lease runs).
A process killed at any moment leaves every finished cell and nothing half-written.

Several runners share one file: a runner trains a cell only after :meth:`Store.claim` gave it the
cell (one ``BEGIN IMMEDIATE`` transaction, so two runners never both win), renews its lease while
it trains (:meth:`Store.renew`), and a runner that died loses the cell when its lease runs out.

``Store(dir, readonly=True)`` opens the file read-only (``file:...?mode=ro``), for status and
report. Every I/O or database fault is a :class:`GridStoreError` naming the file and what to do.
"""

from __future__ import annotations

import functools
import json
import math
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from ssmzoo.errors import ConfigError, SSMZooError

__all__ = ["Store", "DB_NAME", "DONE", "GridStoreError", "SQLITE_INT_MIN", "SQLITE_INT_MAX"]

SQLITE_INT_MIN, SQLITE_INT_MAX = -(2**63), 2**63 - 1  # SQLite's INTEGER range
_F = TypeVar("_F", bound=Callable[..., Any])


class GridStoreError(SSMZooError, OSError):
    """The results directory or its database cannot be created, read or written."""

DB_NAME = "grid.sqlite"
DONE = ("ok", "diverged")  # statuses a rerun skips; "failed" cells rerun with --retry-failed

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    key TEXT PRIMARY KEY,
    grid TEXT NOT NULL,
    variant TEXT NOT NULL,
    task TEXT NOT NULL,
    seed INTEGER NOT NULL,
    sweep TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    metric TEXT,
    higher_is_better INTEGER,
    val TEXT,
    test TEXT,
    history TEXT,
    error TEXT,
    steps INTEGER,
    n_params INTEGER,
    wall_time REAL,
    versions TEXT,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 1,
    runner TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, runner TEXT NOT NULL,
                                   expires REAL NOT NULL, claimed_at REAL NOT NULL);
"""

_JSON_COLUMNS = ("sweep", "config", "val", "test", "history", "versions")


def _clean(obj: Any) -> Any:
    """JSON has no NaN or infinity: write them as strings and read them back as floats."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _revive(obj: Any) -> Any:
    if obj in ("nan", "inf", "-inf"):
        return float(obj)
    if isinstance(obj, dict):
        return {k: _revive(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_revive(v) for v in obj]
    return obj


def _explain(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if "not a database" in low or "malformed" in low or "file is encrypted" in low:
        return f"{text}: the file is corrupt or truncated (move it aside to start the grid afresh)"
    if "full" in low:
        return f"{text} (free some space; every finished cell so far is kept)"
    if "readonly" in low or "read-only" in low or "permission" in low:
        return f"{text} (the results directory must be writable; choose another with --out)"
    return text


OPEN_RETRY_SECONDS = 60.0


def _busy(exc: sqlite3.OperationalError) -> bool:
    """A lock another connection holds (SQLITE_BUSY or SQLITE_LOCKED), worth a retry."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _guarded(method: _F) -> _F:
    """Turn a database or file-system fault inside ``method`` into one GridStoreError."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.Error, OSError) as exc:
            if isinstance(exc, SSMZooError):
                raise
            raise GridStoreError(f"grid results {str(self.path)!r}: {_explain(exc)}") from exc
    return wrapper  # type: ignore[return-value]


class Store:
    """The SQLite file of one grid directory.

    ``create=False`` requires the file to exist; ``readonly=True`` (implies ``create=False``) opens
    it read-only and never writes to the directory.
    """

    def __init__(self, directory: str | Path, *, create: bool = True, readonly: bool = False):
        self.dir = Path(directory)
        self.path = self.dir / DB_NAME
        self.readonly = readonly
        self.conn: sqlite3.Connection | None = None
        if self.dir.exists() and not self.dir.is_dir():
            raise GridStoreError(f"grid results: {str(self.dir)!r} is a file, not a directory "
                                 f"(--out expects a directory)")
        if (readonly or not create) and not self.path.is_file():
            raise ConfigError(f"no grid results at {str(self.path)!r} (run `ssmzoo grid run FILE "
                              f"--out {self.dir}` first)")
        self._open()

    @_guarded
    def _open(self) -> None:
        if self.readonly:
            uri = self.path.resolve().as_uri()
            try:
                self.conn = self._connect(f"{uri}?mode=ro")
                self.conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError:
                # a WAL file in a directory we cannot write (no -shm to create): read it as is
                if self.conn is not None:
                    self.conn.close()
                self.conn = self._connect(f"{uri}?mode=ro&immutable=1")
            names = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
            if not {"cells", "meta"} <= names:
                raise GridStoreError(f"grid results {str(self.path)!r}: not a grid database "
                                     f"(tables cells and meta are missing)")
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        # Runners started together open (and may create) the file at once. Switching it to WAL
        # and creating the schema can then meet a lock that SQLite reports at once instead of
        # waiting out the connection's timeout; such a fault is retried, with jitter, for up to
        # OPEN_RETRY_SECONDS. (The schema has every column, so new files need no migration: two
        # runners migrating one new file at once made one fail with "duplicate column name".)
        deadline = time.monotonic() + OPEN_RETRY_SECONDS
        while True:
            try:
                self._setup()
                return
            except sqlite3.OperationalError as exc:
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
                if not _busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05 + 0.1 * random.random())

    def _setup(self) -> None:
        self.conn = self._connect(str(self.path))
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)
        columns = {r["name"] for r in self.conn.execute("PRAGMA table_info(cells)")}
        if "runner" not in columns:  # a database written before runners were recorded
            try:
                self.conn.execute("ALTER TABLE cells ADD COLUMN runner TEXT")
            except sqlite3.OperationalError as exc:  # another runner added it first
                if "duplicate column" not in str(exc).lower():
                    raise

    def _connect(self, target: str) -> sqlite3.Connection:
        conn = sqlite3.connect(target, timeout=60, isolation_level=None,
                               uri=target.startswith("file:"))
        conn.row_factory = sqlite3.Row
        return conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise GridStoreError(f"grid results {str(self.path)!r}: opened read-only")
        assert self.conn is not None
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ---- meta ---------------------------------------------------------------------------------
    @_guarded
    def set_meta(self, **values: Any) -> None:
        with self._tx() as c:
            for k, v in values.items():
                c.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE "
                          "SET value = excluded.value", (k, json.dumps(v)))

    @_guarded
    def meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    # ---- cells --------------------------------------------------------------------------------
    @_guarded
    def statuses(self) -> dict[str, str]:
        """``{key: status}`` of every recorded cell."""
        return {r["key"]: r["status"] for r in self.conn.execute("SELECT key, status FROM cells")}

    @_guarded
    def write(self, record: dict[str, Any], *, runner: str | None = None) -> bool:
        """Insert a finished cell, or replace a failed attempt of it (one row per key, always).

        With ``runner``, the row is written only while that runner still holds the cell's claim
        (or nobody does), and the claim is released; returns False when another runner took the
        cell over (its lease ran out), and then nothing is written.
        """
        row = {c: record.get(c) for c in ("key", "grid", "variant", "task", "seed", "status",
                                          "metric", "higher_is_better", "error", "steps",
                                          "n_params", "wall_time")}
        for c in _JSON_COLUMNS:
            row[c] = json.dumps(_clean(record.get(c)), default=str)
        row["finished_at"] = record.get("finished_at") or time.time()
        row["runner"] = runner
        cols = list(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "key")
        with self._tx() as conn:
            if runner is not None:
                holder = conn.execute("SELECT runner FROM claims WHERE key = ?",
                                      (row["key"],)).fetchone()
                if holder is not None and holder["runner"] != runner:
                    return False
                conn.execute("DELETE FROM claims WHERE key = ?", (row["key"],))
            conn.execute(f"INSERT INTO cells({', '.join(cols)}) VALUES({', '.join('?' * len(cols))}) "
                         f"ON CONFLICT(key) DO UPDATE SET {updates}, attempts = cells.attempts + 1",
                         [row[c] for c in cols])
        return True

    # ---- claims -------------------------------------------------------------------------------
    @_guarded
    def claim(self, key: str, runner: str, *, lease: float, retry_failed: bool = False) -> str:
        """Try to take ``key`` for ``runner`` for ``lease`` seconds, atomically.

        Returns ``"claimed"``, ``"done"`` (recorded already; nothing to do) or ``"busy"``
        (another runner holds a live lease on it).
        """
        now = time.time()
        with self._tx() as conn:
            row = conn.execute("SELECT status FROM cells WHERE key = ?", (key,)).fetchone()
            if row is not None and (row["status"] in DONE or
                                    (row["status"] == "failed" and not retry_failed)):
                return "done"
            held = conn.execute("SELECT runner, expires FROM claims WHERE key = ?",
                                (key,)).fetchone()
            if held is not None and held["runner"] != runner and held["expires"] > now:
                return "busy"
            conn.execute("INSERT INTO claims(key, runner, expires, claimed_at) VALUES(?, ?, ?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET runner = excluded.runner, "
                         "expires = excluded.expires, claimed_at = excluded.claimed_at",
                         (key, runner, now + lease, now))
        return "claimed"

    @_guarded
    def renew(self, key: str, runner: str, *, lease: float) -> bool:
        """Extend ``runner``'s lease on ``key``; False when it no longer holds the cell."""
        with self._tx() as conn:
            cur = conn.execute("UPDATE claims SET expires = ? WHERE key = ? AND runner = ?",
                               (time.time() + lease, key, runner))
            return cur.rowcount == 1

    @_guarded
    def release(self, key: str, runner: str) -> None:
        """Give up ``runner``'s claim on ``key`` (a run that stopped without a result)."""
        with self._tx() as conn:
            conn.execute("DELETE FROM claims WHERE key = ? AND runner = ?", (key, runner))

    @_guarded
    def claims(self) -> dict[str, dict[str, Any]]:
        """``{key: {"runner", "expires", "claimed_at"}}`` of the cells being trained."""
        names = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master")}
        if "claims" not in names:
            return {}
        return {r["key"]: {"runner": r["runner"], "expires": r["expires"],
                           "claimed_at": r["claimed_at"]}
                for r in self.conn.execute("SELECT * FROM claims")}

    @_guarded
    def rows(self, keys: list[str] | None = None) -> list[dict[str, Any]]:
        """Recorded cells as dicts (JSON columns decoded), in plan order when ``keys`` is given."""
        out = []
        for r in self.conn.execute("SELECT * FROM cells ORDER BY rowid"):
            d = dict(r)
            for c in _JSON_COLUMNS:
                d[c] = _revive(json.loads(d[c])) if d[c] is not None else None
            out.append(d)
        if keys is None:
            return out
        by_key = {d["key"]: d for d in out}
        return [by_key[k] for k in keys if k in by_key]

    @_guarded
    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0])
