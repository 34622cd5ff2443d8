"""JSON Feed (https://jsonfeed.org, versions 1 and 1.1) → items. feedparser reads only XML feeds, and JSON
Feed is plain JSON with a published spec: the standard library reads it. Items come out exactly as the
feedparser path makes them (plain text, normalized links, the same identity rules), so a feed can move
between formats without reposting what it has listed — as long as its ids stay the same."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html import unescape
from typing import Any

from feedrelay.ingest.identity import keys, normalize_link, untracked
from feedrelay.ingest.text import clean, html_to_text, strip_footer
from feedrelay.model import Item

VERSION_PREFIX = "https://jsonfeed.org/version/"
# JSON Feed 1.0's own examples and early generators (pxlnv.com's WordPress plugin) write "http://jsonfeed.org/version/1";
# the version URL only names the format, so http and https both do.
_VERSION = re.compile(r"https?://jsonfeed\.org/version/")
# The same, as it may sit in the raw body of a feed that does not parse: with JSON's optional "\/" escapes.
_RAW_VERSION = re.compile(rb"https?:(?:\\?/){2}jsonfeed\.org\\?/version\\?/")
# Every JSON object costs ~100 bytes once parsed, whatever its size in the body: 9 MB of "{}," is 3 million
# objects and 250 MB. A real feed has a handful per entry.
MAX_OBJECTS = 100_000


class NotJSONFeed(ValueError):
    """The body is JSON (or looks like it) but not a JSON Feed; the message says what it is."""

    def __init__(self, message: str, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.malformed = malformed  # a JSON Feed, but broken: not a wrong URL


def looks_like_json(body: bytes) -> bool:
    return body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _date(value: Any) -> tuple[datetime | None, str]:
    """RFC 3339 per the spec; a date without an offset is taken as UTC, a malformed one is no date."""
    raw = _text(value).strip()
    if not raw:
        return None, ""
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None, raw
    return (parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)), raw


def _author(item: dict[str, Any], feed: dict[str, Any]) -> str:
    # 1.1: "authors", a list; 1.0: "author", an object; either may sit on the feed instead of the item.
    for source in (item, feed):
        authors = source.get("authors")
        candidates = authors if isinstance(authors, list) else [source.get("author")]
        for a in candidates[:5]:
            if isinstance(a, dict) and (name := clean(_text(a.get("name")))):
                return name
    return ""


def _item(raw: dict[str, Any], feed: dict[str, Any], base: str, limits: tuple[int, int, int]) -> Item:
    title_max, summary_max, content_max = limits
    link = normalize_link(_text(raw.get("url")) or _text(raw.get("external_url")), base)
    # Plain text by the spec, but publishers (WordPress's plugin, for one) send entities such as &#8217;.
    title = clean(unescape(_text(raw.get("title"))))[:title_max]
    html = _text(raw.get("content_html"))
    content = (html_to_text(html[: content_max * 4]) if html else clean(_text(raw.get("content_text"))))[:content_max]
    # Plain text by the spec too, but real feeds put HTML here: read it as HTML (plain text comes through as is).
    summary = html_to_text(_text(raw.get("summary"))[: summary_max * 4])[:summary_max] or content[:summary_max]
    published, raw_date = _date(raw.get("date_published"))
    if published is None:
        published, raw_date = _date(raw.get("date_modified"))
    ident = raw.get("id")
    # 1.0 feeds sometimes send numeric ids; the spec says to treat them as strings.
    guid = str(ident) if isinstance(ident, str | int) and not isinstance(ident, bool) else None
    tags = raw.get("tags")
    categories = tuple(c for t in (tags if isinstance(tags, list) else [])[:30] if (c := clean(_text(t))[:100]))
    key, legacy_key = keys(guid, link, title, raw_date, summary or content)
    summary, content = strip_footer(summary), strip_footer(content)  # (after the key, as in parsing)
    summary = summary or content[:summary_max]
    return Item(key=key, legacy_key=legacy_key, title=title, link=untracked(link), summary=summary,
                content=content, categories=categories, author=_author(raw, feed)[:200], published=published)


def parse_json_feed(body: bytes, base: str, limits: tuple[int, int, int], max_items: int
                    ) -> tuple[str, list[Item], int]:
    """(feed title, its first ``max_items`` items, how many it lists) of a JSON Feed; raises NotJSONFeed with a
    one-line reason otherwise. ``limits`` are the (title, summary, content) lengths the XML path uses."""
    if body.count(b"{") > MAX_OBJECTS:
        raise NotJSONFeed(f"JSON with more than {MAX_OBJECTS:,} objects, more than any feed has")
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise NotJSONFeed("JSON that is not UTF-8, which JSON Feed requires") from None
    except json.JSONDecodeError as exc:
        # A JSON Feed cut short (max_body, a proxy) or with a stray comma is broken, not the wrong URL.
        where = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        if _RAW_VERSION.search(body, 0, 4096):
            raise NotJSONFeed(where, malformed=True) from None
        raise NotJSONFeed(f"not RSS, Atom, RDF or JSON Feed: {where}") from None
    except (ValueError, RecursionError):
        raise NotJSONFeed("not RSS, Atom, RDF or JSON Feed") from None
    if not isinstance(doc, dict) or not _VERSION.match(_text(doc.get("version"))):
        raise NotJSONFeed("JSON, but not a JSON Feed: no https://jsonfeed.org/version/ in \"version\"")
    items = doc.get("items")
    if not isinstance(items, list):
        raise NotJSONFeed('a JSON Feed without an "items" list')
    entries = [raw for raw in items if isinstance(raw, dict)]
    parsed = [_item(raw, doc, base, limits) for raw in entries[:max_items]]
    return clean(_text(doc.get("title")))[:200], parsed, len(entries)
