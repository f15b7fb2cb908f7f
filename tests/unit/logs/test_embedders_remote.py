"""OpenAI-compatible and Ollama embedding clients against a tiny local server that speaks the
documented shapes (including 429/5xx and error bodies), and the settings-driven factory."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from vigil.config import Settings, SettingsError
from vigil.llm.embedder_factory import build_embedder, collection_suffix
from vigil.llm.embeddings import Embedder
from vigil.llm.embeddings_lexical import LexicalEmbedder
from vigil.llm.embeddings_remote import EmbeddingError, OllamaEmbedder, OpenAIEmbedder


def _vector(text: str) -> list[float]:
    return [float(len(text)), 1.0, float(text.count(" "))]


class FakeServer:
    """Answers /v1/embeddings and /api/embed; ``script`` holds statuses to answer first."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                if server.script:
                    status, payload, headers = server.script.pop(0)
                    self._send(status, payload, headers)
                elif self.path == "/v1/embeddings":
                    data = [
                        {"object": "embedding", "index": i, "embedding": _vector(t)}
                        for i, t in enumerate(body["input"])
                    ]
                    data.reverse()  # clients must order by index
                    self._send(200, {"object": "list", "data": data, "model": body["model"]})
                elif self.path == "/api/embed":
                    self._send(
                        200, {"model": body["model"], "embeddings": [_vector(t) for t in body["input"]]}
                    )
                else:
                    self._send(404, {"error": "not found"})

            def _send(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    yield fake
    fake.close()


def _unit(v: list[float]) -> list[float]:
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


async def test_openai_batches_orders_and_normalises(server: FakeServer) -> None:
    embedder = OpenAIEmbedder(server.url + "/v1", "text-embedding-3-small", api_key="sk-test", batch_size=2)
    assert isinstance(embedder, Embedder) and embedder.name == "openai:text-embedding-3-small"
    texts = ["disk full", "oom killer", "a b c"]
    vectors = await embedder.embed(texts)
    await embedder.close()
    assert [[round(x, 6) for x in v] for v in vectors] == [
        [round(x, 6) for x in _unit(_vector(t))] for t in texts
    ]
    assert embedder.dimensions == 3
    assert [len(r["body"]["input"]) for r in server.requests] == [2, 1]
    assert server.requests[0]["path"] == "/v1/embeddings" and server.requests[0]["auth"] == "Bearer sk-test"
    assert server.requests[0]["body"]["model"] == "text-embedding-3-small"


async def test_openai_base_without_v1(server: FakeServer) -> None:
    embedder = OpenAIEmbedder(server.url, "m")
    assert len(await embedder.embed(["x"])) == 1
    await embedder.close()
    assert server.requests[0]["path"] == "/v1/embeddings"


async def test_retries_rate_limits_and_server_errors(server: FakeServer) -> None:
    server.script = [
        (
            429,
            {"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}},
            {"Retry-After": "0"},
        ),
        (503, {"error": {"message": "overloaded", "type": "server_error"}}, {}),
    ]
    embedder = OpenAIEmbedder(server.url + "/v1", "m", backoff_s=0.01)
    assert len(await embedder.embed(["x"])) == 1
    await embedder.close()
    assert len(server.requests) == 3


async def test_no_retry_on_quota_or_client_errors(server: FakeServer) -> None:
    server.script = [
        (429, {"error": {"message": "You exceeded your quota", "code": "insufficient_quota"}}, {})
    ]
    embedder = OpenAIEmbedder(server.url + "/v1", "m", backoff_s=0.01)
    with pytest.raises(EmbeddingError, match="429: You exceeded your quota"):
        await embedder.embed(["x"])
    server.script = [(401, {"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}, {})]
    with pytest.raises(EmbeddingError, match="401: Incorrect API key"):
        await embedder.embed(["x"])
    await embedder.close()
    assert len(server.requests) == 2


async def test_gives_up_after_max_retries(server: FakeServer) -> None:
    server.script = [(500, {"error": {"message": "boom"}}, {})] * 3
    embedder = OpenAIEmbedder(server.url + "/v1", "m", backoff_s=0.01, max_retries=2)
    with pytest.raises(EmbeddingError, match="500: boom"):
        await embedder.embed(["x"])
    await embedder.close()
    assert len(server.requests) == 3


async def test_unreachable_endpoint() -> None:
    embedder = OpenAIEmbedder("http://127.0.0.1:9/v1", "m", backoff_s=0.01, max_retries=1, timeout_s=2)
    with pytest.raises(EmbeddingError, match="cannot reach"):
        await embedder.embed(["x"])
    await embedder.close()


async def test_ollama_embed(server: FakeServer) -> None:
    embedder = OllamaEmbedder(server.url, "nomic-embed-text")
    vectors = await embedder.embed(["disk full", "cpu hot"])
    assert embedder.name == "ollama:nomic-embed-text"
    assert [round(x, 6) for x in vectors[1]] == [round(x, 6) for x in _unit(_vector("cpu hot"))]
    assert server.requests[0]["path"] == "/api/embed"
    assert server.requests[0]["body"] == {
        "model": "nomic-embed-text",
        "input": ["disk full", "cpu hot"],
        "truncate": True,
    }
    server.script = [(404, {"error": 'model "x" not found, try pulling it first'}, {})]
    with pytest.raises(EmbeddingError, match="not found"):
        await embedder.embed(["a"])
    await embedder.close()


async def test_factory_from_settings(server: FakeServer, tmp_path: Any) -> None:
    assert isinstance(build_embedder(Settings(data_dir=tmp_path)), LexicalEmbedder)
    openai = build_embedder(
        Settings(
            data_dir=tmp_path,
            embeddings="openai",
            embeddings_url=server.url + "/v1",
            embeddings_model="m",
            embeddings_api_key="k",
        )
    )
    assert isinstance(openai, OpenAIEmbedder) and openai.endpoint == server.url + "/v1/embeddings"
    ollama = build_embedder(Settings(data_dir=tmp_path, embeddings="ollama", embeddings_url=server.url))
    assert isinstance(ollama, OllamaEmbedder) and ollama.model == "nomic-embed-text"
    with pytest.raises(SettingsError, match="VIGIL_EMBEDDINGS_MODEL"):
        build_embedder(Settings(data_dir=tmp_path, embeddings="openai"))
    assert collection_suffix(openai) == "openai_m"
    assert collection_suffix(LexicalEmbedder()) == "lexical_v1"
