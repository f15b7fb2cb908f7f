"""SNMP v2c/v3 collector: system, interfaces (IF-MIB), storage and CPU (HOST-RESOURCES-MIB).

Numeric OIDs only (no MIB files needed). One poll = one GET of scalars, then concurrent bulk
walks of the table columns we use. Polling (``fetch``) is kept apart from turning a sample into
points (``build_result``), which is pure and unit-tested on counter edge cases.

Counters become rates between two polls:
- 64-bit ifHC* counters are used when the agent has them, the 32-bit ones otherwise; a counter
  lower than last time wrapped once (``cur + 2**bits - prev``).
- Time between polls comes from sysUpTime (the agent's clock). sysUpTime going back means the
  agent restarted: every counter is discarded and only primes the next poll. So is an
  interface whose ifCounterDiscontinuityTime changed, or whose "wrapped" delta would exceed
  the link speed (a reset that looks like a wrap).
- Without a previous sample (first poll, lost state) the poll only primes state.

ifOperStatus leaving "up" on an interface that is administratively up raises an alert signal
(origin "snmp"); coming back up resolves it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from vigil.collectors.base import CollectError, CollectResult, StrictModel, register
from vigil.domain.alerts import AlertSignal
from vigil.domain.metrics import FieldValue, Point

# --- OIDs ---------------------------------------------------------------------------------------

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
LA_LOAD = ("1.3.6.1.4.1.2021.10.1.3.1", "1.3.6.1.4.1.2021.10.1.3.2", "1.3.6.1.4.1.2021.10.1.3.3")
# UCD-SNMP-MIB raw CPU tick counters (Net-SNMP): user, nice, system, idle, wait, steal.
SS_CPU_RAW = {
    "user": "1.3.6.1.4.1.2021.11.50.0",
    "nice": "1.3.6.1.4.1.2021.11.51.0",
    "system": "1.3.6.1.4.1.2021.11.52.0",
    "idle": "1.3.6.1.4.1.2021.11.53.0",
    "wait": "1.3.6.1.4.1.2021.11.54.0",
    "steal": "1.3.6.1.4.1.2021.11.64.0",
}

IF_TABLE = "1.3.6.1.2.1.2.2.1"
IF_COLUMNS = {
    2: "descr", 3: "type", 5: "speed", 7: "admin", 8: "oper",
    10: "in_octets", 11: "in_ucast", 13: "in_discards", 14: "in_errors",
    16: "out_octets", 17: "out_ucast", 19: "out_discards", 20: "out_errors",
}  # fmt: skip
IFX_TABLE = "1.3.6.1.2.1.31.1.1.1"
IFX_COLUMNS = {
    1: "name", 6: "hc_in_octets", 7: "hc_in_ucast", 10: "hc_out_octets", 11: "hc_out_ucast",
    15: "high_speed", 18: "alias", 19: "discontinuity",
}  # fmt: skip
HR_STORAGE_TABLE = "1.3.6.1.2.1.25.2.3.1"
HR_STORAGE_COLUMNS = {2: "type", 3: "descr", 4: "units", 5: "size", 6: "used"}
HR_PROCESSOR_LOAD = "1.3.6.1.2.1.25.3.3.1.2"
HR_STORAGE_TYPES = {
    1: "other", 2: "ram", 3: "virtual_memory", 4: "fixed_disk", 5: "removable_disk",
    6: "floppy_disk", 7: "compact_disc", 8: "ram_disk", 9: "flash_memory", 10: "network_disk",
}  # fmt: skip
OPER_STATUS = {
    1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent", 7: "lowerLayerDown",
}  # fmt: skip

U32 = 2**32
GAUGE32_MAX = U32 - 1
# A wrap may only be trusted when the implied rate stays below the link speed times this.
SPEED_SLACK = 1.5


# --- config ---------------------------------------------------------------------------------------


class SnmpConfig(StrictModel):
    version: Literal["2c", "3"] = "2c"
    timeout_s: float = Field(2.0, gt=0, le=30, description="Per request.")
    retries: int = Field(1, ge=0, le=5)
    max_repetitions: int = Field(25, ge=1, le=100)
    username: str | None = Field(None, description="SNMPv3 user (security name).")
    auth_protocol: Literal["none", "MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"] = "SHA"
    priv_protocol: Literal["none", "DES", "3DES", "AES", "AES192", "AES256"] = "AES"
    context_name: str = ""
    host: str | None = Field(None, description="Host tag for the points; default: the agent's sysName.")
    interfaces: bool = True
    storage: bool = True
    cpu: bool = True


class SnmpCredentials(StrictModel):
    community: str | None = Field(None, description="SNMPv2c community.")
    auth_key: str | None = Field(None, description="SNMPv3 authentication passphrase.")
    priv_key: str | None = Field(None, description="SNMPv3 privacy passphrase.")


def parse_target(target: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6addr]:port``; default port 161."""
    target = target.strip()
    if not target:
        raise ValueError("target: an SNMP agent address is required, e.g. 10.0.0.5 or switch1:161")
    if target.startswith("["):
        host, _, rest = target[1:].partition("]")
        port_text = rest.removeprefix(":") or "161"
    elif target.count(":") == 1:
        host, port_text = target.split(":")
    else:
        host, port_text = target, "161"
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"target: {target!r} is not host[:port]")
    return host, int(port_text)


