"""Settings: profiles from URLs alone, and one clear line for a bad setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.config import SettingsError, load_settings, redact


def test_defaults_are_the_embedded_profile(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert settings.profile == "embedded"
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'vigil.db'}"
    assert settings.backend_summary()["bus"].startswith("in-process")


def test_urls_select_the_distributed_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_DATABASE_URL", "postgresql+asyncpg://u:pw@db:5432/vigil")
    monkeypatch.setenv("VIGIL_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("VIGIL_INFLUX_URL", "http://influx:8086")
    monkeypatch.setenv("VIGIL_CHROMA_URL", "http://chroma:8000")
    settings = load_settings()
    assert settings.profile == "distributed"
    assert "pw" not in str(settings.backend_summary())


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("VIGIL_REDIS_URL", "http://localhost:6379", "VIGIL_REDIS_URL must start with one of redis://"),
        ("VIGIL_DATABASE_URL", "mysql://x/y", "VIGIL_DATABASE_URL must start with one of"),
        ("VIGIL_INFLUX_URL", "http://host:notaport", "VIGIL_INFLUX_URL has an invalid port"),
        ("VIGIL_CHROMA_URL", "http://", "VIGIL_CHROMA_URL has no host"),
        ("VIGIL_PORT", "eighty", "VIGIL_PORT:"),
    ],
)
def test_malformed_settings_fail_with_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_redact_hides_passwords() -> None:
    assert redact("redis://:secret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact("postgresql+asyncpg://u:p@h/db") == "postgresql+asyncpg://u:***@h/db"
    assert redact("http://host:8086") == "http://host:8086"
