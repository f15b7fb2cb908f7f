"""The errors ingest stage and the error-group API on both profiles: grouping, counts,
retention of recent events, new-group and regression alerts, idempotent redelivery."""

from __future__ import annotations

import time
import uuid

from tests.integration.conftest import Api
from tests.integration.ingest.helpers import SPY, drain
from vigil.backends import Backends
from vigil.domain import codec
from vigil.domain.alerts import AlertSignal
from vigil.domain.errors import ErrorEvent, StackFrame
from vigil.pipeline import topology
from vigil.pipeline.stages.errors_ingest import ErrorsIngestStage
from vigil.store.models import AuditEntry

FRAMES = [
    StackFrame(filename="app/api.py", module="app.api", function="handler", lineno=12, in_app=True),
    StackFrame(filename="app/repo.py", module="app.repo", function="load", lineno=40, in_app=True),
]


def _event(
    value: str = "user 42", *, project: str = "3", env: str = "prod", release: str = "1.0", **kw: object
) -> ErrorEvent:
    fields: dict[str, object] = {
        "event_id": uuid.uuid4().hex,
        "time_ns": time.time_ns(),
        "project": project,
        "level": "error",
        "exception_type": "KeyError",
        "exception_value": value,
        "frames": FRAMES,
        "release": release,
        "environment": env,
        "host": "api-1",
        "service": "accounts",
        "raw": {"note": value},
    }
    fields.update(kw)
    return ErrorEvent(**fields)  # type: ignore[arg-type]


async def _publish(backends: Backends, events: list[ErrorEvent], source: str | None = "sentry-a") -> None:
    await backends.bus.publish(
        topology.ERRORS, codec.encode_dicts("errors", [e.to_dict() for e in events], source)
    )


async def _signals(backends: Backends) -> list[AlertSignal]:
    out: list[AlertSignal] = []
    while messages := await backends.bus.consume(
        topology.EXTERNAL_ALERTS, SPY, "spy", count=100, block_ms=10
    ):
        await backends.bus.ack(topology.EXTERNAL_ALERTS, SPY, [m.id for m in messages])
        out += [AlertSignal.from_dict(i) for m in messages for i in codec.decode(m.payload)["items"]]
    return out


async def _setup(backends: Backends, events_per_group: int = 50) -> ErrorsIngestStage:
    stage = ErrorsIngestStage(backends.db, backends.bus, events_per_group=events_per_group)
    await backends.bus.ensure_group(stage.topic, stage.group)
    await backends.bus.ensure_group(topology.EXTERNAL_ALERTS, SPY)
    return stage


async def test_grouping_counts_retention_and_the_new_group_alert(api: Api) -> None:
    backends = api.backends
    stage = await _setup(backends, events_per_group=3)
    first = _event("user 1", release="1.0", time_ns=time.time_ns() - 10**12)
    await _publish(backends, [first])
    await drain(backends, [stage])
    [signal] = await _signals(backends)
    assert signal.origin == "error" and signal.title == "New error: KeyError: user 1"
    assert signal.severity == "high" and signal.fingerprint and signal.fingerprint.startswith("error-group:")
    assert (signal.host, signal.service, signal.labels["environment"]) == ("api-1", "accounts", "prod")

    later = [_event(f"user {n}", env="staging" if n == 4 else "prod", release="1.1") for n in range(2, 6)]
    await _publish(backends, later[:2])
    await _publish(backends, later[2:])
    await drain(backends, [stage])
    assert await _signals(backends) == []  # same group: no new alert
    [group] = (await api.client.get("/api/v1/errors")).json()["items"]
    assert group["count"] == 5
    assert (group["first_release"], group["last_release"]) == ("1.0", "1.1")
    assert sorted(group["environments"]) == ["prod", "staging"]
    assert group["source"] == "sentry-a" and group["status"] == "unresolved"
    detail = (await api.client.get(f"/api/v1/errors/{group['id']}", params={"events": 10})).json()
    assert [e["exception_value"] for e in detail["events"]] == ["user 5", "user 4", "user 3"]  # newest 3 kept
    event = detail["events"][0]
    full = (await api.client.get(f"/api/v1/errors/{group['id']}/events/{event['event_id']}")).json()
    assert full["raw"] == {"note": "user 5"} and [f["function"] for f in full["frames"]] == [
        "handler",
        "load",
    ]


async def test_redelivered_events_are_not_counted_twice(backends: Backends) -> None:
    stage = await _setup(backends)
    events = [_event(), _event()]
    await _publish(backends, events)
    messages = await backends.bus.consume(topology.ERRORS, stage.group, "c", count=10, block_ms=50)
    await stage.handle(messages)
    await stage.handle(messages)  # as if the worker died before acking
    await _publish(backends, [events[0]])  # a client retrying a send it thought was lost
    await drain(backends, [stage])
    async with backends.db.session() as session:
        from sqlalchemy import select

        from vigil.store.models import ErrorEventRecord, ErrorGroup

        counts = (await session.execute(select(ErrorGroup.count))).scalars().all()
        stored = (await session.execute(select(ErrorEventRecord.id))).scalars().all()
    assert counts == [2] and len(stored) == 2


