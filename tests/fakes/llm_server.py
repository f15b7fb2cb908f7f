"""A local LLM server for tests: OpenAI-compatible ``/v1`` and Ollama's native ``/api``.

It answers with scripted replies, in the exact wire shapes of integrations.md §15, so the
production clients run unchanged against it: JSON or SSE streams (OpenAI), JSON or NDJSON
streams (Ollama), tool calls (arguments as a string for OpenAI, an object for Ollama),
malformed JSON, slow answers (timeouts), error envelopes (429 rate_limit_exceeded with
retry-after, 429 insufficient_quota, 5xx, Ollama 503 busy) and mid-stream errors.

    with FakeLLMServer() as llm:
        llm.push(rate_limited(), Reply(content='{"ok": true}'))
        ... point OpenAICompatProvider at llm.openai_url, or OllamaProvider at llm.url ...
        assert len(llm.requests) == 2

Replies are consumed in order by whichever endpoint is called; when the script is empty,
``responder(flavour, body)`` (if set) decides, so a test can answer from the prompt itself
(e.g. cite the evidence ids it was given). With neither, the server answers 500 and says so.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

Flavour = Literal["openai", "ollama"]


@dataclass
class Reply:
    """A successful answer. ``tool_calls`` are (name, arguments): a dict, or a string sent as
    is (use an invalid one for "malformed arguments")."""

    content: str | None = None
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    finish_reason: str | None = None  # default: "tool_calls" when there are calls, else "stop"
    refusal: str | None = None
    prompt_tokens: int = 25
    completion_tokens: int = 7
    delay_s: float = 0.0  # before the response starts: longer than the client timeout = timeout
    chunk_delay_s: float = 0.0  # between stream chunks
    chunk_chars: int = 8  # stream content in pieces this long


@dataclass
class Fail:
    """An error answer with the given status, body (dict → JSON, str → text) and headers."""

    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Raw:
    """Any body at all, e.g. a proxy's HTML page with a 200 status."""

    body: bytes
    status: int = 200
    content_type: str = "application/json"


@dataclass
class StreamError:
    """Streams ``content`` and then fails in the middle of the answer."""

    content: str
    error: str = "model runner has unexpectedly stopped"


Scripted = Reply | Fail | Raw | StreamError


def openai_error(status: int, message: str, type_: str, code: str | None, **headers: str) -> Fail:
    return Fail(
        status,
        {"error": {"message": message, "type": type_, "param": None, "code": code}},
        {k.replace("_", "-"): v for k, v in headers.items()},
    )


def rate_limited(retry_after: str = "0") -> Fail:
    return openai_error(
        429,
        "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3, Requested 1.",
        "requests",
        "rate_limit_exceeded",
        retry_after=retry_after,
        x_ratelimit_remaining_requests="0",
        x_ratelimit_reset_requests="20s",
    )


def insufficient_quota() -> Fail:
    return openai_error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    )


def server_error() -> Fail:
    return openai_error(500, "The server had an error while processing your request.", "server_error", None)


def ollama_busy() -> Fail:
    return Fail(503, {"error": "server busy, please try again.  maximum pending requests exceeded"})


def ollama_model_missing(model: str) -> Fail:
    return Fail(404, {"error": f'model "{model}" not found, try pulling it first'})


@dataclass
class RecordedRequest:
    flavour: Flavour | None
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or []) if isinstance(self.body, dict) else []

    @property
    def prompt(self) -> str:
        """All message contents, joined: what the model was shown."""
        return "\n".join(str(m.get("content") or "") for m in self.messages)


