"""The scripted incidents of the simulated fleet, as data: one row per incident.

Times are simulated seconds relative to the *anchor*, the moment the demo goes live (after any
backfill). An incident occurs first at ``start_s`` (negative: it began during the backfilled
history, so it is well under way when a newcomer opens the UI), culminates at ``peak_s`` (the
disk is full, the process is OOM-killed, the bad release starts failing, the CPU is pegged, the
link starts flapping) and is over at ``end_s`` (cleanup, restart, rollback). With ``repeat_s``
it happens again every ``repeat_s`` seconds after its first start, never before it, so the
backfilled history is quiet baseline apart from what was already going on at the anchor.

The telemetry generators ask this module "what is happening to host X at time t" and shape
their metrics, logs, errors and alerts accordingly; no generator knows when anything happens.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from vigil.demo.noise import stable_seed

IncidentKind = Literal["disk_fill", "memory_leak", "bad_deploy", "cpu_spike", "link_flap"]

MINUTE = 60.0
HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Incident:
    name: str
    kind: IncidentKind
    host: str
    start_s: float
    peak_s: float
    end_s: float
    repeat_s: float | None = None
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if not self.start_s <= self.peak_s <= self.end_s:
            raise ValueError(f"incident {self.name}: needs start <= peak <= end")
        if self.repeat_s is not None and self.repeat_s <= self.end_s - self.start_s:
            raise ValueError(f"incident {self.name}: repeat_s must exceed its duration")


def _params(**values: Any) -> Mapping[str, Any]:
    return MappingProxyType(values)


# The demo's script. Visible within the first minute or two of going live: the deploy of a bad
# checkout release (+20 s) and its error burst, the flapping switch port (+30 s), the OOM kill
# on app-02 (+80 s), the Alertmanager alert for web-03's /var (already firing) and, where the
# pipeline forecasts, "/var on web-03 full in ~40 min". Later: the CPU spike on db-01 (+4 min),
# the disk actually filling up (+40 min) with "No space left on device" errors.
TIMELINE: tuple[Incident, ...] = (
    Incident(
        "disk-full-web-03",
        "disk_fill",
        "web-03",
        start_s=-8 * HOUR,
        peak_s=40 * MINUTE,
        end_s=70 * MINUTE,
        repeat_s=24 * HOUR,
        params=_params(path="/var", device="sdb1", base_pct=41.0, full_logs_from_pct=98.0, alert_pct=90.0),
    ),
    Incident(
        "memory-leak-app-02",
        "memory_leak",
        "app-02",
        start_s=-100 * MINUTE,
        peak_s=80,
        end_s=150,
        repeat_s=4 * HOUR,
        params=_params(service="orders", process="java", to_pct=97.0),
    ),
    Incident(
        "bad-deploy-checkout",
        "bad_deploy",
        "app-01",
        start_s=20,
        peak_s=40,
        end_s=15 * MINUTE,
        repeat_s=6 * HOUR,
        params=_params(service="checkout", hosts=("app-01", "app-03"), errors_per_s=0.5),
    ),
    Incident(
        "cpu-spike-db-01",
        "cpu_spike",
        "db-01",
        start_s=4 * MINUTE,
        peak_s=4 * MINUTE + 30,
        end_s=14 * MINUTE,
        repeat_s=3 * HOUR,
        params=_params(to_pct=88.0, alert_after_s=2 * MINUTE),
    ),
    Incident(
        "link-flap-sw-core-01",
        "link_flap",
        "sw-core-01",
        start_s=30,
        peak_s=30,
        end_s=20 * MINUTE,
        repeat_s=5 * HOUR,
        params=_params(
            interface="GigabitEthernet1/0/24",
            short="Gi1/0/24",
            if_index=10124,
            neighbor="web-03",
            up_s=(25.0, 120.0),
            down_s=(20.0, 60.0),
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One occurrence of an incident, in absolute simulated seconds."""

    incident: Incident
    number: int  # 0 for the first
    start: float
    peak: float
    end: float

    def progress(self, t: float) -> float:
        """0 at start, 1 at peak (clamped)."""
        span = self.peak - self.start
        if span <= 0:
            return 1.0 if t >= self.peak else 0.0
        return min(1.0, max(0.0, (t - self.start) / span))

    @property
    def params(self) -> Mapping[str, Any]:
        return self.incident.params


