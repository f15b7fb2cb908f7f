"""Where a source's poll state lives between polls, so the next lease owner can continue.

The state of a source (previous counters, the end of the last time window, when it was last
polled, consecutive failures) is kept in the lease holder's memory and saved here after every
poll. Saves are fenced by the lease: a worker that lost a source's lease cannot overwrite what
the new owner saved. If the state is lost altogether, the next poll simply primes it again.

- ``RedisStateStore``: one Redis hash (field = source id, value = JSON), saved with a Lua
  script that writes only while our lease key still holds our token.
- ``MemoryStateStore``: a dict in the process (the embedded profile runs one worker; after a
  restart, counters are re-primed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from vigil.collectors.leases import Leases, LocalLeases, RedisLeases


class StateStore(Protocol):
    async def load(self, source_id: int) -> dict[str, Any] | None: ...

    async def save(self, source_id: int, lease: str, state: dict[str, Any]) -> bool:
        """Save while holding ``lease``; False (nothing written) when the lease is not ours."""

    async def delete(self, source_id: int) -> None: ...


@dataclass
class LocalStateTable:
    states: dict[int, dict[str, Any]] = field(default_factory=dict)


PROCESS_STATES = LocalStateTable()


class MemoryStateStore:
    def __init__(self, leases: LocalLeases, table: LocalStateTable | None = None) -> None:
        self.leases = leases
        self.table = table if table is not None else PROCESS_STATES

    async def load(self, source_id: int) -> dict[str, Any] | None:
        state = self.table.states.get(source_id)
        # A deep copy, as Redis would give: callers own what they load.
        return None if state is None else orjson.loads(orjson.dumps(state))

    async def save(self, source_id: int, lease: str, state: dict[str, Any]) -> bool:
        if await self.leases.holder(lease) != self.leases.owner:
            return False
        self.table.states[source_id] = orjson.loads(orjson.dumps(state))
        return True

    async def delete(self, source_id: int) -> None:
        self.table.states.pop(source_id, None)


# KEYS[1]: lease key, KEYS[2]: state hash. ARGV: owner, field, value.
_FENCED_SAVE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


class RedisStateStore:
    def __init__(self, leases: RedisLeases) -> None:
        self.leases = leases
        self.key = f"{leases.prefix}collectors:state"
        self._save = leases.redis.register_script(_FENCED_SAVE)

    async def load(self, source_id: int) -> dict[str, Any] | None:
        raw = await self.leases.redis.hget(self.key, str(source_id))
        if raw is None:
            return None
        try:
            state = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None  # unreadable state only costs a priming poll
        return state if isinstance(state, dict) else None

    async def save(self, source_id: int, lease: str, state: dict[str, Any]) -> bool:
        written = await self._save(
            keys=[self.leases.lease_key(lease), self.key],
            args=[self.leases.owner, str(source_id), orjson.dumps(state)],
        )
        return int(written) == 1

    async def delete(self, source_id: int) -> None:
        await self.leases.redis.hdel(self.key, str(source_id))


def build_state_store(leases: Leases) -> StateStore:
    if isinstance(leases, RedisLeases):
        return RedisStateStore(leases)
    if isinstance(leases, LocalLeases):
        return MemoryStateStore(leases)
    raise TypeError(f"no state store for {type(leases).__name__}")
