"""Noise control per route: max_age, message templates, mentions on match (issue #15, first part).

Through the CLI against a loopback feed server and a fake Slack where a user would notice; the pure rules
(age, template checks, rendering per template) directly.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedrelay import render
from feedrelay.config import ConfigError, parse_config
from feedrelay.decide.age import too_old
from feedrelay.decide.decider import decide_poll
from feedrelay.model import Item
from feedrelay.sources.nvd import cve_item
from tests.cli import Relay
from tests.feedgen import rss
from tests.nvd_server import fixture_records
from tests.servers import FakeSlack, FeedServer

FIXTURES = Path(__file__).parent / "fixtures"
FAST = {"min_interval": "0s"}
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def relay(tmp_path: Path, fake_slack: FakeSlack) -> Relay:
    return Relay(tmp_path, fake_slack.api_url)


def every_mention(payload: dict) -> list[str]:
    """Everything in a posted payload that Slack would turn into a ping."""
    return re.findall(r"<[!@][^>]*>", json.dumps(payload, ensure_ascii=False))


# --- max_age --------------------------------------------------------------------------------------------


def test_max_age_judges_the_date_or_else_when_first_seen() -> None:
    now = NOW.timestamp()
    old = Item("a", "Old", "", published=NOW - timedelta(days=8))
    fresh = Item("b", "Fresh", "", published=NOW - timedelta(days=6))
    undated = Item("c", "Undated", "")
    week = 7 * 86400.0
    skipped = too_old(week, old, now, now)
    assert skipped is not None and not skipped.passed
    assert skipped.reason == "skipped: older than max_age 7d (published 2026-11-23)"
    assert too_old(week, fresh, now, now) is None
    assert too_old(week, undated, now, now) is None  # brand new: first seen now
    undated_long_known = too_old(week, undated, now, now - 30 * 86400)
    assert undated_long_known is not None and "undated, first seen 2026-11-01" in undated_long_known.reason
    assert too_old(0, old, now, now) is None  # 0: no limit


def test_max_age_in_defaults_applies_to_every_route_and_a_route_can_turn_it_off() -> None:
    config = parse_config("""
[defaults]
max_age = "7d"
[channels.readings]
console = true
[channels.archive]
console = true
[[feeds]]
name = "Blog"
url = "https://example.com/feed"
channels = ["readings"]
  [[feeds.routes]]
  channel = "archive"
  max_age = 0
