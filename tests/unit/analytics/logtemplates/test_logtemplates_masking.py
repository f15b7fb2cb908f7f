"""Built-in and user-supplied masking: what becomes <*>, what stays, and the extracted values."""

from __future__ import annotations

import pytest

from vigil.analytics.logtemplates import MaskPattern, MinerConfig, TemplateMiner
from vigil.analytics.logtemplates.masking import Masker


def masked(message: str, masker: Masker | None = None) -> tuple[str, tuple[str, ...]]:
    result = (masker or Masker()).mask(message)
    return "".join(result.units), result.params


@pytest.mark.parametrize(
    ("message", "template", "params"),
    [
        ("from 10.1.2.3 port 22", "from <*> port <*>", ("10.1.2.3", "22")),
        ("src: /10.250.19.102:54106 ok", "src: <*> ok", ("/10.250.19.102:54106",)),
        ("Old: msra-sa-41/10.190.173.170:9000 New: msra-sa-41:9000", "Old: <*> New: <*>",
         ("msra-sa-41/10.190.173.170:9000", "msra-sa-41:9000")),
        ("peer fe80::1ff:fe23:4567:890a up", "peer <*> up", ("fe80::1ff:fe23:4567:890a",)),
        ("connect api.github.com:443 ok", "connect <*> ok", ("api.github.com:443",)),
        ("host n219076184117.netvigator.com down", "host <*> down", ("n219076184117.netvigator.com",)),
        ("iar 0x0023f108, dear 00b360e8", "iar <*>, dear <*>", ("0x0023f108", "00b360e8")),
        ("took 30000ms at 41C", "took <*> at <*>", ("30000ms", "41C")),
        ("req 123e4567-e89b-12d3-a456-426614174000 done", "req <*> done",
         ("123e4567-e89b-12d3-a456-426614174000",)),
        ("chip FF:F2:9F:16:E2:23:00:0D status", "chip <*> status", ("FF:F2:9F:16:E2:23:00:0D",)),
        ("chdir(/p/gb2/glosli/t800) failed", "chdir(<*>) failed", ("/p/gb2/glosli/t800",)),
        ("removing '/udev/vcsa2'", "removing '<*>'", ("/udev/vcsa2",)),
        ("Extract C:\\Users\\me\\x.jar now", "Extract <*> now", ("C:\\Users\\me\\x.jar",)),
        ("see http://wiki.apache.org/hadoop/NoRoute now", "see <*> now",
         ("http://wiki.apache.org/hadoop/NoRoute",)),
        ("mail bob.smith@example.org ok", "mail <*> ok", ("bob.smith@example.org",)),
        ("at Fri Jun 17 07:07:00 2005 end", "at <*> end", ("Fri Jun 17 07:07:00 2005",)),
        ("at 2024-05-01 12:00:01,123 end", "at <*> end", ("2024-05-01 12:00:01,123",)),
        ("uid=0 tty=NODEVssh user=root", "uid=<*> tty=NODEVssh user=root", ("0",)),
        ("steps=1514038440000##7007##548365", "steps=<*>", ("1514038440000##7007##548365",)),
        ("blk_-1608999687919862906 gone", "<*> gone", ("blk_-1608999687919862906",)),
        ("job attempt_1445144423722_0020_m_000000_0 ok", "job <*> ok",
         ("attempt_1445144423722_0020_m_000000_0",)),
        ("sent 781 bytes, got 6147 bytes (6.00 KB) in <1 sec", "sent <*>, got <*> in <*>",
         ("781 bytes", "6147 bytes (6.00 KB)", "<1 sec")),
        ("memory (estimated size 384.0 B, free 317.5 KB)", "memory (estimated size <*>, free <*>)",
         ("384.0 B", "317.5 KB")),
        ("enabled=true cache null", "enabled=<*> cache <*>", ("true", "null")),
        ("node node-129 v1.0.0 jetty-6.1.26", "node node-<*> <*> jetty-<*>", ("129", "v1.0.0", "6.1.26")),
        ("from 1.2.3.4 () at", "from <*> (<*>) at", ("1.2.3.4", "")),
    ],
)
def test_builtin_variables_are_masked(message: str, template: str, params: tuple[str, ...]) -> None:
    assert masked(message) == (template, params)


@pytest.mark.parametrize(
    "message",
    [
        "jk2_init() Found child in scoreboard",
        "Failed password for root ssh2",
        "via interface ee0",
        "loaded hadoop-metrics2.properties",
        "OutputCommitter is org.apache.hadoop.mapreduce.lib.output.FileOutputCommitter",
        "rts tree/torus link training failed",
        "seconds milliseconds bytes",
    ],
)
def test_constant_text_is_left_alone(message: str) -> None:
    template, params = masked(message)
    assert template == " ".join(message.split())
    assert params == ()


def test_whitespace_is_normalised_and_values_keep_original_text() -> None:
    template, params = masked("  boot   (command 1911)  ")
    assert template == "boot (command <*>)"
    assert params == ("1911",)


def test_cached_plans_give_the_same_result_as_a_fresh_masker() -> None:
    # The second message has the same digit shape but other digits, and a constant "ssh2" that
    # must not be copied from the first one.
    first = "Failed password for root from 5.36.59.76 port 42393 ssh2"
    second = "Failed password for root from 9.16.19.16 port 12345 ssh3"
    warm = Masker()
    warm.mask(first)
    assert warm.mask(second) == Masker().mask(second)
    expected = ("Failed password for root from <*> port <*> ssh3", ("9.16.19.16", "12345"))
    assert masked(second, warm) == expected


def test_numbered_names_share_a_key_but_show_their_text() -> None:
    a = Masker().mask("Lustre mount FAILED : bglio78 : block_id")
    b = Masker().mask("Lustre mount FAILED : bglio617 : block_id")
    assert a.key == b.key
    assert "".join(a.units) == "Lustre mount FAILED : bglio78 : block_id"


def test_user_patterns_mask_before_the_builtins_and_may_span_spaces() -> None:
    masker = Masker([MaskPattern("order", r"ORD-[A-Z]+ [0-9]+"), MaskPattern("tenant", r"tenant [a-z]+")])
    assert masked("order ORD-AB 12 for tenant acme from 10.0.0.1", masker) == (
        "order <*> for <*> from <*>",
        ("ORD-AB 12", "tenant acme", "10.0.0.1"),
    )


def test_user_pattern_values_and_builtin_values_keep_their_order() -> None:
    masker = Masker([MaskPattern("x", r"\d+ weird")])
    assert masked("a 12 weird 5 b", masker) == ("a <*> <*> b", ("12 weird", "5"))


def test_user_patterns_through_the_miner_config() -> None:
    miner = TemplateMiner(MinerConfig(extra_masks=(MaskPattern("sku", r"SKU[A-Z]{3}"),)))
    first = miner.add("sold SKUABC today")
    second = miner.add("sold SKUXYZ today")
    assert first.template == "sold <*> today"
    assert second.template_id == first.template_id
    assert second.parameters == ("SKUXYZ",)
