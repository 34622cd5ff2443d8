"""OPML import and export: a feed reader's subscription list (or a published list of blogs) into feeds.toml."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from feedrelay.config import parse_config
from feedrelay.config.opml import OPMLError, Subscription, plan_import, read_opml, toml_string

from .cli import Relay, wait_until
from .feedgen import make_items, rss
from .servers import FakeSlack, FeedServer

FIXTURE = Path(__file__).parent / "fixtures" / "engineering-blogs.opml"

BASE = """
[channels.readings]
slack = "#readings"
min_interval = "0s"

[[feeds]]
name = "Cloudflare Blog"
url = "https://blog.cloudflare.com/rss/"
channels = ["readings"]
"""


@pytest.fixture
def relay(tmp_path: Path, fake_slack: FakeSlack) -> Relay:
    r = Relay(tmp_path, fake_slack.api_url)
    r.config.write_text(BASE)
    return r


def opml(*outlines: str, version: str = "2.0") -> bytes:
    return (f'<?xml version="1.0"?><opml version="{version}"><head><title>t</title></head><body>'
            + "".join(outlines) + "</body></opml>").encode()


def test_reads_feeds_in_order_with_their_category_and_skips_unusable_urls() -> None:
    subs, unusable = read_opml(FIXTURE.read_bytes())
    assert [s.name for s in subs][:3] == ["Airbnb Engineering", "Cloudflare", "Dropbox Tech"]
    assert {s.category for s in subs} == {"Companies", "Individuals"}
    assert all(s.url.startswith(("http://", "https://")) for s in subs)
    assert unusable == ["Broken entry"]  # its xmlUrl is javascript:, never subscribed to


def test_outline_title_falls_back_to_text_and_attribute_case_is_ignored() -> None:
    subs, _ = read_opml(opml('<outline text="Only text" XMLURL="https://a.example/feed"/>',
                             '<outline type="rss" xmlurl="https://b.example/rss"/>'))
    assert subs == [Subscription("Only text", "https://a.example/feed"), Subscription("", "https://b.example/rss")]


@pytest.mark.parametrize("data, message", [
    (b"<rss><channel/></rss>", "not OPML"),
    (b"<opml><head/></opml>", "not OPML"),
    (b"<opml><body><outline", "not well-formed XML"),
    (b"\x00\x01binary", "not well-formed XML"),
])
def test_a_file_that_is_not_opml_is_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(OPMLError, match=message):
        read_opml(data)


def test_entities_declared_by_the_file_are_never_expanded() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa">'
            + b"".join(b'<!ENTITY %c "&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;">' % ((c,) + (c - 1,) * 10)
                       for c in range(ord("b"), ord("k")))
            + b']><opml version="2.0"><body><outline text="&j;" xmlUrl="https://x.example/f"/></body></opml>')
    with pytest.raises(OPMLError, match=r"declares an entity \(<!ENTITY a …>\).*remove the <!DOCTYPE"):
        read_opml(bomb)
    # Nor an external one: no file of this machine, no URL is read.
    with pytest.raises(OPMLError, match="declares an entity"):
        read_opml(b'<!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]><opml version="2.0"><body>'
                  b'<outline text="&x;" xmlUrl="https://x.example/f"/></body></opml>')
    # A DOCTYPE without entities (some exporters write one) is no obstacle.
    subs, _ = read_opml(b'<?xml version="1.0"?><!DOCTYPE opml SYSTEM "opml.dtd">' + opml(
        '<outline text="x" xmlUrl="https://x.example/f"/>').split(b"?>", 1)[1])
    assert [s.url for s in subs] == ["https://x.example/f"]


def test_urls_already_polled_and_repeats_are_skipped_and_names_made_unique() -> None:
    config = parse_config(BASE)
    plan = plan_import(config, [
        Subscription("Cloudflare", "http://blog.cloudflare.com/rss"),  # same feed: other scheme, no trailing /
        Subscription("Cloudflare Blog", "https://blog.cloudflare.com/other.xml"),  # same name, other feed
        Subscription("Cloudflare Blog", "https://blog.cloudflare.com/third.xml"),
        Subscription("", "https://untitled.example/feed"),
        Subscription("Again", "https://untitled.example/feed"),
    ])
    assert [s.name for s, _ in plan.subscribed] == ["Cloudflare", "Again"]
    assert [(s.name, s.url) for s in plan.added] == [
        ("Cloudflare Blog (2)", "https://blog.cloudflare.com/other.xml"),
        ("Cloudflare Blog (3)", "https://blog.cloudflare.com/third.xml"),
        ("untitled.example", "https://untitled.example/feed"),
    ]


@pytest.mark.parametrize("value", ['a "quoted" name', "back\\slash", "line\nbreak\r", "tab\there", "del\x7f",
                                   "\x00\x1f", "ünïcødé ✓ 🚀", "'''", '"""', "[[feeds]]\nname = 1"])
def test_toml_strings_read_back_as_written(value: str) -> None:
    assert tomllib.loads(f"v = {toml_string(value)}")["v"] == value


