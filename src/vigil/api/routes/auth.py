"""Logging in and out, and who am I."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, select

from vigil.api.audit import record
from vigil.api.auth import SESSION_COOKIE, Principal, Reader, backends_of
from vigil.api.problems import Problem
from vigil.security import new_token, token_digest, verify_password
from vigil.store.models import User, UserSession
from vigil.store.types import utcnow

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    username: str
    role: str
    scopes: list[str]
    kind: str


def _me(principal: Principal) -> Me:
    return Me(
        username=principal.username, role=principal.role, scopes=sorted(principal.scopes), kind=principal.kind
    )


@router.post("/login", response_model=Me, summary="Log in; sets an HttpOnly session cookie")
async def login(body: LoginRequest, request: Request, response: Response) -> Me:
    backends = backends_of(request)
    settings = backends.settings
    async with backends.db.session() as session:
        user = (
            await session.execute(select(User).where(User.username == body.username))
        ).scalar_one_or_none()
        # Verify against a dummy hash when the user does not exist, so timing does not tell.
        ok = verify_password(user.password_hash if user else _DUMMY_HASH, body.password)
        if user is None or not ok or not user.is_active:
            raise Problem(401, "username or password is wrong")
        token = new_token()
        now = utcnow()
        session.add(
            UserSession(
                token_hash=token_digest(token),
                user_id=user.id,
                expires_at=now + timedelta(hours=settings.session_ttl_hours),
                last_seen_at=now,
                user_agent=(request.headers.get("user-agent") or "")[:255],
            )
        )
        user.last_login_at = now
        principal = Principal(user.id, user.username, user.role, frozenset(), "user")
        await record(session, principal, "auth.login", "user", user.id, request=request)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_ttl_hours * 3600,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
        path="/",
    )
    from vigil.api.auth import ROLE_SCOPES

    return Me(username=user.username, role=user.role, scopes=sorted(ROLE_SCOPES[user.role]), kind="user")


@router.post("/logout", status_code=204, summary="End this browser session")
async def logout(request: Request, principal: Reader) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    backends = backends_of(request)
    async with backends.db.session() as session:
        if cookie:
            await session.execute(delete(UserSession).where(UserSession.token_hash == token_digest(cookie)))
        await record(session, principal, "auth.logout", "user", principal.user_id, request=request)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", response_model=Me, summary="The caller's identity, role and permissions")
async def me(principal: Reader) -> Me:
    return _me(principal)


_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$Vx0oo6kWL9h7rDq4uSHOMv8TBlKEHrTfBPO1tUEG7dE"
)