async def test_resolve_then_regression(api: Api) -> None:
    backends = api.backends
    stage = await _setup(backends)
    await _publish(backends, [_event()])
    await drain(backends, [stage])
    [created] = await _signals(backends)
    [group] = (await api.client.get("/api/v1/errors")).json()["items"]

    resolved = await api.client.patch(f"/api/v1/errors/{group['id']}", json={"status": "resolved"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    assert resolved.json()["resolved_at"]
    [resolution] = await _signals(backends)
    assert resolution.resolved and resolution.fingerprint == created.fingerprint
    async with backends.db.session() as session:
        from sqlalchemy import select

        entries = (
            await session.execute(select(AuditEntry).where(AuditEntry.action == "error_group.update"))
        ).scalars()
        [entry] = list(entries)
    assert (
        entry.before
        and entry.after
        and (entry.before["status"], entry.after["status"]) == ("unresolved", "resolved")
    )

    await _publish(backends, [_event("user 9")])
    await drain(backends, [stage])
    [regression] = await _signals(backends)
    assert regression.title.startswith("Regression: ") and not regression.resolved
    assert regression.fingerprint == created.fingerprint
    after = (await api.client.get(f"/api/v1/errors/{group['id']}")).json()
    assert (after["status"], after["times_regressed"], after["count"]) == ("unresolved", 1, 2)
    assert after["regressed_at"] and after["resolved_at"] is None

    ignored = await api.client.patch(f"/api/v1/errors/{group['id']}", json={"status": "ignored"})
    assert ignored.status_code == 200
    await _signals(backends)
    await _publish(backends, [_event("user 10")])
    await drain(backends, [stage])
    assert await _signals(backends) == []  # ignored groups count but stay quiet


async def test_search_filters_pagination_and_permissions(api: Api) -> None:
    backends = api.backends
    stage = await _setup(backends)
    await _publish(backends, [_event(project="p1")] * 1 + [_event(project="p1")])
    await _publish(
        backends, [_event(project="p2", exception_type="TimeoutError", frames=[], exception_value="db 5s")]
    )
    await _publish(
        backends,
        [
            _event(
                project="p3",
                exception_type=None,
                exception_value=None,
                frames=[],
                message="cache miss storm",
                env="staging",
                level="warning",
            )
        ],
    )
    await drain(backends, [stage])
    everything = (await api.client.get("/api/v1/errors", params={"sort": "count"})).json()["items"]
    # Largest first; ties newest group first.
    assert [(g["project"], g["count"]) for g in everything] == [("p1", 2), ("p3", 1), ("p2", 1)]
    assert [
        g["title"] for g in (await api.client.get("/api/v1/errors", params={"q": "timeout"})).json()["items"]
    ] == ["TimeoutError: db 5s"]
    staging = (await api.client.get("/api/v1/errors", params={"environment": "staging"})).json()["items"]
    assert [g["project"] for g in staging] == ["p3"]
    warnings = (await api.client.get("/api/v1/errors", params={"level": "warning"})).json()["items"]
    assert [g["title"] for g in warnings] == ["cache miss storm"]
    page1 = (await api.client.get("/api/v1/errors", params={"limit": 2})).json()
    page2 = (
        await api.client.get("/api/v1/errors", params={"limit": 2, "cursor": page1["next_cursor"]})
    ).json()
    ids = [g["id"] for g in page1["items"] + page2["items"]]
    assert len(ids) == len(set(ids)) == 3 and page2["next_cursor"] is None
    assert (await api.client.get("/api/v1/errors/999999")).status_code == 404
    assert (await api.client.get("/api/v1/errors", params={"cursor": "garbage"})).status_code == 400
    viewer = await api.token("viewer")
    async with api.as_token(viewer) as client:
        assert (await client.get("/api/v1/errors")).status_code == 200
        assert (
            await client.patch(f"/api/v1/errors/{ids[0]}", json={"status": "resolved"})
        ).status_code == 403
    bad = await api.client.patch(f"/api/v1/errors/{ids[0]}", json={"status": "gone"})
    assert bad.status_code == 422


async def test_malformed_messages_are_dead_lettered(backends: Backends) -> None:
    stage = await _setup(backends)
    await backends.bus.publish(topology.ERRORS, b'{"kind": "errors", "items": [{"no": "fields"}]}')
    await drain(backends, [stage])
    [letter] = await backends.bus.list_dead_letters()
    assert letter.topic == topology.ERRORS and "not an error batch" in letter.reason