@dataclass(frozen=True, slots=True)
class AlertInterval:
    """A Prometheus-style alert that fires at ``starts`` and resolves at ``ends``."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts: float
    ends: float


class Timeline:
    """The incidents anchored at an absolute time (epoch seconds)."""

    def __init__(self, anchor: float, incidents: tuple[Incident, ...] = TIMELINE, seed: int = 0) -> None:
        self.anchor = anchor
        self.incidents = incidents
        self.seed = seed
        self._flaps: dict[tuple[str, int], tuple[tuple[float, float], ...]] = {}

    def occurrence_at(self, incident: Incident, t: float) -> Occurrence | None:
        """The occurrence under way at ``t`` (between its start and end), if any."""
        rel = t - self.anchor
        if rel < incident.start_s:
            return None
        number = 0
        if incident.repeat_s is not None:
            number = int((rel - incident.start_s) // incident.repeat_s)
        occurrence = self.occurrence(incident, number)
        return occurrence if occurrence.start <= t < occurrence.end else None

    def occurrences_between(self, incident: Incident, a: float, b: float) -> list[Occurrence]:
        """Occurrences overlapping (a, b]."""
        rel_a, rel_b = a - self.anchor, b - self.anchor
        if rel_b < incident.start_s:
            return []
        if incident.repeat_s is None:
            numbers = [0]
        else:
            first = max(0, int((rel_a - incident.end_s) // incident.repeat_s))
            last = int((rel_b - incident.start_s) // incident.repeat_s)
            numbers = list(range(first, last + 1))
        out = []
        for number in numbers:
            occurrence = self.occurrence(incident, number)
            if occurrence.start <= b and occurrence.end > a:
                out.append(occurrence)
        return out

    def last_occurrence_before(self, incident: Incident, t: float) -> Occurrence | None:
        """The latest occurrence that started at or before ``t`` (over or not)."""
        rel = t - self.anchor
        if rel < incident.start_s:
            return None
        number = 0
        if incident.repeat_s is not None:
            number = int((rel - incident.start_s) // incident.repeat_s)
        return self.occurrence(incident, number)

    def occurrence(self, incident: Incident, number: int) -> Occurrence:
        """Occurrence ``number`` (0 for the first) of ``incident``."""
        shift = self.anchor + (incident.repeat_s or 0.0) * number
        return Occurrence(
            incident, number, shift + incident.start_s, shift + incident.peak_s, shift + incident.end_s
        )

    def active(self, kind: IncidentKind, host: str, t: float) -> Occurrence | None:
        for incident in self.incidents:
            if incident.kind == kind and incident.host == host:
                occurrence = self.occurrence_at(incident, t)
                if occurrence is not None:
                    return occurrence
        return None

    def of_kind(self, kind: IncidentKind) -> list[Incident]:
        return [i for i in self.incidents if i.kind == kind]

    # --- link flapping: a fixed random schedule per occurrence -------------------------------

    def down_intervals(self, occurrence: Occurrence) -> tuple[tuple[float, float], ...]:
        """When the flapping link is down during one occurrence: alternating up/down spells
        drawn from the incident's ranges, reproducible from the seed."""
        key = (occurrence.incident.name, occurrence.number)
        cached = self._flaps.get(key)
        if cached is not None:
            return cached
        rng = random.Random(stable_seed(self.seed, "flap", *key))
        up_lo, up_hi = occurrence.params.get("up_s", (30.0, 120.0))
        down_lo, down_hi = occurrence.params.get("down_s", (20.0, 60.0))
        spells = []
        t = occurrence.peak
        while t < occurrence.end:
            down = rng.uniform(down_lo, down_hi)
            spells.append((t, min(t + down, occurrence.end)))
            t += down + rng.uniform(up_lo, up_hi)
        result = tuple(spells)
        self._flaps[key] = result
        return result

    def link_down(self, host: str, interface: str, t: float) -> bool:
        for incident in self.of_kind("link_flap"):
            if incident.host != host or incident.params.get("interface") != interface:
                continue
            occurrence = self.occurrence_at(incident, t)
            if occurrence is None:
                continue
            if any(a <= t < b for a, b in self.down_intervals(occurrence)):
                return True
        return False

    # --- releases of a service (the bad deploy and its fix) ----------------------------------

    def release(self, service: str, t: float) -> str:
        """The version of ``service`` running at ``t``: 2.14.3 before the first bad deploy; the
        bad 2.(15+k).0 during occurrence k; its hotfix 2.(15+k).1 after it."""
        for incident in self.of_kind("bad_deploy"):
            if incident.params.get("service") != service:
                continue
            occurrence = self.last_occurrence_before(incident, t)
            if occurrence is None:
                return "2.14.3"
            return bad_release(occurrence) if t < occurrence.end else fixed_release(occurrence)
        return "1.8.2"

    # --- Prometheus-style alerts -----------------------------------------------------------------

    def alert_intervals(self, a: float, b: float) -> list[AlertInterval]:
        """Alerts whose firing interval overlaps (a, b]."""
        out: list[AlertInterval] = []
        for incident in self.incidents:
            for occurrence in self.occurrences_between(incident, a, b):
                out.extend(_alerts_of(self, occurrence))
        return [x for x in out if x.starts <= b and x.ends > a]


def bad_release(occurrence: Occurrence) -> str:
    return f"2.{15 + occurrence.number}.0"


def fixed_release(occurrence: Occurrence) -> str:
    return f"2.{15 + occurrence.number}.1"


