"""A local Splunk management API (integrations.md §6): search jobs and the export endpoint.

- Auth: ``Authorization: Bearer <token>``, ``Authorization: Splunk <sessionKey>`` (from
  ``POST /services/auth/login``) or HTTP basic; anything else → 401
  ``{"messages":[{"type":"WARN","text":"call not properly authenticated"}]}``.
- ``POST /services/search/jobs`` (form: search, earliest_time, latest_time, …) → 201
  ``{"sid"}``; a search not starting with ``search `` or ``|`` → 400. The job advances
  QUEUED → RUNNING → DONE over ``polls_until_done`` status reads; ``/results`` answers 204 until
  then and pages with ``offset``/``count`` (``count=0`` = all). Unknown sid → 404
  ``Unknown sid.``; ``DELETE`` removes the job. A search containing ``FAILME`` ends FAILED.
- ``POST /services/search/jobs/export`` streams NDJSON: for searches with canned results
  (``stats``) a ``preview: true`` row first, then the final rows, the last with
  ``lastrow: true``.
- Results: events whose ``_time`` falls in ``[earliest_time, latest_time)`` (epoch seconds),
  or the canned rows registered for the exact search string. All values are strings.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.serving import ThreadedServer

STATES = ("QUEUED", "PARSING", "RUNNING", "FINALIZING", "DONE")
GENERATING_COMMANDS = frozenset(
    {"search", "stats", "tstats", "mstats", "makeresults", "inputlookup", "rest", "metadata", "eventcount",
     "datamodel", "from", "pivot", "dbinspect"}
)  # fmt: skip


@dataclass
class FakeJob:
    sid: str
    search: str
    rows: list[dict[str, Any]]
    polls: int = 0
    failed: bool = False
    deleted: bool = False
    status_reads: list[str] = field(default_factory=list)


def splunk_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


class FakeSplunk(ThreadedServer):
    tls = False

    def __init__(
        self,
        token: str = "splunk-token",
        username: str = "admin",
        password: str = "changeme",
        *,
        tls: bool = False,
    ) -> None:
        super().__init__()
        self.tls = tls
        self.token, self.username, self.password = token, username, password
        self.session_keys: set[str] = set()
        self.events: list[dict[str, Any]] = []
        self.canned: dict[str, list[dict[str, Any]]] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.polls_until_done = 2

    # --- data ----------------------------------------------------------------------------------

    def add_event(self, epoch: float, raw: str, host: str = "web1", **fields: Any) -> None:
        event = {
            "_time": splunk_time(epoch),
            "_raw": raw,
            "host": host,
            "source": fields.pop("source", "/var/log/app.log"),
            "sourcetype": fields.pop("sourcetype", "app"),
            "index": "main",
            "splunk_server": "idx1",
            "_cd": f"1:{len(self.events)}",
            **{k: str(v) for k, v in fields.items()},
        }
        self.events.append(event)

    def add_canned(self, search: str, rows: list[dict[str, Any]]) -> None:
        self.canned[search.strip()] = [{k: str(v) for k, v in row.items()} for row in rows]

    # --- the app -------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/services/auth/login", self._login, methods=["POST"]),
                Route("/services/search/jobs", self._create, methods=["POST"]),
                Route("/services/search/jobs/export", self._export, methods=["POST"]),
                Route("/services/search/jobs/{sid}", self._job, methods=["GET", "DELETE"]),
                Route("/services/search/jobs/{sid}/results", self._results, methods=["GET"]),
            ]
        )

    @staticmethod
    def _messages(status: int, kind: str, text: str) -> JSONResponse:
        return JSONResponse({"messages": [{"type": kind, "text": text}]}, status_code=status)

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme == "Bearer":
            return value == self.token
        if scheme == "Splunk":
            return value in self.session_keys
        if scheme == "Basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return False
            return (user, password) == (self.username, self.password)
        return False

    async def _prelude(self, request: Request) -> JSONResponse | None:
        self.record(request)
        if not self._authorised(request):
            return self._messages(401, "WARN", "call not properly authenticated")
        return None

    async def _login(self, request: Request) -> JSONResponse:
        self.record(request)
        form = await request.form()
        if (form.get("username"), form.get("password")) != (self.username, self.password):
            return self._messages(401, "WARN", "Login failed")
        key = secrets.token_hex(16)
        self.session_keys.add(key)
        return JSONResponse({"sessionKey": key})

    def _select(self, search: str, earliest: str | None, latest: str | None) -> list[dict[str, Any]]:
        if search.strip() in self.canned:
            return [dict(r) for r in self.canned[search.strip()]]
        low = float(earliest) if earliest else float("-inf")
        high = float(latest) if latest else float("inf")
        rows = []
        for event in self.events:
            epoch = datetime.fromisoformat(event["_time"]).timestamp()
            if low <= epoch < high:
                rows.append(dict(event))
        return sorted(rows, key=lambda r: r["_time"], reverse=True)  # newest first, like Splunk

    @staticmethod
    def _bad_search(search: str) -> str | None:
        text = search.strip()
        if text.startswith("|"):
            command = text[1:].strip().split(" ", 1)[0]
            if command not in GENERATING_COMMANDS:
                return f"Unknown search command '{command}'."
            return None
        if not text.startswith("search "):
            first = text.split(" ", 1)[0] if text else ""
            return f"Error in 'search' command: Unknown search command '{first}'."
        return None

    async def _create(self, request: Request) -> Response:
        refused = await self._prelude(request)
        if refused:
            return refused
        form = await request.form()
        search = str(form.get("search") or "")
        problem = self._bad_search(search)
        if problem:
            return self._messages(400, "FATAL", problem)
        sid = f"{time.time():.3f}.{len(self.jobs) + 1}"
        rows = self._select(search, _opt(form.get("earliest_time")), _opt(form.get("latest_time")))
        self.jobs[sid] = FakeJob(sid, search, rows, failed="FAILME" in search)
        return JSONResponse({"sid": sid}, status_code=201)

    async def _job(self, request: Request) -> Response:
        refused = await self._prelude(request)
        if refused:
            return refused
        job = self.jobs.get(request.path_params["sid"])
        if job is None or job.deleted:
            return self._messages(404, "FATAL", "Unknown sid.")
        if request.method == "DELETE":
            job.deleted = True
            return JSONResponse({"messages": [{"type": "INFO", "text": "Search job cancelled."}]})
        job.polls += 1
        done = job.polls >= self.polls_until_done
        state = "FAILED" if done and job.failed else ("DONE" if done else STATES[min(job.polls - 1, 2)])
        job.status_reads.append(state)
        content = {
            "sid": job.sid,
            "dispatchState": state,
            "isDone": done,
            "isFailed": done and job.failed,
            "isFinalized": False,
            "isPaused": False,
            "doneProgress": 1.0 if done else 0.4,
            "eventCount": len(job.rows),
            "resultCount": len(job.rows) if done else 0,
            "scanCount": len(self.events),
            "runDuration": 0.1 * job.polls,
            "ttl": 600,
            "messages": [{"type": "FATAL", "text": "Search was cancelled by FAILME"}]
            if done and job.failed
            else [],
        }
        return JSONResponse(
            {
                "entry": [
                    {
                        "name": job.search,
                        "id": f"{self.url}/services/search/jobs/{job.sid}",
                        "content": content,
                    }
                ],
                "paging": {"total": 1, "perPage": 0, "offset": 0},
            }
        )

    async def _results(self, request: Request) -> Response:
        refused = await self._prelude(request)
        if refused:
            return refused
        job = self.jobs.get(request.path_params["sid"])
        if job is None or job.deleted:
            return self._messages(404, "FATAL", "Unknown sid.")
        if job.polls < self.polls_until_done:
            return Response(status_code=204)
        offset = int(request.query_params.get("offset", "0"))
        count = int(request.query_params.get("count", "100"))
        page = job.rows[offset:] if count == 0 else job.rows[offset : offset + count]
        fields = sorted({k for row in page for k in row})
        return JSONResponse(
            {
                "preview": False,
                "init_offset": offset,
                "messages": [],
                "fields": [{"name": f} for f in fields],
                "results": page,
                "highlighted": {},
            }
        )

    async def _export(self, request: Request) -> Response:
        refused = await self._prelude(request)
        if refused:
            return refused
        form = await request.form()
        search = str(form.get("search") or "")
        problem = self._bad_search(search)
        if problem:
            return self._messages(400, "FATAL", problem)
        rows = self._select(search, _opt(form.get("earliest_time")), _opt(form.get("latest_time")))
        canned = search.strip() in self.canned

        async def stream() -> AsyncIterator[bytes]:
            if canned and rows:
                yield (
                    orjson.dumps({"preview": True, "offset": 0, "result": {**rows[0], "count": "0"}}) + b"\n"
                )
            if not rows:
                yield (
                    orjson.dumps({"preview": False, "messages": [{"type": "INFO", "text": "No results"}]})
                    + b"\n"
                )
            for index, row in enumerate(rows):
                item: dict[str, Any] = {"preview": False, "offset": index, "result": row}
                if index == len(rows) - 1:
                    item["lastrow"] = True
                yield orjson.dumps(item) + b"\n"

        return StreamingResponse(stream(), media_type="application/json")


def _opt(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None
