"""Authentication and authorisation on every route, on both profiles."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute

from tests.integration.conftest import ADMIN_PASSWORD, Api
from vigil.store.models import AuditEntry

PUBLIC = {"/healthz", "/readyz", "/metrics", "/api/v1/auth/login"}


def _api_routes(api: Api) -> list[tuple[str, str, APIRoute]]:
    from vigil.api.routes import ROUTERS

    out = []
    for route in (r for router in ROUTERS for r in router.routes):
        if isinstance(route, APIRoute) and route.path.startswith("/api/v1"):
            path = re.sub(r"\{[^}]+\}", "1", route.path)
            for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
                out.append((method, path, route))
    return out


def _required_scopes(route: APIRoute) -> set[str]:
    names = {d.call.__name__ for d in route.dependant.dependencies if d.call is not None}
    return {n.removeprefix("require_") for n in names if n.startswith("require_")}


async def test_every_api_route_needs_authentication(api: Api) -> None:
    routes = _api_routes(api)
    assert len(routes) > 5
    async with api.anonymous() as anonymous:
        for method, path, _ in routes:
            if path in PUBLIC:
                continue
            response = await anonymous.request(method, path, json={})
            assert response.status_code == 401, f"{method} {path} answered {response.status_code}"
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.headers["www-authenticate"].startswith("Bearer")


async def test_viewer_token_is_forbidden_to_write(api: Api) -> None:
    viewer = api.as_token(await api.token("viewer"))
    write_routes = [(m, p) for m, p, r in _api_routes(api) if _required_scopes(r) & {"write", "admin"}]
    assert write_routes, "expected write routes"
    async with viewer:
        for method, path in write_routes:
            response = await viewer.request(method, path, json={})
            assert response.status_code == 403, f"{method} {path} answered {response.status_code}"
            assert "permission" in response.json()["detail"]
        assert (await viewer.get("/api/v1/auth/me")).json()["role"] == "viewer"


async def test_token_scopes_are_capped_by_role(api: Api) -> None:
    # A viewer's token that claims `write` still cannot write.
    token = await api.token("viewer", scopes=("read", "write"))
    async with api.as_token(token) as client:
        me = (await client.get("/api/v1/auth/me")).json()
        assert me["scopes"] == ["read"]
        response = await client.post("/api/v1/users", json={"username": "x", "password": "12345678"})
        assert response.status_code == 403


async def test_read_only_token_of_an_admin_cannot_administer(api: Api) -> None:
    token = await api.token("admin", scopes=("read",))
    async with api.as_token(token) as client:
        assert (await client.get("/api/v1/auth/me")).status_code == 200
        assert (await client.get("/api/v1/users")).status_code == 403


async def test_login_sets_http_only_cookie_and_logout_ends_session(api: Api) -> None:
    async with api.anonymous() as browser:
        bad = await browser.post("/api/v1/auth/login", json={"username": "admin", "password": "nope"})
        assert bad.status_code == 401
        ok = await browser.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
        assert ok.status_code == 200
        cookie = ok.headers["set-cookie"]
        assert "vigil_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert (await browser.get("/api/v1/auth/me")).json()["username"] == "admin"
        assert (await browser.post("/api/v1/auth/logout")).status_code == 204
        browser.cookies.clear()
        browser.cookies.set("vigil_session", cookie.split("vigil_session=")[1].split(";")[0])
        assert (await browser.get("/api/v1/auth/me")).status_code == 401


async def test_revoked_token_stops_working(api: Api) -> None:
    created = (await api.client.post("/api/v1/tokens", json={"name": "ci", "scopes": ["read"]})).json()
    async with api.as_token(created["token"]) as client:
        assert (await client.get("/api/v1/auth/me")).status_code == 200
        assert (await api.client.delete(f"/api/v1/tokens/{created['id']}")).status_code == 204
        assert (await client.get("/api/v1/auth/me")).status_code == 401


async def test_writes_are_audited_with_before_and_after(api: Api) -> None:
    created = await api.client.post(
        "/api/v1/users", json={"username": "alice", "password": "correct horse", "role": "viewer"}
    )
    assert created.status_code == 201
    user_id = created.json()["id"]
    updated = await api.client.patch(f"/api/v1/users/{user_id}", json={"role": "operator"})
    assert updated.json()["role"] == "operator"
    entries = (
        await api.client.get("/api/v1/audit", params={"target_type": "user", "target_id": user_id})
    ).json()
    actions = [e["action"] for e in entries["items"]]
    assert actions == ["user.update", "user.create"]
    update = entries["items"][0]
    assert update["actor"] == "token:test"
    assert update["before"]["role"] == "viewer" and update["after"]["role"] == "operator"
    assert update["after"]["password_hash"] == "***"
    from sqlalchemy import func, select

    async with api.backends.db.session() as session:
        assert (await session.execute(select(func.count()).select_from(AuditEntry))).scalar_one() >= 2


async def test_duplicate_username_is_a_conflict_naming_the_field(api: Api) -> None:
    body = {"username": "bob", "password": "long enough"}
    assert (await api.client.post("/api/v1/users", json=body)).status_code == 201
    response = await api.client.post("/api/v1/users", json=body)
    assert response.status_code == 409
    assert response.json()["detail"].startswith("username:")


@pytest.mark.parametrize("scopes", [["read", "admin"]])
async def test_operator_cannot_mint_admin_tokens(api: Api, scopes: list[str]) -> None:
    async with api.as_token(await api.token("operator")) as operator:
        response = await operator.post("/api/v1/tokens", json={"name": "x", "scopes": scopes})
        assert response.status_code == 403
        assert "admin" in response.json()["detail"]
