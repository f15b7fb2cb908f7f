"""The production LLM clients, unchanged, against the local scripted server (tests/fakes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from pydantic import BaseModel

from tests.fakes.llm_server import (
    Fail,
    FakeLLMServer,
    Raw,
    Reply,
    StreamError,
    insufficient_quota,
    ollama_busy,
    ollama_model_missing,
    rate_limited,
    server_error,
)
from vigil.llm.client import (
    LLM,
    ChatRequest,
    LLMBadResponse,
    LLMOptions,
    LLMQuotaExceeded,
    LLMRequestRejected,
    LLMUnavailable,
    Message,
    ToolSpec,
)
from vigil.llm.ollama import OllamaProvider
from vigil.llm.openai_compat import OpenAICompatProvider
from vigil.llm.structured import InvalidOutput, ask_structured
from vigil.llm.usage import MemoryUsage

HOST_TOOL = ToolSpec(
    "get_metrics",
    "Fetch host metrics",
    {
        "type": "object",
        "properties": {"host": {"type": "string"}},
        "required": ["host"],
        "additionalProperties": False,
    },
)


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer(api_key="sk-test") as s:
        yield s


class Sleeps:
    """Records backoff delays instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def openai_llm(server: FakeLLMServer, **options: float) -> tuple[LLM, MemoryUsage, Sleeps]:
    usage, sleeps = MemoryUsage(), Sleeps()
    provider = OpenAICompatProvider(server.openai_url, "gpt-test", "sk-test", timeout_s=5)
    opts = LLMOptions(**{"backoff_base_s": 0.01, **options})
    return LLM(provider, opts, usage, sleep=sleeps), usage, sleeps


def ollama_llm(server: FakeLLMServer, **options: float) -> tuple[LLM, MemoryUsage, Sleeps]:
    usage, sleeps = MemoryUsage(), Sleeps()
    provider = OllamaProvider(server.url, "llama3.1", timeout_s=5)
    opts = LLMOptions(**{"backoff_base_s": 0.01, **options})
    return LLM(provider, opts, usage, sleep=sleeps), usage, sleeps


def ask(text: str = "Why is web1 slow?") -> ChatRequest:
    return ChatRequest((Message("system", "You are an SRE assistant."), Message("user", text)))


# --- OpenAI-compatible ----------------------------------------------------------------------------


async def test_openai_completion_request_shape_and_usage(server: FakeLLMServer) -> None:
    llm, usage, _ = openai_llm(server)
    server.push(Reply(content="Disk is full.", prompt_tokens=82, completion_tokens=17))
    result = await llm.chat("summary", ask())
    await llm.aclose()

    assert result.content == "Disk is full."
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (82, 17)
    sent = server.chat_requests()[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.body["model"] == "gpt-test"
    assert sent.body["messages"][1] == {"role": "user", "content": "Why is web1 slow?"}
    assert sent.body["max_tokens"] == LLMOptions().max_completion_tokens
    assert sent.body["temperature"] == LLMOptions().temperature
    assert "stream" not in sent.body
    [event] = usage.events
    assert (event.feature, event.outcome, event.prompt_tokens, event.completion_tokens) == (
        "summary",
        "ok",
        82,
        17,
    )


async def test_openai_streaming_delivers_text_as_it_arrives(server: FakeLLMServer) -> None:
    llm, usage, _ = openai_llm(server)
    server.push(
        Reply(
            content="The disk on web-03 filled up after log rotation stopped.",
            chunk_chars=6,
            prompt_tokens=40,
            completion_tokens=12,
        )
    )
    pieces: list[str] = []
    result = await llm.chat("copilot", ask(), on_text=pieces.append)
    await llm.aclose()

    assert len(pieces) > 3
    assert "".join(pieces) == result.content == "The disk on web-03 filled up after log rotation stopped."
    assert result.finish_reason == "stop"
    sent = server.chat_requests()[0].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert usage.events[0].completion_tokens == 12  # from the final usage chunk


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_tool_calls_and_malformed_arguments(server: FakeLLMServer, stream: bool) -> None:
    llm, _, _ = openai_llm(server)
    server.push(Reply(tool_calls=[("get_metrics", {"host": "web1"}), ("get_metrics", '{"host": "we')]))
    request = ChatRequest(ask().messages, tools=(HOST_TOOL,), tool_choice="auto")
    result = await llm.chat("copilot", request, on_text=(lambda _t: None) if stream else None)

    assert result.finish_reason == "tool_calls"
    good, bad = result.tool_calls
    assert (good.id, good.name, good.arguments) == ("call_1", "get_metrics", {"host": "web1"})
    assert bad.arguments is None and bad.raw_arguments == '{"host": "we'
    sent = server.chat_requests()[0].body
    assert sent["tools"][0]["function"]["name"] == "get_metrics"
    assert sent["tool_choice"] == "auto"

    # The conversation continues with the assistant's calls and one tool message per call.
    server.push(Reply(content="web1 CPU is at 97%."))
    follow_up = ChatRequest(
        (
            *request.messages,
            Message("assistant", None, tool_calls=(good,)),
            Message("tool", json.dumps({"cpu": 97}), tool_call_id="call_1", name="get_metrics"),
        ),
        tools=(HOST_TOOL,),
        tool_choice="get_metrics",
    )
    result = await llm.chat("copilot", follow_up)
    await llm.aclose()
    assert result.content == "web1 CPU is at 97%."
    messages = server.chat_requests()[1].body["messages"]
    assert messages[2]["tool_calls"][0] == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_metrics", "arguments": '{"host": "web1"}'},
    }
    assert messages[3] == {"role": "tool", "content": '{"cpu": 97}', "tool_call_id": "call_1"}
    assert server.chat_requests()[1].body["tool_choice"] == {
        "type": "function",
        "function": {"name": "get_metrics"},
    }


