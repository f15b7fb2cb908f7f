"""Leases: "exactly one process works on X at a time", with takeover when the holder dies.

A lease is a named key holding its owner's token, with an expiry. The holder renews it well
before it expires; a holder that dies simply stops renewing, the lease expires, and another
process acquires it. Renew and release check the owner token atomically, so a process that lost
its lease (paused too long, network partition) can neither extend nor delete the new owner's.

Two implementations with the same protocol:

- ``RedisLeases`` (distributed profile): ``SET key owner NX PX ttl`` to acquire, Lua scripts to
  renew/release only when the key still holds our token. Expiry runs on the Redis clock, so
  workers' clocks do not matter.
- ``LocalLeases`` (embedded profile, one process): the same semantics over a table in memory.
  Instances created with the same ``LocalLeaseTable`` (by default one per process) contend with
  each other, which is what tests use to run several "workers" in one process.

Membership (``join``) is a heartbeat per group: every live member re-announces itself with a
TTL, and gets back the list of live members. With ``preferred_owner`` (rendezvous hashing over
that list) each member can tell which leases it *should* hold, so work spreads evenly across
workers and moves as little as possible when one joins or leaves. Leases stay the only source
of truth for mutual exclusion; membership only decides who tries first.
"""

from __future__ import annotations

import hashlib
import secrets
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from vigil.config import Settings


@runtime_checkable
class Leases(Protocol):
    owner: str  # this holder's token; unique per process (or per scheduler instance)

    async def acquire(self, names: Sequence[str], ttl_ms: int | Mapping[str, int]) -> set[str]:
        """Try to take each lease; returns the names now held (including ones we already held,
        whose expiry is extended)."""

    async def renew(self, names: Sequence[str], ttl_ms: int | Mapping[str, int]) -> set[str]:
        """Extend leases we still hold; returns those. A name missing from the answer was lost."""

    async def release(self, names: Sequence[str]) -> None:
        """Give up leases we hold (others' are left alone), so a successor need not wait."""

    async def holder(self, name: str) -> str | None: ...

    async def join(self, group: str, ttl_ms: int) -> list[str]:
        """Announce this owner as a live member of ``group`` for ``ttl_ms``; returns the live
        members (sorted), this one included."""

    async def leave(self, group: str) -> None: ...

    async def close(self) -> None: ...


def new_owner_token(worker: str | None = None) -> str:
    """A token naming this holder in logs (host, pid) and unique across restarts."""
    import os

    return f"{worker or socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def preferred_owner(name: str, members: Iterable[str]) -> str | None:
    """The member that should hold ``name`` (rendezvous hashing: stable, evenly spread, and
    only 1/N of the names move when a member joins or leaves)."""
    best: tuple[bytes, str] | None = None
    for member in members:
        score = hashlib.blake2b(f"{member}\x00{name}".encode(), digest_size=8).digest()
        if best is None or score > best[0]:
            best = (score, member)
    return None if best is None else best[1]


def _ttls(names: Sequence[str], ttl_ms: int | Mapping[str, int]) -> list[int]:
    if isinstance(ttl_ms, int):
        return [max(1, ttl_ms)] * len(names)
    return [max(1, int(ttl_ms[n])) for n in names]


# --- in process ---------------------------------------------------------------------------------


@dataclass
class LocalLeaseTable:
    """Leases and memberships of one process."""

    leases: dict[str, tuple[str, float]] = field(default_factory=dict)  # name -> (owner, expires)
    members: dict[str, dict[str, float]] = field(default_factory=dict)  # group -> owner -> expires

    def live_owner(self, name: str, now: float) -> str | None:
        entry = self.leases.get(name)
        if entry is None or entry[1] <= now:
            return None
        return entry[0]


PROCESS_LEASES = LocalLeaseTable()


