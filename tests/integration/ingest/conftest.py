"""Fixtures for ingestion tests (both profiles, through the ``api`` fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.conftest import Api
from tests.integration.ingest.helpers import Ingest, LiveServer, make_ingest


@pytest.fixture
async def ingest(api: Api) -> AsyncIterator[Ingest]:
    async with api.anonymous() as client:
        yield await make_ingest(api.backends, client)


@pytest.fixture
async def live(api: Api) -> AsyncIterator[LiveServer]:
    """The app on a real port (``live.url``), sharing the ``api`` fixture's backends."""
    async with LiveServer(api.backends) as server:
        yield server
