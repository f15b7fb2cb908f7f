"""Error grouping: SDK fingerprints, exception type plus in-app frames, masked messages."""

from __future__ import annotations

from vigil.domain.errors import ErrorEvent, StackFrame
from vigil.ingest.grouping import culprit, fingerprint, fingerprint_components, mask_variables, title


def _event(**kwargs: object) -> ErrorEvent:
    base: dict[str, object] = {"event_id": "e" * 32, "time_ns": 1, "project": "1"}
    base.update(kwargs)
    return ErrorEvent(**base)  # type: ignore[arg-type]


FRAMES = [
    StackFrame(filename="site-packages/lib.py", function="call", module="lib", lineno=5, in_app=False),
    StackFrame(filename="app/views.py", function="index", module="app.views", lineno=10, in_app=True),
    StackFrame(filename="app/db.py", function="fetch", module="app.db", lineno=20, in_app=True),
    StackFrame(filename="site-packages/driver.py", function="send", module="driver", lineno=99, in_app=False),
]


def test_same_exception_and_frames_group_together_whatever_the_lines_and_values() -> None:
    a = _event(exception_type="KeyError", exception_value="'user 1'", frames=FRAMES)
    moved = [StackFrame(**{**f.to_dict(), "lineno": (f.lineno or 0) + 3}) for f in FRAMES]
    b = _event(exception_type="KeyError", exception_value="'user 2'", frames=moved)
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint_components(a) == ["exception", "KeyError", "app.views:index", "app.db:fetch"]


def test_different_type_or_call_site_splits_groups() -> None:
    a = _event(exception_type="KeyError", frames=FRAMES)
    assert fingerprint(a) != fingerprint(_event(exception_type="ValueError", frames=FRAMES))
    other_site = [
        *FRAMES[:2],
        StackFrame(filename="app/db.py", function="store", module="app.db", in_app=True),
    ]
    assert fingerprint(a) != fingerprint(_event(exception_type="KeyError", frames=other_site))


def test_without_in_app_frames_all_frames_count() -> None:
    frames = [StackFrame(module="lib", function="a"), StackFrame(module="lib", function="b")]
    assert fingerprint_components(_event(exception_type="E", frames=frames)) == [
        "exception",
        "E",
        "lib:a",
        "lib:b",
    ]


def test_exceptions_without_frames_and_messages_are_masked() -> None:
    a = _event(exception_type="TimeoutError", exception_value="after 30s to 10.0.0.1:5432")
    b = _event(exception_type="TimeoutError", exception_value="after 45s to 10.0.0.2:5432")
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(_event(message="user 42 not found")) == fingerprint(_event(message="user 7 not found"))
    assert fingerprint(_event(message="user 42 not found")) != fingerprint(_event(message="disk full"))


def test_sdk_fingerprints_with_default_and_variables() -> None:
    a = _event(exception_type="E", frames=FRAMES, fingerprint=["{{ default }}", "tenant-a"])
    b = _event(exception_type="E", frames=FRAMES, fingerprint=["{{default}}", "tenant-b"])
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint_components(a)[-1] == "tenant-a"
    assert fingerprint_components(a)[:-1] == fingerprint_components(_event(exception_type="E", frames=FRAMES))
    custom = _event(
        exception_type="E",
        frames=FRAMES,
        transaction="/x",
        fingerprint=["{{ type }}", "{{ transaction }}", "{{ function }}"],
    )
    assert fingerprint_components(custom) == ["E", "/x", "fetch"]
    # A fixed fingerprint groups different errors together on purpose.
    x = _event(exception_type="A", fingerprint=["database-unavailable"])
    y = _event(message="other", fingerprint=["database-unavailable"])
    assert fingerprint(x) == fingerprint(y)


def test_titles_and_culprits() -> None:
    event = _event(exception_type="KeyError", exception_value="'x'", frames=FRAMES, transaction="/t")
    assert title(event) == "KeyError: 'x'"
    assert culprit(event) == "app.db in fetch"
    assert title(_event(message="first line\nsecond")) == "first line"
    assert title(_event()) == "<unlabeled event>"
    assert culprit(_event(transaction="GET /api")) == "GET /api"
    assert len(title(_event(message="x" * 1000))) == 255


def test_masking_keeps_words_and_names() -> None:
    assert mask_variables("user 42 not found") == "user <*> not found"
    assert mask_variables("object 0x7f3a2b1c at 550e8400-e29b-41d4-a716-446655440000") == "object <*> at <*>"
    assert mask_variables("mail bob@example.com failed: 'quoted'") == "mail <*> failed: <*>"
    assert mask_variables("Error2 in v1.2 handler") == "Error2 in v1.2 handler"
