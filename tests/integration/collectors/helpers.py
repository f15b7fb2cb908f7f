"""Running one collector the way the scheduler does: validated config, normalised target."""

from __future__ import annotations

from typing import Any

from vigil.collectors.base import CollectResult, source_type


async def run_collector(
    kind: str,
    target: str | None,
    config: dict[str, Any],
    credentials: dict[str, Any],
    state: dict[str, Any] | None = None,
) -> CollectResult:
    source = source_type(kind)
    assert source is not None and source.collector is not None
    parsed_config = source.config_model.model_validate(config)
    parsed_credentials = source.credentials_model.model_validate(credentials)
    normalised = source.collector.check(target, parsed_config, parsed_credentials)
    return await source.collector.collect(normalised, parsed_config, parsed_credentials, dict(state or {}))
