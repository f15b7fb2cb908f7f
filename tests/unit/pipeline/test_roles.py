"""`vigil worker --roles`: each role brings its own stages, all roles make the whole worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vigil.backends import Backends
from vigil.cli import app
from vigil.config import Settings
from vigil.pipeline.roles import ROLES, check_roles
from vigil.pipeline.worker import build_parts


def stage_names(backends: Backends, roles: tuple[str, ...]) -> set[str]:
    return {stage.name for stage in build_parts(backends, roles)[0]}


def test_roles_partition_the_stages(tmp_path: Path) -> None:
    backends = Backends.from_settings(Settings(data_dir=tmp_path, secret_key="k"))
    whole = stage_names(backends, ROLES)
    parts = [stage_names(backends, (role,)) for role in ROLES]
    assert all(parts), parts  # every role runs something
    assert set().union(*parts) == whole
    assert sum(len(p) for p in parts) == len(whole)  # no stage in two roles
    assert len(build_parts(backends, ("alerting",))[1]) < len(build_parts(backends, ROLES)[1])


def test_unknown_or_empty_roles_are_refused() -> None:
    with pytest.raises(ValueError, match="bogus"):
        check_roles(["alerting", "bogus"])
    with pytest.raises(ValueError, match="none given"):
        check_roles([])
    result = CliRunner().invoke(app, ["worker", "--roles", "alerting,bogus"])
    assert result.exit_code == 2 and "bogus" in result.output and "--roles" in result.output
