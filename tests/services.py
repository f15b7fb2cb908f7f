"""Real services for the tests: started on free loopback ports, torn down afterwards.

PostgreSQL and Redis already run on every machine (127.0.0.1:5432, :6379); each test session
gets its own PostgreSQL database and its own Redis key prefix, so concurrent runs never collide.
InfluxDB, a Chroma server, snmpd and the Redfish emulator are started here from their binaries.

When ``VIGIL_TEST_REQUIRE_SERVICES=1`` (CI sets it) a missing service fails the test loudly
instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REQUIRE_SERVICES = os.environ.get("VIGIL_TEST_REQUIRE_SERVICES") == "1"
VENV_BIN = Path(sys.executable).parent


def unavailable(reason: str) -> None:
    """Skip, or fail in CI, when a service a test needs is missing."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required test service missing: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f}s")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def spawn(name: str, args: list[str], workdir: Path, env: dict[str, str] | None = None) -> Process:
    log = workdir / f"{name}.log"
    handle = log.open("wb")
    popen = subprocess.Popen(
        args, stdout=handle, stderr=subprocess.STDOUT, cwd=workdir, env={**os.environ, **(env or {})}
    )
    return Process(name, popen, log)


def _started(proc: Process, check: Callable[[], bool], timeout: float) -> None:
    try:
        wait_until(lambda: proc.popen.poll() is None and check(), timeout, proc.name)
    except RuntimeError as exc:
        proc.stop()
        raise RuntimeError(f"{exc}; log tail:\n{proc.tail()}") from exc


# --- InfluxDB 1.x -----------------------------------------------------------------------------

INFLUX_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{dir}/meta"
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
  max-body-size = 0
[ifql]
  enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
"""


@contextlib.contextmanager
def influxdb(workdir: Path) -> Iterator[str]:
    binary = shutil.which("influxd")
    if binary is None:
        unavailable("influxd not installed (Debian package `influxdb`)")
    assert binary
    http_port, rpc_port = free_port(), free_port()
    config = workdir / "influxdb.conf"
    config.write_text(INFLUX_CONFIG.format(dir=workdir, http_port=http_port, rpc_port=rpc_port))
    proc = spawn("influxd", [binary, "-config", str(config)], workdir)
    url = f"http://127.0.0.1:{http_port}"
    _started(proc, lambda: httpx.get(f"{url}/ping", timeout=1).status_code == 204, 30)
    try:
        yield url
    finally:
        proc.stop()


# --- Chroma server ----------------------------------------------------------------------------


@contextlib.contextmanager
def chroma_server(workdir: Path) -> Iterator[str]:
    binary = VENV_BIN / "chroma"
    if not binary.exists():
        unavailable("the `chroma` command is not in the project's environment")
    port = free_port()
    proc = spawn(
        "chroma",
        [str(binary), "run", "--path", str(workdir / "chroma"), "--host", "127.0.0.1", "--port", str(port)],
        workdir,
        env={"ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    _started(proc, lambda: httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200, 60)
    try:
        yield url
    finally:
        proc.stop()


# --- snmpd ------------------------------------------------------------------------------------

SNMPD_CONFIG = """\
agentAddress udp:127.0.0.1:{port}
rocommunity public 127.0.0.1
sysName test-agent
sysLocation vigil-test-rack
createUser vigiluser SHA "vigil-auth-pass" AES "vigil-priv-pass"
rouser vigiluser priv
"""


@dataclass
class SnmpAgent:
    host: str
    port: int
    community: str = "public"
    v3_user: str = "vigiluser"
    v3_auth_key: str = "vigil-auth-pass"
    v3_priv_key: str = "vigil-priv-pass"


@contextlib.contextmanager
def snmpd(workdir: Path) -> Iterator[SnmpAgent]:
    binary = shutil.which("snmpd") or ("/usr/sbin/snmpd" if Path("/usr/sbin/snmpd").exists() else None)
    if binary is None:
        unavailable("snmpd not installed (Debian package `snmpd`)")
    assert binary
    port = free_port(socket.SOCK_DGRAM)
    config = workdir / "snmpd.conf"
    config.write_text(SNMPD_CONFIG.format(port=port))
    # -C: read only our config; persistent state (v3 users) goes to our own directory.
    proc = spawn(
        "snmpd",
        [
            binary,
            "-f",
            "-C",
            "-c",
            str(config),
            "-Lf",
            str(workdir / "snmpd.out"),
            "-p",
            str(workdir / "snmpd.pid"),
        ],
        workdir,
        env={"SNMP_PERSISTENT_DIR": str(workdir / "snmp-persist"), "MIBS": ""},
    )

    def answering() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            # A minimal SNMPv2c GET of sysName.0 with community "public".
            s.sendto(
                bytes.fromhex(
                    "302902010104067075626c6963a01c020400000001020100020100300e300c06082b060102010105000500"
                ),
                ("127.0.0.1", port),
            )
            return len(s.recv(2048)) > 0

    _started(proc, answering, 20)
    try:
        yield SnmpAgent("127.0.0.1", port)
    finally:
        proc.stop()


# --- Redfish emulator -------------------------------------------------------------------------


@contextlib.contextmanager
def redfish_emulator(workdir: Path) -> Iterator[str]:
    binary = VENV_BIN / "sushy-emulator"
    if not binary.exists():
        unavailable("sushy-emulator (PyPI sushy-tools) is not in the project's environment")
    port = free_port()
    proc = spawn(
        "sushy-emulator",
        [str(binary), "--fake", "-i", "127.0.0.1", "-p", str(port)],
        workdir,
    )
    url = f"http://127.0.0.1:{port}"
    _started(proc, lambda: httpx.get(f"{url}/redfish/v1/", timeout=1).status_code == 200, 30)
    try:
        yield url
    finally:
        proc.stop()


# --- PostgreSQL and Redis (already running) ---------------------------------------------------

POSTGRES_ADMIN_DSN = os.environ.get("VIGIL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("VIGIL_TEST_REDIS", "redis://127.0.0.1:6379/0")


def _asyncpg_run(dsn: str, sql: str) -> None:
    import asyncio

    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database for this session, dropped afterwards. Yields a SQLAlchemy async URL."""
    name = f"vigil_test_{uuid.uuid4().hex[:12]}"
    try:
        _asyncpg_run(POSTGRES_ADMIN_DSN, f'CREATE DATABASE "{name}"')
    except Exception as exc:  # connection refused, auth...
        unavailable(f"PostgreSQL not reachable at {POSTGRES_ADMIN_DSN}: {exc}")
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    try:
        yield f"{base}/{name}"
    finally:
        with contextlib.suppress(Exception):
            _asyncpg_run(POSTGRES_ADMIN_DSN, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_available() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except Exception as exc:
        unavailable(f"Redis not reachable at {REDIS_URL}: {exc}")


def redis_prefix() -> str:
    return f"vigiltest:{uuid.uuid4().hex[:10]}:"


def redis_cleanup(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i : i + 500])
