"""Feed bytes → items, pure (the end-to-end path is in test_e2e_relay): JSON Feed (jsonfeed.org 1 and 1.1) and
the clear error for JSON that is not one; the base URL relative links resolve against."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from feedrelay.ingest.parsing import MAX_ENTRIES, cap_entries, parse_feed
from feedrelay.render import render

URL = "https://blog.example.com/feed.json"


def parse(doc: Any) -> Any:
    return parse_feed(json.dumps(doc).encode(), URL, "application/feed+json")


def test_a_version_1_1_feed_becomes_plain_text_items() -> None:
    parsed = parse({"version": "https://jsonfeed.org/version/1.1", "title": "Eng blog", "items": [{
        "id": "https://blog.example.com/?p=7", "url": "/posts/7?utm_source=rss",
        "title": "Caching &#8217;done right&#8217;",
        "content_html": "<p>We <b>cut</b> p99 &amp; more.</p><script>alert(1)</script>",
        "summary": "", "date_published": "2026-11-01T10:00:00-05:00", "authors": [{"name": "Ann"}, {"name": "Bo"}],
        "tags": ["caching", 7, "", "perf"]}]})
    assert parsed.error is None and parsed.title == "Eng blog"
    (item,) = parsed.items
    assert item.key == "https://blog.example.com/?p=7"  # the id is the identity, as a guid is in RSS
    assert item.link == "https://blog.example.com/posts/7"  # resolved, tracking parameter dropped
    assert item.title == "Caching \u2019done right\u2019"
    assert item.summary == item.content == "We cut p99 & more."
    assert item.published == datetime(2026, 11, 1, 15, 0, tzinfo=UTC)
    assert item.author == "Ann" and item.categories == ("caching", "perf")


def test_version_1_quirks_numeric_ids_author_object_text_content_and_dates() -> None:
    parsed = parse({"version": "https://jsonfeed.org/version/1", "author": {"name": "Feed Author"}, "items": [
        {"id": 42, "content_text": "  plain\n\n\n text ", "date_modified": "2026-11-02T10:00:00Z",
         "external_url": "https://elsewhere.example/a"},
        {"id": True, "title": "no usable id", "date_published": "yesterday", "url": "javascript:alert(1)"},
        "not an item", None]})
    first, second = parsed.items
    assert first.key == "42" and first.author == "Feed Author"  # the feed's author stands in for the item's
    assert first.content == "plain\n\ntext" and first.summary == first.content
    assert first.published == datetime(2026, 11, 2, 10, 0, tzinfo=UTC)  # date_modified when no date_published
    assert first.link == "https://elsewhere.example/a"
    assert second.link == "" and second.published is None  # no javascript: links, no made-up dates
    assert second.key.startswith("sha256:")  # no id, no link: title and date make the identity


@pytest.mark.parametrize(("body", "error"), [
    (b'{"name": "an API response"}', 'JSON, but not a JSON Feed: no https://jsonfeed.org/version/ in "version"'),
    (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', 'a JSON Feed without an "items" list'),
    (b'{"a": [1,]}', "not RSS, Atom, RDF or JSON Feed: Expecting value at line 1 column 10"),
    (b"{" + b"[" * 200_000, "not RSS, Atom, RDF or JSON Feed: Expecting property name enclosed in double quotes "
                            "at line 1 column 2"),  # deep nesting: an error, not a crash
    ('{"title": "caf\u00e9"}'.encode("latin-1"), "JSON that is not UTF-8, which JSON Feed requires"),
])
def test_json_that_is_not_a_json_feed_is_one_clear_error(body: bytes, error: str) -> None:
    parsed = parse_feed(body, URL, "application/json")
    assert parsed.items == [] and parsed.error == f"not a feed ({error}); check the URL"


def test_a_json_feed_cut_short_is_malformed_not_a_wrong_url() -> None:
    body = b'{"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1", "title": "A"}'
    assert parse_feed(body, URL).error == ("malformed JSON Feed (Expecting ',' delimiter at line 1 column 84); "
                                           "was the body cut short? See defaults.max_body")


def test_html_in_a_json_feed_summary_becomes_text() -> None:
    [item] = parse({"version": "https://jsonfeed.org/version/1.1", "items": [
        {"id": "1", "title": "a < b", "summary": "<p>Summary &amp; <b>more</b></p>"}]}).items
    assert (item.title, item.summary) == ("a < b", "Summary & more")


@pytest.mark.parametrize("page", [
    b"<!DOCTYPE html><!-- " + b"x" * 600 + b" --><html><head>%s</head></html>",  # a long comment first
    b" " * 600 + b"<html><head>%s</head></html>",
    b"<head>%s</head><p>no html element at all",
])
def test_a_web_page_is_recognised_beyond_its_first_bytes(page: bytes) -> None:
    link = b'<link rel="alternate" type="application/rss+xml" href="/feed.xml">'
    error = parse_feed(page % link, "https://site.example/", "text/html").error
    assert error == "not a feed (an HTML page that names its feed: https://site.example/feed.xml); use that URL"


def test_a_bom_and_whitespace_before_the_json_are_accepted() -> None:
    body = b"\xef\xbb\xbf\n " + json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": [
        {"id": "1", "title": "x"}]}).encode()
    assert [i.title for i in parse_feed(body, URL).items] == ["x"]


ATOM = (b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        b'<entry><id>1</id><title>First post</title><link href="/posts/1"/></entry>'
        b'<entry><id>2</id><title>Second post</title><link href="posts/2"/></entry></feed>')


@pytest.mark.parametrize("content_location", ["rel.atom", "/feeds/rel.atom", "https://blog.example.com/feeds/x"])
def test_a_relative_content_location_header_is_resolved_not_taken_as_the_base(content_location: str) -> None:
    # Apache MultiViews answers with "Content-Location: rel.atom"; relative entry links must still resolve.
    items = parse_feed(ATOM, "https://blog.example.com/feeds/atom", "application/atom+xml", content_location).items
    assert [i.link for i in items] == ["https://blog.example.com/posts/1", "https://blog.example.com/feeds/posts/2"]


@pytest.mark.e2e  # (at full scale: the slow tier)
def test_a_feed_of_hundreds_of_thousands_of_tiny_entries_is_read_up_to_the_cap() -> None:
    # 10 MB of "<item>"s: 350,000 entries would be 17 s of parsing, 350 MB, and as many rows for the relay.
    body = (b'<rss version="2.0"><channel><title>t</title>'
            + b"".join(b"<item><guid>%d</guid><title>a</title></item>" % i for i in range(250_000))
            + b"</channel></rss>")
    parsed = parse_feed(body, "https://flood.example/feed.xml")
    assert len(parsed.items) == MAX_ENTRIES == 5000
    assert [parsed.items[0].key, parsed.items[-1].key] == ["0", "4999"]  # the first ones: feeds list newest first
    assert parsed.error is None
    assert parsed.warning == "the feed lists more than 5,000 entries; only its first 5,000 are read"


@pytest.mark.parametrize("doc", [
    b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>%s</feed>',
    b'<?xml version="1.0"?><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
    b'xmlns="http://purl.org/rss/1.0/"><channel><title>t</title></channel>%s</rdf:RDF>',
])
def test_a_capped_atom_or_rdf_feed_is_closed_again_and_parses_cleanly(doc: bytes) -> None:
    entry = (b"<entry><id>%d</id><title>x</title></entry>" if b"Atom" in doc
             else b'<item rdf:about="u%d"><title>x</title></item>')
    body = doc % b"".join(entry % i for i in range(200))
    capped, cut = cap_entries(body, limit=3)
    assert cut
    parsed = parse_feed(capped, "https://example.com/feed")
    assert len(parsed.items) == 3 and parsed.warning is None  # well-formed again: no "malformed feed"
    assert cap_entries(body, limit=200) == (body, False)


def test_json_of_millions_of_objects_is_refused_before_it_is_parsed() -> None:
    body = b'{"version": "https://jsonfeed.org/version/1.1", "items": [' + b",".join([b"{}"] * 300_000) + b"]}"
    assert parse_feed(body, URL).error == "not a feed (JSON with more than 100,000 objects, more than any feed has); " \
                                         "check the URL"
    many = json.dumps({"version": "https://jsonfeed.org/version/1.1",
                       "items": [{"id": str(i), "title": "t"} for i in range(5001)]}).encode()
    parsed = parse_feed(many, URL)
    assert len(parsed.items) == 5000 and parsed.warning and "more than 5,000 entries" in parsed.warning


FIXTURES = Path(__file__).parent / "fixtures" / "feeds"


def fixture(name: str, url: str = "https://security.example.com/feeds/posts/default") -> Any:
    parsed = parse_feed((FIXTURES / name).read_bytes(), url)
    assert parsed.error is None and parsed.warning is None, parsed
    return parsed


@pytest.mark.parametrize("name", ["blogger-atom.xml", "blogger-rss.xml"])
def test_the_author_is_a_name_not_the_platforms_noreply_address(name: str) -> None:
    # Blogger gives every author the e-mail noreply@blogger.com: Atom's <email>, RSS's "email (Name)".
    (item,) = fixture(name).items
    assert item.author == "Edward Fernandez"
    assert item.link == "https://security.example.com/2025/06/mitigating-prompt-injection.html"  # not the comments
    assert item.published == datetime(2025, 6, 10, 16, 13, tzinfo=UTC)


@pytest.mark.parametrize(("pub_date", "expected"), [
    ("Tue, 10 Jun 2025 10:00:00", datetime(2025, 6, 10, 10, 0, tzinfo=UTC)),  # PHP's date("D, d M Y H:i:s")
    ("Tue, 10 Jun 2025 10:00", datetime(2025, 6, 10, 10, 0, tzinfo=UTC)),
    ("Tue, 10 Jun 2025 10:00:00 +0200", datetime(2025, 6, 10, 8, 0, tzinfo=UTC)),
    ("next Tuesday", None),
])
def test_an_rfc_822_date_without_a_time_zone_is_read_as_utc(pub_date: str, expected: datetime | None) -> None:
    # feedparser reads "10 Jun 2025 10:00:00" as UTC but gives up when a weekday comes first.
    body = (f"<rss version='2.0'><channel><title>Hand-rolled</title><item><title>A</title>"
            f"<link>https://example.com/a</link><pubDate>{pub_date}</pubDate></item></channel></rss>").encode()
    (item,) = parse_feed(body, "https://example.com/feed").items
    assert item.published == expected


def test_wordpress_and_medium_footers_are_not_the_summary() -> None:
    # Yoast SEO's "The post … appeared first on …", a theme's "Continue reading" link and Medium's "… was
    # originally published in …" end every post of those feeds: a reader sees them, and a keyword filter on the
    # blog's name would pass every post.
    latency, on_call = fixture("wordpress-rss.xml", "https://blog.example.com/feed/").items
    assert latency.summary == ("Our API\u2019s p99 latency was 800 ms. Here\u2019s how we got it down to 480 ms "
                               "without new hardware \u2026")
    assert latency.content == ("Our API\u2019s p99 latency was 800 ms. Here\u2019s how we got it down to 480 ms "
                               "without new hardware.\n\nWe started by measuring everything.")
    assert on_call.summary == "Being on call should not mean being on edge. Here is the handbook our teams use \u2026"
    (queues,) = fixture("medium-rss.xml", "https://medium.com/feed/example-tech").items
    assert queues.summary == queues.content == ("Two years ago we ran three queueing systems. "
                                                "Today we run one: Postgres.")


def test_a_summary_that_is_only_a_footer_gives_way_to_the_content() -> None:
    body = (b"<rss version='2.0'><channel><title>B</title><item><title>T</title><link>https://b.example/t</link>"
            b"<description>&lt;p&gt;The post T appeared first on B.&lt;/p&gt;</description>"
            b"<content:encoded xmlns:content='http://purl.org/rss/1.0/modules/content/'>&lt;p&gt;Body.&lt;/p&gt;"
            b"</content:encoded></item></channel></rss>")
    (item,) = parse_feed(body, "https://b.example/feed").items
    assert item.summary == item.content == "Body."


def test_a_json_feeds_footer_is_not_the_summary_either() -> None:
    parsed = parse({"version": "https://jsonfeed.org/version/1.1", "items": [{
        "id": "1", "url": "https://blog.example.com/a", "title": "A",
        "content_html": "<p>Body.</p><p>The post <a href='https://blog.example.com/a'>A</a> appeared first on "
                        "<a href='https://blog.example.com'>Blog</a>.</p>"}]})
    (item,) = parsed.items
    assert item.summary == item.content == "Body."


def test_a_medium_link_loses_its_source_tracking_but_the_entrys_identity_is_kept() -> None:
    (story,) = fixture("medium-rss.xml", "https://medium.com/feed/example-tech").items
    assert story.link == "https://medium.com/example-tech/why-we-moved-our-queues-to-postgres-d23f917c2f40"
    # Without a guid the link is the key: it stays what feedrelay remembered it by before (no re-post on upgrade).
    body = (b"<rss version='2.0'><channel><title>M</title><item><title>T</title>"
            b"<link>https://medium.com/@ann/t-1a2b?source=rss-c3aeaf49d8a1------2&amp;page=2</link></item>"
            b"</channel></rss>")
    (item,) = parse_feed(body, "https://medium.com/feed/@ann").items
    assert item.link == "https://medium.com/@ann/t-1a2b?page=2"
    assert item.key == "https://medium.com/@ann/t-1a2b?source=rss-c3aeaf49d8a1------2&page=2"


def test_a_guid_that_is_not_a_url_is_not_made_into_a_link() -> None:
    # RSS takes a guid without isPermaLink="false" for the entry's URL; podcast hosts put UUIDs there and no <link>.
    episode, bonus = fixture("podcast-rss.xml", "https://feeds.podcast.example.com/rss").items
    assert episode.link == "https://podcast.example.com/episodes/42"
    assert bonus.key == "5f0c2a9e-8d3b-4c1e-a7f6-2b9d1e4c3a80"
    assert bonus.link == ""  # not https://feeds.podcast.example.com/5f0c2a9e-…, a page that does not exist
    heading = render(bonus, "Podcast").blocks[0]["text"]["text"]
    assert heading == "*Bonus: listener questions*"


@pytest.mark.parametrize("content_type", ["text/xml", "text/html", "application/octet-stream"])
def test_a_feed_served_with_a_loose_content_type_is_no_malformed_feed(content_type: str) -> None:
    """Many servers send text/xml without a charset (us-ascii by RFC 3023): feedparser reads the UTF-8 document
    anyway and says so. Reported as "malformed feed" on every poll, it sent people after a problem that isn't."""
    body = '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title><item>' \
           "<title>Café ☕</title><link>https://example.com/1</link></item></channel></rss>"
    parsed = parse_feed(body.encode(), "https://example.com/feed", content_type)
    assert parsed.warning is None and parsed.error is None
    assert [i.title for i in parsed.items] == ["Café ☕"]
    # A document that really is broken still says so.
    assert parse_feed(body.encode()[:-20], "https://example.com/feed", content_type).warning


