"""Merging the frames a slow WebSocket client has waiting."""

from __future__ import annotations

import json

from vigil.api.ws import merge_frames


def alerts(*ids: int) -> str:
    return json.dumps({"type": "alerts", "events": [{"id": i} for i in ids]}, separators=(",", ":"))


def test_frames_of_one_kind_merge_in_order_and_stay_valid_json() -> None:
    hello = '{"type":"hello","channel":"alerts"}'
    points = json.dumps({"type": "points", "points": [["cpu", "u", {}, 1.0, 1]]}, separators=(",", ":"))
    merged = merge_frames([hello, alerts(1), alerts(), alerts(2, 3), points, points, alerts(4)])
    assert [json.loads(m) for m in merged] == [
        {"type": "hello", "channel": "alerts"},
        {"type": "alerts", "events": [{"id": 1}, {"id": 2}, {"id": 3}]},
        {"type": "points", "points": [["cpu", "u", {}, 1.0, 1], ["cpu", "u", {}, 1.0, 1]]},
        {"type": "alerts", "events": [{"id": 4}]},
    ]
    assert merge_frames([alerts(), alerts(5)]) == [alerts(5)]