# --- a sample: what one poll read --------------------------------------------------------------


@dataclass
class SnmpSample:
    uptime_ticks: int | None
    sys_name: str | None
    load: list[float | None] = field(default_factory=list)  # 1, 5, 15 minutes
    cpu_raw: dict[str, int] = field(default_factory=dict)  # UCD raw ticks
    interfaces: dict[int, dict[str, Any]] = field(default_factory=dict)  # ifIndex -> column -> value
    storage: dict[int, dict[str, Any]] = field(default_factory=dict)
    processor_loads: list[int] = field(default_factory=list)
    wall_ns: int = 0


# --- pure: sample + previous state -> points, alerts, new state --------------------------------


def counter_delta(cur: int, prev: int, bits: int) -> int:
    """Increase of a counter that may have wrapped once since ``prev``."""
    return cur - prev if cur >= prev else cur + 2**bits - prev


def uptime_delta_s(cur: int | None, prev: int | None, wall_dt_s: float) -> float | None:
    """Seconds between two sysUpTime readings, or None when the agent restarted.

    sysUpTime is TimeTicks (1/100 s) and wraps at 2**32 (~497 days): a lower value is a wrap
    only if the previous one was within reach of the wrap point, otherwise a restart."""
    if cur is None or prev is None:
        return wall_dt_s if wall_dt_s > 0 else None
    if cur >= prev:
        return (cur - prev) / 100
    wrapped = cur + U32 - prev
    if wrapped <= max(wall_dt_s, 1.0) * 100 * 2:
        return wrapped / 100
    return None


def speed_bps(row: dict[str, Any]) -> int | None:
    speed = row.get("speed")
    high = row.get("high_speed")
    if isinstance(high, int) and high > 0 and (speed is None or speed >= GAUGE32_MAX or high * 10**6 > speed):
        return high * 10**6
    return speed if isinstance(speed, int) else None


