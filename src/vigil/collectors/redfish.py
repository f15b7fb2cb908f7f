"""Redfish collector: BMC hardware health and telemetry over HTTPS.

Per poll: the service root (unauthenticated), then Systems (power state, health rollup) and each
Chassis' Thermal (temperatures, fans) and Power (power control, power supplies). Members are
always discovered through collections (ids are vendor-specific), following
``Members@odata.nextLink``. A resource the BMC does not implement (404, e.g. Power on the sushy
emulator) is reported as "not supported", not as a failure.

Auth is HTTP basic on every request, or a Redfish session (``POST .../SessionService/Sessions``
→ ``X-Auth-Token``), logged out at the end of each poll so BMCs' few session slots are never
exhausted. ``verify_tls: false`` accepts the self-signed certificates most BMCs ship with.

A component whose health is Warning or Critical raises an alert signal (origin "redfish"),
resolved when it is OK again (the previous health per component is kept in the state).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field

from vigil.collectors import http
from vigil.collectors.base import CollectError, CollectResult, StrictModel, register
from vigil.domain.alerts import AlertSignal, Severity
from vigil.domain.metrics import FieldValue, Point

HEALTH_CODES = {"OK": 0, "Warning": 1, "Critical": 2}
SIGNAL_SEVERITY: dict[str, Severity] = {"Warning": "medium", "Critical": "critical"}
MAX_MEMBERS = 1000  # per collection, across pages


class RedfishConfig(StrictModel):
    auth: Literal["basic", "session", "none"] = "basic"
    verify_tls: bool = True
    timeout_s: float = Field(10.0, gt=0, le=120, description="Per request.")
    host: str | None = Field(None, description="Host tag for the points; default: the BMC's address.")
    thermal: bool = True
    power: bool = True


class RedfishCredentials(StrictModel):
    username: str | None = None
    password: str | None = None


def normalise_target(target: str) -> str:
    """``bmc1``, ``https://bmc1:8443`` or ``https://bmc1/redfish/v1`` → the base URL."""
    target = target.strip().rstrip("/")
    if not target:
        raise ValueError("target: the BMC address is required, e.g. https://bmc1.example.net")
    if "://" not in target:
        target = f"https://{target}"
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"target: {target!r} is not an http(s) URL")
    path = parts.path.removesuffix("/redfish/v1").removesuffix("/redfish")
    return f"{parts.scheme}://{parts.netloc}{path}"


def _describe(response: httpx.Response) -> str:
    try:
        error = response.json().get("error", {})
        extended = error.get("@Message.ExtendedInfo") or []
        message = error.get("message") or ""
        first = extended[0] if extended and isinstance(extended[0], dict) else {}
        if first.get("Message") and first["Message"] != message:
            message = f"{message} ({first['Message']})"
        return str(message or response.reason_phrase)
    except (ValueError, AttributeError):
        return http.default_describe(response)


def _health(status: Any) -> str | None:
    if not isinstance(status, dict):
        return None
    value = status.get("Health")
    return value if isinstance(value, str) else None


def _rollup(status: Any) -> str | None:
    if not isinstance(status, dict):
        return None
    # The standard spells it HealthRollup; some implementations (sushy) HealthRollUp.
    value = status.get("HealthRollup", status.get("HealthRollUp"))
    return value if isinstance(value, str) else _health(status)


