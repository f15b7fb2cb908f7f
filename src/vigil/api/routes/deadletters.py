"""Dead letters: messages the pipeline gave up on, for an operator to inspect and replay."""

from __future__ import annotations

import base64

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from vigil.api.audit import record
from vigil.api.auth import Reader, Writer, backends_of
from vigil.api.problems import Problem

router = APIRouter(prefix="/api/v1/deadletters", tags=["dead letters"])


class DeadLetterOut(BaseModel):
    id: str
    topic: str
    group: str
    deliveries: int
    reason: str
    dead_at_ms: int
    payload_preview: str
    payload_base64: str


class Replayed(BaseModel):
    id: str
    topic: str
    new_message_id: str


def _preview(payload: bytes, limit: int = 500) -> str:
    return payload[:limit].decode("utf-8", errors="replace")


@router.get("", response_model=list[DeadLetterOut], summary="Messages the pipeline gave up on")
async def list_dead_letters(
    request: Request, _: Reader, limit: int = Query(100, ge=1, le=1000)
) -> list[DeadLetterOut]:
    letters = await backends_of(request).bus.list_dead_letters(limit=limit)
    return [
        DeadLetterOut(
            id=d.id,
            topic=d.topic,
            group=d.group,
            deliveries=d.deliveries,
            reason=d.reason,
            dead_at_ms=d.dead_at_ms,
            payload_preview=_preview(d.payload),
            payload_base64=base64.b64encode(d.payload).decode(),
        )
        for d in letters
    ]


@router.post(
    "/{dead_letter_id}/replay",
    response_model=Replayed,
    summary="Publish a dead letter again to its original topic",
)
async def replay_dead_letter(dead_letter_id: str, request: Request, principal: Writer) -> Replayed:
    backends = backends_of(request)
    letter = await backends.bus.get_dead_letter(dead_letter_id)
    if letter is None:
        raise Problem(404, f"dead letter {dead_letter_id} does not exist")
    new_id = await backends.bus.replay_dead_letter(dead_letter_id)
    async with backends.db.session() as session:
        await record(
            session,
            principal,
            "deadletter.replay",
            "dead_letter",
            dead_letter_id,
            before={"topic": letter.topic, "group": letter.group, "reason": letter.reason},
            after={"new_message_id": new_id},
            request=request,
        )
    return Replayed(id=dead_letter_id, topic=letter.topic, new_message_id=new_id)
