"""Opaque cursors for keyset pagination: stable under inserts, O(1) per page at any depth."""

from __future__ import annotations

import base64
import json
from typing import Any

from vigil.api.problems import Problem


def encode_cursor(values: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(values, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[Any] | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "cursor: not a cursor returned by this API") from exc
    if not isinstance(values, list):
        raise Problem(400, "cursor: not a cursor returned by this API")
    return values
