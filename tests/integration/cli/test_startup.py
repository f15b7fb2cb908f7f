"""`vigil` processes: clear one-line failures on bad settings, and a real `vigil up`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.services import free_port

VIGIL = [sys.executable, "-m", "vigil"]


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VIGIL, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout
    )


def _error_lines(stderr: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if line.strip()
        and "Vigil backends" not in line
        and not line.startswith(("┏", "┃", "┡", "│", "└", " "))
    ]


def test_malformed_url_fails_with_one_line(tmp_path: Path) -> None:
    result = _run(["up", "--port", "1"], {"VIGIL_DATA_DIR": str(tmp_path), "VIGIL_REDIS_URL": "nope://x"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and "VIGIL_REDIS_URL" in lines[0], result.stderr


def test_unreachable_server_fails_with_one_line_naming_the_setting(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = _run(
        ["worker"], {"VIGIL_DATA_DIR": str(tmp_path), "VIGIL_REDIS_URL": f"redis://127.0.0.1:{port}/0"}
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = _error_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: VIGIL_REDIS_URL: cannot use redis://127.0.0.1"), lines[0]


def test_unreachable_database_fails_with_one_line(tmp_path: Path) -> None:
    port = free_port()
    result = _run(
        ["migrate"],
        {
            "VIGIL_DATA_DIR": str(tmp_path),
            "VIGIL_DATABASE_URL": f"postgresql+asyncpg://x@127.0.0.1:{port}/db",
        },
    )
    assert result.returncode == 2
    lines = _error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: VIGIL_DATABASE_URL"), result.stderr


def test_vigil_up_serves_and_keeps_data_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "VIGIL_DATA_DIR": str(tmp_path / "data"), "VIGIL_LOG_LEVEL": "WARNING"}

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*VIGIL, "up", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError("vigil up did not become ready")

    def stop(proc: subprocess.Popen[str]) -> str:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        return out

    first = start()
    wait_ready(first)
    output = stop(first)
    password = (tmp_path / "data" / "initial-admin-password").read_text().strip()
    assert f"http://127.0.0.1:{port}" in output
    assert password in output  # first-run credentials are printed

    second = start()
    wait_ready(second)
    login = httpx.post(
        f"http://127.0.0.1:{port}/api/v1/auth/login", json={"username": "admin", "password": password}
    )
    assert login.status_code == 200
    assert password not in stop(second)  # not a first run any more
