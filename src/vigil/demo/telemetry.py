# ruff: noqa: E501 - log line templates stay whole, so they read like the real lines they imitate
"""What the fleet emits: Telegraf metrics, log records, application errors, Alertmanager alerts.

Metrics are a pure function of (host, time, seed): daily cycle + smooth drift + jitter, shaped
by whatever incident the timeline says is under way (see ``vigil.demo.noise`` for why nothing
keeps state). Logs, errors and alerts are generated per time window (a, b]: baseline chatter
arrives as Poisson processes whose rates follow the daily cycle; incident lines come from the
incident's phase.

Names follow what real agents send, so the demo exercises the same code paths as production:
Telegraf's ``cpu``/``mem``/``disk``/``system``/``net``/``nginx`` inputs and ``inputs.snmp``'s
IF-MIB table (``interface``); log lines in the formats of nginx, Apache, sshd, the kernel,
systemd, cron, PostgreSQL, Spring Boot, gunicorn, Celery, Redis, RabbitMQ, Cisco IOS, and
Kubernetes JSON logs; Alertmanager's webhook payload (version 4).
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from vigil.demo import noise
from vigil.demo.fleet import Disk, Fleet, Host
from vigil.demo.scenarios import (
    AlertInterval,
    Occurrence,
    Timeline,
    bad_release,
    cpu_spike_pct,
    disk_fill_crossing,
    disk_fill_pct,
    fixed_release,
    leak_pct,
)
from vigil.domain.metrics import Point

# --- metrics ---------------------------------------------------------------------------------

SWITCH_PORTS: tuple[tuple[int, str, str, int], ...] = (
    # ifIndex, ifDescr, ifName, speed (Mbit/s)
    (10101, "TenGigabitEthernet1/1/1", "Te1/1/1", 10_000),
    (10101 + 1, "TenGigabitEthernet1/1/2", "Te1/1/2", 10_000),
    (10123, "GigabitEthernet1/0/23", "Gi1/0/23", 1_000),
    (10124, "GigabitEthernet1/0/24", "Gi1/0/24", 1_000),
)


def _k(host: Host, what: str) -> int:
    return _key(host.name, what)


@functools.cache
def _key(host: str, what: str) -> int:
    return noise.key_hash(f"{host}/{what}") << 3


def cpu_busy(
    host: Host, t: float, timeline: Timeline, seed: int, with_jitter: bool = True
) -> tuple[float, float]:
    """(user %, system %) of a host at ``t``."""
    day = noise.diurnal(t)
    user = (
        host.cpu_base
        * (1.0 + host.cpu_amplitude * day)
        * (1.0 + 0.18 * noise.smooth(seed, _k(host, "cpu"), t, 900))
    )
    if with_jitter:
        user += 1.2 * noise.jitter(seed, _k(host, "cpu.j"), t)
    spike = timeline.active("cpu_spike", host.name, t)
    if spike is not None:
        user = max(
            user,
            cpu_spike_pct(spike, t) + (2.5 * noise.jitter(seed, _k(host, "spike"), t) if with_jitter else 0),
        )
    leak = timeline.active("memory_leak", host.name, t)
    if leak is not None and t < leak.peak:
        user += 25.0 * max(0.0, leak.progress(t) - 0.75) * 4  # the GC works harder as the heap fills
    user = min(max(user, 0.3), 97.0)
    system = min(max(user * 0.22 + 0.8 + 0.4 * noise.smooth(seed, _k(host, "sys"), t, 600), 0.2), 99.0 - user)
    return user, system


def mem_used_pct(host: Host, t: float, timeline: Timeline, seed: int) -> float:
    base = (
        host.mem_base_pct + 1.5 * noise.diurnal(t - 3600) + 1.2 * noise.smooth(seed, _k(host, "mem"), t, 1800)
    )
    leak = timeline.active("memory_leak", host.name, t)
    if leak is not None:
        base = leak_pct(leak, base, t)
    return min(99.6, max(2.0, base + 0.15 * noise.jitter(seed, _k(host, "mem.j"), t)))


def disk_used_pct(host: Host, disk: Disk, t: float, timeline: Timeline, seed: int) -> float:
    key = _k(host, "disk" + disk.path)
    organic = disk.growth_pct_per_day * (t - timeline.anchor) / 86400.0
    wiggle = (
        0.6 * noise.diurnal(t, 2.0)
        + 0.2 * noise.smooth(seed, key, t, 3600)
        + 0.03 * noise.jitter(seed, key, t)
    )
    used = disk.base_pct + organic + wiggle
    for incident in timeline.of_kind("disk_fill"):
        if incident.host != host.name or incident.params.get("path") != disk.path:
            continue
        occurrence = timeline.occurrence_at(incident, t)
        if occurrence is not None:
            if t >= occurrence.peak:
                return 100.0
            # The fill carries the daily rhythm too, fading as the disk gets full.
            used = disk_fill_pct(occurrence, disk.base_pct, t) + wiggle * (1.0 - occurrence.progress(t))
    return min(100.0, max(0.5, used))


def host_points(host: Host, t: float, timeline: Timeline, seed: int) -> list[Point]:
    """What Telegraf's default inputs (plus nginx / snmp where they apply) report at ``t``."""
    time_ns = round(t * 1e9)
    if not host.is_linux:
        return _switch_points(host, t, time_ns, timeline, seed)
    tags = {"host": host.name}
    user, system = cpu_busy(host, t, timeline, seed)
    iowait = max(0.0, 0.4 + 0.3 * noise.smooth(seed, _k(host, "io"), t, 700))
    steal = max(0.0, 0.05 + 0.05 * noise.jitter(seed, _k(host, "steal"), t))
    points = [
        Point(
            "cpu",
            {
                "usage_user": round(user, 3),
                "usage_system": round(system, 3),
                "usage_iowait": round(iowait, 3),
                "usage_steal": round(steal, 3),
                "usage_idle": round(max(0.0, 100.0 - user - system - iowait - steal), 3),
            },
            {**tags, "cpu": "cpu-total"},
            time_ns,
        ),
    ]
    used_pct = mem_used_pct(host, t, timeline, seed)
    used = int(host.mem_total * used_pct / 100.0)
    cached = int((host.mem_total - used) * 0.6)
    points.append(
        Point(
            "mem",
            {
                "total": host.mem_total,
                "used": used,
                "available": host.mem_total - used,
                "free": host.mem_total - used - cached,
                "cached": cached,
                "used_percent": round(used_pct, 3),
                "available_percent": round(100.0 - used_pct, 3),
            },
            dict(tags),
            time_ns,
        )
    )
    for disk in host.disks:
        pct = disk_used_pct(host, disk, t, timeline, seed)
        used_bytes = int(disk.total_bytes * pct / 100.0)
        inodes_total = disk.total_bytes // 16384
        inodes_used = int(inodes_total * pct / 180.0)
        points.append(
            Point(
                "disk",
                {
                    "total": disk.total_bytes,
                    "used": used_bytes,
                    "free": disk.total_bytes - used_bytes,
                    "used_percent": round(pct, 3),
                    "inodes_total": inodes_total,
                    "inodes_used": inodes_used,
                    "inodes_free": inodes_total - inodes_used,
                },
                {**tags, "path": disk.path, "device": disk.device, "fstype": disk.fstype, "mode": "rw"},
                time_ns,
            )
        )
    load = max(0.0, host.cpus * (user + system) / 100.0 * 1.1)
    load5 = _load(host, t - 150, timeline, seed)
    # the 15-minute average leans towards the host's usual level for this time of day
    usual = (
        host.cpus * host.cpu_base * 1.22 * (1.0 + host.cpu_amplitude * noise.diurnal(t - 450)) / 100.0 * 1.1
    )
    boot = timeline.anchor - host.boot_age_s
    points.append(
        Point(
            "system",
            {
                "load1": round(load, 2),
                "load5": round(load5, 2),
                "load15": round(0.6 * load5 + 0.4 * usual, 2),
                "n_cpus": host.cpus,
                "n_users": 1 if noise.smooth(seed, _k(host, "users"), t, 5400) > 0.3 else 0,
                "uptime": max(60, int(t - boot)),
            },
            dict(tags),
            time_ns,
        )
    )
    points.append(_net_point(host, t, time_ns, boot))
    if "nginx" in host.services:
        points.append(_nginx_point(host, t, time_ns, boot, timeline, seed))
    return points


