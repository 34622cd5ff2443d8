"""Item identity: link normalization, keys, and the dedupe key."""

from __future__ import annotations

import hashlib

import pytest

from feedrelay.ingest.identity import MAX_KEY, keys, make_key, normalize_link
from feedrelay.model import Item


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTP://Example.COM/Path", "http://example.com/Path"),  # scheme and host are case-insensitive; path is not
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443/a", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),  # 443 is only default for https
        ("https://example.com/a#v1.2", "https://example.com/a#v1.2"),  # where the entry is on the page
        ("https://example.com", "https://example.com/"),
        ("  https://example.com/a  ", "https://example.com/a"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ],
)
def test_normalize_link_canonical_form(url: str, expected: str) -> None:
    assert normalize_link(url) == expected


def test_tracking_parameters_dropped_and_others_kept_in_order() -> None:
    url = "https://example.com/p?utm_source=rss&id=42&UTM_Medium=feed&fbclid=abc&page=2&gclid=x"
    assert normalize_link(url) == "https://example.com/p?id=42&page=2"


def test_query_untouched_when_nothing_to_drop() -> None:
    # No re-encoding when nothing is removed: "%20" and "+" survive as the publisher wrote them.
    assert normalize_link("https://example.com/s?q=a+b&x=%20y") == "https://example.com/s?q=a+b&x=%20y"


def test_only_tracking_params_leaves_no_dangling_question_mark() -> None:
    assert normalize_link("https://example.com/p?utm_source=x&utm_campaign=y") == "https://example.com/p"


def test_same_article_with_and_without_tracking_is_the_same_article() -> None:
    a = Item(key="a", title="Post", link=normalize_link("https://Blog.example.com:443/post/1?utm_source=twitter#top"))
    b = Item(key="b", title="Post", link=normalize_link("http://blog.example.com/post/1"))
    assert a.link == "https://blog.example.com/post/1#top"
    assert a.dedupe_key == b.dedupe_key  # scheme and fragment aside: a move to https, a "#comments" link


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        " javascript:alert(1)",
        "data:text/html;base64,PHNjcmlwdD4=",
        "mailto:someone@example.com",
        "ftp://example.com/file",
        "file:///etc/passwd",
        "http://",
        "http://[::1",  # unparseable
        "https://example.com:99999/",  # port out of range
        "not a url",
        "",
        None,
    ],
)
def test_non_http_links_become_empty(url: str | None) -> None:
    assert normalize_link(url) == ""


def test_userinfo_dropped_so_the_real_host_shows() -> None:
    assert normalize_link("https://bank.example.com@evil.example/login") == "https://evil.example/login"
    assert normalize_link("https://user:secret@example.com/a") == "https://example.com/a"


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("/posts/1", "https://blog.example.com/posts/1"),
        ("posts/1", "https://blog.example.com/feeds/posts/1"),
        ("../img/a.png", "https://blog.example.com/img/a.png"),
        ("//cdn.example.net/x", "https://cdn.example.net/x"),
        ("http://other.example/abs", "http://other.example/abs"),
    ],
)
def test_relative_links_resolved_against_base(link: str, expected: str) -> None:
    assert normalize_link(link, "https://blog.example.com/feeds/rss.xml") == expected


def test_relative_javascript_link_with_base_still_refused() -> None:
    assert normalize_link("javascript:alert(1)", "https://blog.example.com/") == ""


# --- keys -----------------------------------------------------------------------------------------


def test_key_prefers_guid() -> None:
    assert make_key("urn:uuid:1234", "https://example.com/a", "Title", "2024-01-01") == "urn:uuid:1234"


def test_key_guid_is_stripped_and_blank_guid_ignored() -> None:
    assert make_key("  tag:x,2024:1 \n", "https://example.com/a", "T", None) == "tag:x,2024:1"
    assert make_key("   ", "https://example.com/a", "T", None) == "https://example.com/a"


def test_key_falls_back_to_link() -> None:
    assert make_key(None, "https://example.com/a", "Title", "2024-01-01") == "https://example.com/a"