def build_result(
    sample: SnmpSample, state: dict[str, Any], *, target: str, config: SnmpConfig
) -> CollectResult:
    host = config.host or sample.sys_name or parse_target(target)[0]
    base_tags = {"host": host, "agent": target}
    now = sample.wall_ns or time.time_ns()
    prev_wall = state.get("wall_ns")
    wall_dt_s = (now - prev_wall) / 1e9 if isinstance(prev_wall, int) else 0.0
    dt_s = uptime_delta_s(sample.uptime_ticks, state.get("uptime"), wall_dt_s) if prev_wall else None
    restarted = prev_wall is not None and dt_s is None
    if dt_s is not None and dt_s <= 0:
        dt_s = None
    result = CollectResult()
    system: dict[str, FieldValue] = {}
    if sample.uptime_ticks is not None:
        system["uptime_s"] = sample.uptime_ticks / 100
    for name, value in zip(("load1", "load5", "load15"), sample.load, strict=False):
        if value is not None:
            system[name] = value
    system["restarted"] = int(restarted)
    result.points.append(Point("snmp_system", system, dict(base_tags), now))

    if config.cpu:
        cpu: dict[str, FieldValue] = {}
        if sample.processor_loads:
            cpu["load_pct"] = sum(sample.processor_loads) / len(sample.processor_loads)
            cpu["processors"] = len(sample.processor_loads)
        prev_raw = state.get("cpu_raw") or {}
        if dt_s is not None and sample.cpu_raw and set(prev_raw) == set(sample.cpu_raw):
            deltas = {k: counter_delta(v, int(prev_raw[k]), 32) for k, v in sample.cpu_raw.items()}
            total = sum(deltas.values())
            if total > 0 and "idle" in deltas:
                cpu["usage_pct"] = round(100.0 * (1 - deltas["idle"] / total), 3)
        if cpu:
            result.points.append(Point("snmp_cpu", cpu, dict(base_tags), now))

    new_interfaces: dict[str, dict[str, Any]] = {}
    if config.interfaces:
        prev_ifs: dict[str, Any] = state.get("interfaces") or {}
        for index, row in sorted(sample.interfaces.items()):
            prev = prev_ifs.get(str(index))
            points, saved, signal = _interface(index, row, prev, dt_s, host, base_tags, now, target)
            result.points.extend(points)
            new_interfaces[str(index)] = saved
            if signal is not None:
                result.alert_signals.append(signal)

    if config.storage:
        for index, row in sorted(sample.storage.items()):
            point = _storage(index, row, base_tags, now)
            if point is not None:
                result.points.append(point)

    result.new_state = {
        "wall_ns": now,
        "uptime": sample.uptime_ticks,
        "cpu_raw": dict(sample.cpu_raw),
        "interfaces": new_interfaces,
    }
    return result


