"""`vigil bench rca` runs: JSON shape, Vigil's ranking against its peers, the with-LLM column
skipped without a model and filled through the scripted server with one."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from bench.rca import app
from tests.fakes.llm_server import FakeLLMServer, Flavour, Reply, Scripted

SHOWN = re.compile(r"^\[(E\d+)\]", re.MULTILINE)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    with pytest.raises(SystemExit) as done:
        app(args=["--json", "--scenarios", "25", *args], prog_name="vigil bench rca")
    assert done.value.code in (0, None)
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_without_a_model(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys)
    accuracy = result["accuracy"]
    assert set(accuracy) == {"vigil", "earliest_signal", "strongest_signal"}
    assert accuracy["vigil"]["all"]["n"] == 25
    for peer in ("earliest_signal", "strongest_signal"):
        assert accuracy["vigil"]["all"]["top1"] > accuracy[peer]["all"]["top1"]
    assert result["llm"] == {"skipped": "no LLM configured (pass --llm-url and --llm-model)"}


def test_with_the_scripted_model(capsys: pytest.CaptureFixture[str]) -> None:
    def second_candidate(_: Flavour, body: dict[str, Any]) -> Scripted:
        prompt = "\n".join(str(m.get("content")) for m in body["messages"])
        ids = SHOWN.findall(prompt)[:2]
        choice = 2 if "H2:" in prompt else 1
        answer = {
            "hypothesis": choice,
            "summary": f"cause [{ids[0]}]",
            "explanation": "because",
            "evidence_ids": ids,
            "next_steps": [{"action": "fix", "evidence_ids": ids[:1]}],
            "confidence": 0.5,
        }
        return Reply(content=json.dumps(answer))

    with FakeLLMServer() as server:
        server.responder = second_candidate
        result = run(capsys, "--llm-url", server.openai_url, "--llm-model", "fake", "--llm-api-key", "k")
    llm = result["accuracy"]["vigil_llm"]["all"]
    assert llm["n"] == 25 and result["llm"]["fallbacks_to_rules"] == 0
    # A model that always prefers the runner-up loses top-1 wherever the rules were right.
    assert llm["top1"] < result["accuracy"]["vigil"]["all"]["top1"]
    assert result["llm"]["prompt_tokens"] > 0
