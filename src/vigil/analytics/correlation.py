"""Alert correlation, pure: fingerprints, label matchers, silence windows, flapping, grouping.

Nothing here touches a store; the alerting package loads rows, calls these functions and
writes the results. Every decision comes with human-readable reasons so the dry-run API can
show operators why an alert got its fingerprint and its incident.

Grouping model (``choose_incident``): an alert joins the open incident it is most related to,
or starts a new one. Relatedness has three parts:

- entity: same host and/or service, or linked through the topology (a host runs a service,
  a service depends on another);
- content: the same kind of problem — same resource category (disk, memory, cpu, network,
  errors, availability) or near-identical title templates;
- time: close to the incident's last activity.

An alert joins when it happens near in time (``near_s``) to an incident on a related entity
(the same host or service, or linked through the topology; on the same host but a different
service it must also be the same kind of problem),
or when it is the same kind of problem on the same entity as a still-open incident (``long_s``:
a disk that fills for hours raises an anomaly, then a prediction, then "no space left" log
errors). The same symptom (identical title template, the host masked) from one origin on several
hosts within ``near_s`` forms one fleet-wide incident.
Unrelated concurrent failures (different hosts, services and kinds of problem) stay apart.
Grouping rules override the heuristics: alerts matching a rule group by its label values only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vigil.domain.alerts import SEVERITIES, AlertSignal

# --- severities ---------------------------------------------------------------------------------

SEVERITY_RANK: dict[str, int] = {"critical": 4, "high": 3, "medium": 2, "low": 1}


def max_severity(severities: Iterable[str]) -> str:
    """The most severe of ``severities`` ("low" when there are none)."""
    best = "low"
    for severity in severities:
        if SEVERITY_RANK.get(severity, 0) > SEVERITY_RANK[best]:
            best = severity
    return best


def normalise_severity(value: str | None) -> str:
    """Map the severities other tools use onto Vigil's four levels."""
    text = (value or "").strip().lower()
    if text in SEVERITIES:
        return text
    return {
        "fatal": "critical",
        "emergency": "critical",
        "emerg": "critical",
        "alert": "critical",
        "page": "critical",
        "p1": "critical",
        "error": "high",
        "err": "high",
        "major": "high",
        "p2": "high",
        "warning": "medium",
        "warn": "medium",
        "minor": "medium",
        "p3": "medium",
        "info": "low",
        "informational": "low",
        "notice": "low",
        "debug": "low",
        "none": "low",
        "p4": "low",
        "p5": "low",
    }.get(text, "medium")


# --- statuses -----------------------------------------------------------------------------------

OPEN_STATUSES = ("new", "acknowledged", "in_progress", "suppressed")
# Who may move an alert from one status to another. People acknowledge, start and resolve;
# the system also suppresses (silences), un-suppresses and reopens (a resolved alert fires again).
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"acknowledged", "in_progress", "resolved", "suppressed"}),
    "acknowledged": frozenset({"new", "in_progress", "resolved", "suppressed"}),
    "in_progress": frozenset({"acknowledged", "resolved", "suppressed"}),
    "suppressed": frozenset({"new", "acknowledged", "in_progress", "resolved"}),
    "resolved": frozenset({"new"}),
}


def transition_error(current: str, target: str) -> str | None:
    """Why ``current`` cannot become ``target``, or None when it can (a no-op is allowed)."""
    if current == target:
        return None
    if target not in TRANSITIONS:
        return f"unknown status {target!r}; expected one of {', '.join(TRANSITIONS)}"
    if target not in TRANSITIONS.get(current, frozenset()):
        return f"an alert that is {current} cannot become {target}"
    return None


# --- title templates and similarity -------------------------------------------------------------

_MASKS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I), "<id>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.I), "<id>"),
    # Digits glued to a name ("web-04", "node7") are part of the name, not a measurement.
    (re.compile(r"(?<![\w.\-])\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?(?:%|[a-zA-Z]{1,3}\b)?"), "<num>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
]
_TOKEN = re.compile(r"<\w+>|[a-z][a-z0-9_]*", re.I)
_STOPWORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "on",
        "of",
        "in",
        "at",
        "to",
        "for",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "by",
        "with",
        "from",
        "and",
        "or",
        "not",
        "no",
        "has",
        "have",
        "this",
        "that",
        "it",
        "its",
        "as",
        "than",
        "over",
        "under",
        "per",
    }
)