async def test_rate_limit_is_retried_after_the_server_asked_delay(server: FakeLLMServer) -> None:
    llm, usage, sleeps = openai_llm(server)
    server.push(rate_limited(retry_after="2"), Reply(content="ok"))
    result = await llm.chat("rca", ask())
    await llm.aclose()

    assert result.content == "ok"
    assert sleeps.delays == [2.0]
    assert [e.outcome for e in usage.events] == ["retry", "ok"]
    assert "rate_limit_exceeded" in (usage.events[0].error or "")
    assert len(server.chat_requests()) == 2


async def test_rate_limit_waits_for_the_exhausted_limit_reset_without_retry_after(
    server: FakeLLMServer,
) -> None:
    llm, _, sleeps = openai_llm(server)
    limited = rate_limited()
    del limited.headers["retry-after"]  # only x-ratelimit-reset-requests: 20s remains
    server.push(limited, Reply(content="ok"))
    await llm.chat("rca", ask())
    await llm.aclose()
    assert sleeps.delays == [20.0]


async def test_a_server_asking_to_wait_too_long_is_not_waited_for(server: FakeLLMServer) -> None:
    llm, _, sleeps = openai_llm(server, max_retry_after_s=5)
    server.push(rate_limited(retry_after="3600"))
    with pytest.raises(Exception, match="rate_limit_exceeded"):
        await llm.chat("rca", ask())
    await llm.aclose()
    assert sleeps.delays == []


async def test_insufficient_quota_is_not_retried(server: FakeLLMServer) -> None:
    llm, usage, sleeps = openai_llm(server)
    server.push(insufficient_quota(), Reply(content="never"))
    with pytest.raises(LLMQuotaExceeded, match="insufficient_quota"):
        await llm.chat("rca", ask())
    await llm.aclose()
    assert len(server.chat_requests()) == 1
    assert sleeps.delays == []
    assert [e.outcome for e in usage.events] == ["error"]


async def test_server_errors_are_retried_with_growing_backoff(server: FakeLLMServer) -> None:
    llm, _, sleeps = openai_llm(server, backoff_base_s=1.0)
    server.push(server_error(), server_error(), Reply(content="ok"))
    assert (await llm.chat("rca", ask())).content == "ok"
    await llm.aclose()
    first, second = sleeps.delays
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0  # full jitter within 2**(n-1) * base


async def test_retries_give_up_after_max_retries(server: FakeLLMServer) -> None:
    llm, usage, _ = openai_llm(server, max_retries=2)
    server.push(server_error(), server_error(), server_error(), Reply(content="too late"))
    with pytest.raises(LLMUnavailable, match="HTTP 500"):
        await llm.chat("rca", ask())
    await llm.aclose()
    assert [e.outcome for e in usage.events] == ["retry", "retry", "error"]


async def test_timeout_is_retried_then_reported(server: FakeLLMServer) -> None:
    llm, usage, _ = openai_llm(server, timeout_s=0.3, max_retries=1)
    server.push(Reply(content="slow", delay_s=1.5), Reply(content="slow", delay_s=1.5))
    with pytest.raises(LLMUnavailable, match=r"within 0\.3s"):
        await llm.chat("rca", ask())
    await llm.aclose()
    assert len(server.chat_requests()) == 2
    assert [e.outcome for e in usage.events] == ["retry", "error"]


async def test_bad_api_key_is_rejected_without_retry(server: FakeLLMServer) -> None:
    provider = OpenAICompatProvider(server.openai_url, "gpt-test", "sk-wrong")
    llm = LLM(provider, LLMOptions(backoff_base_s=0.01))
    with pytest.raises(LLMRequestRejected, match="invalid_api_key"):
        await llm.chat("rca", ask())
    await llm.aclose()
    assert len(server.chat_requests()) == 1