""")
    old = Item("old", "Republished", "https://example.com/old", published=NOW - timedelta(days=400))
    plan = decide_poll(config.feeds[0], [old], set(), first_poll=False, now=NOW.timestamp())
    assert [i.channel for i in plan.intents] == ["archive"]
    [readings] = [v for v in plan.verdicts if v.channel == "readings"]
    assert readings.decision.reason.startswith("skipped: older than max_age 7d (published 2025-")


def test_max_age_with_republished_and_redated_entries_posts_only_what_is_new(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    archive = [{"guid": f"old-{i}", "title": f"Archive post {i}", "link": f"http://example.com/old/{i}",
                "pubDate": now - timedelta(days=60 + i)} for i in range(3)]
    feed_server.set("/f.xml", rss(archive[:1]))
    relay.configure(
        defaults={"max_age": "7d"},
        channels={"readings": {"slack": "#readings", **FAST}, "everything": {"slack": "#everything", **FAST}},
        feeds=[{"name": "Blog", "url": feed_server.url("/f.xml"), "channels": ["readings"],
                "routes": [{"channel": "everything", "max_age": 0}]}])
    assert relay("once").code == 0 and fake_slack.posts == []  # the first poll remembers, as always

    # The publisher's CMS republishes its archive under new ids with the old dates, re-dates the entry it had
    # (new id, same link and title, another old date: the churn guard takes a new date for news), and
    # publishes two real posts, one without a date.
    feed_server.set("/f.xml", rss([
        {"guid": "new-dated", "title": "Fresh post", "link": "http://example.com/fresh", "pubDate": now},
        {"guid": "new-undated", "title": "Undated note", "link": "http://example.com/note"},
        {**archive[0], "guid": "cms-0", "pubDate": now - timedelta(days=30)},
        *({**a, "guid": f"cms-{i}"} for i, a in enumerate(archive[1:], start=1)),
    ]))
    preview = relay("preview", "Blog")
    assert preview.code == 0, preview.output
    assert "route → readings: template full, max_age 7d" in preview.out
    day = (now - timedelta(days=30)).strftime("%Y-%m-%d")
    assert f"skip → readings: skipped: older than max_age 7d (published {day})" in preview.out
    assert "post → everything: passed" in preview.out

    result = relay("once")
    assert result.code == 0, result.output
    readings = sorted(json.dumps(p.blocks) for p in fake_slack.messages("#readings"))
    assert len(readings) == 2 and "Fresh post" in readings[0] + readings[1] and "Undated note" in "".join(readings)
    assert len(fake_slack.messages("#everything")) == 5  # without the limit, all of it would have been news
    assert relay("once").code == 0 and len(fake_slack.posts) == 7  # remembered: never posted later


# --- templates ------------------------------------------------------------------------------------------

HOSTILE = {
    "guid": "h1",
    "title": "<!channel> Patch now <@U0BAD1> *CVE-2026-12345*",
    "link": "http://example.com/a|<!here>?x=>",
    "description": "<p>Hi &lt;!everyone&gt; <a href='javascript:alert(1)'>click</a> <!subteam^S0EVIL></p>",
    "author": "<@U0AUTHOR> Mallory",
    "categories": ["<!here>", "ops"],
    "pubDate": datetime(2026, 11, 30, 9, 15, tzinfo=UTC),
}
EVERY_PLACEHOLDER = ("🔔 *{title_link}* ({feed}, {date})\n"
                     "{title} · {link}\n"
                     "{summary}\n"
                     "by {author} · tags: {categories} · CVEs: {cves}\n"
                     "runbook: <https://wiki.example.com/patching|patching>")


def test_a_template_with_every_placeholder_shows_hostile_feed_text_escaped_and_pings_only_the_config(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    feed_server.set("/f.xml", rss([]))
    relay.configure(
        channels={"readings": {"slack": "#readings", "template": "compact", **FAST},
                  "oncall": {"slack": "#oncall", **FAST}, "quiet": {"slack": "#quiet", **FAST}},
        feeds=[{"name": "Vendor <!channel> news", "url": feed_server.url("/f.xml"), "channels": ["readings"],
                "routes": [
                    {"channel": "oncall", "template": EVERY_PLACEHOLDER, "include": ["patch now"],
                     "mention": ["<!subteam^S0123ONCALL>", "U012ABC"]},
                    {"channel": "quiet", "include": ["nothing matches this"], "mention": ["<!here>"]}]}])
    assert relay("once").code == 0
    feed_server.set("/f.xml", rss([HOSTILE]))
    result = relay("once")
    assert result.code == 0, result.output

    [oncall] = fake_slack.messages("#oncall")
    assert every_mention(oncall.payload) == ["<!subteam^S0123ONCALL>", "<@U012ABC>"] * 2  # blocks, then text
    [block] = oncall.blocks
    text = block["text"]["text"]
    assert block["text"]["verbatim"] is True
    assert text.startswith("<!subteam^S0123ONCALL> <@U012ABC> 🔔 *<http://example.com/a%7C%3C!here%3E?x=%3E|")
    assert "&lt;!channel&gt; Patch now &lt;@U0BAD1&gt;" in text  # {title}, {title_link}: visible, inert
    assert "(example.com)*" in text  # a linked title always shows where it leads
    assert "(Vendor &lt;!channel&gt; news, 2026-11-30 09:15 UTC)" in text  # {feed}, {date}
    assert "Hi &lt;!everyone&gt; click" in text and "javascript" not in text  # {summary}
    assert "by &lt;@U0AUTHOR&gt; Mallory" in text and "tags: &lt;!here&gt;, ops" in text
    assert "CVEs: <https://nvd.nist.gov/vuln/detail/CVE-2026-12345|CVE-2026-12345>" in text
    assert "runbook: <https://wiki.example.com/patching|patching>" in text  # the operator's own mrkdwn
    assert "{" not in text

    # The same entry on the channel with the compact preset: one line, and no one pinged.
    [compact] = fake_slack.messages("#readings")
    assert every_mention(compact.payload) == []
    [line] = [b["text"]["text"] for b in compact.blocks]
    assert "\n" not in line and line.endswith("(example.com)* · Vendor &lt;!channel&gt; news")
    # The route whose filter did not match posted nothing, so its mention pinged no one.
    assert fake_slack.messages("#quiet") == []


def test_two_routes_with_different_templates_get_different_messages() -> None:
    config = parse_config("""