def _absent(item: dict[str, Any]) -> bool:
    status = item.get("Status")
    return isinstance(status, dict) and status.get("State") == "Absent"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class _Poll:
    """One poll: an HTTP client with auth, what was read, and what it turned into."""

    def __init__(self, base: str, config: RedfishConfig, credentials: RedfishCredentials, host: str) -> None:
        auth = None
        if config.auth == "basic" and credentials.username is not None:
            auth = (credentials.username, credentials.password or "")
        self.client = http.client(
            base,
            timeout_s=config.timeout_s,
            verify_tls=config.verify_tls,
            headers={"Accept": "application/json", "OData-Version": "4.0"},
            auth=auth,
        )
        self.config, self.credentials, self.host = config, credentials, host
        self.session_uri: str | None = None
        self.now = time.time_ns()
        self.result = CollectResult()
        self.health: dict[str, str] = {}  # component resource -> Health
        self.describe: dict[str, str] = {}  # component resource -> what to call it

    async def get(self, path: str, *, optional: bool = False) -> dict[str, Any] | None:
        ok = (200, 404) if optional else (200,)
        response = await http.send(self.client, "GET", path, describe=_describe, ok=ok)
        if response.status_code == 404:
            self.result.unsupported.append(path)
            return None
        body = http.json_body(response)
        if not isinstance(body, dict):
            raise CollectError(f"GET {path} did not answer a JSON object")
        return body

    async def login(self, root: dict[str, Any]) -> None:
        if self.config.auth != "session":
            return
        link = (root.get("Links") or {}).get("Sessions") or {}
        path = link.get("@odata.id") or "/redfish/v1/SessionService/Sessions"
        response = await http.send(
            self.client,
            "POST",
            path,
            describe=_describe,
            ok=(200, 201, 404, 405),
            json={"UserName": self.credentials.username or "", "Password": self.credentials.password or ""},
        )
        if response.status_code in (404, 405):
            raise CollectError(
                f"the BMC does not offer Redfish sessions ({response.status_code} on {path}); "
                "use config.auth 'basic'"
            )
        token = response.headers.get("x-auth-token")
        if not token:
            raise CollectError(f"POST {path} answered {response.status_code} without an X-Auth-Token header")
        self.client.headers["X-Auth-Token"] = token
        self.session_uri = response.headers.get("location")

    async def logout(self) -> None:
        if self.session_uri:
            # Best effort: the session times out on the BMC anyway.
            with contextlib.suppress(Exception):
                await self.client.delete(self.session_uri)
        await self.client.aclose()

    async def members(self, collection_path: str) -> list[str]:
        out: list[str] = []
        next_path: str | None = collection_path
        while next_path and len(out) < MAX_MEMBERS:
            page = await self.get(next_path)
            assert page is not None
            members = page.get("Members") or []
            out.extend(m["@odata.id"] for m in members if isinstance(m, dict) and "@odata.id" in m)
            next_path = page.get("Members@odata.nextLink")
        return out

    def point(self, measurement: str, fields: dict[str, FieldValue], **tags: str) -> None:
        if fields:
            self.result.points.append(Point(measurement, fields, {"host": self.host, **tags}, self.now))

    async def system(self, path: str) -> None:
        system = await self.get(path)
        assert system is not None
        system_id = str(system.get("Id") or path.rsplit("/", 1)[-1])
        status = system.get("Status")
        fields: dict[str, FieldValue] = {}
        power = system.get("PowerState")
        if isinstance(power, str):
            fields["power_state"] = power
            fields["powered_on"] = int(power == "On")
        for name, value in (("health", _health(status)), ("health_rollup", _rollup(status))):
            if value is not None:
                fields[name] = value
                fields[f"{name}_code"] = HEALTH_CODES.get(value, -1)
        self.point("redfish_system", fields, system=system_id)
        rollup = _rollup(status)
        if rollup:
            self.health[path] = rollup
            self.describe[path] = f"System {system.get('Name') or system_id}"

    async def chassis(self, path: str) -> None:
        chassis = await self.get(path)
        assert chassis is not None
        chassis_id = str(chassis.get("Id") or path.rsplit("/", 1)[-1])
        jobs = []
        if self.config.thermal:
            jobs.append(self.thermal(_link(chassis, "Thermal", f"{path}/Thermal"), chassis_id))
        if self.config.power:
            jobs.append(self.power(_link(chassis, "Power", f"{path}/Power"), chassis_id))
        await asyncio.gather(*jobs)

    async def thermal(self, path: str, chassis_id: str) -> None:
        thermal = await self.get(path, optional=True)
        if thermal is None:
            return
        for index, sensor in enumerate(thermal.get("Temperatures") or []):
            if not isinstance(sensor, dict) or _absent(sensor):
                continue
            name = str(sensor.get("Name") or sensor.get("MemberId") or index)
            fields: dict[str, FieldValue] = {}
            for key, field in (
                ("ReadingCelsius", "reading_c"),
                ("UpperThresholdNonCritical", "upper_warning_c"),
                ("UpperThresholdCritical", "upper_critical_c"),
                ("UpperThresholdFatal", "upper_fatal_c"),
            ):
                value = _number(sensor.get(key))
                if value is not None:
                    fields[field] = value
            self._component_health(sensor, f"{path}#/Temperatures/{index}", f"Temperature {name}", fields)
            tags = {"chassis": chassis_id, "sensor": name}
            if isinstance(sensor.get("PhysicalContext"), str):
                tags["context"] = sensor["PhysicalContext"]
            self.point("redfish_temperature", fields, **tags)
        for index, fan in enumerate(thermal.get("Fans") or []):
            if not isinstance(fan, dict) or _absent(fan):
                continue
            name = str(fan.get("Name") or fan.get("FanName") or fan.get("MemberId") or index)
            fields = {}
            reading = _number(fan.get("Reading"))
            if reading is not None:
                fields["speed_pct" if fan.get("ReadingUnits") == "Percent" else "speed_rpm"] = reading
            self._component_health(fan, f"{path}#/Fans/{index}", f"Fan {name}", fields)
            self.point("redfish_fan", fields, chassis=chassis_id, fan=name)

    async def power(self, path: str, chassis_id: str) -> None:
        power = await self.get(path, optional=True)
        if power is None:
            return
        for index, control in enumerate(power.get("PowerControl") or []):
            if not isinstance(control, dict):
                continue
            name = str(control.get("Name") or control.get("MemberId") or index)
            fields: dict[str, FieldValue] = {}
            metrics: dict[str, Any] = control.get("PowerMetrics") or {}
            if not isinstance(metrics, dict):
                metrics = {}
            for source, key, field in (
                (control, "PowerConsumedWatts", "consumed_w"),
                (control, "PowerCapacityWatts", "capacity_w"),
                (metrics, "AverageConsumedWatts", "average_w"),
                (metrics, "MinConsumedWatts", "min_w"),
                (metrics, "MaxConsumedWatts", "max_w"),
            ):
                value = _number(source.get(key))
                if value is not None:
                    fields[field] = value
            self.point("redfish_power", fields, chassis=chassis_id, control=name)
        for index, psu in enumerate(power.get("PowerSupplies") or []):
            if not isinstance(psu, dict) or _absent(psu):
                continue
            name = str(psu.get("Name") or psu.get("MemberId") or index)
            fields = {}
            for key, field in (
                ("PowerCapacityWatts", "capacity_w"),
                ("LastPowerOutputWatts", "output_w"),
                ("LineInputVoltage", "input_v"),
            ):
                value = _number(psu.get(key))
                if value is not None:
                    fields[field] = value
            self._component_health(psu, f"{path}#/PowerSupplies/{index}", f"Power supply {name}", fields)
            self.point("redfish_psu", fields, chassis=chassis_id, psu=name)

    def _component_health(
        self, item: dict[str, Any], key: str, label: str, fields: dict[str, FieldValue]
    ) -> None:
        health = _health(item.get("Status"))
        if health is None:
            return
        fields["health_code"] = HEALTH_CODES.get(health, -1)
        self.health[key] = health
        self.describe[key] = label