async def test_non_json_body_is_a_bad_response(server: FakeLLMServer) -> None:
    llm, _, _ = openai_llm(server, max_retries=0)
    server.push(Raw(b"<html>proxy error</html>", content_type="text/html"))
    with pytest.raises(LLMBadResponse, match="not a chat completion"):
        await llm.chat("rca", ask())
    await llm.aclose()


async def test_error_in_the_middle_of_a_stream_is_not_retried(server: FakeLLMServer) -> None:
    llm, _, _ = openai_llm(server)
    server.push(StreamError("Partial answ"), Reply(content="again"))
    seen: list[str] = []
    with pytest.raises(LLMUnavailable, match="stream error"):
        await llm.chat("copilot", ask(), on_text=seen.append)
    await llm.aclose()
    assert "".join(seen) == "Partial answ"
    assert len(server.chat_requests()) == 1  # text already reached the caller: no silent repeat


async def test_unreachable_server_is_unavailable() -> None:
    llm = LLM(OpenAICompatProvider("http://127.0.0.1:9/v1", "m"), LLMOptions(max_retries=0))
    with pytest.raises(LLMUnavailable, match="cannot reach"):
        await llm.chat("rca", ask())
    await llm.aclose()


async def test_concurrency_limit_holds(server: FakeLLMServer) -> None:
    llm, _, _ = openai_llm(server, concurrency=2)
    server.push(*[Reply(content=str(i), delay_s=0.15) for i in range(6)])
    answers = await asyncio.gather(*[llm.chat("classification", ask()) for _ in range(6)])
    await llm.aclose()
    assert sorted(a.content or "" for a in answers) == [str(i) for i in range(6)]
    assert server.max_in_flight == 2


async def test_models_are_listed(server: FakeLLMServer) -> None:
    openai = OpenAICompatProvider(server.url, "m", "sk-test")  # no path: /v1 is added
    ollama = OllamaProvider(server.url, "m")
    assert await openai.list_models() == ["fake-model"]
    assert await ollama.list_models() == ["fake-model"]
    await openai.aclose()
    await ollama.aclose()


# --- structured outputs ------------------------------------------------------------------------


class Triage(BaseModel):
    severity: str
    reason: str


@pytest.mark.parametrize("flavour", ["openai", "ollama"])
async def test_structured_output_reasks_once_on_malformed_json(server: FakeLLMServer, flavour: str) -> None:
    llm, usage, _ = openai_llm(server) if flavour == "openai" else ollama_llm(server)
    server.push(
        Reply(content='{"severity": "high", "reason": '),
        Reply(content='{"severity": "high", "reason": "disk"}'),
    )
    answer = await ask_structured(llm, "classification", ask().messages, Triage)
    await llm.aclose()

    assert answer.value == Triage(severity="high", reason="disk")
    assert answer.attempts == 2 and "not valid JSON" in answer.rejected[0]
    first, second = server.chat_requests()
    if flavour == "openai":
        format_ = first.body["response_format"]
        assert format_["type"] == "json_schema" and format_["json_schema"]["strict"] is True
        schema = format_["json_schema"]["schema"]
    else:
        schema = first.body["format"]
    assert schema["required"] == ["severity", "reason"] and schema["additionalProperties"] is False
    # The re-ask shows the model its bad answer and what was wrong with it.
    assert second.messages[-2] == {"role": "assistant", "content": '{"severity": "high", "reason": '}
    assert "could not be used" in second.messages[-1]["content"]
    assert [e.outcome for e in usage.events] == ["ok", "invalid_output", "ok"]


async def test_structured_output_gives_up_after_the_second_invalid_answer(server: FakeLLMServer) -> None:
    llm, usage, _ = openai_llm(server)
    server.push(Reply(content="I think it is the disk."), Reply(content='{"severity": "high"}'))
    with pytest.raises(InvalidOutput, match="reason: Field required"):
        await ask_structured(llm, "classification", ask().messages, Triage)
    await llm.aclose()
    assert len(server.chat_requests()) == 2
    assert sum(e.outcome == "invalid_output" for e in usage.events) == 2


async def test_structured_check_rejects_and_reasks(server: FakeLLMServer) -> None:
    llm, _, _ = openai_llm(server)
    server.push(
        Reply(content='{"severity": "urgent", "reason": "x"}'),
        Reply(content='{"severity": "low", "reason": "x"}'),
    )

    def known_severity(t: Triage) -> str | None:
        return None if t.severity in ("low", "high") else f"severity {t.severity!r} is not low or high"

    answer = await ask_structured(llm, "classification", ask().messages, Triage, check=known_severity)
    await llm.aclose()
    assert answer.value.severity == "low"
    assert "'urgent' is not low or high" in server.chat_requests()[1].messages[-1]["content"]