def test_an_aggregators_comments_link_is_no_summary() -> None:
    """Hacker News' and Lobsters' RSS describe each story with only a link to its discussion: under every title
    that showed "Comments"."""
    body = b'<rss version="2.0"><channel><title>Hacker News</title><item><title>Show HN: a thing</title>' \
           b"<link>https://example.com/thing</link><comments>https://news.ycombinator.com/item?id=1</comments>" \
           b'<description><![CDATA[<a href="https://news.ycombinator.com/item?id=1">Comments</a>]]></description>' \
           b"</item></channel></rss>"
    [item] = parse_feed(body, "https://news.ycombinator.com/rss").items
    assert item.summary == "" and item.link == "https://example.com/thing"
    assert "Comments" not in json.dumps(render(item, "Hacker News").to_json())


@pytest.mark.parametrize("version", ["http://jsonfeed.org/version/1", "https://jsonfeed.org/version/1",
                                     "http://jsonfeed.org/version/1.1"])
def test_a_json_feed_1_0_with_an_http_version_url_is_a_json_feed(version: str) -> None:
    # pxlnv.com's feed (in tests/fixtures/feeds/realworld) and other early 1.0 generators write the http:// form.
    parsed = parse({"version": version, "title": "Pixel Envy", "items": [
        {"id": "1", "url": "https://pxlnv.com/linklog/a/", "title": "A"}]})
    assert parsed.error is None and [i.title for i in parsed.items] == ["A"]


