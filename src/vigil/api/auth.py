"""Who is calling: session cookies for people, bearer tokens with scopes for programs.

Roles order people: viewer < operator < admin. Scopes say what a token may do: ``read``,
``write``, ``ingest`` (webhooks only), ``admin``. A token can never do more than its owner's
role allows, so a viewer's token with a ``write`` scope still cannot write.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import Depends, Request
from sqlalchemy import select

from vigil.api.problems import Problem
from vigil.backends import Backends
from vigil.security import token_digest
from vigil.store.models import ApiToken, User, UserSession
from vigil.store.types import utcnow

Role = Literal["viewer", "operator", "admin"]
Scope = Literal["read", "write", "ingest", "admin"]

ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
SCOPES: tuple[Scope, ...] = ("read", "write", "ingest", "admin")
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "write", "ingest"}),
    "admin": frozenset({"read", "write", "ingest", "admin"}),
}
SESSION_COOKIE = "vigil_session"
# Token lookups are cached briefly so busy webhooks do not hit the database per request;
# a revoked token stops working within this many seconds.
TOKEN_CACHE_SECONDS = 5.0
_LAST_USED_WRITE_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    role: str
    scopes: frozenset[str]
    kind: Literal["user", "token", "system"]
    token_id: int | None = None
    token_name: str | None = None
    source_id: int | None = None

    @property
    def actor(self) -> str:
        return f"token:{self.token_name}" if self.kind == "token" else self.username

    def can(self, scope: str) -> bool:
        return scope in self.scopes


SYSTEM = Principal(0, "system", "admin", ROLE_SCOPES["admin"], "system")


def backends_of(request: Request) -> Backends:
    backends: Backends = request.app.state.backends
    return backends


_token_cache: dict[str, tuple[float, Principal | None]] = {}


def forget_cached_tokens() -> None:
    """Drop cached token lookups (after a token is revoked or a user changes)."""
    _token_cache.clear()


async def _principal_from_token(backends: Backends, token: str) -> Principal | None:
    digest = token_digest(token)
    now_mono = time.monotonic()
    cached = _token_cache.get(digest)
    if cached and now_mono - cached[0] < TOKEN_CACHE_SECONDS:
        return cached[1]
    principal: Principal | None = None
    async with backends.db.session() as session:
        row = (
            await session.execute(
                select(ApiToken, User)
                .join(User, User.id == ApiToken.user_id)
                .where(ApiToken.token_hash == digest)
            )
        ).first()
        now = utcnow()
        if row is not None:
            api_token, user = row
            valid = (
                api_token.revoked_at is None
                and (api_token.expires_at is None or api_token.expires_at > now)
                and user.is_active
            )
            if valid:
                principal = Principal(
                    user_id=user.id,
                    username=user.username,
                    role=user.role,
                    scopes=frozenset(api_token.scopes) & ROLE_SCOPES.get(user.role, frozenset()),
                    kind="token",
                    token_id=api_token.id,
                    token_name=api_token.name,
                    source_id=api_token.source_id,
                )
                if api_token.last_used_at is None or now - api_token.last_used_at > _LAST_USED_WRITE_INTERVAL:
                    api_token.last_used_at = now
    if len(_token_cache) > 10_000:
        _token_cache.clear()
    _token_cache[digest] = (now_mono, principal)
    return principal


async def _principal_from_session(backends: Backends, cookie: str) -> Principal | None:
    async with backends.db.session() as session:
        row = (
            await session.execute(
                select(UserSession, User)
                .join(User, User.id == UserSession.user_id)
                .where(UserSession.token_hash == token_digest(cookie))
            )
        ).first()
        if row is None:
            return None
        user_session, user = row
        now = utcnow()
        if user_session.expires_at <= now or not user.is_active:
            return None
        if now - user_session.last_seen_at > _LAST_USED_WRITE_INTERVAL:
            user_session.last_seen_at = now
        return Principal(
            user_id=user.id,
            username=user.username,
            role=user.role,
            scopes=ROLE_SCOPES.get(user.role, frozenset()),
            kind="user",
        )


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("bearer", "token") and value.strip():
        return value.strip()
    return None


async def authenticate(request: Request, token: str | None = None) -> Principal | None:
    """The caller, from an explicit token, a bearer header, or the session cookie."""
    backends = backends_of(request)
    token = token or bearer_token(request)
    if token:
        return await _principal_from_token(backends, token)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await _principal_from_session(backends, cookie)
    return None


def require(scope: Scope) -> Callable[[Request], Awaitable[Principal]]:
    """Dependency: the caller must be authenticated (401) and hold ``scope`` (403)."""

    async def dependency(request: Request) -> Principal:
        principal = await authenticate(request)
        if principal is None:
            raise Problem(
                401,
                "authentication required: log in, or send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": 'Bearer realm="vigil"'},
            )
        if not principal.can(scope):
            raise Problem(
                403,
                f"this action needs the '{scope}' permission; "
                f"{principal.actor} (role {principal.role}) does not have it",
            )
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
