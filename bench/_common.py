"""Helpers shared by the benchmarks: where the shared data lives, JSON output, result tables."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("VIGIL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_data(name: str) -> Path:
    """Default location of a shared benchmark corpus (``../shared/data/<name>``)."""
    return SHARED_DATA / name


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise SystemExit(
            f"{what} not found at {path}: pass --data DIR (a clone of Vigil has no ../shared/data)"
        )
    return path


def print_json(result: Any) -> None:
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=False) + "\n")


def machine() -> dict[str, Any]:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