def test_key_falls_back_to_hash_of_title_and_date() -> None:
    key = make_key(None, "", "Title", "Mon, 01 Jan 2024 00:00:00 GMT")
    assert key.startswith("sha256:") and len(key) == len("sha256:") + 64
    # Deterministic: the same entry polled again has the same key...
    assert key == make_key(None, "", "Title", "Mon, 01 Jan 2024 00:00:00 GMT")
    # ...and a different title or date is a different entry.
    assert key != make_key(None, "", "Title 2", "Mon, 01 Jan 2024 00:00:00 GMT")
    assert key != make_key(None, "", "Title", "Tue, 02 Jan 2024 00:00:00 GMT")
    assert key != make_key(None, "", "Title", None)


def test_title_and_date_cannot_be_shifted_into_each_other() -> None:
    assert make_key(None, "", "ab", "c") != make_key(None, "", "a", "bc")


def test_long_keys_are_hashed_and_stay_distinct() -> None:
    guid_a = "x" * 1_000_000
    guid_b = "x" * 999_999 + "y"
    a, b = make_key(guid_a, "", "", None), make_key(guid_b, "", "", None)
    assert a.startswith("sha256:") and len(a) <= MAX_KEY
    assert a != b
    assert a == make_key(guid_a, "", "", None)
    long_link = "https://example.com/" + "p" * 600
    assert make_key(None, long_link, "", None).startswith("sha256:")


def test_key_at_the_limit_is_kept_verbatim() -> None:
    guid = "g" * MAX_KEY
    assert make_key(guid, "", "", None) == guid


# --- dedupe key -----------------------------------------------------------------------------------


def test_dedupe_key_is_link_and_title() -> None:
    a = Item(key="guid-1", title="Hello  World", link="https://example.com/a")
    b = Item(key="guid-2-after-churn", title="hello world", link="https://example.com/a")
    assert a.dedupe_key == b.dedupe_key == "//example.com/a\thello world"
    # A CMS that rewrites typography, a site that moves to https: still the same article.
    moved = Item(key="guid-3", title="Hello \u201cWorld\u201d\u2019s", link="http://example.com/a#comments")
    assert moved.dedupe_key == Item(key="4", title='hello "world"\'s', link="https://example.com/a").dedupe_key
    # Entries that share a page are different entries: a podcast's episodes, a changelog's #anchored releases.
    episode = Item(key="ep-2", title="Episode 2", link="https://example.com/a")
    assert episode.dedupe_key != a.dedupe_key
    assert Item(key="x", title="", link="https://example.com/a").dedupe_key == "//example.com/a"


def test_untitled_unlinked_entries_are_each_themselves() -> None:
    notes = [Item(key=make_key(None, "", "", None, f"note {n}"), title="", link="") for n in range(3)]
    assert len({n.key for n in notes}) == 3
    # No dedupe key: nothing to compare them by, within a feed or across feeds (two feeds' note "2"s differ).
    assert {n.dedupe_key for n in notes} == {""}
    # Keys of entries that have a title or a date are what they always were (no repost after an upgrade).
    assert make_key(None, "", "T", "D", "text") == make_key(None, "", "T", "D")
    # An upgrade matches untitled, undated entries by schema 1's key: sha256 of "\x00", all of them.
    schema_1 = "sha256:" + hashlib.sha256(b"\x00").hexdigest()
    assert keys(None, "", "", None, "note 1") == (make_key(None, "", "", None, "note 1"), schema_1)
    assert keys(None, "https://x.example/c#v2", "v2", None) == ("https://x.example/c#v2", "https://x.example/c")
    assert keys("guid-1", "https://x.example/c#v2", "v2", None) == ("guid-1", "")


def test_dedupe_key_without_link_is_the_normalized_title() -> None:
    a = Item(key="1", title="  Big   News\tToday ", link="")
    b = Item(key="2", title="big news today", link="")
    c = Item(key="3", title="Big News Tomorrow", link="")
    assert a.dedupe_key == b.dedupe_key == "title:big news today"
    assert c.dedupe_key != a.dedupe_key


def test_dedupe_key_of_link_and_title_never_collide() -> None:
    assert Item(key="1", title="x", link="").dedupe_key != Item(key="2", title="", link="x").dedupe_key