def _load(host: Host, t: float, timeline: Timeline, seed: int) -> float:
    user, system = cpu_busy(host, t, timeline, seed, with_jitter=False)
    return max(0.0, host.cpus * (user + system) / 100.0 * 1.1)


def _counter(rate: float, t: float, since: float, amplitude: float = 0.5) -> int:
    """A counter whose rate follows the daily cycle: the closed-form integral of
    rate × (1 + amplitude × diurnal) since ``since``."""
    span = max(0.0, t - since)
    cyclic = noise.diurnal_integral(t) - noise.diurnal_integral(since)
    return max(0, int(rate * (span + amplitude * cyclic)))


def _net_point(host: Host, t: float, time_ns: int, boot: float) -> Point:
    recv = _counter(host.net_bytes_per_s, t, boot)
    sent = _counter(host.net_bytes_per_s * (1.6 if host.role in ("lb", "web") else 0.7), t, boot)
    return Point(
        "net",
        {
            "bytes_recv": recv,
            "bytes_sent": sent,
            "packets_recv": recv // 900,
            "packets_sent": sent // 1100,
            "err_in": 0,
            "err_out": 0,
            "drop_in": _counter(0.002, t, boot, 0.0),
            "drop_out": 0,
        },
        {"host": host.name, "interface": "eth0"},
        time_ns,
    )


