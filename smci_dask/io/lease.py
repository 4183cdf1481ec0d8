"""A lease in the store: one writer at a time, and a dead writer's lease expires.

Two refreshes of the same store must never both write. A lock file is not
enough on an object store (no rename, no flock) and must not outlive a
killed holder, so the lock is a *lease*: numbered objects
``<relpath>/<seq>.json``, each holding ``{holder, host, pid, acquired,
expires}``. The highest number is the current lease.

Acquiring: list the numbers, read the highest; if it is absent, released or
expired, create number ``highest + 1`` with an *exclusive create* (local
``open(..., "xb")``; S3 ``PutObject`` with ``If-None-Match: *`` through
s3fs's ``"xb"`` mode; GCS generation 0; memory checks). Of two contenders
for the same number exactly one creates it; the other sees the error and
looks again. A live lease held by someone else is waited for (``wait``
seconds) or reported as a :class:`LeaseBusy` naming its holder and expiry.

Holding: a background thread renews the lease (rewrites its own object
with a later ``expires``) every ``ttl / 3`` seconds; a renewal the store does
not answer (network down, server paused) is tried again at the next period,
so a store away for less than about two thirds of ``ttl`` loses nothing. A holder that was paused
past its expiry may have lost the lease; :meth:`Lease.check` (called by the
holder before it commits anything) raises :class:`LeaseLost` when a higher
number exists.

Releasing marks the holder's object expired; older objects are removed by
the next acquirer. A killed holder's lease simply expires after ``ttl``.

Why not a library: ``dask.distributed.Lock`` lives in one scheduler (two
refreshes with two clusters do not share it), and icechunk's transactions
need the store to be an icechunk repository (see ARCHITECTURE.md); the
exclusive create that fsspec exposes for local, memory, S3 and GCS is all
a lease needs.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from smci_dask.errors import BusyError, SmciError, StoreError
from smci_dask.io.storage import Store, describe_error

Clock = Callable[[], float]


class LeaseBusy(BusyError):
    """Another live holder has the lease."""


class LeaseLost(BusyError):
    """The lease expired and someone else took it: stop before writing anything more."""


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


@dataclass
class Lease:
    """A held lease (see the module docstring); use :func:`hold_lease` to get one."""

    store: Store
    relpath: str
    seq: int
    holder: str
    ttl: float
    clock: Clock = time.time
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def object_path(self) -> str:
        return f"{self.relpath}/{self.seq:012d}.json"

    def body(self) -> bytes:
        now = self.clock()
        info = {
            "holder": self.holder,
            "token": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "renewed": _iso(now),
            "expires_at": now + self.ttl,
            "expires": _iso(now + self.ttl),
        }
        return json.dumps(info, indent=1).encode()

    def renew(self) -> None:
        """Push the expiry ``ttl`` seconds ahead (after checking the lease is still ours)."""
        self.check()
        self.store.write_bytes(self.object_path, self.body())

    def check(self) -> None:
        """Raise :class:`LeaseLost` when a later lease exists or ours was replaced."""
        latest = _latest(self.store, self.relpath)
        if latest is None or latest[0] != self.seq or latest[1].get("token") != self.token:
            who = latest[1].get("holder") if latest else "nobody"
            raise LeaseLost(
                f"{self.store.url_of(self.relpath)}: our lease #{self.seq} ({self.holder}) expired and is now held by {who}; "
                "stopping before writing more. Re-run when the other run has finished."
            )

    def release(self) -> None:
        """Stop renewing and mark our lease object released (a no-op when it is no longer ours).

        The object stays, marked expired, so lease numbers only grow; the
        next acquirer removes it.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        try:
            latest = _latest(self.store, self.relpath)
            if latest is not None and latest[0] == self.seq and latest[1].get("token") == self.token:
                info = {**latest[1], "released": _iso(self.clock()), "expires_at": 0.0}
                self.store.write_bytes(self.object_path, json.dumps(info, indent=1).encode())
        except StoreError:
            pass  # it expires by itself

    def start_renewing(self, every: float | None = None) -> None:
        """Renew in a daemon thread every ``every`` seconds (default ``ttl / 3``) until released."""
        period = every if every is not None else self.ttl / 3

        def loop() -> None:
            while not self._stop.wait(period):
                try:
                    self.renew()
                except LeaseLost:
                    return  # the holder's next check() says so
                except SmciError:
                    continue  # the store did not answer (paused, network down): try again next period

        self._thread = threading.Thread(target=loop, name=f"lease-{self.relpath}", daemon=True)
        self._thread.start()