def title_template(title: str, host: str | None = None, service: str | None = None) -> str:
    """The title with its variable parts masked, so re-fires with new numbers match.

    The alert's own host and service names become ``<host>``/``<service>``: "Disk full on web-03"
    and "Disk full on web-04" share a template."""
    text = title.strip()
    for name, mask in ((host, "<host>"), (service, "<service>")):
        if name:
            text = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", mask, text, flags=re.I)
    for pattern, mask in _MASKS:
        text = pattern.sub(mask, text)
    return re.sub(r"\s+", " ", text).lower()


@lru_cache(maxsize=8192)
def template_tokens(template: str) -> frozenset[str]:
    """The informative words of a template (placeholders and stop words dropped)."""
    return frozenset(
        t
        for t in (m.group(0).lower() for m in _TOKEN.finditer(template))
        if not t.startswith("<") and t not in _STOPWORDS and len(t) > 1
    )


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


# Resource categories: the same kind of problem worded differently by different origins
# ("disk usage anomalous", "/var full in 3 days", "No space left on device").
CATEGORIES: dict[str, tuple[str, ...]] = {
    "disk": (
        "disk",
        "disks",
        "filesystem",
        "fs",
        "space",
        "inode",
        "inodes",
        "volume",
        "mount",
        "partition",
        "storage",
        "df",
        "enospc",
        "iops",
        "io",
    ),
    "memory": (
        "memory",
        "mem",
        "oom",
        "oomkill",
        "oomkilled",
        "oom_kill",
        "heap",
        "swap",
        "rss",
        "leak",
        "outofmemoryerror",
        "gc",
        "malloc",
    ),
    "cpu": ("cpu", "load", "loadavg", "load1", "load5", "throttling", "steal", "iowait"),
    "network": (
        "network",
        "interface",
        "link",
        "ifoperstatus",
        "if",
        "packet",
        "packets",
        "eth0",
        "port",
        "flapping",
        "bgp",
        "ospf",
        "latency",
        "dns",
        "tcp",
        "unreachable",
        "ping",
        "bandwidth",
    ),
    "errors": (
        "error",
        "errors",
        "exception",
        "exceptions",
        "5xx",
        "500",
        "502",
        "503",
        "http",
        "failed",
        "failure",
        "traceback",
        "panic",
        "deploy",
        "deployment",
        "release",
        "regression",
    ),
    "availability": ("down", "unavailable", "health", "healthcheck", "crash", "crashloop", "restart"),
}
_CATEGORY_OF: dict[str, str] = {word: cat for cat, words in CATEGORIES.items() for word in words}


def categories_of(text: str) -> frozenset[str]:
    """Resource categories mentioned in ``text`` (title, alert name, finding key...)."""
    words = re.findall(r"[a-z0-9_]+", text.lower())
    found = {_CATEGORY_OF[w] for w in words if w in _CATEGORY_OF}
    # "Out of memory", "no space left" are phrases, not words.
    low = text.lower()
    if "out of memory" in low:
        found.add("memory")
    if "no space left" in low or "disk full" in low:
        found.add("disk")
    return frozenset(found)


# --- fingerprints -------------------------------------------------------------------------------

FINGERPRINT_FIELDS = (
    "origin",
    "host",
    "service",
    "title",
    "title_template",
    "source",
    "fingerprint",
    "description",
)
DEFAULT_FINGERPRINT_FIELDS: tuple[str, ...] = ("host", "service", "title_template")


def check_fingerprint_fields(fields: Sequence[str]) -> str | None:
    """Why ``fields`` is not a valid fingerprint definition, or None."""
    if not fields:
        return "at least one field is needed"
    for name in fields:
        if name in FINGERPRINT_FIELDS or (name.startswith("labels.") and len(name) > len("labels.")):
            continue
        return f"unknown field {name!r}; use {', '.join(FINGERPRINT_FIELDS)} or labels.<name>"
    return None


def _field_value(signal: AlertSignal, name: str) -> str:
    if name.startswith("labels."):
        return signal.labels.get(name[len("labels.") :], "")
    if name == "title_template":
        return title_template(signal.title, signal.host, signal.service)
    value = getattr(signal, name, None)
    return "" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class FingerprintResult:
    fingerprint: str
    fields: tuple[str, ...]  # what went into it, in order
    values: dict[str, str]
    reason: str


