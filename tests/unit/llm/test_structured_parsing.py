"""Parsing and validating structured answers, retry-after headers, strict schemas."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from vigil.llm.client import ChatResult
from vigil.llm.http import parse_duration, retry_after
from vigil.llm.structured import parse_json_answer, strict_schema, validate_answer


class Step(BaseModel):
    text: str
    evidence_ids: list[str] = Field(default_factory=list)


class Answer(BaseModel):
    cause: str
    confidence: float = 0.5
    steps: list[Step]


def test_strict_schema_closes_every_object_and_requires_every_property() -> None:
    schema = strict_schema(Answer)
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["cause", "confidence", "steps"]
    step = schema["$defs"]["Step"]
    assert step["additionalProperties"] is False and step["required"] == ["text", "evidence_ids"]
    assert "default" not in str(schema)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        '```json\n{"a": 1}\n```',
        'Here is the answer:\n{"a": 1}\nHope it helps.',
    ],
)
def test_json_is_found_in_common_wrappings(text: str) -> None:
    assert parse_json_answer(text) == {"a": 1}


@pytest.mark.parametrize("text", [None, "", "no json here", '{"a": '])
def test_non_json_is_rejected_with_a_reason(text: str | None) -> None:
    with pytest.raises(ValueError, match=r"empty|JSON"):
        parse_json_answer(text)


def test_validation_reports_fields_and_length_cutoffs() -> None:
    ok, problem = validate_answer(ChatResult('{"cause": "disk", "steps": []}'), Answer)
    assert ok is not None and problem is None and ok.confidence == 0.5
    _, problem = validate_answer(ChatResult('{"cause": "disk", "steps": [{"evidence_ids": []}]}'), Answer)
    assert problem == "steps.0.text: Field required"
    _, problem = validate_answer(ChatResult('{"cause": "di', finish_reason="length"), Answer)
    assert problem is not None and "token limit" in problem


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6m0s", 360.0), ("20ms", 0.02), ("1.5s", 1.5), ("1h2m3s", 3723.0), ("7", 7.0), ("soon", None)],
)
def test_openai_reset_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_retry_after_sources_in_order_of_precedence() -> None:
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    # Without retry-after, wait for the reset of whichever limit is exhausted.
    headers = {
        "x-ratelimit-remaining-requests": "12",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert retry_after(headers) == 360.0
    assert retry_after({}) is None