def test_import_adds_the_new_feeds_and_the_running_daemon_polls_them(relay: Relay, feed_server: FeedServer,
                                                                     fake_slack: FakeSlack) -> None:
    feed_server.set("/a.xml", rss(make_items(3, prefix="A")))
    feed_server.set("/b.xml", rss(make_items(2, prefix="B")))
    relay.config.write_text(BASE.replace("https://blog.cloudflare.com/rss/", feed_server.url("/c.xml")))
    feed_server.set("/c.xml", rss(make_items(1, prefix="C")))
    (relay.dir / "list.opml").write_bytes(opml(
        '<outline text="Blogs">',
        f'<outline type="rss" text="Blog &quot;A&quot;" xmlUrl="{feed_server.url("/a.xml")}"/>',
        f'<outline type="rss" text="Blog B" xmlUrl="{feed_server.url("/b.xml")}"/>',
        f'<outline type="rss" text="Same as C" xmlUrl="{feed_server.url("/c.xml")}"/>',
        "</outline>"))
    daemon = relay.start()
    try:
        wait_until(lambda: feed_server.hits("/c.xml") >= 1)
        result = relay("import-opml", "list.opml", "--channel", "readings", "--interval", "1h")
        assert result.code == 0, result.err
        assert "added 2 feed(s)" in result.out and "1 already polled" in result.out
        assert "Same as C: already polled as 'Cloudflare Blog'" in result.err
        wait_until(lambda: feed_server.hits("/a.xml") >= 1 and feed_server.hits("/b.xml") >= 1, timeout=20)
        wait_until(lambda: "Blog B" in relay("status").out, timeout=10)
    finally:
        stopped = daemon.stop()
    assert stopped.code == 0 and "Traceback" not in stopped.err
    assert fake_slack.posts == []  # an imported feed's first poll remembers its listing, as any new feed's does
    check = relay("check")
    assert check.code == 0
    assert 'Blog "A" [rss] every 1h → readings' in check.out and "Blog B [rss] every 1h → readings" in check.out
    # Importing the same list again adds nothing and leaves the file as it was.
    before = relay.config.read_text()
    again = relay("import-opml", "list.opml", "--channel", "readings")
    assert again.code == 0 and "0 feed(s) to add, 3 already polled" in again.err
    assert relay.config.read_text() == before


def test_dry_run_prints_tables_to_append_and_writes_nothing(relay: Relay) -> None:
    before = relay.config.read_text()
    result = relay("import-opml", str(FIXTURE), "--channel", "readings", "--dry-run")
    assert result.code == 0, result.err
    assert relay.config.read_text() == before
    assert "(dry run: nothing written)" in result.err
    combined = parse_config(before + result.out)  # what it printed is exactly what `>> feeds.toml` would add
    subs, _ = read_opml(FIXTURE.read_bytes())
    assert len(combined.feeds) == 1 + len(subs) - 1  # all but the one the config already polls


def test_import_reads_standard_input(relay: Relay) -> None:
    p = subprocess.run(relay.cmd("import-opml", "-", "--channel", "readings"), input=FIXTURE.read_bytes(),
                       env=relay.env, cwd=relay.dir, capture_output=True)
    assert p.returncode == 0, p.stderr
    assert "Airbnb Engineering" in relay("check").out


@pytest.mark.parametrize("args, message", [
    (["--channel", "nope"], "--channel 'nope': no such channel in"),
    (["--channel", "readings", "--interval", "soon"], "--interval: expected a duration"),
])
def test_bad_options_are_named(relay: Relay, args: list[str], message: str) -> None:
    result = relay("import-opml", str(FIXTURE), *args)
    assert result.code == 2 and message in result.err and "Traceback" not in result.err


def test_a_file_that_is_not_opml_names_the_file(relay: Relay) -> None:
    result = relay("import-opml", "feeds.toml", "--channel", "readings")
    assert result.code == 2
    assert "feeds.toml: not well-formed XML" in result.err


def test_outlines_nested_thousands_deep_are_one_clear_error(relay: Relay, tmp_path: Path) -> None:
    """A hostile list (20 KB) of outlines nested 2,000 deep ended in a RecursionError traceback."""
    deep = tmp_path / "deep.opml"
    deep.write_text('<opml version="2.0"><body>' + '<outline text="x">' * 2000
                    + '<outline text="f" xmlUrl="https://example.com/f.xml"/>' + "</outline>" * 2000 + "</body></opml>")
    result = relay("import-opml", str(deep), "--channel", "readings")
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert "deep.opml: outlines nested too deeply" in result.err


def test_export_lists_the_feeds_and_imports_back_into_another_config(relay: Relay, tmp_path: Path) -> None:
    relay("import-opml", str(FIXTURE), "--channel", "readings")
    exported = relay("export-opml")
    assert exported.code == 0
    other = Relay(tmp_path / "other", None)
    other.dir.mkdir()
    other.config.write_text("[channels.blogs]\nconsole = true\n")
    (other.dir / "out.opml").write_text(exported.out)
    assert other("import-opml", "out.opml", "--channel", "blogs").code == 0
    mine = parse_config(relay.config.read_text())
    theirs = parse_config(other.config.read_text())
    assert [(f.name, f.url) for f in theirs.feeds] == [(f.name, f.url) for f in mine.feeds if f.kind == "rss"]
