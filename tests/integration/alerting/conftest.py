"""Fixtures for alerting tests: local notification receivers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.notify_servers import NotifyServer, SmtpServer


@pytest.fixture
def notify_server() -> Iterator[NotifyServer]:
    with NotifyServer() as server:
        yield server


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server
