"""User accounts (admins only) and password changes."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel, EmailStr, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vigil.api.audit import record, snapshot
from vigil.api.auth import ROLES, Admin, Reader, Role, backends_of, forget_cached_tokens
from vigil.api.problems import Problem
from vigil.security import hash_password, verify_password
from vigil.store.models import User

router = APIRouter(prefix="/api/v1/users", tags=["users"])

USERNAME_PATTERN = r"^[A-Za-z0-9_.@-]+$"


class UserOut(BaseModel):
    id: int
    username: str
    email: str | None
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None

    model_config = {"from_attributes": True}


class UserCreate(BaseModel):
    username: str = Field(min_length=1, max_length=64, pattern=USERNAME_PATTERN)
    password: str = Field(min_length=8, max_length=1024)
    role: Role = "viewer"
    email: EmailStr | None = None


class UserUpdate(BaseModel):
    role: Role | None = None
    is_active: bool | None = None
    email: EmailStr | None = None
    password: str | None = Field(None, min_length=8, max_length=1024)


class PasswordChange(BaseModel):
    current_password: str
    new_password: str = Field(min_length=8, max_length=1024)


@router.get("", response_model=list[UserOut], summary="List users")
async def list_users(request: Request, _: Admin) -> list[User]:
    async with backends_of(request).db.session() as session:
        return list((await session.execute(select(User).order_by(User.id))).scalars())


@router.post("", response_model=UserOut, status_code=201, summary="Create a user")
async def create_user(body: UserCreate, request: Request, principal: Admin) -> User:
    assert body.role in ROLES
    try:
        async with backends_of(request).db.session() as session:
            user = User(
                username=body.username,
                email=body.email,
                role=body.role,
                password_hash=hash_password(body.password),
                is_active=True,
            )
            session.add(user)
            await session.flush()
            await record(
                session, principal, "user.create", "user", user.id, after=snapshot(user), request=request
            )
    except IntegrityError:
        raise Problem(409, f"username: {body.username!r} is already taken") from None
    return user


@router.patch("/{user_id}", response_model=UserOut, summary="Change a user's role, status or password")
async def update_user(user_id: int, body: UserUpdate, request: Request, principal: Admin) -> User:
    async with backends_of(request).db.session() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise Problem(404, f"user {user_id} does not exist")
        before = snapshot(user)
        if body.role is not None:
            user.role = body.role
        if body.is_active is not None:
            user.is_active = body.is_active
        if body.email is not None:
            user.email = body.email
        if body.password is not None:
            user.password_hash = hash_password(body.password)
        await session.flush()
        await record(
            session,
            principal,
            "user.update",
            "user",
            user.id,
            before=before,
            after=snapshot(user),
            request=request,
        )
    forget_cached_tokens()
    return user


@router.post("/me/password", status_code=204, summary="Change your own password")
async def change_own_password(body: PasswordChange, request: Request, principal: Reader) -> None:
    if principal.kind != "user":
        raise Problem(403, "passwords are changed from a logged-in session, not with a token")
    async with backends_of(request).db.session() as session:
        user = await session.get(User, principal.user_id)
        if user is None or not verify_password(user.password_hash, body.current_password):
            raise Problem(400, "current_password: does not match")
        user.password_hash = hash_password(body.new_password)
        await record(session, principal, "user.password", "user", user.id, request=request)