def _interface(
    index: int,
    row: dict[str, Any],
    prev: dict[str, Any] | None,
    dt_s: float | None,
    host: str,
    base_tags: dict[str, str],
    now: int,
    target: str,
) -> tuple[list[Point], dict[str, Any], AlertSignal | None]:
    name = str(row.get("name") or row.get("descr") or index)
    tags = {**base_tags, "if_index": str(index), "if_name": name}
    fields: dict[str, FieldValue] = {}
    admin, oper = row.get("admin"), row.get("oper")
    if isinstance(admin, int):
        fields["admin_status"] = admin
    if isinstance(oper, int):
        fields["oper_status"] = oper
        fields["up"] = int(oper == 1)
    speed = speed_bps(row)
    if speed is not None:
        fields["speed_bps"] = speed

    hc = isinstance(row.get("hc_in_octets"), int) and isinstance(row.get("hc_out_octets"), int)
    hc_in_ucast = isinstance(row.get("hc_in_ucast"), int)
    hc_out_ucast = isinstance(row.get("hc_out_ucast"), int)
    counters = {
        "in_octets": row.get("hc_in_octets") if hc else row.get("in_octets"),
        "out_octets": row.get("hc_out_octets") if hc else row.get("out_octets"),
        "in_ucast": row.get("hc_in_ucast") if hc_in_ucast else row.get("in_ucast"),
        "out_ucast": row.get("hc_out_ucast") if hc_out_ucast else row.get("out_ucast"),
        "in_errors": row.get("in_errors"),
        "out_errors": row.get("out_errors"),
        "in_discards": row.get("in_discards"),
        "out_discards": row.get("out_discards"),
    }
    widths = {
        "in_octets": 64 if hc else 32,
        "out_octets": 64 if hc else 32,
        "in_ucast": 64 if hc_in_ucast else 32,
        "out_ucast": 64 if hc_out_ucast else 32,
    }
    saved: dict[str, Any] = {
        "c": {k: v for k, v in counters.items() if isinstance(v, int)},
        "w": widths,
        "disc": row.get("discontinuity"),
        "oper": oper,
        "alerting": bool(prev and prev.get("alerting")),
    }
    usable = (
        prev is not None
        and dt_s is not None
        and prev.get("disc") == row.get("discontinuity")
        and prev.get("w", {}) == widths
    )
    if usable:
        assert prev is not None and dt_s is not None
        rates: dict[str, float] = {}
        wrapped: set[str] = set()
        for key, value in saved["c"].items():
            before = prev.get("c", {}).get(key)
            if not isinstance(before, int):
                continue
            if value < before:
                wrapped.add(key)
            rates[key] = counter_delta(value, before, widths.get(key, 32)) / dt_s
        # A "wrap" implying more than the link can carry was a counter reset: drop the sample.
        # (Only wraps: virtual interfaces routinely carry more than their nominal ifSpeed.)
        if speed:
            for key in ("in_octets", "out_octets"):
                if key in wrapped and rates[key] * 8 > speed * SPEED_SLACK:
                    rates = {}
                    break
        names = {
            "in_octets": "in_bps", "out_octets": "out_bps", "in_ucast": "in_pps", "out_ucast": "out_pps",
            "in_errors": "in_errors_ps", "out_errors": "out_errors_ps",
            "in_discards": "in_discards_ps", "out_discards": "out_discards_ps",
        }  # fmt: skip
        for key, rate in rates.items():
            fields[names[key]] = rate * 8 if key.endswith("octets") else rate
        if speed and "in_bps" in fields:
            fields["in_util_pct"] = float(fields["in_bps"]) / speed * 100
        if speed and "out_bps" in fields:
            fields["out_util_pct"] = float(fields["out_bps"]) / speed * 100

    signal = _oper_signal(index, name, admin, oper, prev, saved, host, now, target)
    points = [Point("snmp_interface", fields, tags, now)] if fields else []
    return points, saved, signal


def _oper_signal(
    index: int,
    name: str,
    admin: Any,
    oper: Any,
    prev: dict[str, Any] | None,
    saved: dict[str, Any],
    host: str,
    now: int,
    target: str,
) -> AlertSignal | None:
    if not isinstance(oper, int):
        return None
    # dormant and notPresent are normal states for some interfaces, not failures.
    failing = admin == 1 and oper not in (1, 5, 6)
    was_alerting = bool(prev and prev.get("alerting"))
    fingerprint = f"snmp:{target}:ifIndex={index}:oper"
    labels = {"if_index": str(index), "if_name": name, "agent": target}
    if failing and not was_alerting:
        saved["alerting"] = True
        before = OPER_STATUS.get(prev["oper"], str(prev["oper"])) if prev and prev.get("oper") else None
        return AlertSignal(
            origin="snmp",
            title=f"Interface {name} on {host} is {OPER_STATUS.get(oper, str(oper))}",
            severity="high",
            time_ns=now,
            host=host,
            description=f"ifOperStatus changed from {before} to {OPER_STATUS.get(oper, oper)} "
            "while the interface is administratively up"
            if before
            else f"ifOperStatus is {OPER_STATUS.get(oper, oper)} while the interface is administratively up",
            labels=labels,
            fingerprint=fingerprint,
        )
    if was_alerting and not failing:
        saved["alerting"] = False
        return AlertSignal(
            origin="snmp",
            title=f"Interface {name} on {host} is {OPER_STATUS.get(oper, str(oper))}",
            severity="high",
            time_ns=now,
            host=host,
            description="the interface is up again" if oper == 1 else "the interface was disabled",
            labels=labels,
            fingerprint=fingerprint,
            resolved=True,
        )
    return None