async def test_a_refusal_is_an_invalid_answer(server: FakeLLMServer) -> None:
    llm, _, _ = openai_llm(server)
    server.push(
        Reply(content=None, refusal="I can't help with that."),
        Reply(content='{"severity": "low", "reason": "r"}'),
    )
    answer = await ask_structured(llm, "classification", ask().messages, Triage)
    await llm.aclose()
    assert answer.rejected == ("the model refused: I can't help with that.",)


# --- Ollama native --------------------------------------------------------------------------------


async def test_ollama_non_streaming_request_shape(server: FakeLLMServer) -> None:
    llm, usage, _ = ollama_llm(server)
    server.push(Reply(content="Disk full on web-03.", prompt_tokens=26, completion_tokens=282))
    result = await llm.chat("summary", ChatRequest(ask().messages, max_tokens=100, temperature=0.0, seed=1))
    await llm.aclose()

    assert result.content == "Disk full on web-03."
    sent = server.chat_requests()[0]
    assert sent.path == "/api/chat"
    assert sent.body["stream"] is False
    assert sent.body["options"] == {"temperature": 0.0, "num_predict": 100, "seed": 1}
    assert (usage.events[0].prompt_tokens, usage.events[0].completion_tokens) == (26, 282)


async def test_ollama_ndjson_streaming(server: FakeLLMServer) -> None:
    llm, usage, _ = ollama_llm(server)
    server.push(
        Reply(content="Memory leak in app-02 leads to OOM kills.", chunk_chars=5, completion_tokens=9)
    )
    pieces: list[str] = []
    result = await llm.chat("copilot", ask(), on_text=pieces.append)
    await llm.aclose()
    assert len(pieces) >= 8 and "".join(pieces) == result.content
    assert server.chat_requests()[0].body["stream"] is True
    assert result.finish_reason == "stop" and usage.events[0].completion_tokens == 9


async def test_ollama_tool_calls_have_object_arguments(server: FakeLLMServer) -> None:
    llm, _, _ = ollama_llm(server)
    server.push(Reply(tool_calls=[("get_metrics", {"host": "web1"})]))
    request = ChatRequest(ask().messages, tools=(HOST_TOOL,))
    result = await llm.chat("copilot", request, on_text=lambda _t: None)
    assert server.chat_requests()[0].body["stream"] is False  # tools: no streaming on older servers
    [call] = result.tool_calls
    assert (call.name, call.arguments) == ("get_metrics", {"host": "web1"})

    server.push(Reply(content="97%"))
    await llm.chat(
        "copilot",
        ChatRequest(
            (
                *request.messages,
                Message("assistant", None, tool_calls=(call,)),
                Message("tool", '{"cpu": 97}', tool_call_id=call.id, name="get_metrics"),
            ),
            tools=(HOST_TOOL,),
        ),
    )
    await llm.aclose()
    messages = server.chat_requests()[1].body["messages"]
    assert messages[2]["tool_calls"] == [{"function": {"name": "get_metrics", "arguments": {"host": "web1"}}}]
    assert messages[3] == {"role": "tool", "content": '{"cpu": 97}', "tool_name": "get_metrics"}


async def test_ollama_busy_is_retried_and_missing_model_is_not(server: FakeLLMServer) -> None:
    llm, usage, sleeps = ollama_llm(server)
    server.push(ollama_busy(), Reply(content="ok"))
    assert (await llm.chat("rca", ask())).content == "ok"
    assert len(sleeps.delays) == 1

    server.push(ollama_model_missing("llama3.1"))
    with pytest.raises(LLMRequestRejected, match="try pulling it first"):
        await llm.chat("rca", ask())
    await llm.aclose()
    assert [e.outcome for e in usage.events] == ["retry", "ok", "error"]


async def test_ollama_error_line_mid_stream(server: FakeLLMServer) -> None:
    llm, _, _ = ollama_llm(server)
    server.push(StreamError("The disk", error="model runner has unexpectedly stopped"))
    with pytest.raises(LLMUnavailable, match="unexpectedly stopped"):
        await llm.chat("copilot", ask(), on_text=lambda _t: None)
    await llm.aclose()


async def test_ollama_error_status_body(server: FakeLLMServer) -> None:
    llm, _, _ = ollama_llm(server, max_retries=0)
    server.push(Fail(400, {"error": 'invalid format: expected "json" or a JSON schema'}))
    with pytest.raises(LLMRequestRejected, match="invalid format"):
        await llm.chat("rca", ask())
    await llm.aclose()