class FakeLLMServer:
    def __init__(self, api_key: str | None = None, models: tuple[str, ...] = ("fake-model",)) -> None:
        self.api_key = api_key
        self.models = models
        self.script: deque[Scripted] = deque()
        self.requests: list[RecordedRequest] = []
        self.responder: Callable[[Flavour, dict[str, Any]], Scripted] | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.in_flight = 0
        self.max_in_flight = 0  # most chat requests being answered at once (concurrency tests)

    # --- control ------------------------------------------------------------------------------

    def push(self, *items: Scripted) -> None:
        self.script.extend(items)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions") or r.path == "/api/chat"]

    def __enter__(self) -> FakeLLMServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-llm", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake LLM server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    # --- the app ------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._openai_chat, methods=["POST"]),
                Route("/v1/models", self._openai_models, methods=["GET"]),
                Route("/api/chat", self._ollama_chat, methods=["POST"]),
                Route("/api/tags", self._ollama_tags, methods=["GET"]),
                Route("/api/version", self._ollama_version, methods=["GET"]),
            ]
        )

    async def _record(self, request: Request, flavour: Flavour | None) -> Any:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.append(RecordedRequest(flavour, request.url.path, dict(request.headers), body))
        return body

    def _next(self, flavour: Flavour, body: dict[str, Any]) -> Scripted:
        if self.script:
            return self.script.popleft()
        if self.responder is not None:
            return self.responder(flavour, body)
        message = "fake LLM server: no scripted reply left and no responder set"
        if flavour == "openai":
            return openai_error(500, message, "server_error", None)
        return Fail(500, {"error": message})

    def _unauthorised(self, request: Request) -> Response | None:
        if self.api_key is None or request.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        return JSONResponse(
            {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                       "param": None, "code": "invalid_api_key"}},
            status_code=401,
        )

    async def _openai_models(self, request: Request) -> Response:
        await self._record(request, "openai")
        if (denied := self._unauthorised(request)) is not None:
            return denied
        return JSONResponse(
            {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1714557600, "owned_by": "fake"} for m in self.models
            ]}
        )

    async def _ollama_tags(self, request: Request) -> Response:
        await self._record(request, "ollama")
        return JSONResponse({"models": [
            {"name": m, "model": m, "modified_at": "2024-05-01T10:00:00Z", "size": 1, "digest": "0",
             "details": {"format": "gguf", "family": "llama"}} for m in self.models
        ]})

    async def _ollama_version(self, request: Request) -> Response:
        await self._record(request, "ollama")
        return JSONResponse({"version": "0.6.0"})

    async def _common(self, scripted: Scripted) -> Response | None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._early_answer(scripted)
        finally:
            self.in_flight -= 1

    async def _early_answer(self, scripted: Scripted) -> Response | None:
        if isinstance(scripted, Fail):
            await asyncio.sleep(scripted.delay_s)
            if isinstance(scripted.body, str):
                return Response(scripted.body, scripted.status, scripted.headers, media_type="text/plain")
            return JSONResponse(scripted.body, scripted.status, scripted.headers)
        if isinstance(scripted, Raw):
            return Response(scripted.body, scripted.status, media_type=scripted.content_type)
        if isinstance(scripted, Reply):
            await asyncio.sleep(scripted.delay_s)
        return None

    # --- OpenAI ---------------------------------------------------------------------------------

    async def _openai_chat(self, request: Request) -> Response:
        body = await self._record(request, "openai")
        if (denied := self._unauthorised(request)) is not None:
            return denied
        if not isinstance(body, dict) or "model" not in body or "messages" not in body:
            return JSONResponse(
                {"error": {"message": "'messages' is a required property", "type": "invalid_request_error",
                           "param": "messages", "code": None}},
                status_code=400,
            )
        scripted = self._next("openai", body)
        if (early := await self._common(scripted)) is not None:
            return early
        model = str(body["model"])
        if isinstance(scripted, StreamError):
            return StreamingResponse(_openai_stream_error(model, scripted), media_type="text/event-stream")
        assert isinstance(scripted, Reply)
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_openai_stream(model, scripted, usage), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": scripted.content,
                        "refusal": scripted.refusal,
                        **({"tool_calls": _openai_calls(scripted)} if scripted.tool_calls else {}),
                    },
                    "logprobs": None,
                    "finish_reason": _finish(scripted),
                }],
                "usage": {
                    "prompt_tokens": scripted.prompt_tokens,
                    "completion_tokens": scripted.completion_tokens,
                    "total_tokens": scripted.prompt_tokens + scripted.completion_tokens,
                },
                "system_fingerprint": "fp_fake",
            },
            headers={"x-request-id": "req_fake"},
        )

    # --- Ollama ---------------------------------------------------------------------------------

    async def _ollama_chat(self, request: Request) -> Response:
        body = await self._record(request, "ollama")
        if not isinstance(body, dict) or "model" not in body:
            return JSONResponse({"error": "model is required"}, status_code=400)
        scripted = self._next("ollama", body)
        if (early := await self._common(scripted)) is not None:
            return early
        model = str(body["model"])
        stream = body.get("stream", True)  # Ollama streams unless told not to
        if isinstance(scripted, StreamError):
            return StreamingResponse(_ollama_stream_error(model, scripted), media_type="application/x-ndjson")
        assert isinstance(scripted, Reply)
        if stream:
            return StreamingResponse(_ollama_stream(model, scripted), media_type="application/x-ndjson")
        message: dict[str, Any] = {"role": "assistant", "content": scripted.content or ""}
        if scripted.tool_calls:
            message["tool_calls"] = _ollama_calls(scripted)
        return JSONResponse({**_ollama_head(model), "message": message, **_ollama_done(scripted)})


