"""Fixtures for ingestion tests (both profiles, through the ``api`` fixture)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.integration.conftest import Api
from tests.integration.ingest.helpers import Ingest, make_ingest
from tests.live_server import LiveServer


@pytest.fixture
async def ingest(api: Api) -> AsyncIterator[Ingest]:
    async with api.anonymous() as client:
        yield await make_ingest(api.backends, client)


@pytest.fixture
async def live(api: Api) -> AsyncIterator[LiveServer]:
    """The app on a real port (``live.url``), sharing the ``api`` fixture's backends."""
    # sentry-sdk's transport may hold a connection open past the server's shutdown wait
    with contextlib.suppress(TimeoutError):
        async with LiveServer(api.backends) as server:
            yield server