def compute_fingerprint(signal: AlertSignal, fields: Sequence[str] | None = None) -> FingerprintResult:
    """The alert's identity: re-fires with the same fingerprint update one alert.

    ``fields`` come from the origin's fingerprint rule. Without a rule, the origin's own
    fingerprint is used when it has one (Alertmanager, finding keys, error groups), else
    host + service + title template."""
    if fields:
        used, reason = tuple(fields), f"fingerprint rule for origin {signal.origin!r}"
    elif signal.fingerprint:
        used, reason = ("fingerprint",), f"the {signal.origin} origin's own fingerprint"
    else:
        used, reason = DEFAULT_FINGERPRINT_FIELDS, "default: host + service + title template"
    values = {name: _field_value(signal, name) for name in used}
    material = "\x1f".join([signal.origin, *(f"{k}={v}" for k, v in values.items())])
    digest = hashlib.sha256(material.encode()).hexdigest()[:32]
    return FingerprintResult(digest, used, values, reason)


# --- label matchers ----------------------------------------------------------------------------

MatchOp = Literal["=", "!=", "=~", "!~"]
MATCH_OPS: tuple[str, ...] = ("=", "!=", "=~", "!~")


@dataclass(frozen=True)
class Matcher:
    """One condition on a label, as in Alertmanager: ``=`` / ``!=`` compare exactly; ``=~`` /
    ``!~`` are regular expressions anchored at both ends. A missing label reads as ""."""

    name: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Matcher:
        """From ``{"name", "op", "value"}``; ValueError with a clear message when invalid."""
        name = str(raw.get("name") or "").strip()
        op = str(raw.get("op") or "=")
        value = raw.get("value")
        if not name:
            raise ValueError("name: required")
        if op not in MATCH_OPS:
            raise ValueError(f"op: must be one of {', '.join(MATCH_OPS)}")
        if not isinstance(value, str):
            raise ValueError("value: must be a string")
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(value)
            except re.error as exc:
                raise ValueError(f"value: invalid regular expression: {exc}") from None
        return cls(name, op, value, regex)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(actual) is not None
        return hit if self.op == "=~" else not hit

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}


def parse_matchers(raw: Iterable[Mapping[str, Any]]) -> list[Matcher]:
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(Matcher.parse(item))
        except ValueError as exc:
            raise ValueError(f"matchers[{i}].{exc}") from None
    return out


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


def alert_labels(
    *,
    labels: Mapping[str, Any],
    origin: str,
    severity: str,
    title: str,
    host: str | None,
    service: str | None,
    source: str | None,
) -> dict[str, str]:
    """The label set matchers see: the alert's labels plus its main attributes (which win)."""
    out = {str(k): "" if v is None else str(v) for k, v in labels.items()}
    out.update(
        origin=origin,
        severity=severity,
        title=title,
        host=host or "",
        service=service or "",
        source=source or "",
    )
    return out


def signal_labels(signal: AlertSignal, severity: str | None = None) -> dict[str, str]:
    return alert_labels(
        labels=signal.labels,
        origin=signal.origin,
        severity=severity or signal.severity,
        title=signal.title,
        host=signal.host,
        service=signal.service,
        source=signal.source,
    )


# --- silence and maintenance windows ------------------------------------------------------------

_DAY_NAMES = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}
_MONTH_NAMES = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1
    )
}
MAX_CRON_DURATION = timedelta(days=7)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone: unknown time zone {name!r}") from None


