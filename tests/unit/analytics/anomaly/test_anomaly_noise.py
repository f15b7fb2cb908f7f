"""The noise gate: warm-up, hysteresis, minimum duration, cooldown, serialisation."""

from __future__ import annotations

import pytest

from vigil.analytics.anomaly import NoiseConfig, NoiseGate, Transition


def feed(gate: NoiseGate, scores: list[float], start: float = 0.0, step: float = 60.0) -> list[Transition]:
    out = []
    for i, s in enumerate(scores):
        tr = gate.update(start + i * step, s)
        if tr is not None:
            out.append(tr)
    return out


def test_opens_after_minimum_points_updates_on_new_peak_and_resolves_below_leave() -> None:
    gate = NoiseGate(NoiseConfig(enter=0.6, leave=0.3, min_points=3, cooldown_s=0))
    trs = feed(gate, [0.1, 0.7, 0.8, 0.75, 0.9, 0.5, 0.35, 0.2, 0.1])
    assert [t.kind for t in trs] == ["open", "update", "resolve"]
    opened, updated, resolved = trs
    assert opened.time == 180.0 and opened.started_at == 60.0 and opened.peak == 0.8
    assert updated.score == 0.9 and updated.peak == 0.9
    assert resolved.time == 420.0 and resolved.peak == 0.9


def test_a_single_spike_below_minimum_duration_opens_nothing() -> None:
    gate = NoiseGate(NoiseConfig(min_points=2))
    assert feed(gate, [0.1, 0.95, 0.1, 0.1, 0.97, 0.1]) == []


def test_minimum_duration_in_seconds_is_also_required() -> None:
    gate = NoiseGate(NoiseConfig(min_points=1, min_duration_s=120.0))
    trs = feed(gate, [0.9, 0.9, 0.9, 0.9])
    assert [t.kind for t in trs] == ["open"] and trs[0].time == 120.0


def test_hysteresis_keeps_a_hovering_score_open() -> None:
    gate = NoiseGate(NoiseConfig(enter=0.6, leave=0.3, min_points=1))
    trs = feed(gate, [0.7, 0.55, 0.65, 0.5, 0.62, 0.45])
    assert [t.kind for t in trs] == ["open"]
    assert gate.is_open


def test_cooldown_blocks_reopening_until_it_expires() -> None:
    gate = NoiseGate(NoiseConfig(min_points=1, cooldown_s=300.0))
    # open at 0, resolve at 60, then high again at 120..600 (one point a minute)
    trs = feed(gate, [0.9, 0.1] + [0.9] * 9)
    assert [t.kind for t in trs] == ["open", "resolve", "open"]
    assert trs[2].time >= 60.0 + 300.0


def test_warm_up_points_never_open() -> None:
    gate = NoiseGate(NoiseConfig(min_points=1, warmup_points=3))
    trs = feed(gate, [0.9, 0.9, 0.9, 0.9])
    assert [t.kind for t in trs] == ["open"] and trs[0].time == 180.0


def test_round_trip_continues_identically() -> None:
    config = NoiseConfig(min_points=2, cooldown_s=120.0)
    scores = [0.1, 0.7, 0.8, 0.9, 0.2, 0.9, 0.9, 0.9, 0.1, 0.65, 0.7]
    whole = feed(NoiseGate(config), scores)
    first = NoiseGate(config)
    head = feed(first, scores[:3])
    restored = NoiseGate.from_bytes(first.to_bytes(), config)
    tail = feed(restored, scores[3:], start=180.0)
    assert head + tail == whole
    assert len(first.to_bytes()) < 64


def test_invalid_thresholds_are_rejected() -> None:
    with pytest.raises(ValueError):
        NoiseConfig(enter=0.3, leave=0.5)
