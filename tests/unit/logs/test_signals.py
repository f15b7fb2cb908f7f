"""Per-minute template counts, their metric points and the burst test."""

from __future__ import annotations

from vigil.logs.signals import MINUTE_NS, SignalTracker, burst_score, is_burst

T0 = 1_700_000_000 * 1_000_000_000 // MINUTE_NS * MINUTE_NS


def test_burst_needs_history_and_a_real_jump() -> None:
    assert burst_score([3] * 5, 100) is None  # too little history
    steady = [3, 4, 2, 3, 5, 3, 4, 3, 2, 4, 3, 3]
    assert not is_burst(steady, 6)
    assert not is_burst(steady, 9)  # noisy but not a burst
    assert is_burst(steady, 40)
    assert not is_burst([0] * 20, 3)  # a quiet template seen a few times is not a burst
    assert is_burst([0] * 20, 30)
    # a nearly silent template starting at a working rate is not a burst; a flood still is
    assert not is_burst([0] * 18 + [1, 1], 11)
    assert is_burst([0] * 18 + [1, 1], 30)
    assert is_burst([0] * 17 + [1, 1, 1], 11)  # seen in enough minutes: 11/min stands out


def test_points_are_running_totals_per_minute_and_host() -> None:
    tracker = SignalTracker()
    for i in range(5):
        tracker.count(7, "app", "job <*> done", "h1", T0 + i)
    tracker.count(7, "app", "job <*> done", None, T0 + MINUTE_NS)
    points = tracker.points()
    by_key = {(p.time_ns, p.tags.get("host")): p.fields["count"] for p in points}
    assert by_key == {(T0, "h1"): 5, (T0 + MINUTE_NS, None): 1}
    assert all(p.measurement == "log_template_count" and p.tags["template_id"] == "7" for p in points)
    assert tracker.points() == []  # nothing new
    tracker.count(7, "app", "job <*> done", "h1", T0 + 10)
    assert [p.fields["count"] for p in tracker.points()] == [6]  # the minute's new total


def test_burst_opens_then_resolves() -> None:
    tracker = SignalTracker()
    for minute in range(30):
        for _ in range(3):
            tracker.count(1, "app", "ping <*>", "h", T0 + minute * MINUTE_NS)
    assert tracker.close_minutes(T0 + 31 * MINUTE_NS + 31_000_000_000) == []
    for _ in range(60):
        tracker.count(1, "app", "ping <*>", "h", T0 + 31 * MINUTE_NS)
    opened = tracker.close_minutes(T0 + 32 * MINUTE_NS + 31_000_000_000)
    assert [(f.kind, f.state, f.key) for f in opened] == [("log_burst", "open", "log_template:1")]
    assert opened[0].evidence["count"] == 60 and opened[0].host == "h"
    assert 0 < opened[0].score <= 1
    for _ in range(3):
        tracker.count(1, "app", "ping <*>", "h", T0 + 32 * MINUTE_NS)
    resolved = tracker.close_minutes(T0 + 33 * MINUTE_NS + 31_000_000_000)
    assert [(f.kind, f.state) for f in resolved] == [("log_burst", "resolved")]