def _finish(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


def _arguments_text(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _openai_calls(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{i + 1}",
            "type": "function",
            "function": {"name": name, "arguments": _arguments_text(args)},
        }
        for i, (name, args) in enumerate(reply.tool_calls)
    ]


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]


def _sse(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def _delta(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    return _sse(_chunk(model, [{"index": 0, "delta": delta, "finish_reason": finish}]))


def _chunk(model: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "choices": choices, **extra}


async def _openai_stream(model: str, reply: Reply, include_usage: bool) -> AsyncIterator[bytes]:
    yield _delta(model, {"role": "assistant", "content": ""})
    for piece in _pieces(reply.content or "", reply.chunk_chars):
        await asyncio.sleep(reply.chunk_delay_s)
        yield _delta(model, {"content": piece})
    for index, (name, args) in enumerate(reply.tool_calls):
        head = {"index": index, "id": f"call_{index + 1}", "type": "function",
                "function": {"name": name, "arguments": ""}}
        yield _delta(model, {"tool_calls": [head]})
        for piece in _pieces(_arguments_text(args), 5):
            fragment = {"index": index, "function": {"arguments": piece}}
            yield _delta(model, {"tool_calls": [fragment]})
    yield _delta(model, {}, _finish(reply))
    if include_usage:
        yield _sse(_chunk(model, [], usage={
            "prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
        }))
    yield _sse("[DONE]")


async def _openai_stream_error(model: str, failure: StreamError) -> AsyncIterator[bytes]:
    for piece in _pieces(failure.content, 8):
        yield _delta(model, {"content": piece})
    yield _sse({"error": {"message": failure.error, "type": "server_error", "param": None, "code": None}})


def _ollama_head(model: str) -> dict[str, Any]:
    return {"model": model, "created_at": "2024-05-01T10:00:00.1Z"}


def _ollama_done(reply: Reply) -> dict[str, Any]:
    return {
        "done": True, "done_reason": reply.finish_reason if reply.finish_reason == "length" else "stop",
        "total_duration": 4883583458, "load_duration": 1334875, "prompt_eval_count": reply.prompt_tokens,
        "prompt_eval_duration": 342546000, "eval_count": reply.completion_tokens, "eval_duration": 4535599000,
    }


def _ollama_calls(reply: Reply) -> list[dict[str, Any]]:
    return [{"function": {"name": name, "arguments": args}} for name, args in reply.tool_calls]


def _ollama_piece(model: str, piece: str) -> bytes:
    return _line({**_ollama_head(model), "message": {"role": "assistant", "content": piece}, "done": False})


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data) + "\n").encode()


async def _ollama_stream(model: str, reply: Reply) -> AsyncIterator[bytes]:
    for piece in _pieces(reply.content or "", reply.chunk_chars):
        await asyncio.sleep(reply.chunk_delay_s)
        yield _ollama_piece(model, piece)
    if reply.tool_calls:
        message = {"role": "assistant", "content": "", "tool_calls": _ollama_calls(reply)}
        yield _line({**_ollama_head(model), "message": message, "done": False})
    final = {**_ollama_head(model), "message": {"role": "assistant", "content": ""}, **_ollama_done(reply)}
    yield _line(final)


async def _ollama_stream_error(model: str, failure: StreamError) -> AsyncIterator[bytes]:
    for piece in _pieces(failure.content, 8):
        yield _ollama_piece(model, piece)
    yield _line({"error": failure.error})

