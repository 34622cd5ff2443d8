"""CVE mentions in any feed: the ids an RSS entry names, their badges, security rules on RSS routes, and NVD lookups
by id — pure rules first, then through the CLI against a fake Slack, a loopback NVD and real CISA advisories."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedrelay.config import ConfigError, Filter, parse_config
from feedrelay.decide.filters import evaluate
from feedrelay.ingest.text import cve_ids
from feedrelay.model import CveFacts, Item
from feedrelay.render import render
from feedrelay.render.posts import cve_badge
from tests.cli import Relay
from tests.feedgen import rss
from tests.nvd_server import FIXTURES, FakeNVD, synthetic
from tests.servers import FakeSlack, FeedServer

ADVISORIES = FIXTURES / "feeds" / "cisa" / "ics-advisories.xml"
CHANNELS = {"security": {"slack": "#security", "min_interval": "0s"},
            "advisories": {"slack": "#advisories", "min_interval": "0s"},
            "exploited": {"slack": "#exploited", "min_interval": "0s"}}


def v31(score: float, severity: str, kind: str = "Primary") -> dict[str, object]:
    return {"cvssMetricV31": [{"source": "x", "type": kind, "cvssData": {
        "version": "3.1", "baseScore": score, "baseSeverity": severity, "vectorString": "CVSS:3.1/AV:N"}}]}


def modified_now(record: dict[str, object]) -> dict[str, object]:
    """A record NVD modified just now: the NVD feed's next window returns it."""
    record["cve"]["lastModified"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000")  # type: ignore[index]
    return record


def post_item(text: str, **extra: object) -> Item:
    return Item(key="k", title="Advisory", link="https://www.cisa.gov/a", summary=text, extra=dict(extra))


# --- pure: extraction, badges, rules ------------------------------------------------------------------------------


def test_cve_ids_are_found_once_in_order_in_any_case_with_4_to_7_digit_suffixes() -> None:
    text = ("Fixes CVE-2026-1234, cve-2026-12345 and CVE-2026-1234567; again CVE-2026-1234. Not CVE-2026-123, "
            "not CVE-2026-12345678, not XCVE-2026-5555 or CVE-2026-7777-extra.")
    assert cve_ids(text) == ["CVE-2026-1234", "CVE-2026-12345", "CVE-2026-1234567"]
    assert cve_ids("nothing here") == []
    assert len(cve_ids(" ".join(f"CVE-2026-{n:05d}" for n in range(500)))) == 100  # bounded per entry


def test_a_badge_shows_score_source_kev_due_date_and_epss_and_escapes_hostile_values() -> None:
    facts = CveFacts("CVE-2026-1234", severity="critical", score=9.8, score_source="NVD", kev=True,
                     kev_due="2026-12-20", epss=0.123, epss_percentile=0.96)
    assert cve_badge(facts.as_extra()) == ("<https://nvd.nist.gov/vuln/detail/CVE-2026-1234|CVE-2026-1234> · "
                                           "9.8 Critical (NVD) · 🚨 KEV due 2026-12-20 · EPSS 12.3% (96th percentile)")
    hostile = CveFacts("CVE-2026-1", severity="high <!channel>", score=7.0, score_source="<@U123|x>",
                       kev=True, kev_due="<!here> & <https://evil.example|x>")
    badge = cve_badge(hostile.as_extra())
    assert "<!channel>" not in badge and "<@U123" not in badge and "<!here>" not in badge
    assert "evil.example|" not in badge and "&lt;!here&gt; &amp;" in badge
    assert cve_badge({"cve": "CVE-2026-2", "pending": True}).endswith("|CVE-2026-2>")


def test_a_post_lists_ten_badges_then_how_many_more() -> None:
    mentions = [CveFacts(f"CVE-2026-{n:04d}", severity="low", score=2.0, score_source="CNA").as_extra()
                for n in range(1000, 1013)]
    blocks = json.dumps(render(post_item("x", mentions=mentions), "CISA").blocks)
    assert blocks.count("2.0 Low (CNA)") == 10 and "and 3 more" in blocks


def test_rss_routes_pass_an_entry_if_any_mentioned_cve_passes() -> None:
    kev = CveFacts("CVE-2026-0001", kev=True, kev_due="2026-12-20").as_extra()
    low = CveFacts("CVE-2026-0002", severity="low", score=3.1).as_extra()
    flt = Filter(kev_only=True)
    assert evaluate(flt, post_item("x", mentions=[low, kev])).passed
    miss = evaluate(flt, post_item("x", mentions=[low]))
    assert not miss.passed and "CVE-2026-0002: not in CISA KEV" in miss.reason
    none = evaluate(flt, post_item("no ids here"))
    assert not none.passed and "mentions no CVE" in none.reason
    # A CVE still to be looked up decides nothing yet: the entry waits for a later poll, unless another passes.
    pending = evaluate(flt, post_item("x", mentions=[low, {"cve": "CVE-2026-0003", "pending": True}]))
    assert pending.undecided and not pending.passed
    assert evaluate(flt, post_item("x", mentions=[kev, {"cve": "CVE-2026-0003", "pending": True}])).passed
    # Keys are ANDed per CVE, as on an NVD route.
    both = Filter(kev_only=True, min_severity="high", include_unscored=False)
    assert not evaluate(both, post_item("x", mentions=[kev, low])).passed  # one is KEV, the other high: neither both
    scored_kev = CveFacts("CVE-2026-0004", severity="critical", score=9.1, kev=True).as_extra()
    assert evaluate(both, post_item("x", mentions=[low, scored_kev])).passed
    assert evaluate(Filter(), post_item("no ids")).passed  # no security rules: nothing changes


def test_config_accepts_security_keys_on_rss_routes_and_turns_lookups_on_only_with_nvd() -> None:
    base = '[channels.c]\nconsole = true\n[[feeds]]\nname = "CISA"\nurl = "https://www.cisa.gov/all.xml"\n'
    cfg = parse_config(base + 'channels = ["c"]\nkev_only = true\nmin_severity = "high"\n')
    assert cfg.feeds[0].routes[0].filter.kev_only and not cfg.cve_lookup.enabled  # no NVD feed: no lookups
    with pytest.raises(ConfigError, match=r"include_unscored: a hold .* NVD and KEV feeds only"):
        parse_config(base + 'channels = ["c"]\ninclude_unscored = "after 72h"\n')
    nvd = '[[feeds]]\nname = "NVD"\ntype = "nvd"\nurl = "http://127.0.0.1:9/nvd"\napi_key_env = "K"\nchannels = ["c"]\n'
    on = parse_config(base + 'channels = ["c"]\n' + nvd)
    assert on.cve_lookup.enabled and on.cve_lookup.url == "http://127.0.0.1:9/nvd" and on.cve_lookup.api_key_env == "K"
    off = parse_config('[cve_lookup]\nenabled = false\n' + base + 'channels = ["c"]\n' + nvd)
    assert not off.cve_lookup.enabled
    other = parse_config('[cve_lookup]\nurl = "http://127.0.0.1:8/mirror"\n' + base + 'channels = ["c"]\n' + nvd)
    assert other.cve_lookup.api_key_env == ""  # the NVD feed's key is not sent to another endpoint
    with pytest.raises(ConfigError, match=r"cve_lookup.max_per_poll"):
        parse_config('[cve_lookup]\nmax_per_poll = -1\n' + base + 'channels = ["c"]\n')


# --- through the CLI -----------------------------------------------------------------------------------------------


@pytest.fixture
def relay(tmp_path: Path, fake_slack: FakeSlack) -> Relay:
    return Relay(tmp_path, fake_slack.api_url)


def posts_to(slack: FakeSlack, channel: str) -> list[str]:
    return [json.dumps(p.blocks, ensure_ascii=False) for p in slack.posts if p.channel == channel]


def test_cisa_advisories_show_badges_from_nvd_kev_and_a_lookup_and_kev_only_posts_the_exploited_one(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    unitronics = modified_now(synthetic("CVE-2023-6448", metrics=v31(9.8, "CRITICAL"), status="Analyzed"))
    wti = synthetic("CVE-2025-0630", metrics=v31(6.5, "MEDIUM", "Secondary"))  # old: only a lookup finds it
    nvd = FakeNVD(feed_server, [unitronics, wti], by_date=True)
    feed_server.set("/kev.json", (FIXTURES / "kev" / "kev-2025.08.13.json").read_bytes(),
                    content_type="application/json")
    feed_server.set("/ics-advisories.xml", rss([]))
    relay.configure(channels=CHANNELS, feeds=[
        {"name": "NVD", "type": "nvd", "url": nvd.url, "channels": ["security"]},
        {"name": "CISA KEV", "type": "kev", "url": feed_server.url("/kev.json"), "channels": ["security"]},
        {"name": "CISA ICS", "url": feed_server.url("/ics-advisories.xml"), "routes": [
            {"channel": "advisories"}, {"channel": "exploited", "kev_only": True}]}])
    assert relay("once").code == 0  # first polls: KEV's catalog remembered (its facts too), NVD from now on
    second = relay("once")  # NVD's window returns the Unitronics record
    assert second.code == 0, second.output
    assert nvd.lookups == []
    feed_server.set("/ics-advisories.xml", ADVISORIES.read_bytes())
    preview = relay("preview", "CISA ICS")  # decides as the poll will, from what is known (no lookups)
    assert preview.code == 0 and preview.out.count("post → exploited") == 1, preview.output
    third = relay("once")
    assert third.code == 0, third.output

    advisories = posts_to(fake_slack, "#advisories")
    assert len(advisories) == 2
    [unitronics_post] = [p for p in advisories if "Unitronics" in p]
    [wti_post] = [p for p in advisories if "Western Telematic" in p]
    # Known from the NVD feed (score) and the KEV catalog (due date), as the fixture's KEV entry has it:
    assert "|CVE-2023-6448> · 9.8 Critical (NVD) · 🚨 KEV due 2023-12-18" in unitronics_post
    # Looked up from NVD by id (the CNA's score):
    assert "|CVE-2025-0630> · 6.5 Medium (CNA)" in wti_post and "KEV" not in wti_post.split("CVEs:")[1]
    assert nvd.lookups == ["CVE-2025-0630"]
    # The kev_only route: only the advisory that mentions a KEV-listed CVE.
    [exploited] = posts_to(fake_slack, "#exploited")
    assert "Unitronics" in exploited

    # A later entry naming the same id: the cached answer, no second request.
    feed_server.set("/ics-advisories.xml", rss([{"guid": "/node/21900", "title": "WTI update",
                                                 "link": "https://www.cisa.gov/news-events/ics-advisories/x",
                                                 "description": "Still CVE-2025-0630."}]))
    assert relay("once").code == 0
    assert nvd.lookups == ["CVE-2025-0630"]
    assert "6.5 Medium (CNA)" in posts_to(fake_slack, "#advisories")[-1]


def test_lookups_keep_to_nvds_rate_limit_hold_the_entry_and_finish_at_the_next_poll(
        relay: Relay, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    ids = [f"CVE-2026-{n}" for n in range(40001, 40008)]
    records = [synthetic(cve, metrics=v31(5.0, "MEDIUM")) for cve in ids]
    records[-1]["cve"]["cisaExploitAdd"] = "2026-11-30"  # type: ignore[index]
    records[-1]["cve"]["cisaActionDue"] = "2026-12-21"  # type: ignore[index]
    nvd = FakeNVD(feed_server, records, by_date=True)
    feed_server.set("/all.xml", rss([]))
    relay.configure(channels=CHANNELS, tables={"cve_lookup": {"url": nvd.url}}, feeds=[
        {"name": "CISA", "url": feed_server.url("/all.xml"), "routes": [{"channel": "exploited", "kev_only": True}]}])
    assert relay("once").code == 0
    feed_server.set("/all.xml", rss([{"guid": "/node/1", "title": "Many fixes", "link": "https://www.cisa.gov/b",
                                      "description": "Fixed: " + ", ".join(ids)}]))
    held = relay("once")
    assert held.code == 0, held.output
    # No key: NVD allows 5 requests in 30 s. The other two wait for the next poll, and so does the entry, whose
    # verdict depends on them (the KEV-listed one is the last).
    assert nvd.lookups == ids[:5]
    assert fake_slack.posts == []
    assert "held" in held.err and "not looked up from NVD yet" in held.err
    assert "held" in relay("status").output

    done = relay("once")
    assert done.code == 0, done.output
    assert nvd.lookups == ids  # the first five came from the cache
    [post] = posts_to(fake_slack, "#exploited")
    assert "|CVE-2026-40007> · 5.0 Medium (NVD) · 🚨 KEV due 2026-12-21" in post


def test_without_an_nvd_feed_or_cve_lookup_nvd_is_never_asked(relay: Relay, feed_server: FeedServer,
                                                              fake_slack: FakeSlack) -> None:
    nvd = FakeNVD(feed_server, [synthetic("CVE-2025-0630", metrics=v31(6.5, "MEDIUM"))])
    feed_server.set("/ics.xml", rss([]))
    relay.configure(channels=CHANNELS, feeds=[{"name": "CISA ICS", "url": feed_server.url("/ics.xml"),
                                               "routes": [{"channel": "advisories"},
                                                          {"channel": "exploited", "kev_only": True}]}])
    assert relay("once").code == 0
    feed_server.set("/ics.xml", ADVISORIES.read_bytes())
    result = relay("once")
    assert result.code == 0, result.output
    assert nvd.lookups == [] and nvd.queries == []
    posts = posts_to(fake_slack, "#advisories")
    assert len(posts) == 2 and all("Critical" not in p and "Medium" not in p for p in posts)
    assert "<https://nvd.nist.gov/vuln/detail/CVE-2025-0630|CVE-2025-0630>" in "".join(posts)
    assert posts_to(fake_slack, "#exploited") == []  # nothing known is KEV-listed
