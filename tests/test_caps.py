"""Per-route caps (``max_per_poll``, issue #15): past the cap a poll's other new entries become one "N more from
<feed>" message listing each, linked; never dropped. Through the CLI against the fake Slack."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from feedrelay.config import ConfigError, parse_config
from tests.cli import Relay
from tests.feedgen import rss
from tests.servers import FakeSlack, FeedServer

FAST = {"min_interval": "0s"}


def test_past_the_cap_the_rest_are_one_message_that_lists_every_one(
        tmp_path: Path, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    relay = Relay(tmp_path, fake_slack.api_url)
    feed_server.set("/f.xml", rss([{"guid": "seed", "title": "Seed", "link": "https://example.com/seed"}]))
    relay.configure(channels={"readings": {"slack": "#readings", **FAST}, "all": {"slack": "#all", **FAST}},
                    feeds=[{"name": "Busy Blog", "url": feed_server.url("/f.xml"),
                            "routes": [{"channel": "readings", "max_per_poll": 3}, {"channel": "all"}]}])
    assert relay("once").code == 0 and fake_slack.posts == []
    # A republished archive of 60 (titles that try to ping and to disguise a link among them).
    entries = [{"guid": f"g{i}", "title": f"Post {i}" + (" <!channel>" if i % 20 == 0 else ""),
                "link": f"https://example.com/p/{i}" + ("|<https://evil.example>" if i == 7 else "")}
               for i in range(60)]
    feed_server.set("/f.xml", rss(entries))
    assert "max_per_poll 3 (the rest as one \"N more\" message)" in relay("preview", "Busy Blog").out
    result = relay("once")
    assert result.code == 0, result.output
    readings = fake_slack.messages("#readings")
    assert len(readings) == 4 and len(fake_slack.messages("#all")) == 60  # the other route is not capped
    *single, folded = readings
    assert folded.text == "57 more from Busy Blog"
    listed = json.dumps(folded.blocks)
    shown = {int(n) for n in re.findall(r"Post (\d+)", listed)}
    singles = {int(n) for p in single for n in re.findall(r"Post (\d+)", json.dumps(p.blocks))}
    assert len(singles) == 3 and not singles & shown
    assert len(folded.blocks) <= 50 and all(len(b["text"]["text"]) <= 3000 for b in folded.blocks)
    missing = 60 - 3 - len(shown)  # whatever does not fit Slack's limits is counted, not silently dropped
    assert missing == 0 or f"…and {missing} more" in listed
    assert "<!channel>" not in listed and "<https://evil.example>" not in listed
    assert relay("once").code == 0 and len(fake_slack.messages("#readings")) == 4  # remembered: not again


def test_max_per_poll_is_a_count() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config('[channels.r]\nconsole = true\n[[feeds]]\nname = "B"\nurl = "https://e.com/f"\n'
                     'channels = ["r"]\nmax_per_poll = -1\n')
    assert "feeds[0].max_per_poll: expected 0 (no cap) or more" in str(exc.value)


def test_a_huge_overflow_fits_slacks_limits_and_counts_what_it_cannot_list() -> None:
    from feedrelay.decide.caps import cap
    from feedrelay.model import Intent, Item
    from feedrelay.render import render

    feed = parse_config('[channels.r]\nconsole = true\n[[feeds]]\nname = "B"\nurl = "https://e.com/f"\n'
                        'channels = ["r"]\nmax_per_poll = 1\n').feeds[0]
    intents = [Intent("r", "B", Item(f"k{i}", f"Entry {i} " + "x" * 80, f"https://e.com/{i}")) for i in range(5001)]
    first, folded = cap(feed, intents, now=0.0)
    assert first.item.key == "k0" and folded.item.title == "5000 more from B"
    blocks = render(folded.item, "B").blocks
    listed = len(re.findall(r"Entry \d+", json.dumps(blocks)))
    assert len(blocks) <= 50 and all(len(b["text"]["text"]) <= 3000 for b in blocks)
    assert listed > 1000 and f"…and {5000 - listed} more" in blocks[-1]["text"]["text"]
