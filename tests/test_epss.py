"""EPSS: FIRST's daily file (a slice of a real one) served on loopback, loaded into SQLite, shown in CVE messages,
judged by min_epss routes, and a new file that lifts a CVE over a route's bar."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import pytest

import feedrelay
from feedrelay.config import ConfigError, parse_config
from feedrelay.decide.epss import label
from feedrelay.ingest.epss import EpssFile, EpssFileError, parse
from feedrelay.model import Score
from feedrelay.store import Store
from feedrelay.store.epss import EPSS
from tests.cli import TOKEN, Relay, write_config
from tests.nvd_server import FIXTURES, FakeNVD, fixture_records
from tests.servers import FakeSlack, FeedServer

SLICE = (FIXTURES / "epss" / "epss_scores-2026-09-29.slice.csv").read_bytes()
PATH = "/epss_scores-current.csv.gz"
SECURITY = {"security": {"slack": "#security", "min_interval": "0s"}}


def next_day(changes: dict[str, tuple[float, float]]) -> bytes:
    """The slice as the next day's file would have it: a new score date and these CVEs' new scores."""
    text = SLICE.decode().replace("score_date:2026-09-29T12:00:22Z", "score_date:2026-09-30T12:00:19Z")
    for cve, (epss, pct) in changes.items():
        text = re.sub(rf"^{cve},.*$", f"{cve},{epss},{pct}", text, flags=re.M)
    return gzip.compress(text.encode(), mtime=0)


def serve(server: FeedServer, body: bytes, **kw: Any) -> str:
    server.set(PATH, body, content_type="application/gzip", **kw)
    return server.url(PATH)


def cves(slack: FakeSlack) -> list[str]:
    return [m.group(0) for p in slack.posts if (m := re.search(r"CVE-\d{4}-\d+", p.text or ""))]


# --- the file ------------------------------------------------------------------------------------


def test_the_real_slice_parses_with_its_score_date() -> None:
    meta = EpssFile()
    rows = list(parse(gzip.compress(SLICE), meta))
    assert (meta.model_version, meta.score_date, meta.rows) == ("v2026.06.15", "2026-09-29T12:00:22Z", 68)
    assert rows[0] == ("CVE-1999-0001", 0.03351, 0.88255) and ("CVE-2022-0020", 0.01711, 0.76457) in rows
    assert list(parse(SLICE, EpssFile())) == rows  # a server that decoded the gzip itself


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


@pytest.mark.parametrize(("body", "says"), [
    (_gz(SLICE)[:300], "cut short"),
    (b"<html><body>Service Unavailable</body></html>", "not gzip and not an EPSS CSV"),
    (_gz(b"<html>maintenance</html>\n"), "expected the header cve,epss,percentile"),
    (_gz(b"#model_version:v1,score_date:x\ncve,epss,percentile\n"), "no scores"),
    (_gz(b"cve,epss,percentile\n" + b"CVE-2020-1,2.5,0.1\n" * 1500), "rows are not cve,epss,percentile"),
    (b"\x1f\x8b\x08\x00garbage-after-the-magic", "corrupt gzip"),
], ids=["truncated", "html", "gzipped-html", "header-only", "garbage-rows", "corrupt-gzip"])
def test_hostile_files_are_refused_with_what_was_wrong(body: bytes, says: str) -> None:
    with pytest.raises(EpssFileError, match=says):
        list(parse(body, EpssFile()))


def test_a_decompression_bomb_stops_early() -> None:
    z = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = z.compress(b"cve,epss,percentile\n") + b"".join(z.compress(b"\0" * 1_000_000) for _ in range(200))
    bomb += z.flush()  # 200 MB of zeros in ~200 KB
    assert len(bomb) < 1_000_000
    with pytest.raises(EpssFileError, match=r"not an EPSS CSV|more than"):
        list(parse(bomb, EpssFile()))


def test_config_keys_and_their_errors(tmp_path: Path) -> None:
    base = '[channels.s]\nconsole = true\n[[feeds]]\nname = "NVD"\ntype = "nvd"\n[[feeds.routes]]\nchannel = "s"\n'
    quiet = parse_config(base, tmp_path / "feeds.toml", environ={})
    assert quiet.epss is None  # never fetched unless asked for
    hot = parse_config(base + 'min_epss = "10%"\nmin_epss_percentile = 0.9\n', tmp_path / "feeds.toml", environ={})
    assert hot.epss is not None and hot.epss.url.startswith("https://epss.empiricalsecurity.com/")
    assert (hot.feeds[0].routes[0].filter.min_epss, hot.feeds[0].routes[0].filter.min_epss_percentile) == (0.1, 0.9)
    own = parse_config('[epss]\nurl = "https://mirror.example/epss.csv.gz"\nrefresh = "2h"\n' + base,
                       tmp_path / "feeds.toml", environ={})
    assert own.epss is not None and (own.epss.url, own.epss.refresh) == ("https://mirror.example/epss.csv.gz", 7200)
    for bad, says in [('min_epss = "ten"', "feeds[0].routes[0].min_epss: expected a probability between 0 and 1"),
                      ("min_epss_percentile = 95", "feeds[0].routes[0].min_epss_percentile: expected a probability"),
                      ('[epss]\nrefresh = "5s"', "epss.refresh: must be at least"),
                      ('[epss]\nurl = "ftp://x/y"', "epss.url: expected an http(s) URL")]:
        text = (bad + "\n" + base) if bad.startswith("[epss]") else base + bad + "\n"
        with pytest.raises(ConfigError, match=re.escape(says)):
            parse_config(text, tmp_path / "feeds.toml", environ={})
    rss = '[channels.s]\nconsole = true\n[[feeds]]\nname = "B"\nurl = "https://x.example/f"\nchannels = ["s"]\n'
    # On an RSS route the bar judges the CVEs an entry mentions (decide/mentions.py), and needs the scores.
    config = parse_config(rss + "min_epss = 0.1\n", tmp_path / "feeds.toml", environ={})
    assert config.feeds[0].routes[0].filter.min_epss == 0.1 and config.epss is not None


def test_label() -> None:
    assert label(Score(0.123, 0.9634)) == "EPSS 12.3% (96th percentile)"
    assert label(Score(0.00107, 0.01053)) == "EPSS 0.11% (1st percentile)"


# --- through the CLI, as a user runs it ------------------------------------------------------------


def test_min_epss_on_an_nvd_route_posts_only_what_passes_and_shows_the_score(
        tmp_path: Path, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    url = serve(feed_server, gzip.compress(SLICE, mtime=0))
    nvd = FakeNVD(feed_server, fixture_records())
    relay = Relay(tmp_path, fake_slack.api_url)
    relay.configure(channels=SECURITY, epss={"url": url},
                    feeds=[{"name": "NVD", "type": "nvd", "url": nvd.url, "routes": [
                        {"channel": "security", "min_epss": "1%"}]}])
    first = relay("once")
    assert first.code == 0, first.output
    assert "EPSS: loaded 68 scores of 2026-09-29T12:00:22Z" in first.err
    assert relay("once").code == 0
    # Of the 47 real NVD records, CVE-2022-0020 alone is scored 1% or more in the slice (the others are lower,
    # or unscored: not yet known to EPSS is not above the bar).
    assert cves(fake_slack) == ["CVE-2022-0020"]
    [post] = fake_slack.posts
    assert "EPSS 1.7% (76th percentile)" in json.dumps(post.blocks) and "EPSS 1.7%" in (post.text or "")
    status = relay("status")
    assert "68 scores of 2026-09-29T12:00:22Z" in status.out and "below a route's EPSS bar" in status.out
    # The next `once` within `refresh` does not fetch the file again.
    assert relay("once").code == 0
    assert feed_server.hits(PATH) == 1


def test_security_configs_without_epss_never_fetch_it(tmp_path: Path, feed_server: FeedServer,
                                                      fake_slack: FakeSlack) -> None:
    nvd = FakeNVD(feed_server, fixture_records())
    relay = Relay(tmp_path, fake_slack.api_url)
    relay.configure(channels=SECURITY, feeds=[{"name": "NVD", "type": "nvd", "url": nvd.url,
                                               "channels": ["security"]}])
    out = relay("once")
    assert out.code == 0 and "EPSS" not in out.output
    assert "EPSS" not in relay("status").out


# --- the library, in process (clock and file under the test's control) ---------------------------


class Setup:
    def __init__(self, tmp: Path, server: FeedServer, slack: FakeSlack, *, bar: str = "1%", updates: str = "thread",
                 alerts: bool = False) -> None:
        self.tmp, self.server = tmp, server
        self.nvd = FakeNVD(server, fixture_records())
        # (with a key NVD allows 50 requests in 30 s: the in-process runs share one limiter, as one process should)
        self.env = {"SLACK_BOT_TOKEN": TOKEN, "SLACK_API_URL": slack.api_url, "NVD_API_KEY": "test-key"}
        self.url = server.url(PATH)
        self.bar, self.updates, self.alerts = bar, updates, alerts

    def config(self) -> feedrelay.Config:
        path = write_config(self.tmp / "feeds.toml", channels={**SECURITY, "ops": {"slack": "#ops",
                                                                                     "min_interval": "0s"}},
                            epss={"url": self.url}, alerts={"channel": "ops", "feed_failing_after": "0s"}
                            if self.alerts else None,
                            feeds=[{"name": "NVD", "type": "nvd", "url": self.nvd.url, "api_key_env": "NVD_API_KEY",
                                    "routes": [{"channel": "security", "min_epss": self.bar,
                                                "updates": self.updates}]}])
        return feedrelay.load_config(path, self.env)

    async def once(self, *, force: bool = False) -> feedrelay.Relay:
        async with feedrelay.Relay(self.config(), environ=self.env) as relay:
            if force:
                await relay.refresh_epss(force=True)
            await relay.poll_all()
            await relay.drain(5)
        return relay


def test_a_new_file_posts_a_cve_that_now_passes_and_304_keeps_the_scores(
        tmp_path: Path, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    s = Setup(tmp_path, feed_server, fake_slack)
    serve(feed_server, gzip.compress(SLICE, mtime=0))
    asyncio.run(s.once())
    asyncio.run(s.once())
    assert cves(fake_slack) == ["CVE-2022-0020"]
    # A conditional GET answered 304: the scores stay, nothing is posted again.
    asyncio.run(s.once(force=True))
    last = [r for r in feed_server.requests if r.path == PATH][-1]
    assert last.headers.get("if-none-match") and cves(fake_slack) == ["CVE-2022-0020"]
    store = Store(tmp_path / "feedrelay.db")
    assert EPSS(store).lookup(["CVE-2022-0018", "CVE-2099-0001"]) == {"CVE-2022-0018": Score(0.00746, 0.53)}
    store.close()
    # The next day's file (one score edited for the test) lifts CVE-2022-0018, held back for its EPSS alone.
    serve(feed_server, next_day({"CVE-2022-0018": (0.15213, 0.95103)}))
    asyncio.run(s.once(force=True))
    assert cves(fake_slack) == ["CVE-2022-0020", "CVE-2022-0018"]
    assert "EPSS 15.2% (95th percentile)" in json.dumps(fake_slack.posts[-1].blocks)
    # ...once: the following loads and polls do not post it again.
    asyncio.run(s.once(force=True))
    asyncio.run(s.once())
    assert cves(fake_slack) == ["CVE-2022-0020", "CVE-2022-0018"]


def test_a_posted_cve_crossing_a_routes_bar_gets_a_thread_update_once(
        tmp_path: Path, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    s = Setup(tmp_path, feed_server, fake_slack)
    serve(feed_server, gzip.compress(SLICE, mtime=0))
    asyncio.run(s.once())
    asyncio.run(s.once())
    [parent] = fake_slack.posts  # CVE-2022-0020 at 1.7%
    s.bar = "10%"  # the team raises the route's bar
    serve(feed_server, next_day({"CVE-2022-0020": (0.15213, 0.95103)}))
    asyncio.run(s.once(force=True))
    reply = fake_slack.posts[-1]
    assert reply.thread_ts == parent.ts
    assert "EPSS rose to 15.2% (95th percentile), above this route's bar 10.0%" in json.dumps(reply.blocks)
    serve(feed_server, next_day({"CVE-2022-0020": (0.16, 0.96)}))  # daily drift above the bar is not news
    asyncio.run(s.once(force=True))
    assert len(fake_slack.posts) == 2


@pytest.mark.parametrize(("status", "headers", "body"), [
    (503, {"Retry-After": "120"}, b"busy"), (429, {"Retry-After": "3600"}, b"slow down"), (404, {}, b"gone"),
    (200, {}, b"<html>login</html>"), (200, {}, _gz(SLICE)[:500]),
], ids=["503-retry-after", "429-retry-after", "404", "html", "truncated"])
def test_a_failing_check_keeps_the_last_good_scores_and_alerts(
        tmp_path: Path, feed_server: FeedServer, fake_slack: FakeSlack, status: int, headers: dict[str, str],
        body: bytes) -> None:
    s = Setup(tmp_path, feed_server, fake_slack, alerts=True)
    serve(feed_server, gzip.compress(SLICE, mtime=0))
    asyncio.run(s.once())
    feed_server.set(PATH, body, status=status, headers=headers, content_type="application/gzip")
    asyncio.run(s.once(force=True))
    report = feedrelay.Relay(s.config(), environ=s.env).status()
    assert report.epss is not None and report.epss.rows == 68
    assert report.epss.score_date == "2026-09-29T12:00:22Z" and report.epss.error.startswith("EPSS scores from")
    assert f"http://127.0.0.1:{feed_server.port}{PATH}" in report.epss.error
    alert = [p for p in fake_slack.posts if p.channel == "#ops"]
    assert alert and "EPSS" in (alert[0].text or "") and "Last error" in json.dumps(alert[0].blocks)
    if "Retry-After" in headers:
        store = Store(tmp_path / "feedrelay.db")
        assert EPSS(store).info().not_before is not None
        store.close()
    # Fixed: the next check loads again, and says so.
    serve(feed_server, next_day({}))
    asyncio.run(s.once(force=True))
    report = feedrelay.Relay(s.config(), environ=s.env).status()
    assert report.epss is not None and not report.epss.error and report.epss.score_date.startswith("2026-09-30")
    assert any("works again" in (p.text or "") for p in fake_slack.posts if p.channel == "#ops")


def test_a_crash_mid_load_keeps_yesterdays_scores(tmp_path: Path) -> None:
    store = Store(tmp_path / "feedrelay.db")
    epss = EPSS(store)
    with store.transaction():
        epss.replace_scores(parse(gzip.compress(SLICE), EpssFile()))

    def half_then_crash() -> Any:
        yield ("CVE-2030-0001", 0.5, 0.5)
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(feedrelay.StoreError), store.transaction():
        epss.replace_scores(half_then_crash())
    store.close()
    reopened = Store(tmp_path / "feedrelay.db")  # a restart
    assert EPSS(reopened).lookup(["CVE-1999-0016", "CVE-2030-0001"]) == {"CVE-1999-0016": Score(0.95739, 0.99871)}
    reopened.close()


def test_the_daemon_checks_from_its_scheduler_and_a_restart_keeps_the_scores(
        tmp_path: Path, feed_server: FeedServer, fake_slack: FakeSlack) -> None:
    from tests.cli import wait_until

    url = serve(feed_server, gzip.compress(SLICE, mtime=0))
    nvd = FakeNVD(feed_server, fixture_records())
    relay = Relay(tmp_path, fake_slack.api_url)
    relay.configure(channels=SECURITY, epss={"url": url, "refresh": "1h"},
                    feeds=[{"name": "NVD", "type": "nvd", "url": nvd.url, "interval": "1s",
                            "routes": [{"channel": "security", "min_epss": "1%"}]}])
    daemon = relay.start()
    try:
        wait_until(lambda: feed_server.hits(PATH) == 1 and len(nvd.queries) >= 2)
        wait_until(lambda: cves(fake_slack) == ["CVE-2022-0020"])
    finally:
        daemon.stop()
    assert "EPSS: loaded 68 scores" in daemon.log()
    again = relay.start()  # a restart within `refresh`: the scores are there, the file is not fetched again
    try:
        seen = len(nvd.queries)
        wait_until(lambda: len(nvd.queries) >= seen + 2)
    finally:
        again.stop()
    assert feed_server.hits(PATH) == 1 and cves(fake_slack) == ["CVE-2022-0020"]
    assert "68 scores of 2026-09-29T12:00:22Z" in relay("status").out


def test_nvd_returning_a_posted_cve_whose_epss_crossed_the_bar_replies_in_its_thread() -> None:
    from feedrelay.config import Feed, Filter, Route
    from feedrelay.decide.decider import Plan
    from feedrelay.decide.epss import with_score
    from feedrelay.decide.lifecycle import Story, compact, judge
    from feedrelay.model import Item

    cve = "CVE-2022-0020"
    route = Route("security", Filter(min_epss=0.1), updates="thread")
    feed = Feed("NVD", "https://nvd.example/", "nvd", 900.0, 0, (route,))
    item = Item(cve, cve, f"https://nvd.nist.gov/vuln/detail/{cve}", "A flaw.", kind="cve",
                extra={"cve": cve, "severity": "high", "score": 8.1})
    low, high = with_score(item, Score(0.01711, 0.76457)), with_score(item, Score(0.15213, 0.95103))
    posted = {("security", cve): Story(compact(low, route) | {"root": "cve"}, 0.0)}
    out = judge(feed, [high], Plan(), posted, {}, {cve: 1.0}, now=10.0, since=0.0)
    assert [(i.action, i.changes) for i in out.intents] == [
        ("reply", ("EPSS rose to 15.2% (95th percentile), above this route's bar 10.0%",)), ("update", ())]
    drift = with_score(item, Score(0.16, 0.96))
    now_high = {("security", cve): Story(out.stories[0].state, 0.0)}
    # Daily drift above the bar is not news: nothing is sent.
    assert judge(feed, [drift], Plan(), now_high, {}, {cve: 1.0}, now=20.0, since=0.0).intents == []


def test_when_a_check_is_due(tmp_path: Path) -> None:
    from feedrelay.runtime.epss import RETRY, due

    base = '[channels.s]\nconsole = true\n[epss]\nurl = "https://a.example/e.csv.gz"\nrefresh = "6h"\n'
    config = parse_config(base, tmp_path / "feeds.toml", environ={})
    store = Store(tmp_path / "feedrelay.db")
    epss = EPSS(store)
    assert due(config, store, 0.0)  # never checked
    epss.note(url="https://a.example/e.csv.gz", checked=1000.0, attempted=1000.0)
    assert not due(config, store, 1000.0 + 6 * 3600 - 1) and due(config, store, 1000.0 + 6 * 3600)
    moved = parse_config(base.replace("a.example", "b.example"), tmp_path / "feeds.toml", environ={})
    assert due(moved, store, 1001.0)  # a new url: at once
    epss.note(attempted=2000.0, error="EPSS scores from https://b.example/e.csv.gz: HTTP 500", not_before=None)
    assert not due(moved, store, 2000.0 + RETRY - 1) and due(moved, store, 2000.0 + RETRY)
    epss.note(not_before=2000.0 + 2 * RETRY)  # Retry-After
    assert not due(moved, store, 2000.0 + RETRY) and due(moved, store, 2000.0 + 2 * RETRY)
    quiet = parse_config("[channels.s]\nconsole = true\n", tmp_path / "feeds.toml", environ={})
    assert not due(quiet, store, 10**9)
    store.close()


def test_every_cve_message_shows_the_score_when_known() -> None:
    from feedrelay.decide.epss import with_score
    from feedrelay.model import Item
    from feedrelay.render import render

    score = Score(0.15213, 0.95103)
    kev = with_score(Item("CVE-2022-0020", "CVE-2022-0020: X", "https://nvd.nist.gov/vuln/detail/CVE-2022-0020",
                          "A flaw.", kind="kev", extra={"cve": "CVE-2022-0020", "kev": True, "kev_due": "2026-10-01",
                                                        "vendors": ["acme"], "products": ["widget"]}), score)
    nvd = with_score(Item("CVE-2022-0020", "CVE-2022-0020", "https://nvd.nist.gov/vuln/detail/CVE-2022-0020",
                          "A flaw.", kind="cve", extra={"cve": "CVE-2022-0020", "severity": "high", "score": 8.1}),
                     score)
    badge = "EPSS 15.2% (95th percentile)"
    for item in (kev, nvd):
        full = render(item, "NVD")
        assert (badge in json.dumps(full.blocks) or "*EPSS*\\n15.2% (95th percentile)" in json.dumps(full.blocks))
        assert badge in full.text
        assert badge in json.dumps(render(item, "NVD", "compact").blocks)
    assert render(nvd, "NVD", "{cve}: {epss}").blocks[0]["text"]["text"] == f"CVE-2022-0020: {badge}"
    unknown = with_score(nvd, None)
    assert "EPSS" not in json.dumps(render(unknown, "NVD").to_json())
