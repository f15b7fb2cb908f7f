"""The embedded metric store: a DuckDB file in the data directory, no server.

It answers like InfluxDB 1.x does, so the two profiles give the same numbers:

* narrow rows ``(series_id, field_id, time, value DOUBLE)``; a series is a measurement plus its
  tag set, as in InfluxDB; the series and field catalogs are small tables that are also kept in
  memory, so tag filters and grouping are resolved before SQL runs;
* writes append to ``recent``; every ``compact_rows`` rows, ``recent`` moves to ``points`` sorted
  by series, field and time. With small row groups (16 Ki rows), a query for a few series then
  reads a few row groups per compacted window instead of every row (DuckDB skips row groups by
  their min/max), while the time order of arrival still lets time ranges skip old windows;
* the same series, field and timestamp overwrite (last write wins). Each series remembers the
  newest timestamp written; a batch that goes back in time for a series (a retry, late data, two
  lines for one instant) takes a slower path that deletes what it replaces, so the table never
  holds duplicates and queries need no deduplication;
* a field's type is fixed by its first write, like InfluxDB: a different type later is dropped
  and reported as a "field type conflict" after the rest of the batch is stored;
* integers, floats and booleans (as 0/1) are stored as DOUBLE, so integers beyond 2**53 lose
  precision. String fields are listed by ``field_keys`` but their values are not kept: this store
  is for numbers, and querying a string field raises MetricStoreError;
* aggregations follow InfluxQL: ``percentile`` is nearest-rank (InfluxDB's PERCENTILE, not
  ``percentile_cont``), ``last`` breaks a tie on time by the greater value (InfluxDB's reducer),
  ``mean``/``sum``/``percentile`` refuse boolean fields, buckets are aligned to the epoch,
  empty buckets are None, except for ``count`` where they are 0 (what InfluxDB answers), and a
  series without a single value in the range is left out.

DuckDB connections are not async: every call runs in a worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import numpy as np
import orjson

from vigil.domain.metrics import MetricQuery, Point, Series
from vigil.store.metrics.base import MetricStoreError, MetricStoreUnavailable, check_bucket_count

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, measurement VARCHAR NOT NULL, tags VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS fields (
    id INTEGER PRIMARY KEY, measurement VARCHAR NOT NULL, name VARCHAR NOT NULL, type VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS points (
    series_id INTEGER NOT NULL, field_id INTEGER NOT NULL, time BIGINT NOT NULL, value DOUBLE NOT NULL
);
CREATE TABLE IF NOT EXISTS recent (
    series_id INTEGER NOT NULL, field_id INTEGER NOT NULL, time BIGINT NOT NULL, value DOUBLE NOT NULL
);
"""
_ALL_POINTS = "(SELECT * FROM points UNION ALL SELECT * FROM recent)"
_ROW_GROUP_SIZE = 16384

_TYPE_NAMES: dict[type, str] = {float: "float", int: "integer", bool: "boolean", str: "string"}

_AGGREGATES = {
    "mean": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "sum": "sum(value)",
    "count": "count(value)",
    "last": "arg_max(value, row(time, value))",
    # InfluxQL's nearest rank: the k-th smallest, k = floor(n * p / 100 + 0.5), none if k < 1.
    "percentile": (
        "CASE WHEN floor(count(value) * $p / 100.0::DOUBLE + 0.5) >= 1 THEN "
        "list_sort(list(value))[CAST(floor(count(value) * $p / 100.0::DOUBLE + 0.5) AS BIGINT)] END"
    ),
}

_INT_MIN = -(2**63)
_UINT_MAX = 2**64 - 1


