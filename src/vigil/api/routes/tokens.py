"""API tokens for programs. The token itself is shown once, at creation."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select

from vigil.api.audit import record, snapshot
from vigil.api.auth import ROLE_SCOPES, SCOPES, Principal, Reader, Scope, backends_of, forget_cached_tokens
from vigil.api.problems import Problem
from vigil.security import new_token, token_digest
from vigil.store.models import ApiToken
from vigil.store.types import utcnow

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    scopes: list[Scope] = Field(min_length=1)
    expires_at: datetime | None = None

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("must include a timezone, e.g. 2027-01-01T00:00:00Z")
        return v


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    user_id: int
    source_id: int | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    model_config = {"from_attributes": True}


class TokenCreated(TokenOut):
    token: str = Field(description="The secret. Shown only now; store it safely.")


async def issue_token(
    session: object,
    user_id: int,
    name: str,
    scopes: list[str],
    *,
    source_id: int | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a token row; returns it and the secret (which is not stored)."""
    from sqlalchemy.ext.asyncio import AsyncSession

    assert isinstance(session, AsyncSession)
    secret = new_token()
    row = ApiToken(
        name=name,
        user_id=user_id,
        token_hash=token_digest(secret),
        prefix=secret[:10],
        scopes=sorted(set(scopes)),
        source_id=source_id,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return row, secret


@router.get("", response_model=list[TokenOut], summary="Your tokens (admins see everyone's)")
async def list_tokens(request: Request, principal: Reader) -> list[ApiToken]:
    query = select(ApiToken).order_by(ApiToken.id)
    if not principal.can("admin"):
        query = query.where(ApiToken.user_id == principal.user_id)
    async with backends_of(request).db.session() as session:
        return list((await session.execute(query)).scalars())


@router.post("", response_model=TokenCreated, status_code=201, summary="Create a token for yourself")
async def create_token(body: TokenCreate, request: Request, principal: Reader) -> TokenCreated:
    allowed = ROLE_SCOPES[principal.role]
    excess = sorted(set(body.scopes) - allowed)
    if excess:
        raise Problem(403, f"scopes: your role ({principal.role}) cannot grant {', '.join(excess)}")
    if principal.kind == "token" and not principal.can("admin"):
        raise Problem(403, "tokens cannot mint tokens unless they have the admin scope")
    async with backends_of(request).db.session() as session:
        row, secret = await issue_token(
            session, principal.user_id, body.name, list(body.scopes), expires_at=body.expires_at
        )
        await record(
            session, principal, "token.create", "api_token", row.id, after=snapshot(row), request=request
        )
    return TokenCreated(**TokenOut.model_validate(row).model_dump(), token=secret)


@router.delete("/{token_id}", status_code=204, summary="Revoke a token")
async def revoke_token(token_id: int, request: Request, principal: Reader) -> None:
    await revoke(request, principal, token_id)


async def revoke(request: Request, principal: Principal, token_id: int) -> None:
    async with backends_of(request).db.session() as session:
        row = await session.get(ApiToken, token_id)
        if row is None or (row.user_id != principal.user_id and not principal.can("admin")):
            raise Problem(404, f"token {token_id} does not exist")
        before = snapshot(row)
        row.revoked_at = row.revoked_at or utcnow()
        await record(
            session,
            principal,
            "token.revoke",
            "api_token",
            row.id,
            before=before,
            after=snapshot(row),
            request=request,
        )
    forget_cached_tokens()


assert set(SCOPES) == set(ROLE_SCOPES["admin"])
