"""The CVE lifecycle through the CLI: a real NVD record (ProxyLogon, tests/fixtures) edited step by step as NVD
publishes it, a loopback KEV catalog and the loopback Slack. Each step asserts exactly which posts, replies and
edits reach Slack, through a restart and a SIGKILL."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli import Relay, wait_until
from tests.nvd_server import FIXTURES, FakeNVD, fixture_records
from tests.servers import FakeSlack, FeedServer, Post

CVE = "CVE-2021-26855"
SECURITY = {"security": {"slack": "#security", "min_interval": "0s"},
            "hook": {"webhook_env": "HOOK_URL", "min_interval": "0s"}}
KEV_FIXTURE = json.loads((FIXTURES / "kev" / "kev-2025.08.12.json").read_text())


def stage(name: str) -> dict[str, Any]:
    """The real record as NVD showed it at each stage: published unscored, scored by its CNA, analysed by NVD."""
    record = copy.deepcopy(fixture_records("nvdlib-CVE-2021-26855.json")[0])
    cve = record["cve"]
    real_v31 = cve["metrics"]["cvssMetricV31"][0]
    for key in ("cisaExploitAdd", "cisaActionDue", "cisaRequiredAction", "cisaVulnerabilityName"):
        cve.pop(key)
    if name == "analysed":
        cve["vulnStatus"] = "Analyzed"  # NVD's own score (Primary), the CPE data, and KEV's fields
        return record
    cve.pop("configurations")
    if name == "unscored":
        cve.update(vulnStatus="Awaiting Analysis", metrics={})
    elif name == "cna":
        cve.update(vulnStatus="Awaiting Analysis", metrics={"cvssMetricV31": [{**real_v31, "type": "Secondary"}]})
    elif name == "rejected":
        cve.update(vulnStatus="Rejected", metrics={},
                   descriptions=[{"lang": "en", "value": "Rejected reason: a duplicate of another CVE."}])
    return record


def kev_catalog(with_cve: bool) -> bytes:
    data = copy.deepcopy(KEV_FIXTURE)
    data["vulnerabilities"] = [v for v in data["vulnerabilities"] if with_cve or v["cveID"] != CVE]
    return json.dumps(data).encode()


def text(post: Post) -> str:
    return json.dumps(post.blocks) + (post.text or "")


@pytest.fixture
def relay(tmp_path: Path, fake_slack: FakeSlack) -> Relay:
    return Relay(tmp_path, fake_slack.api_url, extra_env={"HOOK_URL": fake_slack.webhook_url("hook")})


def configure(relay: Relay, nvd: FakeNVD, feed_server: FeedServer, **route: Any) -> None:
    relay.configure(channels=SECURITY, feeds=[
        {"name": "NVD", "type": "nvd", "url": nvd.url, "interval": "1h",
         "routes": [{"channel": "security", "min_severity": "high", **route}, {"channel": "hook"}]},
        {"name": "CISA KEV", "type": "kev", "url": feed_server.url("/kev.json"), "interval": "1h",
         "routes": [{"channel": "security"}]}])


def once(relay: Relay) -> None:
    result = relay("once")
    assert result.code == 0, result.output


def test_a_cve_is_posted_once_and_each_change_is_threaded_under_it(relay: Relay, feed_server: FeedServer,
                                                                   fake_slack: FakeSlack) -> None:
    nvd = FakeNVD(feed_server, [])
    feed_server.set("/kev.json", kev_catalog(with_cve=False), content_type="application/json")
    configure(relay, nvd, feed_server)
    once(relay)  # first polls: NVD starts from now, the KEV catalog is remembered
    assert fake_slack.posts == []

    nvd.records = [stage("unscored")]
    once(relay)
    [first] = fake_slack.messages("#security")
    assert CVE in text(first) and "Unscored" in text(first) and first.thread_ts is None
    assert len(fake_slack.messages("webhook:hook")) == 1

    nvd.records = [stage("cna")]  # the CNA scores it
    once(relay)
    [reply] = fake_slack.messages("#security")[1:]
    assert reply.thread_ts == first.ts and not reply.broadcast
    assert "Score: unscored → 9.8 Critical (CNA)" in text(reply)
    [edit] = fake_slack.edits
    assert edit.ts == first.ts and edit.channel_id == FakeSlack.channel_id("#security")
    assert "Critical 9.8 (CVSS 3.1, CNA score)" in json.dumps(edit.blocks)
    # The webhook channel cannot thread or edit: a new message that names the first.
    [_, hook_update] = fake_slack.messages("webhook:hook")
    assert hook_update.thread_ts is None and "Update to" in text(hook_update)
    assert "First posted in this channel on" in text(hook_update)

    once(relay)  # NVD returns it again, unchanged (the window overlaps): nothing
    assert len(fake_slack.posts) == 4 and len(fake_slack.edits) == 1

    # A week later CISA adds it to KEV: the KEV addition is a reply in the same thread, not a second post.
    feed_server.set("/kev.json", kev_catalog(with_cve=True), content_type="application/json")
    once(relay)
    [kev_reply] = fake_slack.messages("#security")[2:]
    assert kev_reply.thread_ts == first.ts
    assert "Added to CISA KEV, due 2021-04-16, ransomware: Known" in text(kev_reply)

    # NVD analyses it (its own score, KEV fields): a reply and an edit, delivered after a SIGKILL mid-outage.
    nvd.records = [stage("analysed")]
    fake_slack.outage(503)
    daemon = relay.start()
    wait_until(lambda: any(a.endpoint == "chat.postMessage" and a.outcome == "outage" for a in fake_slack.attempts),
               timeout=60)
    daemon.kill()
    fake_slack.outage(None)
    once(relay)
    [analysed] = fake_slack.messages("#security")[3:]
    assert analysed.thread_ts == first.ts and "Score: 9.8 Critical (CNA) → 9.8 Critical (NVD)" in text(analysed)
    assert len(fake_slack.edits) == 2
    assert "CISA KEV" in json.dumps(fake_slack.edits[-1].blocks) and "microsoft exchange server" in json.dumps(
        fake_slack.edits[-1].blocks)

    nvd.records = [stage("rejected")]
    once(relay)
    [rejected] = fake_slack.messages("#security")[4:]
    assert rejected.thread_ts == first.ts and "Rejected: this CVE ID was withdrawn" in text(rejected)
    assert "Rejected" in json.dumps(fake_slack.edits[-1].blocks)
    # Only one top-level message in the channel, ever.
    assert [p.thread_ts for p in fake_slack.messages("#security")].count(None) == 1


def test_a_cve_skipped_while_unscored_is_posted_when_a_score_passes(relay: Relay, feed_server: FeedServer,
                                                                   fake_slack: FakeSlack) -> None:
    nvd = FakeNVD(feed_server, [])
    feed_server.set("/kev.json", kev_catalog(with_cve=True), content_type="application/json")
    configure(relay, nvd, feed_server, include_unscored=False)
    once(relay)
    nvd.records = [stage("unscored")]
    once(relay)
    assert fake_slack.messages("#security") == []  # skipped: unscored, include_unscored = false
    nvd.records = [stage("cna")]
    once(relay)
    [post] = fake_slack.messages("#security")
    assert post.thread_ts is None and "Critical 9.8" in text(post) and fake_slack.edits == []


def test_an_unscored_cve_is_held_until_the_hold_runs_out(relay: Relay, feed_server: FeedServer,
                                                         fake_slack: FakeSlack) -> None:
    nvd = FakeNVD(feed_server, [])
    feed_server.set("/kev.json", kev_catalog(with_cve=True), content_type="application/json")
    configure(relay, nvd, feed_server, include_unscored="after 3s")
    once(relay)
    nvd.records = [stage("unscored")]
    once(relay)
    assert fake_slack.messages("#security") == []
    status = relay("status")
    assert "NVD: 1 unscored CVE(s) on hold" in status.out, status.output
    nvd.records = []  # NVD does not return it again: the hold still runs out at a poll of the feed
    wait_until(lambda: relay("once").code == 0 and fake_slack.messages("#security"), timeout=20, interval=1)
    [post] = fake_slack.messages("#security")
    assert "Unscored" in text(post) and CVE in text(post)
    once(relay)
    assert len(fake_slack.messages("#security")) == 1


def test_an_rss_route_with_updates_threads_a_revised_advisory(relay: Relay, feed_server: FeedServer,
                                                              fake_slack: FakeSlack) -> None:
    from tests.feedgen import rss

    advisory = {"guid": "/node/25374", "link": "https://www.cisa.gov/news-events/ics-advisories/icsa-26-239-01",
                "title": "Siemens SIMATIC S7", "description": "Siemens SIMATIC is affected by CVE-2026-12345."}
    feed_server.set("/ics.xml", rss([]))
    relay.configure(channels=SECURITY, feeds=[
        {"name": "CISA ICS", "url": feed_server.url("/ics.xml"), "routes": [{"channel": "security",
                                                                              "updates": "thread"}]},
        {"name": "Blog", "url": feed_server.url("/ics.xml"), "channels": ["hook"]}])  # default: off
    once(relay)
    feed_server.set("/ics.xml", rss([advisory]))
    once(relay)
    [first] = fake_slack.messages("#security")
    assert len(fake_slack.messages("webhook:hook")) == 1
    feed_server.set("/ics.xml", rss([{**advisory, "title": "Update: Siemens SIMATIC S7 <!channel>"}]))
    once(relay)
    [reply] = fake_slack.messages("#security")[1:]
    assert reply.thread_ts == first.ts
    assert "Title: Siemens SIMATIC S7 → Update: Siemens SIMATIC S7 &lt;!channel&gt;" in text(reply)
    assert "<!channel>" not in text(reply)  # feed text never pings anyone
    assert len(fake_slack.messages("webhook:hook")) == 1  # updates are off by default for RSS


# --- the pure decisions behind the above (no sockets, no files) ---------------------------------------------------

def _feed(kind: str, **route: Any) -> Any:
    from feedrelay.config import Feed, Filter, Route

    updates = route.pop("updates", "thread")
    return Feed("F", "https://x.example/", kind, 3600, 0, (Route("security", Filter(**route), updates),))


def _cve(**extra: Any) -> Any:
    from feedrelay.model import Item

    base = {"cve": CVE, "severity": "critical", "score": 9.8, "score_source": "Secondary", "kev": False,
            "references": ["https://a.example/1"]}
    return Item(CVE, CVE, f"https://nvd.nist.gov/vuln/detail/{CVE}", "A flaw.", kind="cve", extra=base | extra)


def test_a_cosmetic_change_sends_nothing_and_updates_off_keeps_quiet() -> None:
    from feedrelay.decide.decider import Plan
    from feedrelay.decide.lifecycle import Story, compact, judge

    feed = _feed("nvd")
    posted = {("security", CVE): Story(compact(_cve(), feed.routes[0]) | {"root": "cve"}, 0.0)}
    reference_added = _cve(references=["https://a.example/1", "https://b.example/2"])
    out = judge(feed, [reference_added], Plan(), posted, {}, {CVE: 1.0}, now=10.0, since=0.0)
    assert out.intents == [] and [w.new for w in out.stories] == [False]
    rescored = _cve(score=7.5, severity="high")
    out = judge(feed, [rescored], Plan(), posted, {}, {CVE: 1.0}, now=10.0, since=0.0)
    assert [(i.action, i.changes) for i in out.intents] == [
        ("reply", ("Score: 9.8 Critical (CNA) → 7.5 High (CNA)",)), ("update", ())]
    quiet = _feed("nvd", updates="off")
    assert judge(quiet, [rescored], Plan(), posted, {}, {CVE: 1.0}, now=10.0, since=0.0).intents == []


def test_a_hold_on_a_kev_listing_runs_out_although_the_catalog_lists_the_entry_every_time() -> None:
    from feedrelay.decide.decider import Plan
    from feedrelay.decide.lifecycle import Hold, judge
    from feedrelay.model import Item

    feed = _feed("kev", min_severity="high", unscored_hold=3600.0)
    entry = Item(CVE, CVE, "https://nvd.nist.gov/vuln/detail/" + CVE, kind="kev",
                 extra={"cve": CVE, "kev": True, "severity": None})
    holds = {("security", CVE): Hold("security", CVE, 0.0, entry)}
    early = judge(feed, [entry], Plan(), {}, holds, {}, now=1800.0, since=0.0, changed=False)
    assert early.intents == [] and early.released == []
    late = judge(feed, [entry], Plan(), {}, holds, {}, now=3600.0, since=0.0, changed=False)
    assert [(i.action, i.item.key) for i in late.intents] == [("post", CVE)] and late.released == [("security", CVE)]
