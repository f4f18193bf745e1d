"""Claims of several runners on one grid: a runner's name and the thread that renews its leases.

A runner trains a cell only after claiming it in the database (``Store.claim``); the claim lives
``lease`` seconds (default :data:`LEASE`) and is renewed every third of that while the cell
trains, so a killed runner's cells are taken over once their leases run out.
"""

from __future__ import annotations

import os
import platform
import threading
import uuid
from pathlib import Path

from ssmzoo.grid.store import Store

__all__ = ["LEASE", "Renewer", "runner_id"]

LEASE = 60.0  # seconds a claim lives without renewal; renewed every third of it


def runner_id() -> str:
    """A name for this runner, unique across processes and hosts: ``host:pid:random``."""
    return f"{platform.node() or 'host'}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Renewer:
    """Renews this runner's leases on the cells it holds, from a thread with its own connection."""

    def __init__(self, out: Path, runner: str, lease: float):
        self.out, self.runner, self.lease = out, runner, lease
        self.keys: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="ssmzoo-lease", daemon=True)
        self.thread.start()

    def hold(self, key: str) -> None:
        with self.lock:
            self.keys.add(key)

    def drop(self, key: str) -> None:
        with self.lock:
            self.keys.discard(key)

    def _loop(self) -> None:
        store = None
        try:
            while not self.stop.wait(self.lease / 3):
                with self.lock:
                    keys = list(self.keys)
                if not keys:
                    continue
                store = store or Store(self.out)
                for key in keys:
                    if not store.renew(key, self.runner, lease=self.lease):
                        self.drop(key)  # taken over: the result will not be written
        except Exception:  # a failed renewal only risks a second training, never a lost row
            pass
        finally:
            if store is not None:
                store.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