def _unsigned32(value: Any) -> int | None:
    # hrStorageSize/Used are Integer32; huge volumes come back negative on some agents.
    if not isinstance(value, int):
        return None
    return value & 0xFFFFFFFF if value < 0 else value


def _storage(index: int, row: dict[str, Any], base_tags: dict[str, str], now: int) -> Point | None:
    units = _unsigned32(row.get("units"))
    size, used = _unsigned32(row.get("size")), _unsigned32(row.get("used"))
    if units is None or size is None or used is None:
        return None
    kind_oid = str(row.get("type") or "")
    kind_num = kind_oid.rsplit(".", 1)[-1]
    kind = HR_STORAGE_TYPES.get(int(kind_num), "other") if kind_num.isdigit() else "other"
    fields: dict[str, FieldValue] = {
        "size_bytes": size * units,
        "used_bytes": used * units,
        "free_bytes": max(0, size - used) * units,
    }
    if size > 0:
        fields["used_pct"] = used / size * 100
    tags = {**base_tags, "storage": str(row.get("descr") or index), "storage_type": kind}
    return Point("snmp_storage", fields, tags, now)


# --- I/O --------------------------------------------------------------------------------------


_AUTH = {
    "none": "usmNoAuthProtocol", "MD5": "usmHMACMD5AuthProtocol", "SHA": "usmHMACSHAAuthProtocol",
    "SHA224": "usmHMAC128SHA224AuthProtocol", "SHA256": "usmHMAC192SHA256AuthProtocol",
    "SHA384": "usmHMAC256SHA384AuthProtocol", "SHA512": "usmHMAC384SHA512AuthProtocol",
}  # fmt: skip
_PRIV = {
    "none": "usmNoPrivProtocol", "DES": "usmDESPrivProtocol", "3DES": "usm3DESEDEPrivProtocol",
    "AES": "usmAesCfb128Protocol", "AES192": "usmAesCfb192Protocol", "AES256": "usmAesCfb256Protocol",
}  # fmt: skip
# Column walks in flight at once against one agent.
WALK_CONCURRENCY = 6


def _value(value: Any) -> Any:
    """A pysnmp value as a plain Python value; None for noSuchObject/Instance/endOfMibView."""
    from pyasn1.type.univ import Null, ObjectIdentifier, OctetString

    if isinstance(value, Null) or value.__class__.__name__ in (
        "NoSuchObject",
        "NoSuchInstance",
        "EndOfMibView",
    ):
        return None
    if isinstance(value, ObjectIdentifier):
        return str(value)
    if isinstance(value, OctetString):
        raw = bytes(value)
        try:
            return raw.decode("utf-8").rstrip("\x00")
        except UnicodeDecodeError:
            return raw.hex()
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


# Building an SnmpEngine costs ~0.5 s of CPU (it loads its own MIB modules), so engines are kept
# per event loop and per credential set (pysnmp keys v3 users by name inside an engine, so two
# sources with the same user name but different keys must not share one).
_ENGINES: dict[tuple[int, str], tuple[asyncio.AbstractEventLoop, Any]] = {}
_ENGINE_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
MAX_ENGINES = 64


def _credential_key(config: SnmpConfig, credentials: SnmpCredentials) -> str:
    parts = (
        config.version, config.username, config.auth_protocol, config.priv_protocol,
        credentials.community, credentials.auth_key, credentials.priv_key,
    )  # fmt: skip
    return hashlib.sha256(repr(parts).encode()).hexdigest()