def _numbers(store: Store, relpath: str) -> list[int]:
    out = []
    for name in store.ls(relpath):
        stem = name.removesuffix(".json")
        if name.endswith(".json") and stem.isdigit():
            out.append(int(stem))
    return sorted(out)


def _latest(store: Store, relpath: str) -> tuple[int, dict[str, Any]] | None:
    """The highest lease number and its content (``{}`` when it vanished or is unreadable)."""
    numbers = _numbers(store, relpath)
    if not numbers:
        return None
    seq = numbers[-1]
    try:
        info = json.loads(store.read_bytes(f"{relpath}/{seq:012d}.json"))
    except (StoreError, FileNotFoundError, ValueError):
        info = {}
    return seq, info


def _create_exclusive(store: Store, relpath: str, data: bytes) -> bool:
    """Create ``relpath`` only if it does not exist; False when it does (someone else won)."""
    path = store.join(relpath)
    parent = path.rsplit("/", 1)[0]
    try:
        if store.is_local:
            store.fs.makedirs(parent, exist_ok=True)
        with store.fs.open(path, "xb") as f:
            f.write(data)
    except FileExistsError:
        return False
    except Exception as exc:  # noqa: BLE001
        if "pre-condition" in str(exc).lower() or "precondition" in str(exc).lower():
            return False
        raise StoreError(f"{store.url_of(relpath)}: cannot create the lease object: {describe_error(exc)}") from None
    return True


def acquire_lease(
    store: Store,
    relpath: str,
    *,
    holder: str,
    ttl: float = 900.0,
    wait: float = 0.0,
    poll: float = 2.0,
    clock: Clock = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Lease:
    """Take the lease at ``relpath`` (see the module docstring) or raise :class:`LeaseBusy` after ``wait`` seconds."""
    deadline = clock() + wait
    while True:
        latest = _latest(store, relpath)
        seq = 0 if latest is None else latest[0]
        info = {} if latest is None else latest[1]
        live = latest is not None and float(info.get("expires_at", 0.0)) > clock()
        if not live:
            lease = Lease(store=store, relpath=relpath, seq=seq + 1, holder=holder, ttl=ttl, clock=clock)
            if _create_exclusive(store, lease.object_path, lease.body()):
                for old in _numbers(store, relpath):
                    if old < lease.seq:
                        store.rm(f"{relpath}/{old:012d}.json", recursive=False)
                return lease
            continue  # another contender created that number first: look again
        if clock() >= deadline:
            raise LeaseBusy(
                f"{store.url_of(relpath)}: held by {info.get('holder')} (host {info.get('host')}, pid {info.get('pid')}) "
                f"until {info.get('expires')} unless renewed; wait for it to finish, or if that run is dead, "
                f"its lease expires by itself at that time"
            )
        sleep(min(poll, max(deadline - clock(), 0.0)))


@contextmanager
def hold_lease(store: Store, relpath: str, *, holder: str, ttl: float = 900.0, wait: float = 0.0) -> Iterator[Lease]:
    """``with hold_lease(store, "product/.lease", holder="refresh") as lease:`` - renewed while held, released after."""
    lease = acquire_lease(store, relpath, holder=holder, ttl=ttl, wait=wait)
    lease.start_renewing()
    try:
        yield lease
    finally:
        lease.release()
