"""The simulated fleet: hosts, what runs on them, and how each one usually behaves.

About twenty machines of a small web shop: load balancers, web servers, the checkout (Python)
and orders (Java) application servers, a PostgreSQL primary and replica, Redis, RabbitMQ,
Celery workers, three Kubernetes nodes and a core switch. Every host gets a fixed personality
(CPU level, memory use, disk sizes, boot time...) drawn from the seed, so two runs with the same
``--seed`` describe the same fleet.

``run_demo_in_process`` is what ``vigil up --demo`` runs next to the API: it creates the demo
sources and their ingest tokens in the database, then sends the fleet's telemetry to the API
over HTTP, through the same endpoints a real agent would use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from vigil.demo.noise import stable_seed
from vigil.demo.scenarios import TIMELINE

if TYPE_CHECKING:
    from vigil.backends import Backends
    from vigil.demo.sender import DemoTokens

log = logging.getLogger(__name__)

Role = Literal["lb", "web", "app", "db", "cache", "queue", "worker", "k8s", "switch"]
TelegrafFormat = Literal["influx", "json"]

GIB = 1024**3

# Name, role, services. The order is the order hosts are dropped in when --hosts asks for
# fewer: those the incidents need come first.
_BASE_FLEET: tuple[tuple[str, Role, tuple[str, ...]], ...] = (
    ("web-03", "web", ("nginx", "storefront")),
    ("app-02", "app", ("orders",)),
    ("app-01", "app", ("checkout",)),
    ("app-03", "app", ("checkout",)),
    ("db-01", "db", ("postgresql",)),
    ("sw-core-01", "switch", ()),
    ("lb-01", "lb", ("nginx",)),
    ("web-01", "web", ("nginx", "storefront")),
    ("k8s-node-01", "k8s", ("kubelet", "catalog", "search")),
    ("worker-01", "worker", ("billing-worker",)),
    ("db-02", "db", ("postgresql",)),
    ("cache-01", "cache", ("redis",)),
    ("lb-02", "lb", ("nginx",)),
    ("web-02", "web", ("nginx", "storefront")),
    ("app-04", "app", ("orders",)),
    ("mq-01", "queue", ("rabbitmq",)),
    ("k8s-node-02", "k8s", ("kubelet", "catalog", "users")),
    ("worker-02", "worker", ("billing-worker",)),
    ("web-04", "web", ("apache2", "storefront")),
    ("k8s-node-03", "k8s", ("kubelet", "search", "users")),
)
MIN_HOSTS = 6  # the hosts the scripted incidents happen on
_EXTRA_ROLES: tuple[tuple[str, Role, tuple[str, ...]], ...] = (
    ("app", "app", ("orders",)),
    ("web", "web", ("nginx", "storefront")),
    ("k8s-node", "k8s", ("kubelet", "catalog", "users")),
    ("worker", "worker", ("billing-worker",)),
)
_SUBNET: dict[Role, int] = {
    "lb": 1,
    "web": 2,
    "app": 3,
    "db": 4,
    "cache": 5,
    "queue": 5,
    "worker": 6,
    "k8s": 7,
    "switch": 20,
}
# Typical CPU user % at the daily peak and memory used %, per role.
_CPU_BASE: dict[Role, float] = {
    "lb": 9,
    "web": 16,
    "app": 24,
    "db": 18,
    "cache": 6,
    "queue": 11,
    "worker": 28,
    "k8s": 33,
    "switch": 12,
}
_MEM_BASE: dict[Role, float] = {
    "lb": 28,
    "web": 38,
    "app": 46,
    "db": 71,
    "cache": 63,
    "queue": 42,
    "worker": 52,
    "k8s": 58,
    "switch": 35,
}


@dataclass(frozen=True, slots=True)
class Disk:
    path: str
    device: str
    total_bytes: int
    base_pct: float  # used % on a normal day
    growth_pct_per_day: float  # slow organic growth
    fstype: str = "ext4"


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    role: Role
    services: tuple[str, ...]
    ip: str
    cpus: int
    mem_total: int
    disks: tuple[Disk, ...]
    telegraf_format: TelegrafFormat
    cpu_base: float
    cpu_amplitude: float  # share of cpu_base that follows the daily cycle
    mem_base_pct: float
    net_bytes_per_s: float
    boot_age_s: float  # uptime at the anchor
    os: str

    @property
    def is_linux(self) -> bool:
        return self.role != "switch"


@dataclass(frozen=True, slots=True)
class Fleet:
    hosts: tuple[Host, ...]
    seed: int

    def host(self, name: str) -> Host | None:
        return next((h for h in self.hosts if h.name == name), None)

    def with_role(self, role: Role) -> list[Host]:
        return [h for h in self.hosts if h.role == role]

    def running(self, service: str) -> list[Host]:
        return [h for h in self.hosts if service in h.services]


def build_fleet(count: int = 20, seed: int = 1) -> Fleet:
    """``count`` hosts (at least MIN_HOSTS, so every scripted incident has its host)."""
    if count < MIN_HOSTS:
        raise ValueError(f"hosts: at least {MIN_HOSTS} are needed (the incidents happen on them)")
    chosen = list(_BASE_FLEET[:count])
    numbers: dict[str, int] = {}
    for name, _, _ in _BASE_FLEET:
        prefix, _, number = name.rpartition("-")
        numbers[prefix] = max(numbers.get(prefix, 0), int(number))
    extra = 0
    while len(chosen) < count:
        prefix, role, services = _EXTRA_ROLES[extra % len(_EXTRA_ROLES)]
        numbers[prefix] = numbers.get(prefix, 0) + 1
        chosen.append((f"{prefix}-{numbers[prefix]:02d}", role, services))
        extra += 1
    chosen.sort(key=lambda item: (list(_SUBNET).index(item[1]), item[0]))
    return Fleet(
        tuple(_make_host(name, role, services, i, seed) for i, (name, role, services) in enumerate(chosen)),
        seed,
    )


def _make_host(name: str, role: Role, services: tuple[str, ...], index: int, seed: int) -> Host:
    rng = random.Random(stable_seed(seed, "host", name))
    cpus = {"db": 16, "k8s": 8, "app": 8, "worker": 4, "switch": 2}.get(role, 4)
    mem_gib = {"db": 64, "k8s": 32, "app": 16, "cache": 16, "worker": 8, "switch": 1}.get(role, 8)
    disks = [Disk("/", "sda1", 50 * GIB, rng.uniform(28, 46), rng.uniform(0.02, 0.08))]
    if role == "web":
        base = _incident_disk_base(name, "/var") or rng.uniform(30, 50)
        disks.append(Disk("/var", "sdb1", 200 * GIB, base, rng.uniform(0.05, 0.15)))
    elif role == "db":
        disks.append(Disk("/var/lib/postgresql", "nvme0n1p1", 1000 * GIB, rng.uniform(55, 66), 0.1))
    elif role == "k8s":
        disks.append(Disk("/var/lib/containerd", "sdb1", 200 * GIB, rng.uniform(35, 55), 0.05))
    elif role == "queue":
        disks.append(Disk("/var/lib/rabbitmq", "sdb1", 100 * GIB, rng.uniform(12, 25), 0.02))
    return Host(
        name=name,
        role=role,
        services=services,
        ip=f"10.20.{_SUBNET[role]}.{10 + index}",
        cpus=cpus,
        mem_total=mem_gib * GIB,
        disks=tuple(disks) if role != "switch" else (),
        telegraf_format="json" if role in ("k8s", "worker") else "influx",
        cpu_base=_CPU_BASE[role] * rng.uniform(0.8, 1.2),
        cpu_amplitude=rng.uniform(0.35, 0.6),
        mem_base_pct=_MEM_BASE[role] + rng.uniform(-4, 4),
        net_bytes_per_s={"lb": 9e6, "web": 4e6, "db": 6e6, "switch": 4e7}.get(role, 1.5e6)
        * rng.uniform(0.7, 1.3),
        boot_age_s=rng.uniform(3, 90) * 86400,
        os="IOS-XE 17.9" if role == "switch" else rng.choice(("Ubuntu 22.04", "Ubuntu 24.04", "Debian 12")),
    )


def _incident_disk_base(host: str, path: str) -> float | None:
    for incident in TIMELINE:
        if incident.kind == "disk_fill" and incident.host == host and incident.params.get("path") == path:
            return float(incident.params.get("base_pct", 41.0))
    return None


# --- vigil up --demo -------------------------------------------------------------------------

DEMO_SOURCE_TYPES = ("telegraf", "logs", "sentry", "alertmanager")
DEMO_TOKEN_NAME = "demo fleet"


async def ensure_demo_sources(backends: Backends) -> DemoTokens:
    """The demo's push sources (``demo-telegraf``, ``demo-logs``, ``demo-sentry``,
    ``demo-alertmanager``) and a fresh ingest token for each.

    Idempotent: sources are created once and reused; a token's secret is never stored, so each
    start mints new ones and revokes the demo tokens of earlier starts. The tokens belong to the
    first active admin (who started Vigil).
    """
    from sqlalchemy import select, update

    from vigil.api.auth import forget_cached_tokens
    from vigil.api.routes.tokens import issue_token
    from vigil.demo.sender import DemoTokens
    from vigil.store.models import ApiToken, Source, User
    from vigil.store.types import utcnow

    secrets: dict[str, str] = {}
    source_ids: dict[str, int] = {}
    async with backends.db.session() as session:
        admin = (
            await session.execute(
                select(User).where(User.role == "admin", User.is_active.is_(True)).order_by(User.id).limit(1)
            )
        ).scalar_one_or_none()
        if admin is None:
            raise RuntimeError("no active admin user to own the demo's ingest tokens")
        for source_type in DEMO_SOURCE_TYPES:
            name = f"demo-{source_type}"
            row = (await session.execute(select(Source).where(Source.name == name))).scalar_one_or_none()
            if row is None:
                row = Source(
                    name=name,
                    type=source_type,
                    config={"demo": True, "note": "simulated fleet of `vigil up --demo`"},
                    enabled=True,
                )
                session.add(row)
                await session.flush()
            await session.execute(
                update(ApiToken)
                .where(
                    ApiToken.source_id == row.id,
                    ApiToken.name == DEMO_TOKEN_NAME,
                    ApiToken.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow())
            )
            _, secret = await issue_token(session, admin.id, DEMO_TOKEN_NAME, ["ingest"], source_id=row.id)
            secrets[source_type] = secret
            source_ids[source_type] = row.id
    forget_cached_tokens()
    return DemoTokens(
        telegraf=secrets["telegraf"],
        logs=secrets["logs"],
        sentry=secrets["sentry"],
        alertmanager=secrets["alertmanager"],
        sentry_project=str(source_ids["sentry"]),
    )


IN_PROCESS_BACKFILL_S = 24 * 3600.0
SENT_UNTIL_KEY = "demo_sent_until"  # in demo-telegraf's config: how far a previous run got
SAVE_EVERY_S = 60.0


async def _sent_until(backends: Backends) -> float | None:
    from sqlalchemy import select

    from vigil.store.models import Source

    async with backends.db.session() as session:
        config = (
            await session.execute(select(Source.config).where(Source.name == "demo-telegraf"))
        ).scalar_one_or_none()
    value = (config or {}).get(SENT_UNTIL_KEY)
    return float(value) if isinstance(value, int | float) else None


async def _save_sent_until(backends: Backends, t: float) -> None:
    from sqlalchemy import select

    from vigil.store.models import Source

    async with backends.db.session() as session:
        row = (
            await session.execute(select(Source).where(Source.name == "demo-telegraf"))
        ).scalar_one_or_none()
        if row is not None:
            row.config = {**(row.config or {}), SENT_UNTIL_KEY: t}


async def run_demo_in_process(backends: Backends, url: str, stopping: asyncio.Event) -> None:
    """``vigil up --demo``: demo sources and tokens, a day of history, then live telemetry
    against ``url`` until ``stopping`` is set. Never raises: a failing demo must not take the
    API down with it.

    On a restart with the same data directory only the gap since the previous run is
    backfilled (it remembers how far it got), so history is not sent twice; the incident script
    starts afresh, so the first minutes show incidents again.
    """
    from vigil.demo.runner import DemoOptions, DemoRunner
    from vigil.demo.sender import DemoError, HttpSink

    try:
        tokens = await ensure_demo_sources(backends)
        previous = await _sent_until(backends)
    except Exception:
        log.exception("demo: cannot create the demo sources; the simulated fleet is not running")
        return
    backfill = IN_PROCESS_BACKFILL_S
    if previous is not None:
        backfill = min(IN_PROCESS_BACKFILL_S, max(0.0, time.time() - previous))
        log.info("demo: a previous run sent telemetry up to %.0f s ago; backfilling only that gap", backfill)
    options = DemoOptions(backfill_s=backfill)
    sink = HttpSink(url, tokens, stopping)
    runner = DemoRunner(options, sink, progress=lambda text: log.info("demo: %s", text))

    async def remember_progress() -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY_S)
            if runner.sim_now is not None:
                try:
                    await _save_sent_until(backends, runner.sim_now)
                except Exception as exc:  # the database may be briefly unavailable; try again later
                    log.warning("demo: cannot record progress: %s", exc)

    saver = asyncio.create_task(remember_progress())
    try:
        await runner.run(stopping)
        log.info("demo: stopped after sending %s", sink.stats.summary())
    except DemoError as exc:
        log.error("demo: stopped: %s", exc)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("demo: the simulated fleet failed")
    finally:
        saver.cancel()
        await asyncio.gather(saver, return_exceptions=True)
        await sink.close()
        if runner.sim_now is not None:
            with contextlib.suppress(Exception):
                await _save_sent_until(backends, runner.sim_now)