async def _engine_for(config: SnmpConfig, credentials: SnmpCredentials) -> Any:
    from pysnmp.hlapi.v3arch import asyncio as hlapi

    loop = asyncio.get_running_loop()
    key = (id(loop), _credential_key(config, credentials))
    lock = _ENGINE_LOCKS.setdefault(loop, asyncio.Lock())
    async with lock:
        entry = _ENGINES.get(key)
        if entry is not None and entry[0] is loop:
            return entry[1]
        for stale_key, (stale_loop, engine) in list(_ENGINES.items()):
            if stale_loop.is_closed() or len(_ENGINES) >= MAX_ENGINES:
                del _ENGINES[stale_key]
                with contextlib.suppress(Exception):
                    engine.close_dispatcher()
        # Built in a thread so the event loop (lease renewals, other polls) keeps running.
        engine = await asyncio.to_thread(hlapi.SnmpEngine)
        _ENGINES[key] = (loop, engine)
        return engine


class SnmpSession:
    """One poll's conversation with an agent."""

    def __init__(self, host: str, port: int, config: SnmpConfig, credentials: SnmpCredentials) -> None:
        self.host, self.port, self.config, self.credentials = host, port, config, credentials
        self._engine: Any = None
        self._auth: Any = None
        self._transport: Any = None
        self._context: Any = None
        self._limit = asyncio.Semaphore(WALK_CONCURRENCY)

    async def __aenter__(self) -> SnmpSession:
        from pysnmp.hlapi.v3arch import asyncio as hlapi

        self._engine = await _engine_for(self.config, self.credentials)
        if self.config.version == "2c":
            self._auth = hlapi.CommunityData(self.credentials.community or "", mpModel=1)
        else:
            cfg, creds = self.config, self.credentials
            self._auth = hlapi.UsmUserData(
                cfg.username or "",
                authKey=creds.auth_key if cfg.auth_protocol != "none" else None,
                privKey=creds.priv_key if cfg.priv_protocol != "none" else None,
                authProtocol=getattr(hlapi, _AUTH[cfg.auth_protocol]),
                privProtocol=getattr(hlapi, _PRIV[cfg.priv_protocol]),
            )
        try:
            self._transport = await hlapi.UdpTransportTarget.create(
                (self.host, self.port), timeout=self.config.timeout_s, retries=self.config.retries
            )
        except Exception as exc:
            raise CollectError(f"cannot resolve SNMP agent {self.host}: {exc}") from exc
        self._context = hlapi.ContextData(contextName=self.config.context_name)
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def _fail(self, what: str, indication: Any, status: Any = None, index: Any = None) -> CollectError:
        where = f"{self.host}:{self.port}"
        if indication:
            return CollectError(f"SNMP {what} on {where} failed: {indication}")
        return CollectError(f"SNMP {what} on {where} failed: error-status {status} at index {index}")

    async def get(self, oids: list[str]) -> dict[str, Any]:
        from pysnmp.hlapi.v3arch import asyncio as hlapi

        indication, status, index, binds = await hlapi.get_cmd(
            self._engine,
            self._auth,
            self._transport,
            self._context,
            *(hlapi.ObjectType(hlapi.ObjectIdentity(oid)) for oid in oids),
            lookupMib=False,
        )
        if indication or status:
            raise self._fail("GET", indication, status, index)
        return {str(name): _value(value) for name, value in binds}

    async def walk(self, oid: str) -> dict[int, Any]:
        """A table column: index (last sub-identifier) -> value."""
        from pysnmp.hlapi.v3arch import asyncio as hlapi

        prefix = oid + "."
        out: dict[int, Any] = {}
        async with self._limit:
            async for indication, status, index, binds in hlapi.bulk_walk_cmd(
                self._engine,
                self._auth,
                self._transport,
                self._context,
                0,
                self.config.max_repetitions,
                hlapi.ObjectType(hlapi.ObjectIdentity(oid)),
                lexicographicMode=False,
                lookupMib=False,
            ):
                if indication or status:
                    raise self._fail(f"walk of {oid}", indication, status, index)
                for name, value in binds:
                    text = str(name)
                    if not text.startswith(prefix):
                        continue
                    suffix = text[len(prefix) :]
                    if suffix.isdigit():
                        out[int(suffix)] = _value(value)
        return out

    async def table(self, base: str, columns: dict[int, str]) -> dict[int, dict[str, Any]]:
        walked = await asyncio.gather(*(self.walk(f"{base}.{col}") for col in columns))
        rows: dict[int, dict[str, Any]] = {}
        for name, column in zip(columns.values(), walked, strict=True):
            for index, value in column.items():
                rows.setdefault(index, {})[name] = value
        return rows


