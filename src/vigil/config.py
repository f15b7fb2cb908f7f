"""Settings, in one place: `VIGIL_*` environment variables and an optional file.

The profile follows from the URLs alone: leave them unset for the embedded profile (one process,
no servers, everything in the data directory); set them to run on PostgreSQL, Redis, InfluxDB
and a Chroma server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class SettingsError(Exception):
    """A setting is malformed; the message names it and says what is wrong, on one line."""


def _check_url(value: str | None, setting: str, schemes: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ValueError(f"{setting} must start with one of {', '.join(s + '://' for s in schemes)}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{setting} has an invalid port: {exc}") from None
    if not parts.hostname and not parts.scheme.startswith("sqlite"):
        raise ValueError(f"{setting} has no host")
    del port
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VIGIL_",
        env_file=os.environ.get("VIGIL_SETTINGS_FILE", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: Path = Field(Path(".vigil"), description="Where the embedded profile keeps its data.")

    # Relational store: SQLite file in the data dir unless a URL is given.
    database_url: str | None = Field(None, description="sqlite+aiosqlite:///… or postgresql+asyncpg://…")
    database_pool_size: int = 10

    # Event bus: in-process unless Redis is configured.
    redis_url: str | None = None
    redis_prefix: str = "vigil:"
    bus_visibility_timeout_ms: int = 30_000
    bus_max_deliveries: int = 5
    bus_max_backlog: int = 1_000_000

    # Metric store: embedded unless InfluxDB is configured (v1 HTTP API, also 2.x/3.x compat).
    influx_url: str | None = None
    influx_database: str = "vigil"
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    influx_token: SecretStr | None = None

    # Vector store: embedded Chroma in the data dir unless a server is configured.
    chroma_url: str | None = None
    chroma_tenant: str = "default_tenant"
    chroma_database: str = "default_database"

    # LLM: none by default (every feature works without one, labelled "generated_by": "rules").
    llm_provider: Literal["none", "openai", "ollama"] = "none"
    llm_base_url: str | None = Field(None, description="OpenAI-compatible base (…/v1) or Ollama URL.")
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout_s: float = Field(60.0, gt=0)
    llm_max_retries: int = Field(3, ge=0, le=10)
    llm_concurrency: int = Field(4, ge=1)
    llm_max_prompt_tokens: int = Field(6000, ge=500)
    llm_max_completion_tokens: int = Field(800, ge=16)
    llm_price_input_per_mtok: float = Field(0.0, ge=0, description="USD per million prompt tokens.")
    llm_price_output_per_mtok: float = Field(0.0, ge=0, description="USD per million completion tokens.")

    # Embeddings for semantic search: lexical needs no model; local needs the `embeddings` extra.
    embeddings: Literal["lexical", "local", "openai", "ollama"] = "lexical"
    embeddings_url: str | None = None  # OpenAI-compatible base URL or Ollama URL
    embeddings_model: str | None = None
    embeddings_api_key: SecretStr | None = None

    # Logs: miner shards (leased to workers), retention by age and by line count (0: no limit).
    log_shards: int = Field(4, ge=1, le=256)
    log_retention_days: float = Field(14.0, gt=0)
    log_retention_max_lines: int = Field(0, ge=0)

    # Metric detection: series are hashed into this many partitions, each leased to one worker.
    metric_partitions: int = Field(8, ge=1, le=256)

    # API
    host: str = "127.0.0.1"
    port: int = 8080
    secret_key: SecretStr | None = Field(
        None, description="Encrypts source credentials at rest; generated into the data dir if unset."
    )
    session_ttl_hours: int = 24 * 7
    cookie_secure: bool = False
    max_body_bytes: int = 25 * 1024 * 1024
    web_dir: Path | None = Field(
        None, description="A built web UI (a folder with index.html) to serve at /; default web/out."
    )

    # Ingestion
    syslog_port: int | None = Field(None, description="Syslog listener port (UDP and TCP); unset = off.")
    syslog_host: str = "127.0.0.1"
    error_events_per_group: int = Field(50, ge=1, description="Newest events kept per error group.")

    # Logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False

    # Worker
    worker_name: str | None = None

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str | None) -> str | None:
        return _check_url(v, "VIGIL_DATABASE_URL", ("sqlite+aiosqlite", "postgresql+asyncpg"))

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        return _check_url(v, "VIGIL_REDIS_URL", ("redis", "rediss", "unix"))

    @field_validator("influx_url")
    @classmethod
    def _influx_url(cls, v: str | None) -> str | None:
        return _check_url(v, "VIGIL_INFLUX_URL", ("http", "https"))

    @field_validator("chroma_url")
    @classmethod
    def _chroma_url(cls, v: str | None) -> str | None:
        return _check_url(v, "VIGIL_CHROMA_URL", ("http", "https"))

    @field_validator("llm_base_url")
    @classmethod
    def _llm_base_url(cls, v: str | None) -> str | None:
        return _check_url(v, "VIGIL_LLM_BASE_URL", ("http", "https"))

    @model_validator(mode="after")
    def _llm_complete(self) -> Settings:
        if self.llm_provider != "none" and not self.llm_model:
            raise ValueError(f"VIGIL_LLM_MODEL is required when VIGIL_LLM_PROVIDER={self.llm_provider}")
        if self.llm_provider == "openai" and not self.llm_base_url:
            self.llm_base_url = "https://api.openai.com/v1"
        return self

    @field_validator("embeddings_url")
    @classmethod
    def _embeddings_url(cls, v: str | None) -> str | None:
        return _check_url(v, "VIGIL_EMBEDDINGS_URL", ("http", "https"))

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, dotenv_settings

    # --- derived ------------------------------------------------------------------------------

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'vigil.db'}"

    @property
    def profile(self) -> str:
        distributed = [
            self.database_url and "postgresql" in self.database_url,
            self.redis_url,
            self.influx_url,
            self.chroma_url,
        ]
        if all(distributed):
            return "distributed"
        return "embedded" if not any(distributed) else "mixed"

    def backend_summary(self) -> dict[str, str]:
        """Which backend each part uses, for the startup banner and /readyz."""
        return {
            "database": "postgresql"
            if self.database_url and "postgresql" in self.database_url
            else f"sqlite ({self.effective_database_url.split(':///', 1)[1]})",
            "bus": f"redis ({redact(self.redis_url)})"
            if self.redis_url
            else "in-process (journal in data dir)",
            "metrics": f"influxdb ({redact(self.influx_url)}, db {self.influx_database})"
            if self.influx_url
            else "embedded (data dir)",
            "vectors": f"chroma server ({redact(self.chroma_url)})"
            if self.chroma_url
            else "embedded chroma (data dir)",
        }


def redact(url: str | None) -> str:
    """A URL safe to print: the password replaced by ***."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and file), or SettingsError with one clear line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        name = f"VIGIL_{loc.upper()}" if loc else "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        if message.startswith("VIGIL_"):
            raise SettingsError(message) from None
        raise SettingsError(f"{name}: {message}") from None