def test_a_json_feed_cut_short_is_malformed_whatever_its_version_url_looks_like() -> None:
    # JSON may escape "/" as "\/" (PHP's json_encode does): the version URL is still recognised in the raw body.
    for version in (rb'"http://jsonfeed.org/version/1"', rb'"https:\/\/jsonfeed.org\/version\/1"'):
        body = b'{"version": ' + version + b', "items": [{"id": "1", "title": "A"}'
        assert parse_feed(body, URL).error.startswith("malformed JSON Feed ("), version


def test_blank_lines_before_the_xml_declaration_are_no_malformed_feed() -> None:
    # ebm-papst's Atom feed (tests/fixtures/feeds/realworld) starts with a newline, as stray output from WordPress
    # themes makes many feeds do.
    body = b'\n\n<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel><title>t</title><item>' \
           b"<title>Caf\xc3\xa9</title><link>https://example.com/1</link></item></channel></rss>"
    parsed = parse_feed(body, "https://example.com/feed")
    assert parsed.warning is None and [i.title for i in parsed.items] == ["Café"]


def test_an_entry_with_nothing_to_show_is_not_an_item() -> None:
    # Le Cercle Psy's feed (tests/fixtures/feeds/realworld) lists an <item> whose title, link and description are
    # all empty; it would have been posted as a bare "(untitled)".
    body = b"<rss version='2.0'><channel><title>C</title><item><title>A</title><link>https://c.example/a</link>" \
           b"</item><item><title></title><link></link><pubDate>Wed, 17 Oct 2018 10:30:00 GMT</pubDate>" \
           b"<description></description></item><item><description>Only text</description></item></channel></rss>"
    parsed = parse_feed(body, "https://c.example/rss")
    assert [(i.title, i.summary) for i in parsed.items] == [("A", ""), ("", "Only text")]
