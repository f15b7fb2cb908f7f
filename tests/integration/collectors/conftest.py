"""Local vendor servers for the collector tests (see tests/fakes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.datadog import FakeDatadog
from tests.fakes.redfish_power import FakeRedfishBMC
from tests.fakes.splunk import FakeSplunk
from tests.fakes.thousandeyes import FakeThousandEyes


@pytest.fixture
def datadog_fake() -> Iterator[FakeDatadog]:
    with FakeDatadog() as fake:
        yield fake


@pytest.fixture
def splunk_fake() -> Iterator[FakeSplunk]:
    with FakeSplunk() as fake:
        yield fake


@pytest.fixture
def thousandeyes_fake() -> Iterator[FakeThousandEyes]:
    with FakeThousandEyes() as fake:
        yield fake


@pytest.fixture
def bmc() -> Iterator[FakeRedfishBMC]:
    with FakeRedfishBMC() as fake:
        yield fake
