"""Vigil processes for the benchmarks that run it as a user would: start, wait until up, stop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

VIGIL = [sys.executable, "-m", "vigil"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


@contextlib.contextmanager
def vigil_process(
    name: str, args: list[str], env: dict[str, str], workdir: Path, command: list[str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``vigil <args>`` (or ``command``) with its output in ``workdir/<name>.log``; stopped on exit."""
    log = (workdir / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [*(command or VIGIL), *args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    """Until ``url`` answers 200; fails with the log's tail when the process exits or time runs out."""
    async with httpx.AsyncClient(timeout=2) as client:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{log.name} exited early:\n{log_tail(log)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not up within {timeout_s:.0f}s:\n{log_tail(log)}")
            await asyncio.sleep(0.2)
