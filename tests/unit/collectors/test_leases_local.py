"""In-process leases and membership: one holder at a time, expiry, owner-checked renew/release."""

from __future__ import annotations

import asyncio
from collections import Counter

from vigil.collectors.leases import LocalLeases, LocalLeaseTable, preferred_owner
from vigil.collectors.state import LocalStateTable, MemoryStateStore


async def test_one_holder_at_a_time_until_release_or_expiry() -> None:
    table = LocalLeaseTable()
    a, b = LocalLeases("a", table), LocalLeases("b", table)
    assert await a.acquire(["x", "y"], 10_000) == {"x", "y"}
    assert await b.acquire(["x", "z"], 10_000) == {"z"}
    assert await a.holder("x") == "a"
    await b.release(["x"])  # not b's: nothing happens
    assert await a.holder("x") == "a"
    await a.release(["x"])
    assert await b.acquire(["x"], 50) == {"x"}
    await asyncio.sleep(0.08)
    assert await b.holder("x") is None  # expired
    assert await a.acquire(["x"], 10_000) == {"x"}


async def test_renew_extends_only_leases_still_held() -> None:
    table = LocalLeaseTable()
    a, b = LocalLeases("a", table), LocalLeases("b", table)
    await a.acquire(["x", "y"], 60)
    await asyncio.sleep(0.03)
    assert await a.renew(["x"], 200) == {"x"}
    await asyncio.sleep(0.05)  # y expired, x renewed
    assert await b.acquire(["x", "y"], 1000) == {"y"}
    assert await a.renew(["x", "y"], 1000) == {"x"}  # y was lost to b


async def test_membership_expires_members_that_stop_announcing() -> None:
    table = LocalLeaseTable()
    a, b = LocalLeases("a", table), LocalLeases("b", table)
    assert await a.join("g", 60) == ["a"]
    assert await b.join("g", 1000) == ["a", "b"]
    await asyncio.sleep(0.08)
    assert await b.join("g", 1000) == ["b"]
    await b.leave("g")
    assert await a.join("g", 1000) == ["a"]


def test_rendezvous_spreads_evenly_and_moves_little_when_a_member_leaves() -> None:
    names = [f"source:{i}" for i in range(3000)]
    members = ["w1", "w2", "w3"]
    before = {n: preferred_owner(n, members) for n in names}
    shares = Counter(before.values())
    assert all(800 < shares[m] < 1200 for m in members), shares
    after = {n: preferred_owner(n, ["w1", "w3"]) for n in names}
    moved = [n for n in names if before[n] != after[n]]
    assert all(before[n] == "w2" for n in moved)  # only w2's names moved
    assert preferred_owner("x", []) is None


async def test_state_saves_are_fenced_by_the_lease() -> None:
    table = LocalLeaseTable()
    a, b = LocalLeases("a", table), LocalLeases("b", table)
    states = LocalStateTable()
    store_a, store_b = MemoryStateStore(a, states), MemoryStateStore(b, states)
    await a.acquire(["source:1"], 1000)
    assert await store_a.save(1, "source:1", {"n": 1})
    assert not await store_b.save(1, "source:1", {"n": 2})
    loaded = await store_b.load(1)
    assert loaded == {"n": 1}
    loaded["n"] = 99  # callers get a copy
    assert await store_a.load(1) == {"n": 1}