def _parse_cron_field(text: str, low: int, high: int, names: Mapping[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.lower().split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"bad step {step_text!r}")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = _cron_number(a, names), _cron_number(b, names)
        else:
            start = _cron_number(part, names)
            end = high if step > 1 else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ValueError(f"{part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _cron_number(text: str, names: Mapping[str, int]) -> int:
    if text in names:
        return names[text]
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number")
    return int(text)


@dataclass(frozen=True)
class Cron:
    """A 5-field cron expression (minute hour day-of-month month day-of-week), with lists,
    ranges, steps and names. As in cron, when both day fields are restricted either may match."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Monday (Python's convention)
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        parts = expression.split()
        if len(parts) != 5:
            raise ValueError("cron: expected 5 fields (minute hour day month weekday)")
        # cron counts Sunday as 0 (and 7); converted to Monday = 0 below.
        cron_day_names = {name: (index + 1) % 7 for name, index in _DAY_NAMES.items()}
        specs: list[tuple[str, int, int, Mapping[str, int]]] = [
            ("minute", 0, 59, {}),
            ("hour", 0, 23, {}),
            ("day", 1, 31, {}),
            ("month", 1, 12, _MONTH_NAMES),
            ("weekday", 0, 7, cron_day_names),
        ]
        fields: list[frozenset[int]] = []
        for text, (label, low, high, names) in zip(parts, specs, strict=True):
            try:
                fields.append(_parse_cron_field(text, low, high, names))
            except ValueError as exc:
                raise ValueError(f"cron: {label} field: {exc}") from None
        minutes, hours, days, months, cron_weekdays = fields
        weekdays = frozenset((d - 1) % 7 for d in cron_weekdays)
        return cls(minutes, hours, days, months, weekdays, parts[2] != "*", parts[4] != "*")

    def matches(self, at: datetime) -> bool:
        if at.minute not in self.minutes or at.hour not in self.hours or at.month not in self.months:
            return False
        day_ok = at.day in self.days
        weekday_ok = at.weekday() in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok


def _parse_hhmm(text: str, name: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text or "")
    if not match or int(match.group(1)) > 24 or int(match.group(2)) > 59:
        raise ValueError(f"{name}: expected HH:MM")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if hours == 24 and minutes:
        raise ValueError(f"{name}: expected HH:MM")
    return hours, minutes


@dataclass(frozen=True)
class Recurrence:
    """When a recurring silence (maintenance window) is active.

    ``weekly``: on ``days`` (0 = Monday) from ``start`` to ``end`` local time (an end at or
    before the start runs past midnight into the next day). ``cron``: for ``duration`` after
    every time the cron expression matches (local time)."""

    kind: Literal["weekly", "cron"]
    timezone: str = "UTC"
    days: frozenset[int] = frozenset()
    start: tuple[int, int] = (0, 0)
    end: tuple[int, int] = (0, 0)
    cron: Cron | None = None
    duration: timedelta = timedelta(0)

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Recurrence:
        kind = raw.get("type")
        tz = str(raw.get("timezone") or "UTC")
        _zone(tz)
        if kind == "weekly":
            days_raw = raw.get("days")
            if not isinstance(days_raw, list) or not days_raw:
                raise ValueError("days: a non-empty list of weekdays (mon..sun or 0..6, 0 = Monday)")
            days: set[int] = set()
            for d in days_raw:
                if isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= 6:
                    days.add(d)
                elif isinstance(d, str) and d[:3].lower() in _DAY_NAMES:
                    days.add(_DAY_NAMES[d[:3].lower()])
                else:
                    raise ValueError(f"days: {d!r} is not a weekday (mon..sun or 0..6)")
            start = _parse_hhmm(str(raw.get("start", "")), "start")
            end = _parse_hhmm(str(raw.get("end", "")), "end")
            return cls("weekly", tz, frozenset(days), start, end)
        if kind == "cron":
            cron = Cron.parse(str(raw.get("cron") or ""))
            minutes = raw.get("duration_minutes")
            if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes <= 0:
                raise ValueError("duration_minutes: a positive whole number of minutes")
            duration = timedelta(minutes=minutes)
            if duration > MAX_CRON_DURATION:
                raise ValueError("duration_minutes: at most 7 days (10080)")
            return cls("cron", tz, cron=cron, duration=duration)
        raise ValueError("type: must be 'weekly' or 'cron'")

    def is_active(self, now: datetime) -> bool:
        local = now.astimezone(_zone(self.timezone))
        if self.kind == "weekly":
            minute = local.hour * 60 + local.minute
            start = self.start[0] * 60 + self.start[1]
            end = self.end[0] * 60 + self.end[1]
            if start < end:
                return local.weekday() in self.days and start <= minute < end
            # Crosses midnight: the evening part today, or the morning part of yesterday's window.
            yesterday = (local.weekday() - 1) % 7
            return (local.weekday() in self.days and minute >= start) or (
                yesterday in self.days and minute < end
            )
        assert self.cron is not None
        return self._cron_start_within(local) is not None

    def _cron_start_within(self, local: datetime) -> datetime | None:
        assert self.cron is not None
        probe = local.replace(second=0, microsecond=0)
        steps = int(self.duration.total_seconds() // 60)
        for _ in range(steps):
            if self.cron.matches(probe):
                return probe
            probe -= timedelta(minutes=1)
        return None

    def next_start(self, now: datetime, horizon: timedelta = timedelta(days=62)) -> datetime | None:
        """The next time (UTC) the window opens after ``now``, within ``horizon``."""
        zone = _zone(self.timezone)
        local = now.astimezone(zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
        end = local + horizon
        if self.kind == "weekly":
            day = local.replace(hour=0, minute=0)
            while day <= end:
                if day.weekday() in self.days:
                    candidate = day.replace(hour=self.start[0] % 24, minute=self.start[1])
                    if self.start[0] == 24:
                        candidate += timedelta(days=1)
                    if candidate >= local:
                        return candidate.astimezone(UTC)
                day += timedelta(days=1)
            return None
        assert self.cron is not None
        probe = local
        while probe <= end:
            if self.cron.matches(probe):
                return probe.astimezone(UTC)
            probe += timedelta(minutes=1)
        return None


@dataclass(frozen=True)
class SilenceWindow:
    """A silence or maintenance window: matching alerts are stored but suppressed."""

    id: int
    matchers: tuple[Matcher, ...]
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    recurrence: Recurrence | None = None

    def is_active(self, now: datetime) -> bool:
        if self.starts_at is not None and now < self.starts_at:
            return False
        if self.ends_at is not None and now >= self.ends_at:
            return False
        return self.recurrence is None or self.recurrence.is_active(now)

    def matches(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.is_active(now) and matches_all(self.matchers, labels)


def silencing(windows: Iterable[SilenceWindow], labels: Mapping[str, str], now: datetime) -> list[int]:
    """Ids of the windows that silence an alert with ``labels`` at ``now``."""
    return [w.id for w in windows if w.matches(labels, now)]


# --- flapping -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlapPolicy:
    """An alert that changes state (fires, resolves, fires...) ``threshold`` times within
    ``window_s`` is flapping: its notifications are held until it has been stable for
    ``window_s``."""

    threshold: int = 4
    window_s: float = 1800.0


def record_state_change(history: Sequence[float], at_s: float, policy: FlapPolicy) -> list[float]:
    """The state-change times (epoch seconds) to keep, with ``at_s`` added."""
    horizon = at_s - policy.window_s
    return [t for t in history if t > horizon] + [at_s]


def is_flapping(history: Sequence[float], now_s: float, policy: FlapPolicy, flapping: bool) -> bool:
    """Whether the alert is flapping now, given whether it was (hysteresis: it starts at
    ``threshold`` changes in the window and stops only once the window holds none)."""
    recent = sum(1 for t in history if t > now_s - policy.window_s)
    if flapping:
        return recent > 0
    return recent >= policy.threshold


# --- auto-resolve -------------------------------------------------------------------------------

# Minutes without a re-fire after which an alert is resolved as "condition cleared", per
# origin. None: only the source (or a person) resolves it. Alertmanager re-sends firing alerts
# every repeat_interval (4 h by default), so its timeout must be longer than that.
DEFAULT_AUTO_RESOLVE_MINUTES: dict[str, int | None] = {
    "alertmanager": 6 * 60,
    "anomaly": 60,
    "predictive": 24 * 60,
    "log": 60,
    "error": 24 * 60,
    "snmp": 30,
    "redfish": 30,
    "manual": None,
    "external": 24 * 60,
}


# --- incident grouping --------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertFeatures:
    """What correlation needs to know about an alert."""

    at_s: float  # epoch seconds of its first firing
    title: str
    origin: str
    host: str | None = None
    service: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    template: str = ""
    categories: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        at_s: float,
        title: str,
        origin: str,
        host: str | None,
        service: str | None,
        labels: Mapping[str, str],
        extra_text: str = "",
    ) -> AlertFeatures:
        template = title_template(title, host, service)
        return cls(
            at_s,
            title,
            origin,
            host,
            service,
            dict(labels),
            template,
            categories_of(" ".join([title, extra_text, labels.get("alertname", "")])),
        )


@dataclass
class IncidentFeatures:
    """What correlation needs to know about an incident (kept on the incident row)."""

    id: int
    first_at_s: float
    last_at_s: float  # latest firing or re-firing of any of its alerts
    open: bool  # some alert still firing
    hosts: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    templates: tuple[str, ...] = ()
    categories: frozenset[str] = frozenset()
    origins: frozenset[str] = frozenset()
    rule_key: str | None = None


@dataclass(frozen=True)
class Topology:
    """Which hosts run which services and which services call which: from the inventory when
    it exists, else learned from alerts that name both a host and a service."""

    host_services: Mapping[str, frozenset[str]] = field(default_factory=dict)
    depends_on: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, pairs: Iterable[tuple[str, str]], dependencies: Iterable[tuple[str, str]] = ()
    ) -> Topology:
        hosts: dict[str, set[str]] = {}
        for host, service in pairs:
            if host and service:
                hosts.setdefault(host, set()).add(service)
        deps: dict[str, set[str]] = {}
        for caller, callee in dependencies:
            if caller and callee:
                deps.setdefault(caller, set()).add(callee)
        return cls({h: frozenset(s) for h, s in hosts.items()}, {c: frozenset(s) for c, s in deps.items()})

    def services_of(self, host: str | None) -> frozenset[str]:
        return self.host_services.get(host or "", frozenset())

    def linked(self, alert: AlertFeatures, incident: IncidentFeatures) -> str | None:
        """Why the alert's entity is linked to the incident's, or None."""
        on_host = self.services_of(alert.host) & incident.services
        if on_host:
            return f"{alert.host} runs {sorted(on_host)[0]}"
        if alert.service:
            for host in sorted(incident.hosts):
                if alert.service in self.services_of(host):
                    return f"{alert.service} runs on {host}"
            return self.calls(alert.service, incident.services)
        return None

    def calls(self, service: str | None, others: Iterable[str]) -> str | None:
        """Why ``service`` and one of ``others`` depend on each other, or None."""
        if not service:
            return None
        for other in sorted(others):
            if other in self.depends_on.get(service, frozenset()):
                return f"{service} depends on {other}"
            if service in self.depends_on.get(other, frozenset()):
                return f"{other} depends on {service}"
        return None


@dataclass(frozen=True)
class GroupingRule:
    """Alerts matching ``matchers`` group by the values of the ``group_by`` labels, within
    ``window_s`` of the group's last activity, whatever the heuristics say."""

    id: int
    name: str
    matchers: tuple[Matcher, ...]
    group_by: tuple[str, ...]
    window_s: float = 3600.0

    def key(self, labels: Mapping[str, str]) -> str | None:
        if not matches_all(self.matchers, labels):
            return None
        values = [labels.get(name, "") for name in self.group_by]
        if self.group_by and not any(values):
            return None
        return f"rule:{self.id}:" + ",".join(f"{n}={v}" for n, v in zip(self.group_by, values, strict=True))


@dataclass(frozen=True)
class CorrelationPolicy:
    near_s: float = 600.0  # "at the same time"
    long_s: float = 6 * 3600.0  # how long an open incident keeps attracting the same problem


@dataclass(frozen=True)
class Decision:
    """Where an alert goes: an existing incident (``incident_id``) or a new one (None)."""

    incident_id: int | None
    score: float
    reasons: tuple[str, ...]
    rule_key: str | None = None


def entity_relation(
    alert: AlertFeatures, incident: IncidentFeatures, topology: Topology
) -> tuple[float, str | None]:
    """How closely the alert's host/service relate to the incident's (0..1) and why."""
    same_host = bool(alert.host) and alert.host in incident.hosts
    same_service = bool(alert.service) and alert.service in incident.services
    if same_host and same_service:
        return 1.0, f"same host {alert.host} and service {alert.service}"
    if same_service:
        return 0.8, f"same service {alert.service}"
    if same_host:
        conflicting = alert.service and incident.services and alert.service not in incident.services
        if conflicting and not topology.calls(alert.service, incident.services):
            return 0.35, f"same host {alert.host} (different services)"
        return 0.7, f"same host {alert.host}"
    link = topology.linked(alert, incident)
    if link:
        return 0.5, f"topology: {link}"
    return 0.0, None


def content_similarity(alert: AlertFeatures, incident: IncidentFeatures) -> tuple[float, str | None]:
    """How alike the alert's problem is to the incident's (0..1) and why."""
    tokens = template_tokens(alert.template)
    best, best_template = 0.0, ""
    for template in incident.templates:
        score = 1.0 if template == alert.template else jaccard(tokens, template_tokens(template))
        if score > best:
            best, best_template = score, template
    shared = sorted(alert.categories & incident.categories)
    if shared and best < 0.8:
        return 0.8, f"same kind of problem ({', '.join(shared)})"
    if best > 0:
        return best, f"similar title ({best:.2f} like {best_template!r})"
    return 0.0, None


def score_incident(
    alert: AlertFeatures,
    incident: IncidentFeatures,
    topology: Topology,
    policy: CorrelationPolicy = CorrelationPolicy(),
) -> Decision | None:
    """Whether the alert belongs to ``incident`` (a Decision) or not (None)."""
    gap = max(0.0, alert.at_s - incident.last_at_s)
    near = gap <= policy.near_s
    if not near and not (incident.open and gap <= policy.long_s):
        return None  # too far apart in time for any rule below
    relation, relation_why = entity_relation(alert, incident, topology)
    same_symptom = near and alert.origin in incident.origins and alert.template in incident.templates
    if relation < (0.35 if near else 0.7) and not same_symptom:
        return None  # unrelated entities, and not the same symptom at the same time
    content, content_why = content_similarity(alert, incident)
    reasons = [r for r in (relation_why, content_why) if r]
    when = f"{gap / 60:.0f} min after the incident's last activity"
    joined = False
    if near and (relation >= 0.5 or (relation >= 0.35 and content >= 0.5)):
        joined = True
    elif same_symptom:
        joined = True
        reasons.append("same symptom across hosts at the same time")
    elif incident.open and gap <= policy.long_s and relation >= 0.7 and content >= 0.5:
        joined = True
        reasons.append("ongoing problem of the same kind")
    if not joined:
        return None
    closeness = 1.0 - min(gap, policy.long_s) / policy.long_s
    return Decision(incident.id, round(relation + content + closeness, 4), (*reasons, when))


def choose_incident(
    alert: AlertFeatures,
    incidents: Sequence[IncidentFeatures],
    topology: Topology = Topology(),
    rules: Sequence[GroupingRule] = (),
    policy: CorrelationPolicy = CorrelationPolicy(),
) -> Decision:
    """The incident the alert joins, or a new one (``incident_id`` None)."""
    for rule in rules:
        key = rule.key(alert.labels)
        if key is None:
            continue
        for incident in sorted(incidents, key=lambda i: -i.last_at_s):
            if incident.rule_key == key and alert.at_s - incident.last_at_s <= rule.window_s:
                return Decision(incident.id, 10.0, (f"grouping rule {rule.name!r}: {key}",), key)
        return Decision(None, 0.0, (f"grouping rule {rule.name!r}: first alert of {key}",), key)
    best: Decision | None = None
    for incident in incidents:
        if incident.rule_key is not None:
            continue  # rule-made incidents take only their rule's alerts
        decision = score_incident(alert, incident, topology, policy)
        if decision is not None and (best is None or decision.score > best.score):
            best = decision
    if best is not None:
        return best
    return Decision(None, 0.0, ("no related open incident",))


def merge_features(
    incident: IncidentFeatures, alert: AlertFeatures, max_templates: int = 20
) -> IncidentFeatures:
    """The incident's features once the alert has joined."""
    templates = incident.templates
    if alert.template and alert.template not in templates and len(templates) < max_templates:
        templates = (*templates, alert.template)
    return IncidentFeatures(
        id=incident.id,
        first_at_s=min(incident.first_at_s, alert.at_s),
        last_at_s=max(incident.last_at_s, alert.at_s),
        open=True,
        hosts=incident.hosts | ({alert.host} if alert.host else set()),
        services=incident.services | ({alert.service} if alert.service else set()),
        templates=templates,
        categories=incident.categories | alert.categories,
        origins=incident.origins | {alert.origin},
        rule_key=incident.rule_key,
    )


def new_incident_features(incident_id: int, alert: AlertFeatures, rule_key: str | None) -> IncidentFeatures:
    return merge_features(
        IncidentFeatures(incident_id, alert.at_s, alert.at_s, True, rule_key=rule_key), alert
    )