class EmbeddedMetricStore:
    """MetricStore in ``<data_dir>/metrics.duckdb``."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        filename: str = "metrics.duckdb",
        threads: int | None = None,
        compact_rows: int = 250_000,
    ):
        self.path = Path(data_dir) / filename
        self.threads = threads
        self.compact_rows = compact_rows
        self._recent_rows = 0
        self._db: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()
        self._reset_catalog()

    def _reset_catalog(self) -> None:
        # (measurement, tags as given or sorted) -> series id; either tag order finds the series.
        self._series_by_key: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self._series: dict[int, tuple[str, dict[str, str]]] = {}
        self._by_measurement: dict[str, list[int]] = {}
        # measurement -> field name -> (field id, type)
        self._fields: dict[str, dict[str, tuple[int, str]]] = {}
        self._newest: dict[int, int] = {}  # series id -> newest timestamp written
        self._next_series = 1
        self._next_field = 1

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self._locked, self._open)

    async def close(self) -> None:
        await asyncio.to_thread(self._locked, self._close)

    async def ping(self) -> None:
        if self._db is None:
            raise MetricStoreUnavailable(f"embedded metric store {self.path} is not open")

    def _open(self) -> None:
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        config: dict[str, str | bool | int | float | list[str]] = {}
        if self.threads:
            config["threads"] = self.threads
        try:
            db = duckdb.connect(config=config)
            path = str(self.path).replace("'", "''")
            db.execute(f"ATTACH '{path}' AS metrics (ROW_GROUP_SIZE {_ROW_GROUP_SIZE})")
            db.execute("USE metrics")
        except duckdb.Error as exc:
            raise MetricStoreUnavailable(f"cannot open embedded metric store {self.path}: {exc}") from exc
        db.execute(_SCHEMA)
        self._reset_catalog()
        for series_id, measurement, tags_json in db.execute(
            "SELECT id, measurement, tags FROM series"
        ).fetchall():
            tags = orjson.loads(tags_json)
            self._remember_series(series_id, measurement, tags, (measurement, tuple(sorted(tags.items()))))
        for field_id, measurement, name, kind in db.execute(
            "SELECT id, measurement, name, type FROM fields"
        ).fetchall():
            self._fields.setdefault(measurement, {})[name] = (field_id, kind)
            self._next_field = max(self._next_field, field_id + 1)
        self._newest = dict(
            db.execute(f"SELECT series_id, max(time) FROM {_ALL_POINTS} GROUP BY series_id").fetchall()
        )
        self._recent_rows = db.execute("SELECT count(*) FROM recent").fetchall()[0][0]
        self._db = db

    def _close(self) -> None:
        if self._db is not None:
            self._db.execute("CHECKPOINT metrics")
            self._db.close()
            self._db = None

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            return fn(*args)

    def _conn(self) -> duckdb.DuckDBPyConnection:
        if self._db is None:
            raise MetricStoreUnavailable(f"embedded metric store {self.path} is not open")
        return self._db

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(self._locked, fn, *args)

    # --- writes ----------------------------------------------------------------------------

    async def write(self, points: Sequence[Point]) -> None:
        await self._run(self._write, points)

    def _write(self, points: Sequence[Point]) -> None:
        db = self._conn()
        now = time.time_ns()
        series_ids: list[int] = []
        field_ids: list[int] = []
        times: list[int] = []
        values: list[float] = []
        new_series: list[tuple[int, str, str]] = []
        new_fields: list[tuple[int, str, str, str]] = []
        problems: list[str] = []
        goes_back = False
        series_by_key, series, newest, all_fields = (
            self._series_by_key,
            self._series,
            self._newest,
            self._fields,
        )

        for point in points:
            series_key = (point.measurement, tuple(point.tags.items()))
            known = series_by_key.get(series_key)
            if known is not None:
                series_id = known
                measurement = series[series_id][0]  # as stored (newlines replaced)
            else:
                series_id = 0
                measurement = point.measurement.replace("\n", " ")
                if not measurement:
                    problems.append("missing measurement")
                    continue
            fields = all_fields.get(measurement)
            if fields is None:
                fields = all_fields[measurement] = {}
            stamp = now if point.time_ns is None else point.time_ns
            stored = 0
            accepted = False
            for name, value in point.fields.items():
                entry = fields.get(name)
                # The usual case: a known float field, a finite value.
                if type(value) is float and entry is not None and entry[1] == "float" and value - value == 0:
                    field_ids.append(entry[0])
                    values.append(value)
                    stored += 1
                    accepted = True
                    continue
                kind = _TYPE_NAMES.get(type(value)) or _type_name(value)
                if kind == "float" and value - value != 0.0:  # type: ignore[operator]
                    problems.append(f'invalid float value for field "{name}": {value!r}')
                    continue
                if kind == "integer" and not _INT_MIN <= value <= _UINT_MAX:  # type: ignore[operator]
                    problems.append(f'integer out of range for field "{name}": {value}')
                    continue
                if entry is None:
                    entry = self._new_field(measurement, name, kind, fields, new_fields, problems)
                    if entry is None:
                        continue
                if kind != entry[1]:
                    problems.append(
                        f'field type conflict: input field "{name}" on measurement "{measurement}" '
                        f"is type {kind}, already exists as type {entry[1]}"
                    )
                    continue
                accepted = True
                if kind != "string":  # strings are listed, not stored (see the module docstring)
                    field_ids.append(entry[0])
                    values.append(float(value))
                    stored += 1
            if not accepted:
                continue
            if not series_id:
                series_id = self._new_series(point, measurement, series_key, new_series)
            last = newest.get(series_id)
            if last is None or stamp > last:
                newest[series_id] = stamp
            else:
                goes_back = True
            if stored == 1:
                series_ids.append(series_id)
                times.append(stamp)
            elif stored:
                series_ids.extend([series_id] * stored)
                times.extend([stamp] * stored)

        if new_series:
            db.register(
                "_new_series", _columns(new_series, ("id", "measurement", "tags"), (np.int32, object, object))
            )
            db.execute("INSERT INTO series SELECT * FROM _new_series")
            db.unregister("_new_series")
        if new_fields:
            db.register(
                "_new_fields",
                _columns(
                    new_fields, ("id", "measurement", "name", "type"), (np.int32, object, object, object)
                ),
            )
            db.execute("INSERT INTO fields SELECT * FROM _new_fields")
            db.unregister("_new_fields")
        if series_ids:
            batch: dict[str, np.ndarray] = {
                "series_id": np.array(series_ids, dtype=np.int32),
                "field_id": np.array(field_ids, dtype=np.int32),
                "time": np.array(times, dtype=np.int64),
                "value": np.array(values, dtype=np.float64),
            }
            db.register("_batch", batch)
            try:
                if not goes_back:
                    db.execute("INSERT INTO recent SELECT series_id, field_id, time, value FROM _batch")
                else:
                    self._overwrite(db, batch)
            finally:
                db.unregister("_batch")
            self._recent_rows += len(values)
            if self._recent_rows >= self.compact_rows:
                self._compact(db)
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise MetricStoreError(f"partial write: {shown} dropped={len(problems)}")

    def _overwrite(self, db: duckdb.DuckDBPyConnection, batch: dict[str, np.ndarray]) -> None:
        """Last write wins: replace stored points with the batch's, and within the batch keep
        the last point for each series, field and time."""
        batch["seq"] = np.arange(len(batch["time"]), dtype=np.int64)
        # The time bounds let DuckDB skip every row group outside the batch's time range.
        bounds = [int(batch["time"].min()), int(batch["time"].max())]
        db.execute("BEGIN TRANSACTION")
        try:
            for table in ("points", "recent"):
                db.execute(
                    f"DELETE FROM {table} USING _batch b WHERE {table}.time BETWEEN ? AND ? "
                    f"AND {table}.series_id = b.series_id AND {table}.field_id = b.field_id "
                    f"AND {table}.time = b.time",
                    bounds,
                )
            db.execute(
                "INSERT INTO recent SELECT series_id, field_id, time, arg_max(value, seq) "
                "FROM _batch GROUP BY series_id, field_id, time"
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _compact(self, db: duckdb.DuckDBPyConnection) -> None:
        """Move ``recent`` into ``points``, sorted so that each series sits in few row groups."""
        db.execute("BEGIN TRANSACTION")
        try:
            db.execute("INSERT INTO points SELECT * FROM recent ORDER BY series_id, field_id, time")
            db.execute("DELETE FROM recent")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._recent_rows = 0

    def _new_series(
        self,
        point: Point,
        measurement: str,
        series_key: tuple[str, tuple[tuple[str, str], ...]],
        new_series: list[tuple[int, str, str]],
    ) -> int:
        # InfluxDB cannot store empty tag keys or values, and has no newlines in names.
        tags = {k.replace("\n", " "): v.replace("\n", " ") for k, v in point.tags.items() if k and v}
        canonical = (measurement, tuple(sorted(tags.items())))
        series_id = self._series_by_key.get(canonical)
        if series_id is None:
            series_id = self._next_series
            self._remember_series(series_id, measurement, tags, canonical)
            new_series.append(
                (series_id, measurement, orjson.dumps(tags, option=orjson.OPT_SORT_KEYS).decode())
            )
        self._series_by_key[series_key] = series_id
        return series_id

    def _remember_series(
        self,
        series_id: int,
        measurement: str,
        tags: dict[str, str],
        canonical: tuple[str, tuple[tuple[str, str], ...]],
    ) -> None:
        self._series_by_key[canonical] = series_id
        self._series[series_id] = (measurement, tags)
        self._by_measurement.setdefault(measurement, []).append(series_id)
        self._next_series = max(self._next_series, series_id + 1)

    def _new_field(
        self,
        measurement: str,
        name: str,
        kind: str,
        fields: dict[str, tuple[int, str]],
        new_fields: list[tuple[int, str, str, str]],
        problems: list[str],
    ) -> tuple[int, str] | None:
        if not name:
            problems.append(f'missing field key on measurement "{measurement}"')
            return None
        if kind == "unsupported":
            problems.append(f'unsupported value type for field "{name}"')
            return None
        stored_name = name.replace("\n", " ")
        entry = fields.get(stored_name)
        if entry is None:
            entry = (self._next_field, kind)
            self._next_field += 1
            fields[stored_name] = entry
            new_fields.append((entry[0], measurement, stored_name, kind))
        fields[name] = entry
        return entry

    async def delete_before(self, time_ns: int) -> None:
        await self._run(self._delete_before, int(time_ns))

    def _delete_before(self, time_ns: int) -> None:
        db = self._conn()
        db.execute("DELETE FROM points WHERE time < ?", [time_ns])
        db.execute("DELETE FROM recent WHERE time < ?", [time_ns])
        self._recent_rows = db.execute("SELECT count(*) FROM recent").fetchall()[0][0]
        # As InfluxDB does, series left without points go, and measurements left without series.
        remaining = {row[0] for row in db.execute(f"SELECT DISTINCT series_id FROM {_ALL_POINTS}").fetchall()}
        gone = [series_id for series_id in self._series if series_id not in remaining]
        if not gone:
            return
        db.execute("DELETE FROM series WHERE list_contains(?, id)", [gone])
        for series_id in gone:
            measurement, _ = self._series.pop(series_id)
            self._by_measurement[measurement].remove(series_id)
            self._newest.pop(series_id, None)
        self._series_by_key = {k: v for k, v in self._series_by_key.items() if v in self._series}
        for measurement in [m for m, ids in self._by_measurement.items() if not ids]:
            del self._by_measurement[measurement]
            self._fields.pop(measurement, None)
            db.execute("DELETE FROM fields WHERE measurement = ?", [measurement])

    # --- catalog -----------------------------------------------------------------------------

    async def measurements(self) -> list[str]:
        return await self._run(lambda: sorted(m for m, ids in self._by_measurement.items() if ids))

    async def field_keys(self, measurement: str) -> list[str]:
        def keys() -> list[str]:
            fields = self._fields.get(measurement, {})
            return sorted({name.replace("\n", " ") for name in fields})

        return await self._run(keys)

    async def tag_keys(self, measurement: str) -> list[str]:
        return await self._run(lambda: sorted({key for tags in self._tag_sets(measurement) for key in tags}))

    async def tag_values(self, measurement: str, key: str) -> list[str]:
        return await self._run(
            lambda: sorted({tags[key] for tags in self._tag_sets(measurement) if key in tags})
        )

    async def series(self, measurement: str) -> list[dict[str, str]]:
        return await self._run(
            lambda: sorted(
                (dict(tags) for tags in self._tag_sets(measurement)), key=lambda t: sorted(t.items())
            )
        )

    def _tag_sets(self, measurement: str) -> list[dict[str, str]]:
        self._conn()
        return [self._series[series_id][1] for series_id in self._by_measurement.get(measurement, ())]

    # --- queries ---------------------------------------------------------------------------

    async def query(self, query: MetricQuery) -> list[Series]:
        return await self._run(self._query, query)

    def _query(self, query: MetricQuery) -> list[Series]:
        db = self._conn()
        aggregate = _AGGREGATES.get(query.aggregation)
        if aggregate is None:
            raise MetricStoreError(f"unknown aggregation {query.aggregation!r}")
        if query.aggregation == "percentile" and query.percentile is None:
            raise MetricStoreError("a percentile query needs `percentile`")
        check_bucket_count(query)
        entry = self._fields.get(query.measurement, {}).get(query.field)
        if entry is None:
            return []
        field_id, kind = entry
        if kind == "string":
            raise MetricStoreError(
                f"field {query.field!r} of {query.measurement!r} holds str values; "
                "only numeric and boolean fields can be queried"
            )
        if kind == "boolean" and query.aggregation in ("mean", "sum", "percentile"):
            raise MetricStoreError(
                f"unsupported {query.aggregation} iterator type: boolean field {query.field!r}"
            )

        groups: dict[tuple[str, ...], int] = {}
        series_ids: list[int] = []
        group_of: list[int] = []
        for key, wanted in query.where:
            if not wanted:
                raise MetricStoreError(f"where filter on {key!r} lists no values")
        for series_id in self._by_measurement.get(query.measurement, ()):
            tags = self._series[series_id][1]
            if all(tags.get(key, "") in wanted for key, wanted in query.where):
                group_key = tuple(tags.get(key, "") for key in query.group_by)
                series_ids.append(series_id)
                group_of.append(groups.setdefault(group_key, len(groups)))
        if not series_ids or query.end_ns <= query.start_ns:
            return []

        params: dict[str, Any] = {"field": field_id, "start": query.start_ns, "end": query.end_ns}
        if query.aggregation == "percentile":
            params["p"] = float(query.percentile)  # type: ignore[arg-type]
        if query.interval_s is None:
            bucket = "0"
        else:
            interval = query.interval_s * 1_000_000_000
            origin = query.start_ns - query.start_ns % interval
            params |= {"origin": origin, "interval": interval}
            bucket = "(time - $origin) // $interval"
        # Field ids belong to one measurement, so the field filter alone selects all its series.
        every_series = len(series_ids) == len(self._by_measurement[query.measurement])
        series_filter = "true" if every_series else "series_id IN (SELECT unnest($ids))"
        if not every_series:
            params["ids"] = series_ids
        joined = False
        if len(groups) == 1:
            group = "0"
        elif len(groups) == len(series_ids):  # one series per group: group by series, map after
            group = "series_id"
        else:
            db.register(
                "_groups", {"sid": np.array(series_ids, np.int32), "grp": np.array(group_of, np.int32)}
            )
            group, series_filter, joined = "grp", "true", True
            params.pop("ids", None)
        source = f"{_ALL_POINTS} JOIN _groups ON series_id = sid" if joined else _ALL_POINTS
        sql = (
            f"SELECT {group} AS grp, {bucket} AS bucket, {aggregate} AS value FROM {source} "
            f"WHERE {series_filter} AND field_id = $field AND time >= $start AND time < $end GROUP BY ALL"
        )
        try:
            result = db.execute(sql, params).fetchnumpy()
        finally:
            if joined:
                db.unregister("_groups")
        if group == "series_id":
            group_index = np.zeros(max(series_ids) + 1, dtype=np.int64)
            group_index[series_ids] = group_of
            result["grp"] = group_index[np.asarray(result["grp"], dtype=np.int64)]
        return _series_from(query, groups, result)


def _series_from(
    query: MetricQuery, groups: dict[tuple[str, ...], int], result: dict[str, Any]
) -> list[Series]:
    """Dense series (every bucket of the range, InfluxQL's fill(null)) from the sparse rows."""
    group_ids = np.asarray(result["grp"], dtype=np.int64)
    if len(group_ids) == 0:
        return []
    buckets = np.asarray(result["bucket"], dtype=np.int64)
    values = np.ma.filled(result["value"].astype(np.float64), np.nan)
    if query.interval_s is None:
        times = [query.start_ns]
        width = 1
    else:
        interval = query.interval_s * 1_000_000_000
        origin = query.start_ns - query.start_ns % interval
        last = (query.end_ns - 1) - (query.end_ns - 1) % interval
        times = list(range(origin, last + 1, interval))
        width = len(times)
    empty = 0.0 if query.aggregation == "count" else np.nan
    grid = np.full((len(groups), width), empty, dtype=np.float64)
    grid[group_ids, buckets] = values
    # InfluxDB leaves out a series whose every value is null (e.g. percentile 0).
    present = set(group_ids.tolist()) & set(np.flatnonzero(~np.isnan(grid).all(axis=1)).tolist())
    if query.aggregation == "count":
        rows: Any = grid.tolist()
    else:
        cells = grid.astype(object)
        cells[np.isnan(grid)] = None
        rows = cells.tolist()
    series = []
    for group_key, group_id in sorted(groups.items()):
        if group_id in present:
            tags = dict(zip(query.group_by, group_key, strict=True))
            series.append(Series(query.measurement, query.field, tags, list(times), rows[group_id]))
    return series


def _columns(
    rows: list[tuple[Any, ...]], names: tuple[str, ...], dtypes: tuple[Any, ...]
) -> dict[str, np.ndarray]:
    return {
        name: np.array(column, dtype=dtype)
        for name, column, dtype in zip(names, zip(*rows, strict=True), dtypes, strict=True)
    }


def _type_name(value: object) -> str:
    """Field type of a value that is not exactly float/int/bool/str (subclasses, numpy scalars)."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return "boolean"
    if isinstance(value, int) or hasattr(value, "__index__"):
        return "integer"
    if isinstance(value, float) or hasattr(value, "__float__"):
        return "float"
    if isinstance(value, str):
        return "string"
    return "unsupported"
