"""The metric store protocol: InfluxDB on the distributed profile, an embedded store otherwise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from vigil.domain.metrics import MetricQuery, Point, Series


class MetricStoreError(Exception):
    """The store refused or failed a request; the message says why."""


class MetricStoreUnavailable(MetricStoreError):
    """The store cannot be reached."""


MAX_BUCKETS_PER_SERIES = 2_000_000


def check_bucket_count(query: MetricQuery) -> None:
    """Refuse a query whose range / interval asks for more buckets per series than anyone can
    draw (it would fill memory with empty buckets); both stores apply the same limit."""
    if query.interval_s is None:
        return
    if query.interval_s <= 0:
        raise MetricStoreError("interval_s must be positive")
    buckets = (query.end_ns - query.start_ns) // (query.interval_s * 1_000_000_000) + 1
    if buckets > MAX_BUCKETS_PER_SERIES:
        raise MetricStoreError(
            f"the query asks for {buckets:,} buckets per series (limit {MAX_BUCKETS_PER_SERIES:,}): "
            "narrow the range or widen the interval"
        )


@runtime_checkable
class MetricStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise MetricStoreUnavailable when the store cannot be reached."""

    async def write(self, points: Sequence[Point]) -> None:
        """Store a batch. Points without a timestamp get the store's current time. The same
        series and timestamp overwrite (last write wins), so retries are safe."""

    async def query(self, query: MetricQuery) -> list[Series]:
        """Aggregate one field over [start, end), grouped by time bucket and tags. Empty
        buckets inside the range come back as None (InfluxQL's ``fill(null)``), except that
        ``count`` gives 0 there, as InfluxDB does. Without ``interval_s`` each series has one
        value, stamped ``start_ns``. Series without any value in the range are left out; a
        series missing a ``group_by`` tag groups under ''. Only numeric and boolean fields can
        be queried (booleans as 0/1; ``mean``/``sum``/``percentile`` refuse them)."""

    async def measurements(self) -> list[str]: ...

    async def field_keys(self, measurement: str) -> list[str]: ...

    async def tag_keys(self, measurement: str) -> list[str]: ...

    async def tag_values(self, measurement: str, key: str) -> list[str]: ...

    async def series(self, measurement: str) -> list[dict[str, str]]:
        """Distinct tag sets of a measurement."""

    async def delete_before(self, time_ns: int) -> None:
        """Retention: drop points older than ``time_ns``."""