class LocalLeases:
    def __init__(self, owner: str | None = None, table: LocalLeaseTable | None = None) -> None:
        self.owner = owner or new_owner_token()
        self.table = table if table is not None else PROCESS_LEASES

    async def acquire(self, names: Sequence[str], ttl_ms: int | Mapping[str, int]) -> set[str]:
        now = time.monotonic()
        held: set[str] = set()
        for name, ttl in zip(names, _ttls(names, ttl_ms), strict=True):
            current = self.table.live_owner(name, now)
            if current is None or current == self.owner:
                self.table.leases[name] = (self.owner, now + ttl / 1000)
                held.add(name)
        return held

    async def renew(self, names: Sequence[str], ttl_ms: int | Mapping[str, int]) -> set[str]:
        now = time.monotonic()
        held: set[str] = set()
        for name, ttl in zip(names, _ttls(names, ttl_ms), strict=True):
            if self.table.live_owner(name, now) == self.owner:
                self.table.leases[name] = (self.owner, now + ttl / 1000)
                held.add(name)
        return held

    async def release(self, names: Sequence[str]) -> None:
        now = time.monotonic()
        for name in names:
            if self.table.live_owner(name, now) == self.owner:
                del self.table.leases[name]

    async def holder(self, name: str) -> str | None:
        return self.table.live_owner(name, time.monotonic())

    async def join(self, group: str, ttl_ms: int) -> list[str]:
        now = time.monotonic()
        members = self.table.members.setdefault(group, {})
        members[self.owner] = now + ttl_ms / 1000
        for owner in [o for o, expires in members.items() if expires <= now]:
            del members[owner]
        return sorted(members)

    async def leave(self, group: str) -> None:
        self.table.members.get(group, {}).pop(self.owner, None)

    async def close(self) -> None:
        return None


# --- Redis --------------------------------------------------------------------------------------

# KEYS: lease keys. ARGV[1]: owner, ARGV[1 + i]: TTL (ms) of KEYS[i]. Returns 1/0 per key.
_ACQUIRE = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[i + 1]) then
    out[i] = 1
  elseif redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[i + 1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

_RENEW = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[i + 1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

_RELEASE = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""

# KEYS[1]: members sorted set (score = expiry, ms on the Redis clock). ARGV: owner, ttl ms.
_JOIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 10)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# Scripts are sent per call in batches of this many keys, to keep each script run short.
_BATCH = 500


class RedisLeases:
    def __init__(self, url: str, prefix: str = "vigil:", owner: str | None = None) -> None:
        from redis.asyncio import Redis

        self.owner = owner or new_owner_token()
        self.prefix = prefix
        self._redis: Any = Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._renew = self._redis.register_script(_RENEW)
        self._release = self._redis.register_script(_RELEASE)
        self._join = self._redis.register_script(_JOIN)

    @property
    def redis(self) -> Any:
        """The client, for callers that keep data next to their leases (see ``lease_key``)."""
        return self._redis

    def lease_key(self, name: str) -> str:
        return f"{self.prefix}lease:{name}"

    def _members_key(self, group: str) -> str:
        return f"{self.prefix}members:{group}"

    async def _run(self, script: Any, names: Sequence[str], ttls: list[int]) -> set[str]:
        held: set[str] = set()
        for start in range(0, len(names), _BATCH):
            chunk = list(names[start : start + _BATCH])
            answers = await script(
                keys=[self.lease_key(n) for n in chunk],
                args=[self.owner, *ttls[start : start + _BATCH]],
            )
            held.update(n for n, ok in zip(chunk, answers, strict=True) if int(ok) == 1)
        return held

    async def acquire(self, names: Sequence[str], ttl_ms: int | Mapping[str, int]) -> set[str]:
        return await self._run(self._acquire, names, _ttls(names, ttl_ms)) if names else set()

    async def renew(self, names: Sequence[str], ttl_ms: int | Mapping[str, int]) -> set[str]:
        return await self._run(self._renew, names, _ttls(names, ttl_ms)) if names else set()

    async def release(self, names: Sequence[str]) -> None:
        for start in range(0, len(names), _BATCH):
            chunk = names[start : start + _BATCH]
            await self._release(keys=[self.lease_key(n) for n in chunk], args=[self.owner])

    async def holder(self, name: str) -> str | None:
        value = await self._redis.get(self.lease_key(name))
        return None if value is None else value.decode()

    async def join(self, group: str, ttl_ms: int) -> list[str]:
        members = await self._join(keys=[self._members_key(group)], args=[self.owner, ttl_ms])
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def leave(self, group: str) -> None:
        await self._redis.zrem(self._members_key(group), self.owner)

    async def close(self) -> None:
        await self._redis.aclose()


def build_leases(settings: Settings, owner: str | None = None) -> Leases:
    """Redis leases on the distributed profile, in-process ones otherwise."""
    if settings.redis_url:
        owner = owner or new_owner_token(settings.worker_name)
        return RedisLeases(settings.redis_url, settings.redis_prefix, owner)
    return LocalLeases(owner or new_owner_token(settings.worker_name))
