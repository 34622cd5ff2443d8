"""CVE List v5 with CISA Vulnrichment (`type = "cvelist"`): real records, served by a loopback copy of the
repository, through the CLI against the fake Slack."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from feedrelay.config import Filter, parse_config
from feedrelay.decide.filters import evaluate
from feedrelay.ingest.fetch import Fetcher
from feedrelay.render import render
from feedrelay.sources import cvelist
from feedrelay.sources.cvelist import CVEListSource, parse_delta_log, parse_record, record_item
from feedrelay.sources.nvd import cve_item
from tests.cli import Relay
from tests.cvelist_server import FIXTURES, FakeCVEList, real_record
from tests.nvd_server import FakeNVD, synthetic
from tests.servers import FakeSlack, FeedServer

CHANNELS = {"security": {"slack": "#security", "min_interval": "0s"},
            "exploited": {"slack": "#exploited", "min_interval": "0s"}}
HUGEGRAPH_NONE = "CVE-2024-27348.2024-08-19.json"  # SSVC exploitation none (before CISA listed it in KEV)
HUGEGRAPH_ACTIVE = "CVE-2024-27348.2024-09-18.json"  # the same record a month later: active, in KEV


def item(name: str) -> Any:
    return parse_record((FIXTURES / name).read_bytes(), name.split(".")[0])


def cves_in(posts: list[Any]) -> list[str]:
    return [re.search(r"CVE-\d{4}-\d+", p.text or json.dumps(p.blocks)).group(0) for p in posts]  # type: ignore[union-attr]


def feed(url: str, **extra: object) -> dict[str, object]:
    return {"name": "CVE List", "type": "cvelist", "url": url, **extra}


@pytest.fixture
def relay(tmp_path: Path, fake_slack: FakeSlack) -> Relay:
    return Relay(tmp_path, fake_slack.api_url)


# --- parsing real records ---------------------------------------------------------------------------------------


def test_a_vulnrichment_record_gives_cisa_score_ssvc_kev_and_cpe_names() -> None:
    hugegraph = item(HUGEGRAPH_ACTIVE)
    x = hugegraph.extra
    # The CNA (Apache) gave no CVSS: CISA's ADP score is the one, and says so.
    assert (x["severity"], x["score"], x["cvss_version"], x["score_source"]) == ("critical", 9.8, "3.1", "CISA-ADP")
    assert (x["ssvc_exploitation"], x["automatable"], x["technical_impact"]) == ("active", True, "total")
    assert x["kev"] and x["kev_added"] == "2024-09-18" and x["cwes"] == ["CWE-284"]
    assert hugegraph.link == "https://www.cve.org/CVERecord?id=CVE-2024-27348"
    assert x["name"] == "Apache HugeGraph-Server: Command execution in gremlin"
    blocks = json.dumps(render(hugegraph, "CVE List").to_json(), ensure_ascii=False)
    assert "Critical 9.8 (CVSS 3.1, CISA-ADP score)" in blocks and "CISA KEV" in blocks
    assert "🔥 Exploitation: active · Automatable: yes · Technical impact: total" in blocks
    assert "<https://www.cve.org/CVERecord?id=CVE-2024-27348|CVE-2024-27348>" in blocks
    assert "Apache Software Foundation Apache HugeGraph-Server" in blocks


def test_cvss_v4_of_the_cna_wins_and_rejected_records_are_kept_as_rejected() -> None:
    zzcms = item("CVE-2024-10291.json").extra  # VulDB gives v4.0, v3.1, v3.0 and v2: v4.0 first, as NVD's rules
    assert (zzcms["severity"], zzcms["score"], zzcms["cvss_version"], zzcms["score_source"]) == \
        ("medium", 5.3, "4.0", "CNA")
    assert zzcms["ssvc_exploitation"] == "poc" and zzcms["automatable"] is False and zzcms["cwes"] == ["CWE-89"]
    assert zzcms["affected"] == [["", "ZZCMS"]]  # vendor "n/a" names no one
    assert "Medium 5.3 (CVSS 4.0, CNA score)" in json.dumps(render(item("CVE-2024-10291.json"), "x").to_json())
    rejected = item("CVE-2021-36593.json")
    assert rejected.extra["rejected"] and rejected.summary.startswith("DO NOT USE THIS CANDIDATE NUMBER")
    assert not evaluate(Filter(), rejected).passed
    cisco = item("CVE-2024-20268.json").extra
    assert "ssvc_exploitation" in cisco and cisco["ssvc_exploitation"] == "none" and cisco["score_source"] == "CNA"


def test_vendor_names_match_the_cpe_name_and_the_cnas_own_words() -> None:
    hugegraph = item(HUGEGRAPH_ACTIVE)  # CNA vendor "Apache Software Foundation", CISA's CPE apache:hugegraph-server
    for flt in (Filter(vendors=("apache",)), Filter(vendors=("apache software foundation",)),
                Filter(products=("hugegraph-server",)), Filter(products=("hugegraph",))):
        assert evaluate(flt, hugegraph).passed, flt
    assert not evaluate(Filter(vendors=("microsoft",)), hugegraph).passed
    assert not evaluate(Filter(vendors=("hugegraph",)), hugegraph).passed  # a product is not a vendor
    cisco = item("CVE-2024-20268.json")  # no CPE at all: the CNA's "Cisco" / "Cisco Adaptive Security Appliance…"
    assert evaluate(Filter(vendors=("cisco",)), cisco).passed
    assert evaluate(Filter(products=("adaptive security appliance",)), cisco).passed
    assert not evaluate(Filter(products=("firepower management center",)), cisco).passed
    # An NVD record of Apache software (CPE vendor `apache`) matches the same route.
    nvd = synthetic("CVE-2024-27348")["cve"]
    nvd["configurations"] = [{"nodes": [{"operator": "OR", "negate": False, "cpeMatch": [
        {"vulnerable": True, "criteria": "cpe:2.3:a:apache:hugegraph:*:*:*:*:*:*:*:*"}]}]}]
    assert evaluate(Filter(vendors=("apache",)), cve_item(nvd)).passed  # type: ignore[arg-type]
    # Red Hat's CNA writes CPE 2.2 URIs; its vendor is `redhat` there and "Red Hat" in its names.
    redhat = {"dataType": "CVE_RECORD", "cveMetadata": {"cveId": "CVE-2025-5915", "state": "PUBLISHED"},
              "containers": {"cna": {"affected": [{"vendor": "Red Hat", "product": "Red Hat Enterprise Linux 9",
                                                   "cpes": ["cpe:/o:redhat:enterprise_linux:9"]}]}}}
    x = record_item(redhat).extra
    assert "redhat" in x["vendors"] and "enterprise linux" in x["products"] and "red hat" in x["vendors"]


def test_ssvc_filters() -> None:
    active, poc, none = item(HUGEGRAPH_ACTIVE), item("CVE-2024-10291.json"), item(HUGEGRAPH_NONE)
    nvd = cve_item(synthetic("CVE-2026-1")["cve"])
    assert nvd is not None
    flt = Filter(ssvc_exploitation=("active",))
    assert [evaluate(flt, i).passed for i in (active, poc, none, nvd)] == [True, False, False, False]
    assert evaluate(flt, nvd).reason == "excluded: no CISA SSVC assessment (ssvc_exploitation)"
    both = Filter(ssvc_exploitation=("poc", "active"))
    assert [evaluate(both, i).passed for i in (active, poc, none)] == [True, True, False]
    auto = Filter(automatable=True)
    assert [evaluate(auto, i).passed for i in (active, poc, nvd)] == [True, False, False]
    assert evaluate(Filter(automatable=False), poc).passed and not evaluate(Filter(automatable=False), nvd).passed


def test_ssvc_keys_are_validated_at_load() -> None:
    base = '[channels.s]\nconsole = true\n[[feeds]]\nname = "C"\ntype = "cvelist"\nchannels = ["s"]\n'
    cfg = parse_config(base + 'ssvc_exploitation = ["poc", "Active"]\nautomatable = true\n')
    assert cfg.feeds[0].routes[0].filter.ssvc_exploitation == ("poc", "active")
    assert cfg.feeds[0].url == cvelist.DEFAULT_URL
    with pytest.raises(Exception, match=r"feeds\[0\]\.ssvc_exploitation\[0\]: expected one of none, poc, active"):
        parse_config(base + 'ssvc_exploitation = ["exploited"]\n')
    with pytest.raises(Exception, match=r"feeds\[0\]\.automatable: expected true or false"):
        parse_config(base + 'automatable = "yes"\n')
    rss = '[channels.s]\nconsole = true\n[[feeds]]\nname = "R"\nurl = "https://e.com/f"\nchannels = ["s"]\n'
    with pytest.raises(Exception, match=r"feeds\[0\]\.automatable: applies to security feeds only"):
        parse_config(rss + "automatable = true\n")


def test_the_real_delta_log_is_read_and_links_are_never_followed() -> None:
    changes, problems, oldest = parse_delta_log((FIXTURES / "deltaLog-2025-09-04.json").read_bytes())
    assert len(changes) == 19 and problems == [] and oldest == "2025-09-04T20:21:03.665000+00:00"
    assert changes["CVE-2025-5915"] == ("2025-09-04T20:30:36.562000+00:00", "CVE-2025-5915")
    one, _, _ = parse_delta_log((FIXTURES / "delta-2025-12-13.json").read_bytes())  # delta.json: one batch
    assert list(one) == ["CVE-2025-14617"]
    hostile = json.loads((FIXTURES / "deltaLog-2025-09-04.json").read_text())
    hostile[0]["updated"][0]["githubLink"] = "https://evil.example/steal.json"
    hostile[0]["updated"][1]["cveId"] = "CVE-2025-1/../../../../etc/passwd"
    hostile[1]["updated"][0]["githubLink"] = ""  # (a mirror that leaves links out: nothing to report)
    changes, problems, _ = parse_delta_log(json.dumps(hostile).encode())
    assert "CVE-2025-26429" in changes and len(changes) == 18 and len(problems) == 2
    assert any("githubLink points to 'https://evil.example/steal.json'" in p for p in problems)
    assert any("is not a CVE id was skipped" in p for p in problems)


# --- through the CLI -------------------------------------------------------------------------------------------


def test_first_poll_remembers_then_each_change_is_posted_once(relay: Relay, feed_server: FeedServer,
                                                              fake_slack: FakeSlack) -> None:
    repo = FakeCVEList(feed_server)
    repo.publish(real_record("CVE-2024-20268.json"))
    relay.configure(channels=CHANNELS, feeds=[feed(repo.url, channels=["security"])])
    first = relay("once")
    assert first.code == 0, first.output
    assert fake_slack.posts == [] and feed_server.hits(repo.record_url_path("CVE-2024-20268")) == 0
    repo.publish(real_record("CVE-2024-10291.json"), real_record(HUGEGRAPH_NONE))
    assert relay("once").code == 0
    assert sorted(cves_in(fake_slack.posts)) == ["CVE-2024-10291", "CVE-2024-27348"]
    assert relay("once").code == 0  # unchanged delta log (304): nothing read again
    assert len(fake_slack.posts) == 2 and feed_server.hits(repo.record_url_path("CVE-2024-10291")) == 1


def test_backlog_posts_the_newest_records_of_the_first_poll(relay: Relay, feed_server: FeedServer,
                                                            fake_slack: FakeSlack) -> None:
    repo = FakeCVEList(feed_server)
    repo.publish(real_record("CVE-2024-20268.json"))
    repo.publish(real_record("CVE-2024-10291.json"))
    relay.configure(channels=CHANNELS, feeds=[feed(repo.url, channels=["security"], backlog=1)])
    assert relay("once").code == 0
    assert cves_in(fake_slack.posts) == ["CVE-2024-10291"]


def test_ssvc_route_posts_only_active_and_a_move_to_active_is_a_thread_reply(relay: Relay, feed_server: FeedServer,
                                                                             fake_slack: FakeSlack) -> None:
    repo = FakeCVEList(feed_server)
    repo.publish(real_record("CVE-2024-20268.json"))
    relay.configure(channels=CHANNELS, feeds=[feed(repo.url, routes=[
        {"channel": "security"}, {"channel": "exploited", "ssvc_exploitation": ["active"]}])])
    assert relay("once").code == 0
    repo.publish(real_record("CVE-2024-10291.json"), real_record(HUGEGRAPH_NONE))  # poc, none
    assert relay("once").code == 0
    assert sorted(cves_in(fake_slack.messages("#security"))) == ["CVE-2024-10291", "CVE-2024-27348"]
    assert fake_slack.messages("#exploited") == []

    repo.publish(real_record(HUGEGRAPH_ACTIVE))  # CISA: exploitation active, and in KEV
    result = relay("once")
    assert result.code == 0, result.output
    [exploited] = fake_slack.messages("#exploited")  # the route's bar is crossed now: posted now
    assert "CVE-2024-27348" in (exploited.text or "") and exploited.thread_ts is None
    security = fake_slack.messages("#security")
    parent = next(p for p in security if p.thread_ts is None and "CVE-2024-27348" in (p.text or ""))
    [reply] = [p for p in security if p.thread_ts]
    assert reply.thread_ts == parent.ts
    assert "CISA SSVC: exploitation none → active" in reply.text and "Added to CISA KEV" in reply.text  # type: ignore[operator]
    # The first message is redrawn with the SSVC now known.
    assert any("Exploitation: active" in json.dumps(e.blocks, ensure_ascii=False) for e in fake_slack.edits)
    assert relay("once").code == 0 and len(fake_slack.posts) == 4  # nothing more


def test_nvd_and_cvelist_of_one_cve_are_one_story_without_ping_pong(relay: Relay, feed_server: FeedServer,
                                                                    fake_slack: FakeSlack) -> None:
    # NVD's own (Primary) score is 8.8; CISA's ADP score in the CVE List is 9.8. Polled in turn, the story keeps
    # NVD's, and the only reply is CISA's SSVC moving to active.
    now = datetime.now(UTC)
    record = synthetic("CVE-2024-27348", metrics={"cvssMetricV31": [{"source": "nvd@nist.gov", "type": "Primary",
                       "cvssData": {"version": "3.1", "baseScore": 8.8, "baseSeverity": "HIGH",
                                    "vectorString": "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H"}}]})
    nvd = FakeNVD(feed_server, [record], by_date=True)
    repo = FakeCVEList(feed_server)
    repo.publish(real_record("CVE-2024-20268.json"))

    def nvd_modified(when: datetime) -> None:
        record["cve"]["lastModified"] = when.strftime("%Y-%m-%dT%H:%M:%S.000")  # type: ignore[index]

    nvd_modified(now - timedelta(days=10))  # not in NVD's window
    relay.configure(channels=CHANNELS, feeds=[
        {"name": "NVD", "type": "nvd", "url": nvd.url, "channels": ["security"]},
        feed(repo.url, channels=["security"])])
    assert relay("once").code == 0  # first polls: remembered

    nvd_modified(datetime.now(UTC) - timedelta(minutes=1))
    assert relay("once").code == 0
    [post] = fake_slack.posts
    assert "High 8.8" in (post.text or "")
    for _ in range(2):
        nvd_modified(datetime.now(UTC) - timedelta(days=10))
        repo.publish(real_record(HUGEGRAPH_NONE))  # the CVE List's record: CISA-ADP 9.8, SSVC none
        assert relay("once").code == 0
        nvd_modified(datetime.now(UTC) - timedelta(minutes=1))
        assert relay("once").code == 0
    assert len(fake_slack.posts) == 1, [p.text for p in fake_slack.posts]  # no second post, no reply
    repo.publish(real_record(HUGEGRAPH_ACTIVE))
    nvd_modified(datetime.now(UTC) - timedelta(days=10))
    assert relay("once").code == 0
    nvd_modified(datetime.now(UTC) - timedelta(minutes=1))
    repo.publish(real_record(HUGEGRAPH_ACTIVE))
    assert relay("once").code == 0
    replies = [p for p in fake_slack.posts if p.thread_ts]
    assert len(fake_slack.posts) == 2 and len(replies) == 1
    assert "exploitation none → active" in replies[0].text and "Score" not in replies[0].text  # type: ignore[operator]
    # Redrawn, the first message shows the story's score (NVD's) and CISA's SSVC, whichever source redrew it.
    last = json.dumps(fake_slack.edits[-1].blocks, ensure_ascii=False)
    assert "High 8.8" in last and "Exploitation: active" in last


# --- hostile treatment ------------------------------------------------------------------------------------------


def test_failures_are_clear_per_feed_errors_and_nothing_is_skipped(relay: Relay, feed_server: FeedServer,
                                                                   fake_slack: FakeSlack) -> None:
    repo = FakeCVEList(feed_server)
    repo.publish(real_record("CVE-2024-20268.json"))
    relay.configure(channels=CHANNELS, feeds=[feed(repo.url, channels=["security"])])
    assert relay("once").code == 0
    repo.publish(real_record("CVE-2024-10291.json"), real_record(HUGEGRAPH_NONE))
    feed_server.set(repo.record_url_path("CVE-2024-27348"), b"busy", status=503,
                    content_type="text/plain")
    failed = relay("once")
    assert failed.code == 1
    assert "feed 'CVE List': CVE List record CVE-2024-27348" in failed.err and "HTTP 503" in failed.err
    assert "read again" in failed.err and "Traceback" not in failed.output
    assert fake_slack.posts == []  # nothing of a half-read part is posted
    feed_server.set(repo.record_url_path("CVE-2024-27348"), (FIXTURES / HUGEGRAPH_NONE).read_bytes(),
                    content_type="text/plain")
    assert relay("once").code == 0
    assert sorted(cves_in(fake_slack.posts)) == ["CVE-2024-10291", "CVE-2024-27348"]

    feed_server.set(repo.log_path, b"slow down", status=429, headers={"Retry-After": "120"},
                    content_type="text/plain")
    limited = relay("once")
    assert limited.code == 1 and "feed 'CVE List': CVE List delta log: HTTP 429" in limited.err
    for body, message in ((b"<html>rate limited</html>", "the CVE List delta log is not valid JSON"),
                          (b'{"cves": []}', "the CVE List delta log is not a list of batches"),
                          (b"[" * 100_000 + b"]" * 100_000,
                           "the CVE List delta log is not valid JSON (nested too deeply)")):
        relay.db.unlink()  # (forget the Retry-After pause; a first poll reads the log too)
        feed_server.set(repo.log_path, body, content_type="application/json")
        result = relay("once")
        assert result.code == 1 and f"feed 'CVE List': {message}" in result.err, result.err
        assert "Traceback" not in result.output


def test_records_that_are_not_cve_records_are_skipped_or_fail_the_poll(relay: Relay, feed_server: FeedServer,
                                                                       fake_slack: FakeSlack) -> None:
    repo = FakeCVEList(feed_server)
    repo.publish(real_record("CVE-2024-20268.json"))
    relay.configure(channels=CHANNELS, defaults={"max_body": "100KB"}, feeds=[feed(repo.url, channels=["security"])])
    assert relay("once").code == 0
    # One record is an HTML page, one is another CVE's record, one is huge, a link points elsewhere: the good
    # record is posted, each other is named in the feed's warning.
    evil = FeedServer().start()
    try:
        other = real_record("CVE-2024-10291.json")
        repo.publish(real_record(HUGEGRAPH_NONE), other,
                     links={"CVE-2024-27348": evil.url("/steal.json")})
        feed_server.set(repo.record_url_path("CVE-2024-10291"), b"<html>not here</html>", content_type="text/html")
        result = relay("once")
        assert result.code == 0, result.output
        assert cves_in(fake_slack.posts) == ["CVE-2024-27348"]
        assert "CVE-2024-10291 at" in result.err and "skipped: not JSON" in result.err
        assert "githubLink points to" in result.err and evil.hits("/steal.json") == 0
        status = relay("status").output
        assert "CVE-2024-10291" in status

        # Every record of a poll is not one (a wrong url serving a web page for everything): the poll fails.
        repo.publish(other, serve=False)
        result = relay("once")
        assert result.code == 1 and "check the feed's url" in result.err
        # A record too big to read is not made smaller by reading it again: skipped, and said so.
        huge = json.dumps({**other, "padding": "x" * 200_000}).encode()
        feed_server.set(repo.record_url_path("CVE-2024-10291"), huge, content_type="application/json")
        result = relay("once")
        assert result.code == 0 and "CVE-2024-10291" in result.err and "100,000-byte limit" in result.err
    finally:
        evil.stop()


def test_a_catch_up_is_read_in_bounded_parts_that_cover_every_change(feed_server: FeedServer,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cvelist, "MAX_RECORDS", 2)
    repo = FakeCVEList(feed_server)
    base = real_record("CVE-2024-10291.json")
    records = []
    for n in range(7):
        r = json.loads(json.dumps(base))
        r["cveMetadata"]["cveId"] = f"CVE-2026-{1000 + n}"
        records.append(r)
    repo.publish(records[0])
    cfg = parse_config(f'[channels.s]\nconsole = true\n[[feeds]]\nname = "C"\ntype = "cvelist"\nurl = "{repo.url}"\n'
                       'channels = ["s"]\n')

    async def run() -> list[list[str]]:
        async with Fetcher() as fetcher:
            source = CVEListSource(cfg.feeds[0], fetcher)
            state = (await source.poll({})).state
            repo.publish(*records[1:4])
            repo.publish(*records[4:], records[1])  # CVE-2026-1001 changed again: read once, at its latest change
            parts = []
            for _ in range(10):
                result = await source.poll(state)
                parts.append([i.key for i in result.items])
                state = result.state
                if not result.more:
                    break
            return parts

    parts = asyncio.run(run())
    assert all(len(p) <= 2 for p in parts) and len(parts) == 3
    seen = [k for p in parts for k in p]
    assert sorted(seen) == [f"CVE-2026-{1000 + n}" for n in range(1, 7)]  # each once, none of the first poll


def test_the_documented_config_loads_as_written() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "security-sources.md").read_text()
    section = doc[doc.index('## CVE List v5 with CISA Vulnrichment (`type = "cvelist"`)'):]
    block = section[section.index("```toml\n") + 8 : section.index("```\n", section.index("```toml\n") + 8)]
    [source] = parse_config(block).feeds
    assert source.kind == "cvelist" and source.url == cvelist.DEFAULT_URL
    assert [r.filter.ssvc_exploitation for r in source.routes] == [(), ("active",)]


def test_ssvc_changes_and_score_precedence_in_the_story_state() -> None:
    from feedrelay.config import Route
    from feedrelay.decide.lifecycle import changes, compact, merge

    route = Route("security")
    none, active, poc = (compact(item(n), route) for n in (HUGEGRAPH_NONE, HUGEGRAPH_ACTIVE, "CVE-2024-10291.json"))
    assert none["ssvc_exploitation"] == "none" and none["automatable"] is True and none["rank"] == 2
    assert "CISA SSVC: exploitation none → active" in changes(none, merge(none, active))
    def ssvc_lines(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
        return [line for line in changes(old, merge(old, new)) if "SSVC" in line]

    assert ssvc_lines({}, none) == []  # a first assessment of "none" is not news
    assert ssvc_lines({}, poc) == ["CISA SSVC: exploitation poc"]
    flipped = {**poc, "automatable": True}
    assert changes(poc, merge(poc, flipped)) == ["CISA SSVC: automatable no → yes"]
    nvd = cve_item(synthetic("CVE-2024-27348", metrics={"cvssMetricV31": [{"type": "Primary", "cvssData": {
        "version": "3.1", "baseScore": 8.8, "baseSeverity": "HIGH"}}]})["cve"])
    nvd_copy = cve_item(synthetic("CVE-2024-27348", metrics={"cvssMetricV31": [{"type": "Secondary", "cvssData": {
        "version": "3.1", "baseScore": 7.0, "baseSeverity": "HIGH"}}]})["cve"])
    assert nvd and nvd_copy
    primary, copy = compact(nvd, route), compact(nvd_copy, route)
    # NVD's own score outranks the CVE List's, which outranks NVD's copy of a CNA score; an unranked old state
    # (kept before ranks) with NVD's score counts as NVD's.
    assert merge(primary, none)["score"] == 8.8 and merge(none, primary)["score"] == 8.8
    assert merge(none, copy)["score"] == 9.8 and merge(copy, none)["score"] == 9.8
    legacy = {k: v for k, v in primary.items() if k != "rank"}
    assert merge(legacy, none)["score"] == 8.8
    assert merge({"rejected": True}, {"rejected": False})["rejected"] is True


def test_a_custom_template_shows_ssvc() -> None:
    hugegraph = item(HUGEGRAPH_ACTIVE)
    text = json.dumps(render(hugegraph, "CVE List", "{cve} {severity} {ssvc}").to_json(), ensure_ascii=False)
    assert "CVE-2024-27348 🔴 Critical 🔥 Exploitation: active · Automatable: yes · Technical impact: total" in text
    nvd = cve_item(synthetic("CVE-2026-1")["cve"])
    assert nvd and "Exploitation" not in json.dumps(render(nvd, "NVD", "{cve} {ssvc}").to_json())  # NVD: no SSVC


def test_cna_text_cannot_ping_or_disguise_a_link() -> None:
    record = real_record(HUGEGRAPH_ACTIVE)
    cna = record["containers"]["cna"]
    cna["title"] = "<!channel> urgent <@U123>"
    cna["affected"][0]["vendor"] = "<https://evil.example|Apache>"
    cna["descriptions"][0]["value"] = "See <!here> and <https://evil.example|https://apache.org>"
    cna["references"] = [{"url": "javascript:alert(1)"}, {"url": "https://lists.apache.org/thread/x"}]
    message = render(record_item(record), "CVE List").to_json()
    text = json.dumps([message["text"], message["blocks"]])  # (the terminal's plain text is not Slack's)
    assert "<!channel>" not in text and "<!here>" not in text and "<@U123>" not in text
    assert "<https://evil.example|" not in text and "javascript:" not in text
    assert "<https://lists.apache.org/thread/x|lists.apache.org>" in text


def test_nvd_and_cvelist_bringing_a_new_cve_in_one_run_post_it_once(relay: Relay, feed_server: FeedServer,
                                                                    fake_slack: FakeSlack) -> None:
    record = synthetic("CVE-2024-27348")
    nvd = FakeNVD(feed_server, [record], by_date=True)
    record["cve"]["lastModified"] = "2020-01-01T00:00:00.000"  # type: ignore[index]
    repo = FakeCVEList(feed_server)
    repo.publish(real_record("CVE-2024-20268.json"))
    relay.configure(channels=CHANNELS, feeds=[
        {"name": "NVD", "type": "nvd", "url": nvd.url, "channels": ["security"]},
        feed(repo.url, channels=["security"])])
    assert relay("once").code == 0
    record["cve"]["lastModified"] = (datetime.now(UTC) - timedelta(minutes=1)).strftime(  # type: ignore[index]
        "%Y-%m-%dT%H:%M:%S.000")
    repo.publish(real_record(HUGEGRAPH_NONE))
    result = relay("once")
    assert result.code == 0, result.output
    [top] = [p for p in fake_slack.posts if p.thread_ts is None]  # one message; the other source's data follow it
    assert "CVE-2024-27348" in (top.text or "")
