"""A small Redfish BMC over HTTPS (integrations.md §13) with what sushy-emulator lacks: Power.

Serves the service root (unauthenticated), Systems, Chassis, ``Chassis/{id}/Thermal`` and
``Chassis/{id}/Power`` (PowerControl with PowerMetrics, PowerSupplies). Auth: HTTP basic, or a
session (``POST /redfish/v1/SessionService/Sessions`` → 201 with ``X-Auth-Token`` and
``Location``; ``DELETE`` the Location to log out). Unauthenticated → 401 with a Redfish error
body. Collections are paged by ``page_size`` via ``Members@odata.nextLink``.

Tests change the hardware's state through the attributes (``power_state``,
``psus[i]["Status"]["Health"]``, ``temperatures`` ...) between polls.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.serving import ThreadedServer

ROOT = "/redfish/v1"


def _error(status: int, message: str, message_id: str = "Base.1.8.GeneralError") -> JSONResponse:
    return JSONResponse(
        {
            "error": {
                "code": message_id,
                "message": message,
                "@Message.ExtendedInfo": [
                    {"MessageId": message_id, "Message": message, "Severity": "Critical"}
                ],
            }
        },
        status_code=status,
    )


class FakeRedfishBMC(ThreadedServer):
    def __init__(
        self, username: str = "root", password: str = "calvin", *, tls: bool = True, systems: int = 1
    ) -> None:
        super().__init__()
        self.tls = tls
        self.username, self.password = username, password
        self.page_size = 1000
        self.sessions: dict[str, str] = {}  # token -> session id
        self.sessions_created = 0
        self.sessions_deleted = 0
        self.system_ids = [f"System.Embedded.{i + 1}" for i in range(systems)]
        self.power_state = "On"
        self.system_health = "OK"
        self.system_rollup = "OK"
        self.has_power = True
        self.temperatures: list[dict[str, Any]] = [
            {"MemberId": "0", "Name": "CPU1 Temp", "ReadingCelsius": 62, "UpperThresholdNonCritical": 85,
             "UpperThresholdCritical": 90, "UpperThresholdFatal": 95, "PhysicalContext": "CPU",
             "Status": {"State": "Enabled", "Health": "OK"}},
            {"MemberId": "1", "Name": "Inlet Temp", "ReadingCelsius": 24, "UpperThresholdCritical": 42,
             "PhysicalContext": "Intake", "Status": {"State": "Enabled", "Health": "OK"}},
            {"MemberId": "2", "Name": "CPU2 Temp", "ReadingCelsius": None,
             "Status": {"State": "Absent"}},
        ]  # fmt: skip
        self.fans: list[dict[str, Any]] = [
            {"MemberId": "0", "Name": "Fan1", "Reading": 5400, "ReadingUnits": "RPM",
             "LowerThresholdCritical": 500, "Status": {"State": "Enabled", "Health": "OK"}},
            {"MemberId": "1", "Name": "Fan2", "Reading": 38, "ReadingUnits": "Percent",
             "Status": {"State": "Enabled", "Health": "OK"}},
        ]  # fmt: skip
        self.power_control: dict[str, Any] = {
            "MemberId": "0", "Name": "System Power", "PowerConsumedWatts": 412, "PowerCapacityWatts": 1600,
            "PowerMetrics": {"IntervalInMin": 1, "MinConsumedWatts": 380, "MaxConsumedWatts": 450,
                             "AverageConsumedWatts": 405},
        }  # fmt: skip
        self.psus: list[dict[str, Any]] = [
            {"MemberId": str(i), "Name": f"PSU{i + 1}", "PowerSupplyType": "AC", "LineInputVoltage": 230 + i,
             "PowerCapacityWatts": 800, "LastPowerOutputWatts": 205 + 2 * i,
             "Status": {"State": "Enabled", "Health": "OK"}}
            for i in range(2)
        ]  # fmt: skip

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(f"{ROOT}/", self._root, methods=["GET"]),
                Route(f"{ROOT}/SessionService/Sessions", self._sessions, methods=["POST"]),
                Route(f"{ROOT}/SessionService/Sessions/{{sid}}", self._session, methods=["DELETE"]),
                Route(f"{ROOT}/Systems", self._systems, methods=["GET"]),
                Route(f"{ROOT}/Systems/{{sid}}", self._system, methods=["GET"]),
                Route(f"{ROOT}/Chassis", self._chassis_collection, methods=["GET"]),
                Route(f"{ROOT}/Chassis/{{cid}}", self._chassis, methods=["GET"]),
                Route(f"{ROOT}/Chassis/{{cid}}/Thermal", self._thermal, methods=["GET"]),
                Route(f"{ROOT}/Chassis/{{cid}}/Power", self._power, methods=["GET"]),
            ]
        )

    def _authorised(self, request: Request) -> bool:
        token = request.headers.get("x-auth-token")
        if token is not None:
            return token in self.sessions
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme != "Basic":
            return False
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False
        return (user, password) == (self.username, self.password)

    def _guard(self, request: Request) -> JSONResponse | None:
        self.record(request)
        if not self._authorised(request):
            return _error(401, "The request requires user authentication.", "Base.1.8.NoValidSession")
        return None

    async def _root(self, request: Request) -> JSONResponse:
        self.record(request)
        return JSONResponse(
            {
                "@odata.id": f"{ROOT}/",
                "@odata.type": "#ServiceRoot.v1_15_0.ServiceRoot",
                "Id": "RootService",
                "Name": "Root Service",
                "RedfishVersion": "1.17.0",
                "Systems": {"@odata.id": f"{ROOT}/Systems"},
                "Chassis": {"@odata.id": f"{ROOT}/Chassis"},
                "SessionService": {"@odata.id": f"{ROOT}/SessionService"},
                "Links": {"Sessions": {"@odata.id": f"{ROOT}/SessionService/Sessions"}},
            }
        )

    async def _sessions(self, request: Request) -> Response:
        self.record(request)
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "The request body is not JSON.", "Base.1.8.MalformedJSON")
        if (body.get("UserName"), body.get("Password")) != (self.username, self.password):
            return _error(401, "Invalid user name or password.", "Base.1.8.NoValidSession")
        token, session_id = secrets.token_hex(16), str(self.sessions_created + 1)
        self.sessions[token] = session_id
        self.sessions_created += 1
        location = f"{ROOT}/SessionService/Sessions/{session_id}"
        return JSONResponse(
            {"@odata.id": location, "Id": session_id, "UserName": self.username},
            status_code=201,
            headers={"X-Auth-Token": token, "Location": location},
        )

    async def _session(self, request: Request) -> Response:
        refused = self._guard(request)
        if refused:
            return refused
        sid = request.path_params["sid"]
        for token, session_id in list(self.sessions.items()):
            if session_id == sid:
                del self.sessions[token]
                self.sessions_deleted += 1
                return Response(status_code=204)
        return _error(404, f"Session {sid} not found.", "Base.1.8.ResourceMissingAtURI")

    def _collection(self, request: Request, path: str, ids: list[str], name: str) -> JSONResponse:
        skip = int(request.query_params.get("$skip", "0"))
        members = [{"@odata.id": f"{path}/{i}"} for i in ids[skip : skip + self.page_size]]
        body: dict[str, Any] = {
            "@odata.id": path,
            "Name": name,
            "Members@odata.count": len(ids),
            "Members": members,
        }
        if skip + self.page_size < len(ids):
            body["Members@odata.nextLink"] = f"{path}?$skip={skip + self.page_size}"
        return JSONResponse(body)

    async def _systems(self, request: Request) -> JSONResponse:
        return self._guard(request) or self._collection(
            request, f"{ROOT}/Systems", self.system_ids, "Computer System Collection"
        )

    async def _system(self, request: Request) -> JSONResponse:
        refused = self._guard(request)
        if refused:
            return refused
        sid = request.path_params["sid"]
        if sid not in self.system_ids:
            return _error(404, f"System {sid} not found.", "Base.1.8.ResourceMissingAtURI")
        return JSONResponse(
            {
                "@odata.id": f"{ROOT}/Systems/{sid}",
                "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
                "Id": sid,
                "Name": f"web-{sid}",
                "PowerState": self.power_state,
                "Status": {
                    "State": "Enabled",
                    "Health": self.system_health,
                    "HealthRollup": self.system_rollup,
                },
                "Links": {"Chassis": [{"@odata.id": f"{ROOT}/Chassis/1"}]},
            }
        )

    async def _chassis_collection(self, request: Request) -> JSONResponse:
        return self._guard(request) or self._collection(
            request, f"{ROOT}/Chassis", ["1"], "Chassis Collection"
        )

    async def _chassis(self, request: Request) -> JSONResponse:
        refused = self._guard(request)
        if refused:
            return refused
        if request.path_params["cid"] != "1":
            return _error(404, "Chassis not found.", "Base.1.8.ResourceMissingAtURI")
        body: dict[str, Any] = {
            "@odata.id": f"{ROOT}/Chassis/1",
            "Id": "1",
            "Name": "Main chassis",
            "Thermal": {"@odata.id": f"{ROOT}/Chassis/1/Thermal"},
            "Status": {"State": "Enabled", "Health": "OK"},
        }
        if self.has_power:
            body["Power"] = {"@odata.id": f"{ROOT}/Chassis/1/Power"}
        return JSONResponse(body)

    async def _thermal(self, request: Request) -> JSONResponse:
        refused = self._guard(request)
        if refused:
            return refused
        return JSONResponse(
            {
                "@odata.id": f"{ROOT}/Chassis/1/Thermal",
                "Temperatures": self.temperatures,
                "Fans": self.fans,
            }
        )

    async def _power(self, request: Request) -> JSONResponse:
        refused = self._guard(request)
        if refused:
            return refused
        if not self.has_power:
            return _error(404, "Power is not supported.", "Base.1.8.ResourceMissingAtURI")
        return JSONResponse(
            {
                "@odata.id": f"{ROOT}/Chassis/1/Power",
                "PowerControl": [self.power_control],
                "PowerSupplies": self.psus,
                "Voltages": [{"Name": "12V", "ReadingVolts": 12.1, "UpperThresholdCritical": 13.2}],
                "Redundancy": [{"Mode": "N+m", "Status": {"Health": "OK"}}],
            }
        )
