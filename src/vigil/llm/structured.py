"""Structured answers: a Pydantic model in, a validated instance out, one re-ask on bad output.

The model's JSON Schema is sent as OpenAI ``response_format: json_schema`` (strict) or Ollama
``format``. Servers that ignore it, small models, and truncated answers still produce bad JSON
or the wrong shape, so every answer is validated with Pydantic plus an optional ``check`` (e.g.
"every cited evidence id was supplied"). An invalid answer is shown back to the model with what
is wrong, once; a second invalid answer raises ``InvalidOutput`` and the feature falls back to its
deterministic result. Both rejections are recorded in usage as ``invalid_output``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from vigil.llm.client import LLM, ChatRequest, ChatResult, LLMError, Message

T = TypeVar("T", bound=BaseModel)

REASK = (
    "Your previous answer could not be used: {problem}\n"
    "Answer again with only a JSON object that follows the schema, and nothing else."
)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class InvalidOutput(LLMError):
    """The model answered twice, and neither answer was valid."""

    def __init__(self, message: str, raw: str | None) -> None:
        super().__init__(message)
        self.raw = raw


@dataclass(frozen=True, slots=True)
class Structured(Generic[T]):
    value: T
    attempts: int  # 1, or 2 when the first answer was rejected
    result: ChatResult  # the accepted call
    rejected: tuple[str, ...] = ()  # why earlier answers were rejected


def strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema in the form OpenAI's strict mode accepts: every object closed
    (``additionalProperties: false``) with every property required, and no defaults."""
    schema = model.model_json_schema()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            node.pop("default", None)
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema


def parse_json_answer(text: str | None) -> Any:
    """JSON from a model's answer, tolerating code fences and prose around one object."""
    if text is None or not text.strip():
        raise ValueError("the answer was empty")
    text = text.strip()
    if fenced := _FENCE.match(text):
        text = fenced.group(1)
    try:
        return json.loads(text)
    except ValueError as first_error:
        start, end = text.find("{"), text.rfind("}")
        if start == -1 or end <= start:
            raise ValueError(f"the answer is not valid JSON ({first_error})") from None
        try:
            return json.loads(text[start : end + 1])
        except ValueError as exc:
            raise ValueError(f"the answer is not valid JSON ({exc})") from None


def _problems(exc: ValidationError, limit: int = 6) -> str:
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "(root)"
        parts.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def validate_answer(
    result: ChatResult, model: type[T], check: Callable[[T], str | None] | None = None
) -> tuple[T | None, str | None]:
    """(value, None) for a usable answer, (None, what is wrong) otherwise."""
    if result.refusal:
        return None, f"the model refused: {result.refusal[:300]}"
    if result.finish_reason == "length":
        return None, "the answer was cut off at the token limit; answer more briefly"
    try:
        data = parse_json_answer(result.content)
        value = model.model_validate(data)
    except ValueError as exc:  # includes pydantic's ValidationError
        return None, _problems(exc) if isinstance(exc, ValidationError) else str(exc)
    if check is not None and (problem := check(value)):
        return None, problem
    return value, None


async def ask_structured(
    llm: LLM,
    feature: str,
    messages: Sequence[Message],
    model: type[T],
    *,
    check: Callable[[T], str | None] | None = None,
    schema_name: str | None = None,
    max_tokens: int | None = None,
) -> Structured[T]:
    """Ask for an answer shaped like ``model``; re-ask once if it is invalid."""
    request = ChatRequest(
        messages=tuple(messages),
        json_schema=strict_schema(model),
        schema_name=schema_name or model.__name__.lower(),
        max_tokens=max_tokens,
    )
    conversation = list(messages)
    rejected: list[str] = []
    for attempt in (1, 2):
        result = await llm.chat(feature, replace(request, messages=tuple(conversation)))
        value, problem = validate_answer(result, model, check)
        if value is not None:
            return Structured(value, attempt, result, tuple(rejected))
        assert problem is not None
        rejected.append(problem)
        await llm.record_invalid_output(feature, problem)
        conversation += [
            Message("assistant", result.content or ""),
            Message("user", REASK.format(problem=problem)),
        ]
    raise InvalidOutput(f"invalid answer twice: {'; then: '.join(rejected)}", raw=result.content)
