"""The store lease: exclusive on local, memory and S3; expires when its holder dies; a lost lease is noticed."""

from __future__ import annotations

import pytest

from smci_dask.io import Store
from smci_dask.io.lease import LeaseBusy, LeaseLost, _create_exclusive, acquire_lease, hold_lease

LEASE = "product/.lease"


class FakeClock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_exclusive_create_is_exclusive(any_store: Store) -> None:
    assert _create_exclusive(any_store, "x/lease.json", b"first")
    assert not _create_exclusive(any_store, "x/lease.json", b"second")
    assert any_store.read_bytes("x/lease.json") == b"first"


def test_a_live_lease_blocks_a_second_holder_and_names_the_first(any_store: Store) -> None:
    clock = FakeClock()
    first = acquire_lease(any_store, LEASE, holder="refresh A", ttl=60, clock=clock)
    with pytest.raises(LeaseBusy, match="held by refresh A") as info:
        acquire_lease(any_store, LEASE, holder="refresh B", ttl=60, clock=clock, wait=10, poll=2, sleep=clock.sleep)
    assert info.value.exit_code == 7
    assert clock.t >= 1_000_010.0  # it waited before giving up
    first.check()  # still ours
    first.release()
    second = acquire_lease(any_store, LEASE, holder="refresh B", ttl=60, clock=clock)
    assert second.seq == first.seq + 1
    assert any_store.ls(LEASE) == [f"{second.seq:012d}.json"]


def test_a_dead_holders_lease_expires_and_the_late_holder_learns_it_lost(any_store: Store) -> None:
    clock = FakeClock()
    dead = acquire_lease(any_store, LEASE, holder="killed run", ttl=60, clock=clock)
    clock.t += 61  # never renewed: the holder was killed
    taker = acquire_lease(any_store, LEASE, holder="next run", ttl=60, clock=clock)
    assert taker.seq == dead.seq + 1
    with pytest.raises(LeaseLost, match="held by next run"):
        dead.check()
    with pytest.raises(LeaseLost):
        dead.renew()
    dead.release()  # must not delete the new holder's lease
    taker.check()
    assert any_store.ls(LEASE) == [f"{taker.seq:012d}.json"]


def test_renewal_keeps_the_lease_alive(any_store: Store) -> None:
    clock = FakeClock()
    lease = acquire_lease(any_store, LEASE, holder="long run", ttl=60, clock=clock)
    for _ in range(5):
        clock.t += 40
        lease.renew()
    with pytest.raises(LeaseBusy):
        acquire_lease(any_store, LEASE, holder="other", ttl=60, clock=clock)


def test_waiting_acquires_once_the_holder_releases(tmp_path) -> None:
    store = Store.from_url(str(tmp_path))
    clock = FakeClock()
    holder = acquire_lease(store, LEASE, holder="first", ttl=600, clock=clock)
    waited = []

    def sleep(s: float) -> None:
        waited.append(s)
        clock.sleep(s)
        if len(waited) == 3:
            holder.release()

    lease = acquire_lease(store, LEASE, holder="second", ttl=600, clock=clock, wait=100, poll=5, sleep=sleep)
    assert len(waited) == 3 and lease.holder == "second"


def test_hold_lease_releases_on_error(tmp_path) -> None:
    store = Store.from_url(str(tmp_path))
    with pytest.raises(RuntimeError), hold_lease(store, LEASE, holder="crashing", ttl=60):
        raise RuntimeError("boom")
    with hold_lease(store, LEASE, holder="next", ttl=60) as lease:  # no wait: the crashed holder released it
        lease.check()
        assert lease.seq == 2