def disk_fill_pct(occurrence: Occurrence, base_pct: float, t: float) -> float:
    """Used % of the filling disk before noise: linear from its usual level to 100 % at the
    peak, full until the end (then cleaned up, back to the usual level)."""
    if t >= occurrence.end or t < occurrence.start:
        return base_pct
    return base_pct + (100.0 - base_pct) * occurrence.progress(t)


def disk_fill_crossing(occurrence: Occurrence, base_pct: float, pct: float) -> float:
    """When the (noise-free) fill reaches ``pct``."""
    if pct <= base_pct:
        return occurrence.start
    fraction = min(1.0, (pct - base_pct) / (100.0 - base_pct))
    return occurrence.start + fraction * (occurrence.peak - occurrence.start)


def leak_pct(occurrence: Occurrence, base_pct: float, t: float) -> float:
    """Memory used % of the leaking host: slow then faster growth (the heap fills while the GC
    works harder), the OOM kill at the peak, and a restart that frees it all."""
    to_pct = float(occurrence.params.get("to_pct", 97.0))
    if t < occurrence.start or t >= occurrence.end:
        return base_pct
    if t >= occurrence.peak:
        return max(5.0, base_pct - 14.0)  # the service is down and restarting
    p = occurrence.progress(t)
    return base_pct + (to_pct - base_pct) * (0.6 * p + 0.4 * p * p)


def cpu_spike_pct(occurrence: Occurrence, t: float) -> float:
    """Extra CPU % of the spiking node: a 30 s ramp to the plateau, flat until the end."""
    to_pct = float(occurrence.params.get("to_pct", 88.0))
    if t < occurrence.start or t >= occurrence.end:
        return 0.0
    return to_pct * occurrence.progress(t)


# --- alert rules, per incident kind ----------------------------------------------------------


def _alerts_of(timeline: Timeline, occurrence: Occurrence) -> list[AlertInterval]:
    incident = occurrence.incident
    host = incident.host
    params = occurrence.params
    if incident.kind == "disk_fill":
        base = float(params.get("base_pct", 41.0))
        threshold = float(params.get("alert_pct", 90.0))
        path = str(params.get("path", "/var"))
        return [
            AlertInterval(
                labels={
                    "alertname": "NodeFilesystemAlmostFull",
                    "severity": "warning",
                    "instance": f"{host}:9100",
                    "job": "node",
                    "mountpoint": path,
                    "device": f"/dev/{params.get('device', 'sdb1')}",
                    "fstype": "ext4",
                },
                annotations={
                    "summary": f"Filesystem {path} on {host} is over {threshold:.0f}% full",
                    "description": f"Filesystem {path} on {host} has less than {100 - threshold:.0f}% "
                    "space left and is still growing.",
                    "runbook_url": "https://runbooks.example.com/node/NodeFilesystemAlmostFull",
                },
                starts=disk_fill_crossing(occurrence, base, threshold),
                ends=occurrence.end,
            )
        ]
    if incident.kind == "cpu_spike":
        delay = float(params.get("alert_after_s", 120.0))
        return [
            AlertInterval(
                labels={
                    "alertname": "HostHighCpuLoad",
                    "severity": "critical",
                    "instance": f"{host}:9100",
                    "job": "node",
                },
                annotations={
                    "summary": f"High CPU load on {host}",
                    "description": f"CPU usage on {host} has been above 80% for more than "
                    f"{delay / 60:.0f} minutes.",
                },
                starts=occurrence.start + delay,
                ends=occurrence.end,
            )
        ]
    if incident.kind == "link_flap":
        interface = str(params.get("interface"))
        return [
            AlertInterval(
                labels={
                    "alertname": "SNMPInterfaceDown",
                    "severity": "critical",
                    "instance": host,
                    "job": "snmp",
                    "ifName": str(params.get("short", interface)),
                    "ifDescr": interface,
                },
                annotations={
                    "summary": f"Interface {interface} on {host} is down",
                    "description": f"ifOperStatus of {interface} on {host} (uplink to "
                    f"{params.get('neighbor', 'unknown')}) is down (2) while ifAdminStatus is up (1).",
                },
                starts=a,
                ends=b,
            )
            for a, b in timeline.down_intervals(occurrence)
        ]
    return []


def describe(timeline: Timeline) -> list[str]:
    """Human-readable schedule, relative to going live (for `vigil demo` output)."""
    lines = []
    for incident in timeline.incidents:
        lines.append(
            f"{_rel(incident.start_s)} → {_rel(incident.peak_s)} → {_rel(incident.end_s)}  "
            f"{incident.kind.replace('_', ' ')} on {incident.host}"
            + (f" (every {incident.repeat_s / HOUR:g} h)" if incident.repeat_s else "")
        )
    return lines


def _rel(seconds: float) -> str:
    """-1h40m, +4m30s, +20s."""
    sign = "-" if seconds < 0 else "+"
    total = round(abs(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return sign + ("".join(parts) or "0s")