def _link(resource: dict[str, Any], name: str, default: str) -> str:
    link = resource.get(name)
    if isinstance(link, dict) and isinstance(link.get("@odata.id"), str):
        return str(link["@odata.id"])
    return default


def health_signals(
    previous: dict[str, str],
    current: dict[str, str],
    labels: dict[str, str],
    *,
    host: str,
    target: str,
    now: int,
) -> list[AlertSignal]:
    """Warning/Critical components raise signals (again when the level changes); components
    back to OK resolve theirs. A component that disappeared is left alone."""
    signals = []
    for key, health in sorted(current.items()):
        before = previous.get(key)
        fingerprint = f"redfish:{target}:{key}"
        label = labels.get(key, key)
        if health in SIGNAL_SEVERITY and health != before:
            signals.append(
                AlertSignal(
                    origin="redfish",
                    title=f"{label} on {host} is {health}",
                    severity=SIGNAL_SEVERITY[health],
                    time_ns=now,
                    host=host,
                    description=f"Redfish reports {label} health {health}"
                    + (f" (was {before})" if before else ""),
                    labels={"component": label, "resource": key, "bmc": target},
                    fingerprint=fingerprint,
                )
            )
        elif health == "OK" and before in SIGNAL_SEVERITY:
            signals.append(
                AlertSignal(
                    origin="redfish",
                    title=f"{label} on {host} is OK",
                    severity=SIGNAL_SEVERITY[before],
                    time_ns=now,
                    host=host,
                    description=f"Redfish reports {label} healthy again",
                    labels={"component": label, "resource": key, "bmc": target},
                    fingerprint=fingerprint,
                    resolved=True,
                )
            )
    return signals


class RedfishCollector:
    name: ClassVar[str] = "redfish"
    config_model: ClassVar[type[BaseModel]] = RedfishConfig
    credentials_model: ClassVar[type[BaseModel]] = RedfishCredentials

    def check(self, target: str | None, config: RedfishConfig, credentials: RedfishCredentials) -> str:
        base = normalise_target(target or "")
        if config.auth != "none" and not credentials.username:
            raise ValueError(f"credentials.username: required for config.auth {config.auth!r}")
        return base

    async def collect(
        self, target: str, config: RedfishConfig, credentials: RedfishCredentials, state: dict[str, Any]
    ) -> CollectResult:
        host = config.host or urlsplit(target).hostname or target
        poll = _Poll(target, config, credentials, host)
        try:
            root = await poll.get("/redfish/v1/")
            assert root is not None
            await poll.login(root)
            systems_path = _link(root, "Systems", "")
            chassis_path = _link(root, "Chassis", "")
            systems = await poll.members(systems_path) if systems_path else []
            chassis = await poll.members(chassis_path) if chassis_path else []
            await asyncio.gather(*(poll.system(p) for p in systems), *(poll.chassis(p) for p in chassis))
        finally:
            await poll.logout()
        result = poll.result
        previous = dict(state.get("health") or {})
        result.alert_signals = health_signals(
            previous, poll.health, poll.describe, host=host, target=target, now=poll.now
        )
        result.new_state = {"health": poll.health}
        return result


register(RedfishCollector(), "Redfish BMC: system power and health, temperatures, fans, power supplies")