[channels.a]
console = true
[channels.b]
console = true
template = "{title} — {feed}"
[[feeds]]
name = "Blog"
url = "https://example.com/feed"
channels = ["a", "b"]
""")
    item = Item("k", "Hello", "https://example.com/hello", summary="Long summary")
    plan = decide_poll(config.feeds[0], [item], set(), first_poll=False, now=NOW.timestamp())
    a, b = render.deliveries(plan.intents)
    assert "Long summary" in a.message["plain"]  # full
    assert b.message["plain"] == "Hello — Blog"


def test_a_cve_template_shows_the_security_fields_and_pings_on_call_for_a_matching_kev_entry(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    feed_server.set("/kev.json", (FIXTURES / "kev" / "kev-2025.08.12.json").read_bytes(),
                    content_type="application/json")
    relay.configure(
        channels={"security": {"slack": "#security", **FAST}, "oncall": {"slack": "#oncall", **FAST}},
        feeds=[{"name": "CISA KEV", "type": "kev", "url": feed_server.url("/kev.json"), "channels": ["security"],
                "routes": [{"channel": "oncall", "include": ["command injection"], "mention": ["<!subteam^S0ONCALL>"],
                            "template": "{kev} {title_link}: {affected}, due {kev_due}"}]}])
    assert relay("once").code == 0
    feed_server.set("/kev.json", (FIXTURES / "kev" / "kev-2025.08.13.json").read_bytes(),
                    content_type="application/json")
    result = relay("once")
    assert result.code == 0, result.output
    security = fake_slack.messages("#security")
    assert len(security) == 2 and all(every_mention(p.payload) == [] for p in security)
    [page] = fake_slack.messages("#oncall")  # only the command injection
    assert page.blocks[0]["text"]["text"] == (
        "<!subteam^S0ONCALL> 🚨 CISA KEV <https://nvd.nist.gov/vuln/detail/CVE-2025-8876|CVE-2025-8876: N-able "
        "N-Central Command Injection Vulnerability> (nvd.nist.gov): N-able N-Central, due 2025-08-20")


def test_a_cve_template_fills_severity_score_and_kev_from_a_real_nvd_record() -> None:
    [record] = fixture_records("nvdlib-CVE-2021-26855.json")
    item = cve_item(record["cve"])
    assert item is not None
    message = render.render(item, "NVD", "{cve} {severity} {score} {kev} · {vector} · {cwes} · {status}")
    assert message.blocks[0]["text"]["text"] == (
        "CVE-2021-26855 🔴 Critical 9.8 🚨 CISA KEV · CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H · CWE-918 · "
        "Analyzed")


@pytest.mark.parametrize(("route", "error"), [
    ('template = """\n*{title_link}*\n{sumary}\n"""',
     "feeds.toml:10: feeds[0].routes[0].template: unknown placeholder {sumary} (did you mean {summary}?)"),
    ('template = "compakt"', "feeds.toml:8: feeds[0].routes[0].template: unknown preset 'compakt' (did you mean "
                             "'compact'?)"),
    ('template = "<{link}|read>"', "feeds.toml:8: feeds[0].routes[0].template: placeholder {link} is inside <…>"),
    ('template = "{title!r}"', "placeholder {title} takes no format or conversion"),
    ('template = "{title.__class__}"', "unknown placeholder {title.__class__}"),
    ('template = "{cve} {title_link}"', "feeds.toml:8: feeds[0].routes[0].template: {cve} is for NVD and KEV feeds "
                                        "only"),
    ('mention = ["@alice"]', "feeds.toml:8: feeds[0].routes[0].mention[0]: expected a user ID such as \"U012ABC\""),
    ('mention = ["here"]', '(write "<!here>")'),
    ('mention = ["s0123"]', '(a user group is written "<!subteam^S0123>")'),
    ('mention = ["<!everyone>"]', "@everyone is not allowed"),
    ('max_age = "a week"', "feeds.toml:8: feeds[0].routes[0].max_age: expected a duration"),
    ('timezone = "Berlin"', "feeds.toml:8: feeds[0].routes[0].timezone: expected an IANA time zone name (Area/City) "
                            "such as \"Europe/Berlin\", or \"UTC\"; got 'Berlin'"),
    ('timezone = 2', "feeds[0].routes[0].timezone: expected an IANA time zone name"),
])
def test_bad_route_options_are_one_clear_line(route: str, error: str) -> None:
    text = ('[channels.readings]\nconsole = true\n[[feeds]]\nname = "Blog"\nurl = "https://example.com/feed"\n'
            f'  [[feeds.routes]]\n  channel = "readings"\n  {route}\n')
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    assert error in str(exc.value)


def test_timezone_of_a_route_else_of_defaults_else_utc() -> None:
    config = parse_config('[defaults]\ntimezone = "Pacific/Auckland"\n[channels.readings]\nconsole = true\n'
                          '[[feeds]]\nname = "Blog"\nurl = "https://example.com/feed"\nchannels = ["readings"]\n'
                          '[[feeds]]\nname = "Other"\nurl = "https://example.com/other"\n'
                          '  [[feeds.routes]]\n  channel = "readings"\n  timezone = "America/New_York"\n')
    assert [f.routes[0].timezone for f in config.feeds] == ["Pacific/Auckland", "America/New_York"]
    assert parse_config('[channels.r]\nconsole = true\n[[feeds]]\nname = "B"\nurl = "https://e.com/f"\n'
                        'channels = ["r"]\n').feeds[0].routes[0].timezone == "UTC"


def test_check_names_the_channel_template_an_rss_feed_cannot_use(relay: Relay) -> None:
    relay.configure(channels={"security": {"slack": "#security", "template": "{cve}: {severity}"}},
                    feeds=[{"name": "Blog", "url": "https://example.com/feed", "channels": ["security"]}])
    result = relay("check")
    assert result.code == 2 and "Traceback" not in result.err
    assert ("feeds.toml:3: channels.security.template: {cve} is for NVD and KEV feeds only (type = \"nvd\" or "
            "\"kev\"), and 'Blog' is an RSS feed; feed 'Blog' posts to this channel") in result.err


def test_a_mention_never_pushes_a_full_section_past_slacks_limit() -> None:
    item = Item("k", "T", "https://example.com/t", summary="x" * 5000)
    message = render.render(item, "Feed", "{summary}{summary}{summary}{summary}{summary}{summary}",
                            ("<!subteam^S0123>",))
    assert all(len(b["text"]["text"]) <= 3000 for b in message.blocks)
    assert message.blocks[0]["text"]["text"].startswith("<!subteam^S0123>")
    assert every_mention(message.slack()) == ["<!subteam^S0123>"] * 2
