"""Grid results in SQLite: one row per cell, written in one transaction when the cell ends.

The database (``DIR/grid.sqlite``, WAL journal) has two tables: ``cells`` (primary key: the cell's
key, so a cell can never appear twice) and ``meta`` (the grid's name, its TOML text and the keys
of the latest run's plan, in order). A process killed at any moment leaves every finished cell
and nothing half-written.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ssmzoo.errors import ConfigError

__all__ = ["Store", "DB_NAME", "DONE"]

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
    attempts INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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


class Store:
    """The SQLite file of one grid directory."""

    def __init__(self, directory: str | Path, *, create: bool = True):
        self.dir = Path(directory)
        self.path = self.dir / DB_NAME
        if not create and not self.path.is_file():
            raise ConfigError(f"no grid results at {str(self.path)!r} (run `ssmzoo grid run FILE "
                              f"--out {self.dir}` first)")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # ---- meta ---------------------------------------------------------------------------------
    def set_meta(self, **values: Any) -> None:
        with self._tx() as c:
            for k, v in values.items():
                c.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE "
                          "SET value = excluded.value", (k, json.dumps(v)))

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    # ---- cells --------------------------------------------------------------------------------
    def statuses(self) -> dict[str, str]:
        """``{key: status}`` of every recorded cell."""
        return {r["key"]: r["status"] for r in self.conn.execute("SELECT key, status FROM cells")}

    def write(self, record: dict[str, Any]) -> None:
        """Insert a finished cell, or replace a failed attempt of it (one row per key, always)."""
        row = {c: record.get(c) for c in ("key", "grid", "variant", "task", "seed", "status",
                                          "metric", "higher_is_better", "error", "steps",
                                          "n_params", "wall_time")}
        for c in _JSON_COLUMNS:
            row[c] = json.dumps(_clean(record.get(c)), default=str)
        row["finished_at"] = record.get("finished_at") or time.time()
        cols = list(row)
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "key")
        with self._tx() as conn:
            conn.execute(f"INSERT INTO cells({', '.join(cols)}) VALUES({', '.join('?' * len(cols))}) "
                         f"ON CONFLICT(key) DO UPDATE SET {updates}, attempts = cells.attempts + 1",
                         [row[c] for c in cols])

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

    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM cells").fetchone()[0])