async def fetch(target: str, config: SnmpConfig, credentials: SnmpCredentials) -> SnmpSample:
    host, port = parse_target(target)
    async with SnmpSession(host, port, config, credentials) as session:
        scalars = await session.get([SYS_UPTIME, SYS_NAME, *LA_LOAD, *SS_CPU_RAW.values()])
        wall_ns = time.time_ns()
        uptime = scalars.get(SYS_UPTIME)
        if uptime is None:
            raise CollectError(f"SNMP agent {host}:{port} did not return sysUpTime")
        sample = SnmpSample(
            uptime_ticks=uptime if isinstance(uptime, int) else None,
            sys_name=str(scalars.get(SYS_NAME)) if scalars.get(SYS_NAME) else None,
            wall_ns=wall_ns,
        )
        sample.load = [_float(scalars.get(oid)) for oid in LA_LOAD]
        sample.cpu_raw = {
            key: value for key, oid in SS_CPU_RAW.items() if isinstance(value := scalars.get(oid), int)
        }
        jobs: dict[str, Any] = {}
        if config.interfaces:
            jobs["if"] = session.table(IF_TABLE, IF_COLUMNS)
            jobs["ifx"] = session.table(IFX_TABLE, IFX_COLUMNS)
        if config.storage:
            jobs["storage"] = session.table(HR_STORAGE_TABLE, HR_STORAGE_COLUMNS)
        if config.cpu:
            jobs["cpu"] = session.walk(HR_PROCESSOR_LOAD)
        results = dict(zip(jobs, await asyncio.gather(*jobs.values()), strict=True))
    interfaces = results.get("if", {})
    for index, extra in results.get("ifx", {}).items():
        if index in interfaces:
            interfaces[index].update(extra)
    sample.interfaces = interfaces
    sample.storage = results.get("storage", {})
    sample.processor_loads = [v for v in results.get("cpu", {}).values() if isinstance(v, int)]
    return sample


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class SnmpCollector:
    name: ClassVar[str] = "snmp"
    config_model: ClassVar[type[BaseModel]] = SnmpConfig
    credentials_model: ClassVar[type[BaseModel]] = SnmpCredentials

    def check(self, target: str | None, config: SnmpConfig, credentials: SnmpCredentials) -> str:
        host, port = parse_target(target or "")
        if config.version == "2c" and not credentials.community:
            raise ValueError("credentials.community: required for SNMP v2c")
        if config.version == "3":
            if not config.username:
                raise ValueError("config.username: required for SNMP v3")
            if config.auth_protocol != "none" and not credentials.auth_key:
                raise ValueError("credentials.auth_key: required when config.auth_protocol is set")
            if config.priv_protocol != "none" and config.auth_protocol == "none":
                raise ValueError("config.priv_protocol: privacy needs authentication (set auth_protocol)")
            if config.priv_protocol != "none" and not credentials.priv_key:
                raise ValueError("credentials.priv_key: required when config.priv_protocol is set")
            for key in ("auth_key", "priv_key"):
                value = getattr(credentials, key)
                if value is not None and len(value) < 8:
                    raise ValueError(f"credentials.{key}: SNMPv3 passphrases have at least 8 characters")
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def collect(
        self, target: str, config: SnmpConfig, credentials: SnmpCredentials, state: dict[str, Any]
    ) -> CollectResult:
        sample = await fetch(target, config, credentials)
        return build_result(sample, state, target=target, config=config)


register(SnmpCollector(), "SNMP v2c/v3 agent: system, interfaces, storage, CPU")