def _nginx_point(host: Host, t: float, time_ns: int, boot: float, timeline: Timeline, seed: int) -> Point:
    rate = 140.0 if host.role == "lb" else 45.0
    requests = _counter(rate, t, boot, 0.6)
    active = max(
        1,
        int(
            rate * 0.4 * (1 + 0.6 * noise.diurnal(t)) * (1 + 0.2 * noise.smooth(seed, _k(host, "ng"), t, 300))
        ),
    )
    return Point(
        "nginx",
        {
            "accepts": requests // 3,
            "handled": requests // 3,
            "requests": requests,
            "active": active,
            "reading": max(0, active // 20),
            "writing": max(1, active // 6),
            "waiting": max(0, active - active // 20 - active // 6),
        },
        {"host": host.name, "port": "80", "server": "localhost"},
        time_ns,
    )


def _switch_points(host: Host, t: float, time_ns: int, timeline: Timeline, seed: int) -> list[Point]:
    """``inputs.snmp`` with the IF-MIB ifTable/ifXTable fields and sysName as the host tag."""
    boot = timeline.anchor - host.boot_age_s
    points = []
    for if_index, descr, name, speed in SWITCH_PORTS:
        down = timeline.link_down(host.name, descr, t)
        downtime, flaps = _downtime(timeline, host.name, descr, t)
        share = {10_000: 0.22, 1_000: 0.06}[speed]
        rate = speed * 1e6 / 8 * share
        in_octets = max(0, _counter(rate, t, boot) - int(rate * downtime))
        out_octets = max(0, _counter(rate * 0.8, t, boot) - int(rate * 0.8 * downtime))
        points.append(
            Point(
                "interface",
                {
                    "ifOperStatus": 2 if down else 1,
                    "ifAdminStatus": 1,
                    "ifHighSpeed": speed,
                    "ifHCInOctets": in_octets,
                    "ifHCOutOctets": out_octets,
                    "ifInErrors": _counter(0.0005, t, boot, 0.0) + 41 * flaps,
                    "ifOutErrors": 0,
                    "ifInDiscards": _counter(0.001, t, boot, 0.0) + 7 * flaps,
                },
                {
                    "host": host.name,
                    "agent_host": host.ip,
                    "ifDescr": descr,
                    "ifName": name,
                    "ifIndex": str(if_index),
                },
                time_ns,
            )
        )
    cpu = 12.0 + 4.0 * noise.diurnal(t) + 3.0 * noise.smooth(seed, _k(host, "cpu"), t, 600)
    points.append(
        Point(
            "snmp",
            {
                "sysUpTime": int((t - boot) * 100),
                "cpu_5min": round(max(1.0, cpu), 1),
                "mem_used_percent": round(
                    host.mem_base_pct + noise.smooth(seed, _k(host, "mem"), t, 3600), 2
                ),
            },
            {"host": host.name, "agent_host": host.ip},
            time_ns,
        )
    )
    return points


def _downtime(timeline: Timeline, host: str, interface: str, t: float) -> tuple[float, int]:
    """Seconds the interface has been down before ``t`` and how often it went down."""
    total, flaps = 0.0, 0
    for incident in timeline.of_kind("link_flap"):
        if incident.host != host or incident.params.get("interface") != interface:
            continue
        last = timeline.last_occurrence_before(incident, t)
        if last is None:
            continue
        for number in range(last.number + 1):
            occurrence = timeline.occurrence(incident, number)
            for a, b in timeline.down_intervals(occurrence):
                if a < t:
                    total += min(b, t) - a
                    flaps += 1
    return total, flaps


def fleet_points(fleet: Fleet, t: float, timeline: Timeline) -> dict[str, list[Point]]:
    """Every host's points at ``t``, by host name."""
    return {host.name: host_points(host, t, timeline, fleet.seed) for host in fleet.hosts}


_TAG_ESCAPE = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})


def _field(name: str, value: object) -> str:
    if type(value) is int:
        return f"{name}={value}i"
    if type(value) is float:
        return f"{name}={value!r}"
    if type(value) is bool:
        return f"{name}={'true' if value else 'false'}"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'{name}="{text}"'


def line_protocol(points: list[Point]) -> bytes:
    """Telegraf's default serializer (``data_format = "influx"``): sorted tags, nanosecond
    timestamps. The fleet's names need no escaping; tag values are escaped all the same."""
    lines = []
    for p in points:
        tags = "".join(f",{k}={v.translate(_TAG_ESCAPE)}" for k, v in sorted(p.tags.items()))
        fields = ",".join([_field(k, v) for k, v in p.fields.items()])
        lines.append(f"{p.measurement}{tags} {fields} {p.time_ns}\n")
    return "".join(lines).encode()


def telegraf_json(points: list[Point]) -> bytes:
    """Telegraf's JSON serializer in batch format, timestamps in whole seconds (its default)."""
    return orjson.dumps(
        {
            "metrics": [
                {
                    "fields": p.fields,
                    "name": p.measurement,
                    "tags": p.tags,
                    "timestamp": (p.time_ns or 0) // 10**9,
                }
                for p in points
            ]
        }
    )


# --- logs ------------------------------------------------------------------------------------


@dataclass(slots=True)
class LogLine:
    t: float
    host: str
    service: str
    level: str
    message: str
    attributes: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The NDJSON record a log shipper (Vector, Fluent Bit...) would post."""
        return {
            "timestamp": iso(self.t),
            "host": self.host,
            "service": self.service,
            "level": self.level,
            "message": self.message,
            **self.attributes,
        }


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _clf(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _syslog_time(t: float) -> str:
    d = datetime.fromtimestamp(t, UTC)
    return d.strftime("%b ") + f"{d.day:2d}" + d.strftime(" %H:%M:%S.") + f"{d.microsecond // 1000:03d}"


def _pg_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _java_time(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def arrivals(rng: random.Random, per_minute: float, a: float, b: float, daily: float = 0.0) -> list[float]:
    """Times in (a, b] of a Poisson process of ``per_minute`` (scaled by the daily cycle)."""
    mid = (a + b) / 2
    rate = per_minute * (1.0 + daily * noise.diurnal(mid))
    times = [rng.uniform(a, b) for _ in range(_poisson(rng, rate * (b - a) / 60.0))]
    return sorted(x for x in times if a < x <= b)


_CLIENT_NETS = ("81.2.69.", "89.160.20.", "175.16.199.", "216.160.83.", "2.125.160.", "67.43.156.")
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "okhttp/4.12.0",
    "kube-probe/1.29",
)
_APP_AGENT = "ShopApp/5.2.0 (Android 14; Pixel 8) okhttp/4.12.0"
_PAGES = (
    ("GET", "/", 200),
    ("GET", "/products/{id}", 200),
    ("GET", "/api/catalog/items?page={n}", 200),
    ("GET", "/api/search?q=shoes&page={n}", 200),
    ("GET", "/static/js/app.{hex}.js", 200),
    ("GET", "/static/css/main.{hex}.css", 304),
    ("POST", "/api/cart/items", 201),
    ("GET", "/api/cart", 200),
    ("POST", "/api/checkout/orders", 201),
    ("GET", "/api/orders/{id}", 200),
    ("GET", "/favicon.ico", 404),
    ("GET", "/wp-login.php", 404),
    ("GET", "/healthz", 200),
)


def _fill(rng: random.Random, path: str) -> str:
    return (
        path.replace("{id}", str(rng.randint(1000, 99999)))
        .replace("{n}", str(rng.randint(1, 12)))
        .replace("{hex}", f"{rng.getrandbits(32):08x}")
    )


def _client_ip(rng: random.Random) -> str:
    return rng.choice(_CLIENT_NETS) + str(rng.randint(2, 250))


def _access(
    rng: random.Random,
    t: float,
    host: Host,
    method: str,
    path: str,
    status: int,
    upstream: float,
    agent: str | None = None,
) -> LogLine:
    size = 0 if status in (204, 304) else rng.randint(180, 48000)
    agent = agent or rng.choice(_AGENTS)
    referer = "-" if rng.random() < 0.5 else "https://shop.example.com/"
    level = "error" if status >= 500 else "warning" if status >= 400 and status != 404 else "info"
    if "apache2" in host.services:
        message = (
            f'{_client_ip(rng)} - - [{_clf(t)}] "{method} {path} HTTP/1.1" {status} '
            f'{size if size else "-"} "{referer}" "{agent}"'
        )
        return LogLine(t, host.name, "apache2", level, message, {"file": "/var/log/apache2/access.log"})
    message = (
        f'{_client_ip(rng)} - - [{_clf(t)}] "{method} {path} HTTP/1.1" {status} {size} "{referer}" "{agent}" '
        f"rt={upstream + 0.001:.3f} uct=0.001 uht={upstream:.3f} urt={upstream:.3f}"
    )
    return LogLine(t, host.name, "nginx", level, message, {"file": "/var/log/nginx/access.log"})


@dataclass
class WindowContext:
    fleet: Fleet
    timeline: Timeline
    a: float
    b: float

    @property
    def seed(self) -> int:
        return self.fleet.seed

    def rng(self, *parts: object) -> random.Random:
        return random.Random(noise.stable_seed(self.seed, round(self.a, 3), round(self.b, 3), *parts))


def log_lines(fleet: Fleet, timeline: Timeline, a: float, b: float) -> list[LogLine]:
    """Every log line of the fleet in (a, b], in time order."""
    ctx = WindowContext(fleet, timeline, a, b)
    lines: list[LogLine] = []
    for host in fleet.hosts:
        lines.extend(_host_chatter(ctx, host))
    lines.extend(_incident_logs(ctx))
    lines.sort(key=lambda line: line.t)
    return lines


def _host_chatter(ctx: WindowContext, host: Host) -> Iterator[LogLine]:
    rng = ctx.rng("chatter", host.name)
    a, b = ctx.a, ctx.b
    if host.role == "switch":
        for t in arrivals(rng, 0.02, a, b):
            yield LogLine(
                t,
                host.name,
                "ios",
                "notice",
                f"{_syslog_time(t)}: %SEC_LOGIN-5-LOGIN_SUCCESS: Login Success [user: netops] "
                f"[Source: 10.20.0.{rng.randint(5, 9)}] [localport: 22]",
            )
        for t in arrivals(rng, 0.01, a, b):
            yield LogLine(
                t,
                host.name,
                "ios",
                "info",
                f"{_syslog_time(t)}: %SYS-6-LOGGINGHOST_STARTSTOP: Logging to host 10.20.0.7 port 514 started - CLI initiated",
            )
        return
    yield from _system_chatter(rng, host, a, b)
    if host.role in ("lb", "web"):
        per_minute = 0.8 if host.role == "lb" else 0.5
        for t in arrivals(rng, per_minute, a, b, daily=0.6):
            method, path, status = rng.choice(_PAGES)
            if status == 200 and rng.random() < 0.01:
                status = 499
            yield _access(rng, t, host, method, _fill(rng, path), status, rng.lognormvariate(-3.5, 0.8))
        if host.role == "lb":
            for t in arrivals(rng, 0.01, a, b):
                yield LogLine(
                    t,
                    host.name,
                    "nginx",
                    "warning",
                    f"{datetime.fromtimestamp(t, UTC):%Y/%m/%d %H:%M:%S} [warn] 1187#1187: *{rng.randint(10**5, 10**7)} "
                    f"upstream response time 1.{rng.randint(100, 999)}s exceeded threshold while reading response "
                    f'header from upstream, client: {_client_ip(rng)}, server: shop.example.com, request: "GET '
                    f'/api/search?q=boots HTTP/1.1", upstream: "http://10.20.7.{rng.randint(10, 30)}:8080/api/search?q=boots"',
                )
    if "storefront" in host.services:
        for t in arrivals(rng, 0.06, a, b, daily=0.5):
            yield LogLine(
                t,
                host.name,
                "storefront",
                "info",
                f"INFO [storefront.views] rendered product page product_id={rng.randint(1000, 99999)} "
                f"cache={'hit' if rng.random() < 0.8 else 'miss'} in {rng.randint(4, 60)}ms",
            )
    if "checkout" in host.services:
        release = ctx.timeline.release("checkout", b)
        for t in arrivals(rng, 0.1, a, b, daily=0.6):
            ms = rng.randint(40, 220)
            yield LogLine(
                t,
                host.name,
                "checkout",
                "info",
                f"[{datetime.fromtimestamp(t, UTC):%Y-%m-%d %H:%M:%S +0000}] [{rng.randint(20, 28)}] [INFO] "
                f"checkout.api: POST /api/checkout/orders 201 in {ms}ms order_id=ord_{rng.getrandbits(40):010x}",
                {"release": f"checkout@{release}"},
            )
        for t in arrivals(rng, 0.03, a, b):
            yield LogLine(
                t,
                host.name,
                "checkout",
                "warning",
                "WARNING checkout.payments: payment gateway slow to answer (2.1s), retrying (attempt 1/3)",
            )
    if "orders" in host.services:
        for t in arrivals(rng, 0.1, a, b, daily=0.6):
            yield LogLine(
                t,
                host.name,
                "orders",
                "info",
                f"{_java_time(t)}  INFO 1 --- [nio-8080-exec-{rng.randint(1, 10)}] c.e.orders.api.OrderController      "
                f": Order {rng.randint(10**6, 10**7)} status changed PENDING -> CONFIRMED ({rng.randint(8, 90)} ms)",
            )
        for t in arrivals(rng, 0.08, a, b):
            yield LogLine(
                t,
                host.name,
                "orders",
                "info",
                f"[{(t % 10**6):.3f}s][info][gc] GC({rng.randint(1000, 9999)}) Pause Young (Normal) (G1 Evacuation "
                f"Pause) {rng.randint(1800, 2600)}M->{rng.randint(900, 1400)}M(6144M) {rng.uniform(4, 25):.3f}ms",
            )
    if "postgresql" in host.services:
        pid = 1000 + noise.key_hash(host.name) % 30000
        for t in arrivals(rng, 0.08, a, b):
            yield LogLine(
                t,
                host.name,
                "postgresql",
                "info",
                f"{_pg_time(t)} [{pid}] LOG:  checkpoint complete: wrote {rng.randint(200, 4000)} buffers "
                f"({rng.uniform(0.5, 4):.1f}%); 0 WAL file(s) added, 0 removed, {rng.randint(1, 4)} recycled; "
                f"write={rng.uniform(20, 200):.3f} s, sync=0.{rng.randint(1, 99):03d} s, total={rng.uniform(20, 200):.3f} s",
            )
        for t in arrivals(rng, 0.1, a, b):
            yield LogLine(
                t,
                host.name,
                "postgresql",
                "info",
                f"{_pg_time(t)} [{rng.randint(20000, 60000)}] LOG:  connection authorized: user=orders "
                "database=shop application_name=orders-api SSL enabled (protocol=TLSv1.3)",
            )
        for t in arrivals(rng, 0.01, a, b):
            yield LogLine(
                t,
                host.name,
                "postgresql",
                "warning",
                f"{_pg_time(t)} [{pid}] LOG:  checkpoints are occurring too frequently ({rng.randint(18, 29)} "
                "seconds apart)",
            )
    if "redis" in host.services:
        for t in arrivals(rng, 0.07, a, b):
            yield LogLine(
                t,
                host.name,
                "redis",
                "info",
                f"{rng.randint(1000, 2000)}:M {datetime.fromtimestamp(t, UTC):%d %b %Y %H:%M:%S.%f}"[:-3]
                + f" * Background saving started by pid {rng.randint(20000, 60000)}",
            )
    if "rabbitmq" in host.services:
        for t in arrivals(rng, 0.1, a, b):
            yield LogLine(
                t,
                host.name,
                "rabbitmq",
                "info",
                f"{iso(t)} [info] <0.{rng.randint(1000, 9999)}.0> accepting AMQP connection "
                f"10.20.6.{rng.randint(10, 30)}:{rng.randint(30000, 60000)} -> {host.ip}:5672",
            )
    if "billing-worker" in host.services:
        for t in arrivals(rng, 0.1, a, b, daily=0.3):
            yield LogLine(
                t,
                host.name,
                "billing-worker",
                "info",
                f"[{datetime.fromtimestamp(t, UTC):%Y-%m-%d %H:%M:%S,%f}"[:-3] + ": INFO/ForkPoolWorker-"
                f"{rng.randint(1, 4)}] Task billing.tasks.charge_invoice[{uuid.UUID(int=rng.getrandbits(128))}] "
                f"succeeded in {rng.uniform(0.2, 2.5):.3f}s: None",
            )
        for t in arrivals(rng, 0.01, a, b):
            yield LogLine(
                t, host.name, "billing-worker", "error", _python_traceback(rng), {"logger": "billing.tasks"}
            )
    if host.role == "k8s":
        for t in arrivals(rng, 1.2, a, b, daily=1.2):
            yield _k8s_line(rng, t, host, rng.choice([s for s in host.services if s != "kubelet"]))
        for t in arrivals(rng, 0.01, a, b):
            yield LogLine(
                t,
                host.name,
                "kubelet",
                "warning",
                f'I{datetime.fromtimestamp(t, UTC):%m%d %H:%M:%S.%f} 1027 prober.go:107] "Probe failed" '
                f'probeType="Readiness" pod="shop/search-5c7d9b8f6-{rng.getrandbits(20):05x}" '
                'containerName="search" probeResult="failure" output="HTTP probe failed with statuscode: 503"',
            )


def _system_chatter(rng: random.Random, host: Host, a: float, b: float) -> Iterator[LogLine]:
    """sshd, cron, systemd: every Linux box says these things."""
    for t in arrivals(rng, 0.01, a, b):
        yield LogLine(
            t,
            host.name,
            "sshd",
            "info",
            f"Accepted publickey for deploy from 10.20.0.{rng.randint(5, 9)} port {rng.randint(40000, 65000)} "
            f"ssh2: ED25519 SHA256:{rng.getrandbits(128):032x}",
        )
    if host.role in ("lb", "web"):
        for t in arrivals(rng, 0.03, a, b):
            user = rng.choice(("admin", "root", "test", "oracle", "ubuntu", "git"))
            yield LogLine(
                t,
                host.name,
                "sshd",
                "warning",
                f"Failed password for invalid user {user} from {_client_ip(rng)} port "
                f"{rng.randint(30000, 65000)} ssh2",
            )
    # cron.hourly on every box, each at its own minute (as after a randomized deployment)
    offset = noise.key_hash(host.name) % 3600
    hour = math.floor(a / 3600.0) * 3600.0 + offset
    while hour <= b:
        if hour > a:
            yield LogLine(
                hour,
                host.name,
                "CRON",
                "info",
                f"({'root'}) CMD (   cd / && run-parts --report /etc/cron.hourly)",
                {"pid": rng.randint(10000, 99999)},
            )
        hour += 3600.0
    for t in arrivals(rng, 0.01, a, b):
        yield LogLine(
            t, host.name, "systemd", "info", f"Started Session {rng.randint(100, 9999)} of User deploy."
        )
    for t in arrivals(rng, 0.004, a, b):
        yield LogLine(
            t,
            host.name,
            "systemd",
            "info",
            rng.choice(
                (
                    "Starting Daily apt download activities...",
                    "logrotate.service: Deactivated successfully.",
                    "Finished Rotate log files.",
                    "Starting Cleanup of Temporary Directories...",
                )
            ),
        )


def _k8s_line(rng: random.Random, t: float, host: Host, service: str) -> LogLine:
    status = 200 if rng.random() > 0.01 else rng.choice((404, 429))
    path = {"catalog": "/items/{id}", "search": "/search?q=shoes", "users": "/users/{id}/profile"}[service]
    return LogLine(
        t,
        host.name,
        service,
        "info" if status < 400 else "warning",
        "request completed",
        {
            "logger": f"{service}.http",
            "method": "GET",
            "path": _fill(rng, path),
            "status": status,
            "duration_ms": round(rng.lognormvariate(2.5, 0.6), 1),
            "trace_id": f"{rng.getrandbits(128):032x}",
            "kubernetes": {
                "namespace": "shop",
                "pod": f"{service}-7d9f8b{rng.getrandbits(12):03x}-{rng.getrandbits(20):05x}",
                "container": service,
                "node": host.name,
            },
        },
    )


def _python_traceback(rng: random.Random) -> str:
    line = rng.randint(80, 140)
    return (
        "Task billing.tasks.send_receipt raised unexpected: ConnectionRefusedError(111, 'Connection refused'), retrying in 60s\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/billing/venv/lib/python3.11/site-packages/celery/app/trace.py", line 453, in trace_task\n'
        "    R = retval = fun(*args, **kwargs)\n"
        f'  File "/srv/billing/billing/tasks.py", line {line}, in send_receipt\n'
        "    mailer.send(receipt)\n"
        '  File "/srv/billing/billing/mail.py", line 41, in send\n'
        "    with smtplib.SMTP(self.host, 587, timeout=10) as smtp:\n"
        '  File "/usr/lib/python3.11/socket.py", line 851, in create_connection\n'
        "    raise exceptions[0]\n"
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )


# --- incident logs -----------------------------------------------------------------------------


def _incident_logs(ctx: WindowContext) -> Iterator[LogLine]:
    for incident in ctx.timeline.incidents:
        host = ctx.fleet.host(incident.host)
        if host is None:
            continue
        for occurrence in ctx.timeline.occurrences_between(incident, ctx.a, ctx.b):
            rng = ctx.rng("incident", incident.name, occurrence.number)
            if incident.kind == "disk_fill":
                yield from _disk_full_logs(ctx, rng, host, occurrence)
            elif incident.kind == "memory_leak":
                yield from _leak_logs(ctx, rng, host, occurrence)
            elif incident.kind == "bad_deploy":
                yield from _deploy_logs(ctx, rng, occurrence)
            elif incident.kind == "cpu_spike":
                yield from _cpu_spike_logs(ctx, rng, host, occurrence)
            elif incident.kind == "link_flap":
                yield from _flap_logs(ctx, rng, host, occurrence)


def _within(ctx: WindowContext, t: float) -> bool:
    return ctx.a < t <= ctx.b


def _span(ctx: WindowContext, start: float, end: float) -> tuple[float, float] | None:
    a, b = max(ctx.a, start), min(ctx.b, end)
    return (a, b) if b > a else None


def _disk_full_logs(ctx: WindowContext, rng: random.Random, host: Host, occ: Occurrence) -> Iterator[LogLine]:
    path = str(occ.params.get("path", "/var"))
    base = float(occ.params.get("base_pct", 41.0))
    nearly = disk_fill_crossing(occ, base, float(occ.params.get("full_logs_from_pct", 98.0)))
    span = _span(ctx, nearly, occ.end)
    if span is not None:
        for t in arrivals(rng, 3.0, *span):
            kind = rng.random()
            if kind < 0.45:
                yield LogLine(
                    t,
                    host.name,
                    "nginx",
                    "critical",
                    f"{datetime.fromtimestamp(t, UTC):%Y/%m/%d %H:%M:%S} [crit] 2211#2211: *{rng.randint(10**5, 10**7)} "
                    f'pwrite() "{path}/lib/nginx/body/00000{rng.randint(10000, 99999)}" failed (28: No space left on '
                    'device), client: 10.20.1.10, server: shop.example.com, request: "POST /api/cart/items HTTP/1.1"',
                    {"file": "/var/log/nginx/error.log"},
                )
            elif kind < 0.8:
                yield LogLine(
                    t,
                    host.name,
                    "storefront",
                    "error",
                    "ERROR [storefront.sessions] could not save session\n"
                    "Traceback (most recent call last):\n"
                    '  File "/srv/storefront/storefront/sessions.py", line 57, in save\n'
                    '    with open(tmp_path, "wb") as fh:\n'
                    f"OSError: [Errno 28] No space left on device: '{path}/cache/storefront/sessions/"
                    f"{rng.getrandbits(64):016x}.tmp'",
                )
            else:
                yield LogLine(
                    t,
                    host.name,
                    "rsyslogd",
                    "error",
                    f"file '{path}/log/syslog': write error - No space left on device [v8.2112.0 try "
                    "https://www.rsyslog.com/e/2027 ]",
                )
    if _within(ctx, occ.end):
        yield LogLine(
            occ.end,
            host.name,
            "logrotate",
            "info",
            f"logrotate: compressed and removed {rng.randint(30, 60)} old archives under {path}/log/nginx, "
            f"freed {rng.uniform(100, 130):.1f} GiB",
        )
        yield LogLine(
            occ.end + 1,
            host.name,
            "sudo",
            "notice",
            f"netops : TTY=pts/0 ; PWD=/home/netops ; USER=root ; COMMAND=/usr/bin/find {path}/log/nginx "
            "-name *.gz -mtime +3 -delete",
        )


def _leak_logs(ctx: WindowContext, rng: random.Random, host: Host, occ: Occurrence) -> Iterator[LogLine]:
    service = str(occ.params.get("service", "orders"))
    process = str(occ.params.get("process", "java"))
    pid = 20000 + rng.randint(0, 9999)
    # the GC struggles as the heap fills, then the JVM starts failing allocations
    gc_from = occ.start + 0.7 * (occ.peak - occ.start)
    span = _span(ctx, gc_from, occ.peak)
    if span is not None:
        for t in arrivals(rng, 2.0, *span):
            heap = int(5200 + 900 * occ.progress(t))
            yield LogLine(
                t,
                host.name,
                service,
                "warning",
                f"[{(t % 10**6):.3f}s][warning][gc] GC({rng.randint(10000, 99999)}) Pause Full (G1 Compaction "
                f"Pause) {heap}M->{heap - rng.randint(5, 40)}M(6144M) {rng.uniform(900, 3200):.3f}ms",
            )
    oom_from = occ.start + 0.93 * (occ.peak - occ.start)
    span = _span(ctx, oom_from, occ.peak)
    if span is not None:
        for t in arrivals(rng, 3.0, *span):
            yield LogLine(t, host.name, service, "error", _java_oom(rng, t))
    if _within(ctx, occ.peak):
        t = occ.peak
        total_vm = rng.randint(8_000_000, 9_000_000)
        rss = rng.randint(6_000_000, 6_300_000)
        for offset, unit, level, message in (
            (
                0.000,
                "kernel",
                "warning",
                f"{process} invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), "
                "order=0, oom_score_adj=0",
            ),
            (
                0.002,
                "kernel",
                "info",
                f"Mem-Info: active_anon:{rss // 4} inactive_anon:{rng.randint(1000, 9000)} "
                "isolated_anon:0 active_file:212 inactive_file:96 isolated_file:0",
            ),
            (
                0.004,
                "kernel",
                "error",
                f"Out of memory: Killed process {pid} ({process}) total-vm:{total_vm}kB, "
                f"anon-rss:{rss}kB, file-rss:0kB, shmem-rss:0kB, UID:1001 pgtables:"
                f"{rng.randint(12000, 14000)}kB oom_score_adj:0",
            ),
            (
                0.090,
                "kernel",
                "info",
                f"oom_reaper: reaped process {pid} ({process}), now anon-rss:0kB, file-rss:0kB, "
                "shmem-rss:0kB",
            ),
            (
                0.300,
                "systemd",
                "error",
                f"{service}.service: A process of this unit has been killed by the OOM killer.",
            ),
            (
                0.310,
                "systemd",
                "error",
                f"{service}.service: Main process exited, code=killed, status=9/KILL",
            ),
            (0.320, "systemd", "warning", f"{service}.service: Failed with result 'oom-kill'."),
            (
                5.330,
                "systemd",
                "info",
                f"{service}.service: Scheduled restart job, restart counter is at {occ.number + 1}.",
            ),
            (5.340, "systemd", "info", "Started Orders API (Spring Boot)."),
        ):
            yield LogLine(t + offset, host.name, unit, level, message)
    if _within(ctx, occ.peak + 21.4):
        t = occ.peak + 21.4
        yield LogLine(
            t,
            host.name,
            service,
            "info",
            f"{_java_time(t)}  INFO 1 --- [           main] c.e.orders.OrdersApplication             "
            f": Started OrdersApplication in 14.{rng.randint(100, 999)} seconds (process running for 16.02)",
        )
    # while the service is down, the load balancer has nowhere to send /api/orders
    span = _span(ctx, occ.peak, occ.peak + 20)
    lb = ctx.fleet.with_role("lb")
    if span is not None and lb:
        for t in arrivals(rng, 20.0, *span):
            yield _access(rng, t, rng.choice(lb), "GET", _fill(rng, "/api/orders/{id}"), 502, 0.001)


def _java_oom(rng: random.Random, t: float) -> str:
    return (
        f"{_java_time(t)} ERROR 1 --- [nio-8080-exec-{rng.randint(1, 10)}] o.a.c.c.C.[.[.[/].[dispatcherServlet]    : "
        "Servlet.service() for servlet [dispatcherServlet] threw exception\n"
        "java.lang.OutOfMemoryError: Java heap space\n"
        "\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)\n"
        "\tat java.base/java.util.ArrayList.grow(ArrayList.java:237)\n"
        "\tat com.example.orders.cache.OrderHistoryCache.remember(OrderHistoryCache.java:88)\n"
        "\tat com.example.orders.service.OrderService.findRecent(OrderService.java:142)\n"
        "\tat com.example.orders.api.OrderController.recent(OrderController.java:61)\n"
        "\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)\n"
        "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:885)"
    )


def _deploy_logs(ctx: WindowContext, rng: random.Random, occ: Occurrence) -> Iterator[LogLine]:
    service = str(occ.params.get("service", "checkout"))
    hosts = [h for h in ctx.fleet.running(service) if h.name in occ.params.get("hosts", ())]
    bad, fixed = bad_release(occ), fixed_release(occ)
    previous = "2.14.3" if occ.number == 0 else f"2.{14 + occ.number}.1"
    commit = f"{noise.stable_seed(ctx.seed, 'commit', occ.number) & 0xFFFFFFF:07x}"
    fix_commit = f"{noise.stable_seed(ctx.seed, 'fix', occ.number) & 0xFFFFFFF:07x}"
    for i, host in enumerate(hosts):
        t = occ.start + 6 * i
        if _within(ctx, t):
            attrs = {
                "event": "deploy",
                "release": f"{service}@{bad}",
                "version": bad,
                "previous_version": previous,
                "commit": commit,
                "deployer": "ci-bot",
            }
            yield LogLine(
                t,
                host.name,
                "deploy",
                "info",
                f"Deploying {service} {bad} (commit {commit}) to {host.name}: rolling update "
                f"{i + 1}/{len(hosts)}, previous version {previous}",
                attrs,
            )
            yield LogLine(
                t + 1.2, host.name, "systemd", "info", f"Stopping {service.title()} API (gunicorn)..."
            )
            yield LogLine(t + 2.9, host.name, "systemd", "info", f"Started {service.title()} API (gunicorn).")
            yield LogLine(
                t + 3.4,
                host.name,
                service,
                "info",
                f"[{datetime.fromtimestamp(t + 3.4, UTC):%Y-%m-%d %H:%M:%S +0000}] [{rng.randint(1000, 9999)}] "
                f"[INFO] Booting {service} {bad}: listening at: http://0.0.0.0:8000",
                attrs,
            )
        t = occ.end + 6 * i
        if _within(ctx, t):
            attrs = {
                "event": "deploy",
                "release": f"{service}@{fixed}",
                "version": fixed,
                "previous_version": bad,
                "commit": fix_commit,
                "deployer": "oncall",
            }
            yield LogLine(
                t,
                host.name,
                "deploy",
                "info",
                f"Deploying {service} {fixed} (hotfix, commit {fix_commit}) to {host.name}: "
                f"rolling update {i + 1}/{len(hosts)}, previous version {bad}",
                attrs,
            )
    span = _span(ctx, occ.peak, occ.end)
    if span is None or not hosts:
        return
    # Failing checkouts: the app logs the traceback, the load balancers log the 500s.
    per_minute = float(occ.params.get("errors_per_s", 0.5)) * 60
    for t in arrivals(rng, per_minute, *span):
        host = rng.choice(hosts)
        yield LogLine(
            t,
            host.name,
            service,
            "error",
            f"[{datetime.fromtimestamp(t, UTC):%Y-%m-%d %H:%M:%S +0000}] [{rng.randint(20, 28)}] [ERROR] "
            "checkout.api: Exception on /api/checkout/orders [POST]\n" + _checkout_traceback(rng),
            {"release": f"{service}@{bad}"},
        )
    lb = ctx.fleet.with_role("lb") or ctx.fleet.with_role("web")
    for t in arrivals(rng, per_minute, *span):
        agent = _AGENTS[0] if rng.random() < 0.5 else _APP_AGENT
        yield _access(
            rng, t, rng.choice(lb), "POST", "/api/checkout/orders", 500, rng.uniform(0.02, 0.3), agent
        )


def _checkout_traceback(rng: random.Random) -> str:
    if rng.random() < 0.75:
        return (
            "Traceback (most recent call last):\n"
            '  File "/srv/checkout/checkout/api.py", line 48, in create_order\n'
            "    total = pricing.order_total(order)\n"
            '  File "/srv/checkout/checkout/pricing.py", line 31, in order_total\n'
            '    return convert(subtotal, order["currency"])\n'
            "KeyError: 'currency'"
        )
    return (
        "Traceback (most recent call last):\n"
        '  File "/srv/checkout/checkout/api.py", line 48, in create_order\n'
        "    total = pricing.order_total(order)\n"
        '  File "/srv/checkout/checkout/pricing.py", line 29, in order_total\n'
        '    subtotal = sum(line_total(item) for item in order["items"])\n'
        '  File "/srv/checkout/checkout/pricing.py", line 22, in line_total\n'
        '    return Decimal(item["price"]) * item.get("quantity")\n'
        "TypeError: unsupported operand type(s) for *: 'decimal.Decimal' and 'NoneType'"
    )


def _cpu_spike_logs(ctx: WindowContext, rng: random.Random, host: Host, occ: Occurrence) -> Iterator[LogLine]:
    backend = 40000 + rng.randint(0, 9999)
    if _within(ctx, occ.start - 3):
        yield LogLine(
            occ.start - 3,
            host.name,
            "postgresql",
            "info",
            f"{_pg_time(occ.start - 3)} [{backend}] LOG:  connection authorized: user=reporting database=shop "
            "application_name=metabase",
        )
    span = _span(ctx, occ.start + 20, occ.end)
    if span is not None:
        for t in arrivals(rng, 4.0, *span):
            yield LogLine(
                t,
                host.name,
                "postgresql",
                "warning",
                f"{_pg_time(t)} [{rng.randint(20000, 60000)}] LOG:  duration: {rng.uniform(2500, 14000):.3f} ms  "
                "statement: SELECT o.customer_id, date_trunc('day', o.created_at), sum(l.amount) FROM orders o "
                "JOIN order_lines l ON l.order_id = o.id WHERE o.created_at > now() - interval '400 days' "
                "GROUP BY 1, 2 ORDER BY 3 DESC",
            )
        for t in arrivals(rng, 1.0, *span):
            yield LogLine(
                t,
                host.name,
                "postgresql",
                "warning",
                f"{_pg_time(t)} [{rng.randint(20000, 60000)}] LOG:  process {rng.randint(20000, 60000)} still "
                f"waiting for ShareLock on transaction {rng.randint(10**6, 10**7)} after 1000.{rng.randint(100, 999)} ms",
            )
    if _within(ctx, occ.end):
        yield LogLine(
            occ.end,
            host.name,
            "postgresql",
            "error",
            f"{_pg_time(occ.end)} [{backend}] FATAL:  terminating connection due to administrator command",
        )
        yield LogLine(
            occ.end - 0.5,
            host.name,
            "postgresql",
            "info",
            f"{_pg_time(occ.end - 0.5)} [{rng.randint(20000, 60000)}] LOG:  statement: SELECT "
            f"pg_terminate_backend({backend})",
        )


def _flap_logs(ctx: WindowContext, rng: random.Random, host: Host, occ: Occurrence) -> Iterator[LogLine]:
    interface = str(occ.params.get("interface"))
    neighbor = ctx.fleet.host(str(occ.params.get("neighbor", "")))
    for down, up in ctx.timeline.down_intervals(occ):
        for t, state in ((down, "down"), (up, "up")):
            if not _within(ctx, t):
                continue
            level = "error" if state == "down" else "notice"
            yield LogLine(
                t,
                host.name,
                "ios",
                level,
                f"{_syslog_time(t)}: %LINK-3-UPDOWN: Interface {interface}, changed state to {state}",
            )
            yield LogLine(
                t + 1,
                host.name,
                "ios",
                level,
                f"{_syslog_time(t + 1)}: %LINEPROTO-5-UPDOWN: Line protocol on Interface {interface}, "
                f"changed state to {state}",
            )
            if neighbor is not None and neighbor.is_linux:
                if state == "down":
                    yield LogLine(
                        t + 0.2,
                        neighbor.name,
                        "kernel",
                        "warning",
                        "bond0: (slave eth1): link status definitely down, disabling slave",
                    )
                else:
                    yield LogLine(
                        t + 2.5,
                        neighbor.name,
                        "kernel",
                        "info",
                        "bond0: (slave eth1): link status definitely up, 1000 Mbps full duplex",
                    )


# --- application errors (Sentry) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """One application exception to report through the Sentry SDK."""

    t: float
    host: str
    service: str
    release: str
    problem: str  # which failure of the fake application code to raise (see sentry_apps)
    transaction: str
    user_id: str


# (service, problem, per-hour rate per host, transaction): background errors that always happen
_BACKGROUND_ERRORS: tuple[tuple[str, str, float, str], ...] = (
    ("checkout", "gateway_timeout", 2.0, "POST /api/checkout/orders"),
    ("billing-worker", "smtp_refused", 0.8, "billing.tasks.send_receipt"),
    ("catalog", "bad_page_param", 1.2, "GET /items"),
)


def error_reports(fleet: Fleet, timeline: Timeline, a: float, b: float) -> list[ErrorReport]:
    ctx = WindowContext(fleet, timeline, a, b)
    reports: list[ErrorReport] = []
    for service, problem, per_hour, transaction in _BACKGROUND_ERRORS:
        for host in fleet.running(service):
            rng = ctx.rng("errors", service, host.name)
            for t in arrivals(rng, per_hour / 60.0, a, b):
                reports.append(
                    ErrorReport(
                        t,
                        host.name,
                        service,
                        timeline.release(service, t),
                        problem,
                        transaction,
                        f"u{rng.randint(1000, 99999)}",
                    )
                )
    for incident in timeline.incidents:
        for occ in timeline.occurrences_between(incident, a, b):
            rng = ctx.rng("errors", incident.name, occ.number)
            if incident.kind == "bad_deploy":
                service = str(occ.params.get("service"))
                hosts = [h.name for h in fleet.running(service) if h.name in occ.params.get("hosts", ())]
                span = _span(ctx, occ.peak, occ.end)
                if span is None or not hosts:
                    continue
                for t in arrivals(rng, float(occ.params.get("errors_per_s", 0.5)) * 60, *span):
                    problem = "missing_currency" if rng.random() < 0.75 else "quantity_none"
                    reports.append(
                        ErrorReport(
                            t,
                            rng.choice(hosts),
                            service,
                            bad_release(occ),
                            problem,
                            "POST /api/checkout/orders",
                            f"u{rng.randint(1000, 99999)}",
                        )
                    )
            elif incident.kind == "disk_fill" and fleet.host(incident.host) is not None:
                base = float(occ.params.get("base_pct", 41.0))
                nearly = disk_fill_crossing(occ, base, float(occ.params.get("full_logs_from_pct", 98.0)))
                span = _span(ctx, nearly, occ.end)
                if span is None:
                    continue
                for t in arrivals(rng, 0.8, *span):
                    reports.append(
                        ErrorReport(
                            t,
                            incident.host,
                            "storefront",
                            timeline.release("storefront", t),
                            "disk_full",
                            "POST /api/cart/items",
                            f"u{rng.randint(1000, 99999)}",
                        )
                    )
    reports.sort(key=lambda r: r.t)
    return reports


# --- Alertmanager ------------------------------------------------------------------------------

ZERO_TIME = "0001-01-01T00:00:00Z"
RENOTIFY_S = 3600.0  # Alertmanager's repeat_interval for still-firing alerts


def _fingerprint(labels: dict[str, str]) -> str:
    text = "\xff".join(f"{k}\xff{v}" for k, v in sorted(labels.items()))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _am_alert(interval: AlertInterval, resolved: bool) -> dict[str, Any]:
    labels = dict(interval.labels)
    expr = {
        "NodeFilesystemAlmostFull": "node_filesystem_avail_bytes / node_filesystem_size_bytes < 0.10",
        "HostHighCpuLoad": '100 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[2m])) * 100 > 80',
        "SNMPInterfaceDown": 'ifOperStatus{ifAdminStatus="1"} == 2',
    }.get(labels.get("alertname", ""), "up == 0")
    return {
        "status": "resolved" if resolved else "firing",
        "labels": labels,
        "annotations": dict(interval.annotations),
        "startsAt": iso(interval.starts),
        "endsAt": iso(interval.ends) if resolved else ZERO_TIME,
        "generatorURL": "http://prometheus.shop.internal:9090/graph?g0.expr=" + expr.replace(" ", "+"),
        "fingerprint": _fingerprint(labels),
    }


def alertmanager_payload(alert: dict[str, Any]) -> dict[str, Any]:
    """The webhook body Alertmanager posts for one alert group (grouped by alertname)."""
    labels = alert["labels"]
    group = {"alertname": labels.get("alertname", "")}
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{group["alertname"]}"}}',
        "truncatedAlerts": 0,
        "status": alert["status"],
        "receiver": "vigil",
        "groupLabels": group,
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://alertmanager.shop.internal:9093",
        "alerts": [alert],
    }


def alert_notifications(
    timeline: Timeline, a: float, b: float, renotify_at: float | None = None
) -> list[dict[str, Any]]:
    """Alertmanager webhook bodies for (a, b]: alerts that started firing or resolved in the
    window, and, if ``renotify_at`` falls in it, every alert still firing then (as Alertmanager's
    repeat_interval, and so a newcomer sees the ones already firing when the demo starts)."""
    out: list[tuple[float, dict[str, Any]]] = []
    for interval in timeline.alert_intervals(a, b):
        if a < interval.starts <= b:
            out.append((interval.starts, _am_alert(interval, resolved=False)))
        elif (
            renotify_at is not None
            and a < renotify_at <= b
            and interval.starts <= renotify_at < interval.ends
        ):
            out.append((renotify_at, _am_alert(interval, resolved=False)))
        if a < interval.ends <= b:
            out.append((interval.ends, _am_alert(interval, resolved=True)))
    out.sort(key=lambda item: item[0])
    return [alertmanager_payload(alert) for _, alert in out]
