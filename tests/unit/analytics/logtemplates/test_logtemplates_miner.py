"""The online miner: learning, stable ids through merges, parameters, match, snapshot/restore."""

from __future__ import annotations

import json
import random

from vigil.analytics.logtemplates import MinerConfig, TemplateInfo, TemplateMiner

USERS = ["admin", "oracle", "test", "guest", "webmaster", "support"]


def invalid_user_lines() -> list[str]:
    return [f"Invalid user {user} from 10.0.0.{i}" for i, user in enumerate(USERS)]


def test_numbers_are_variables_from_the_first_line() -> None:
    miner = TemplateMiner()
    first = miner.add("Received block blk_123 of size 67108864 from /10.251.42.84")
    second = miner.add("Received block blk_987 of size 42 from /10.0.0.1")
    assert first.change == "new"
    assert first.template == "Received block <*> of size <*> from <*>"
    assert second.template_id == first.template_id
    assert second.change == "none"
    assert second.parameters == ("blk_987", "42", "/10.0.0.1")


def test_a_word_that_varies_becomes_a_variable_and_merged_ids_point_to_the_survivor() -> None:
    miner = TemplateMiner()
    matches = [miner.add(line) for line in invalid_user_lines()]
    threshold = MinerConfig().variable_threshold
    # Before the threshold every user name is its own template...
    assert len({m.template_id for m in matches[: threshold - 1]}) == threshold - 1
    # ...the line that reaches it merges them all into the oldest one.
    merged = matches[threshold - 1]
    assert merged.change == "changed"
    assert merged.template == "Invalid user <*> from <*>"
    assert merged.template_id == matches[0].template_id
    assert merged.parameters == (USERS[threshold - 1], f"10.0.0.{threshold - 1}")
    assert {miner.resolve(m.template_id) for m in matches} == {matches[0].template_id}
    # Later values match the learned template directly.
    assert matches[-1].template_id == matches[0].template_id
    assert matches[-1].change == "none"
    infos = {t.template_id: t for t in miner.templates()}
    for absorbed in matches[1 : threshold - 1]:
        assert infos[absorbed.template_id].successor == matches[0].template_id
        assert infos[absorbed.template_id].count == 0
    assert infos[matches[0].template_id] == TemplateInfo(
        matches[0].template_id, "Invalid user <*> from <*>", len(USERS), None
    )


def test_few_alternative_wordings_stay_apart() -> None:
    miner = TemplateMiner()
    ids = {
        miner.add(line).template_id
        for line in [
            "cupsd startup succeeded",
            "cupsd shutdown succeeded",
            "normal",
            "warning",
            "running",
            "critical",
            "boot (command 1911)",
            "wait (command 1975)",
            "halt (command 1982)",
            "risBoot (command 1903)",
        ]
    }
    assert len(ids) == 10


def test_a_value_that_fits_a_masked_siblings_pattern_joins_it() -> None:
    miner = TemplateMiner()
    masked = miner.add("ciod: LOGIN chdir(/p/gb2/glosli/t800) failed")
    worded = miner.add("ciod: LOGIN chdir(pwd) failed")
    assert miner.resolve(worded.template_id) == masked.template_id
    assert miner.template(worded.template_id) == "ciod: LOGIN chdir(<*>) failed"


def test_numbered_names_group_at_once_and_keep_a_common_prefix() -> None:
    miner = TemplateMiner()
    first = miner.add("Targeting domains:node-D3 and nodes:node-2")
    assert first.template == "Targeting domains:node-D3 and nodes:node-<*>"
    second = miner.add("Targeting domains:node-D7 and nodes:node-9")
    assert second.template_id == first.template_id
    assert second.change == "changed"
    assert second.template == "Targeting domains:node-<*> and nodes:node-<*>"
    assert second.parameters == ("D7", "9")


def test_match_classifies_without_learning() -> None:
    miner = TemplateMiner()
    for line in invalid_user_lines():
        miner.add(line)
    before = miner.snapshot()
    found = miner.match("Invalid user nobody from 192.168.1.1")
    assert found is not None
    assert found.template == "Invalid user <*> from <*>"
    assert found.parameters == ("nobody", "192.168.1.1")
    assert miner.match("something never seen 42") is None
    assert miner.snapshot() == before


def test_ids_are_deterministic_for_the_same_input_order() -> None:
    lines = sample_lines(400, seed=7)
    a, b = TemplateMiner(), TemplateMiner()
    assert [a.add(x) for x in lines] == [b.add(x) for x in lines]
    assert a.templates() == b.templates()


def test_snapshot_restore_continues_exactly_like_one_run() -> None:
    lines = sample_lines(600, seed=3)
    whole = TemplateMiner()
    expected = [whole.add(line) for line in lines]

    first_half = TemplateMiner()
    got = [first_half.add(line) for line in lines[:300]]
    state = json.loads(json.dumps(first_half.snapshot()))  # must survive JSON
    resumed = TemplateMiner.restore(state)
    got += [resumed.add(line) for line in lines[300:]]

    assert got == expected
    assert resumed.templates() == whole.templates()
    assert resumed.snapshot() == whole.snapshot()


def test_restore_keeps_user_masks() -> None:
    from vigil.analytics.logtemplates import MaskPattern

    config = MinerConfig(extra_masks=(MaskPattern("ticket", r"TCK-\w+"),), variable_threshold=3)
    miner = TemplateMiner(config)
    miner.add("closed TCK-abc")
    resumed = TemplateMiner.restore(miner.snapshot())
    assert resumed.config == config
    assert resumed.add("closed TCK-xyz").template == "closed <*>"


def sample_lines(count: int, seed: int) -> list[str]:
    """A small synthetic log with numbers, word variables and near-duplicate constant lines."""
    rng = random.Random(seed)
    users = ["root", "admin", "guest", "test", "oracle", "ubuntu", "pi"]
    hosts = ["alpha.example.com", "beta.example.com", "gamma.example.com", "delta.example.com"]
    makers = [
        lambda: f"Failed password for {rng.choice(users)} from 10.0.{rng.randint(0, 9)}."
        f"{rng.randint(1, 254)} port {rng.randint(1024, 65535)} ssh2",
        lambda: f"Invalid user {rng.choice(users)} from 172.16.0.{rng.randint(1, 254)}",
        lambda: f"session opened for user {rng.choice(users)} by (uid={rng.randint(0, 999)})",
        lambda: f"connection from {rng.choice(hosts)} at slot {rng.choice(['U11', 'U01', 'U07'])}",
        lambda: rng.choice(["cupsd startup succeeded", "cupsd shutdown succeeded", "normal", "warning"]),
        lambda: f"Deleting block blk_{rng.randint(10**17, 10**18)} file /data/sub{rng.randint(0, 60)}",
        lambda: f"took {rng.randint(1, 900)} ms, sent {rng.randint(0, 10**6)} bytes",
    ]
    return [rng.choice(makers)() for _ in range(count)]


def test_forgotten_message_patterns_map_back_to_the_same_templates() -> None:
    # The miner remembers a bounded number of message patterns; with a tiny bound every line
    # goes through template lookup again, and must land where an unbounded miner puts it.
    lines = sample_lines(600, seed=11)
    unbounded = TemplateMiner()
    expected = [unbounded.add(line) for line in lines]
    small = TemplateMiner(MinerConfig(message_cache_size=0))
    small._leaf_limit = 3
    got = [small.add(line) for line in lines]
    assert [m.template_id for m in got] == [m.template_id for m in expected]
    assert [m.parameters for m in got] == [m.parameters for m in expected]
    assert small.templates() == unbounded.templates()
    assert len(small._leaves) <= 3
