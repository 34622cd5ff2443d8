"""Feed bytes → items, with feedparser (JSON Feed: :mod:`feedrelay.ingest.jsonfeed`). Pure and picklable: it runs in
the parse worker processes (see :mod:`feedrelay.ingest.workers`), which import this module and nothing heavier."""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

import feedparser

from feedrelay.ingest.identity import keys, normalize_link, untracked
from feedrelay.ingest.jsonfeed import NotJSONFeed, looks_like_json, parse_json_feed
from feedrelay.ingest.text import clean, html_to_text, strip_footer
from feedrelay.model import Item

TITLE_MAX = 1000
SUMMARY_MAX = 5000
CONTENT_MAX = 20000
# Entries read from one feed. Real feeds list tens to a few thousand (long-running podcasts); 10 MB of tiny
# hostile <item/>s would be 350,000 entries, 350 MB and 17 s of parsing, and as many rows for the relay.
MAX_ENTRIES = 5000
TOO_MANY = f"the feed lists more than {MAX_ENTRIES:,} entries; only its first {MAX_ENTRIES:,} are read"

@dataclass(frozen=True)
class ParsedFeed:
    title: str
    items: list[Item]
    warning: str | None  # a problem feedparser recovered from (bozo)
    error: str | None  # not a feed at all


def _text(detail: Any, value: str | None, limit: int) -> str:
    if not value:
        return ""
    value = value[: limit * 4]
    kind = getattr(detail, "type", "") if detail else ""
    text = html_to_text(value) if "html" in (kind or "text/html") else clean(value)
    return text[:limit]


def _when(entry: Any) -> tuple[datetime | None, str]:
    for key in ("published", "updated", "created"):
        # (dict.get: FeedParserDict would answer a missing updated_parsed with published_parsed, and warn)
        parsed = dict.get(entry, f"{key}_parsed")
        if parsed:
            try:
                return datetime(*parsed[:6], tzinfo=UTC), entry.get(key, "")  # type: ignore[misc]  # (a struct_time)
            except (TypeError, ValueError):
                continue
    raw = entry.get("published") or entry.get("updated") or ""
    if raw:
        # feedparser gives up on an RFC 822 date with a weekday but no zone ("Tue, 10 Jun 2025 10:00:00", PHP's
        # date("D, d M Y H:i:s")), though it reads one without the weekday as UTC: read it as that too.
        try:
            date = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None, raw
        return (date.replace(tzinfo=UTC) if date.tzinfo is None else date.astimezone(UTC)), raw
    return None, raw


def _entry(entry: Any, base: str) -> Item:
    title = _text(entry.get("title_detail"), entry.get("title"), TITLE_MAX)
    link = entry.get("link")
    # RSS makes a guid without isPermaLink="false" the entry's URL, and feedparser does; a podcast host's UUID guid
    # (with no <link>) resolved against the feed's URL would be a link to a page that does not exist.
    if link and entry.get("guidislink") and not link[:8].lower().startswith(("http://", "https://", "/")) and \
            not any(x.get("rel") == "alternate" for x in entry.get("links") or ()):  # (an enclosure is no <link>)
        link = None
    link = normalize_link(link, base)
    summary = _text(entry.get("summary_detail"), entry.get("summary"), SUMMARY_MAX)
    contents = entry.get("content") or []
    content = _text(contents[0], contents[0].get("value"), CONTENT_MAX) if contents else ""
    published, raw_date = _when(entry)
    categories = tuple(
        clean(t.get("term") or t.get("label") or "")[:100] for t in (entry.get("tags") or [])[:30]
    )
    # The name, not "Name (email)": feedparser joins Atom's <email> (Blogger's is always noreply@blogger.com) to it.
    author = clean((dict.get(entry, "author_detail") or {}).get("name") or entry.get("author") or "")[:200]
    key, legacy_key = keys(entry.get("id"), link, title, raw_date, summary or content)
    # (after the key: an untitled, undated note's key hashes its text as it was)
    summary, content = strip_footer(summary), strip_footer(content)
    if summary == "Comments":  # Hacker News and Lobsters: the description is only a link to the discussion
        summary = ""
    return Item(
        key=key,
        legacy_key=legacy_key,
        title=title,
        link=untracked(link),
        summary=summary or content[:SUMMARY_MAX],
        content=content,
        categories=tuple(c for c in categories if c),
        author=author,
        published=published,
    )


_DOCTYPE = re.compile(rb"<!DOCTYPE\b", re.IGNORECASE)
_ENTITY_DECL = re.compile(rb"<!ENTITY[^>]*>", re.IGNORECASE)


def strip_doctype(body: bytes) -> bytes:
    """Remove the DOCTYPE and any entity declarations. Feeds never need their own entities, and
    feedparser's lenient fallback expands declared entities without limit (a quadratic blowup
    turns 60 KB into 200 MB)."""
    m = _DOCTYPE.search(body, 0, 65536)
    if m:
        end = body.find(b">", m.end())
        bracket = body.find(b"[", m.end())
        if bracket != -1 and (end == -1 or bracket < end):
            close = body.find(b"]", bracket)
            end = body.find(b">", close) if close != -1 else -1
        body = body[: m.start()] + (body[end + 1 :] if end != -1 else b"")
    return _ENTITY_DECL.sub(b"", body)


_LINK_TAG = re.compile(rb"<link\b[^<>]*>", re.IGNORECASE)  # [^<>]: a failed match stops at the next tag (linear)
_ATTRIBUTE = re.compile(rb"""([^\s"'>/=]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_FEED_TYPES = (b"application/rss+xml", b"application/atom+xml", b"application/rdf+xml", b"application/feed+json")
DISCOVERY_SCAN = 256 * 1024  # feed links sit in <head>; a page's first 256 KB holds it


def discover_feeds(page: bytes, base: str, limit: int = 3) -> list[str]:
    """The feeds an HTML page names with ``<link rel="alternate" type="application/rss+xml" href=…>``,
    as browsers and feed readers find them: absolute http(s) URLs, in page order, at most ``limit``."""
    found: list[str] = []
    for tag in _LINK_TAG.finditer(page, 0, DISCOVERY_SCAN):
        attrs = {m[1].lower(): m[2] or m[3] or m[4] or b"" for m in _ATTRIBUTE.finditer(tag[0], 5)}
        kind = attrs.get(b"type", b"").split(b";")[0].strip().lower()
        if b"alternate" not in attrs.get(b"rel", b"").lower().split() or kind not in _FEED_TYPES:
            continue
        href = html.unescape(attrs.get(b"href", b"").decode("utf-8", "replace")).strip()
        try:
            target = urljoin(base, href)
        except ValueError:
            continue
        # (the URL ends up in logs, `status` and alerts: no whitespace or control characters, bounded)
        if target.startswith(("http://", "https://")) and len(target) <= 500 and target not in found and \
                all(" " < c != "\x7f" for c in target):
            found.append(target)
            if len(found) == limit:
                break
    return found


_ENTRY_START = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:item|entry)[\s>/]")
_SMALLEST_ENTRY = 29  # bytes of "<item><title>a</title></item>": a body under MAX_ENTRIES of these is not scanned


def cap_entries(body: bytes, limit: int = MAX_ENTRIES) -> tuple[bytes, bool]:
    """The body cut before its (limit + 1)th entry and closed again, so feedparser reads at most ``limit``
    entries (the first ones: feeds list newest first); and whether it was cut."""
    if len(body) <= limit * _SMALLEST_ENTRY:
        return body, False
    for n, match in enumerate(_ENTRY_START.finditer(body)):
        if n == limit:
            head = body[:512]
            close = b"</feed>" if b"<feed" in head else b"</rdf:RDF>" if b"<rdf:RDF" in head else b"</channel></rss>"
            return body[: match.start()] + close, True
    return body, False


def _about_headers(exc: object) -> bool:
    """feedparser's complaints about the server's Content-Type rather than the document, which it read in full:
    a feed served as text/xml without a charset (RFC 3023 makes that us-ascii, so every UTF-8 feed "overrides"
    it), or as application/octet-stream. Common, harmless, and nothing the subscriber can fix: not a warning."""
    if isinstance(exc, feedparser.NonXMLContentType):
        return True
    return isinstance(exc, feedparser.CharacterEncodingOverride) and \
        str(exc).startswith("document declared as us-ascii")


def parse_feed(body: bytes, url: str, content_type: str = "", content_location: str = "") -> ParsedFeed:
    """Parse fetched bytes (never a URL: feedparser would fetch it itself). Pure and picklable."""
    if not body.strip():
        return ParsedFeed("", [], None, "empty response body")
    if content_location:
        # The header may be relative (Apache MultiViews sends "rss.xml"): resolve it as a browser would.
        content_location = urljoin(url, content_location.strip())
    if looks_like_json(body):
        try:
            title, items, listed = parse_json_feed(body, content_location or url, (TITLE_MAX, SUMMARY_MAX, CONTENT_MAX),
                                                   MAX_ENTRIES)
        except NotJSONFeed as exc:
            if exc.malformed:
                return ParsedFeed("", [], None, f"malformed JSON Feed ({exc}); was the body cut short? "
                                                "See defaults.max_body")
            return ParsedFeed("", [], None, f"not a feed ({exc}); check the URL")
        return ParsedFeed(title, items, TOO_MANY if listed > MAX_ENTRIES else None, None)
    if body[:1].isspace():
        # A blank line before "<?xml" (a WordPress theme's or plugin's stray newline) is not well-formed XML: expat
        # stops, feedparser's loose parser reads on, and every poll said "malformed feed". The XML is fine without it.
        body = body.lstrip()
    body = strip_doctype(body)
    body, capped = cap_entries(body)
    headers = {"content-type": content_type} if content_type else {}
    if content_location:
        headers["content-location"] = content_location
    # Relative links are resolved below against the feed URL; feedparser's HTML sanitizer is moot
    # because all HTML becomes plain text.
    parsed = feedparser.parse(io.BytesIO(body), response_headers=headers, sanitize_html=False,
                              resolve_relative_uris=False)
    warning = None
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and not _about_headers(problem):
        warning = f"malformed feed, parsed what we could: {type(problem).__name__}: {str(problem)[:200]}"
    if capped:
        warning = TOO_MANY
    if not parsed.get("version") and not parsed.entries:
        head = body[:8192].lower()
        html = content_type.split(";")[0].strip().lower() in ("text/html", "application/xhtml+xml") or \
            b"<html" in head or b"<head" in head or head.lstrip().startswith(b"<!doctype html")
        if not html:
            return ParsedFeed("", [], warning, "not a feed (not RSS, Atom, RDF or JSON Feed); check the URL")
        # People paste a blog's address, not its feed's: say which feed the page itself names.
        feeds = discover_feeds(body, content_location or url)
        if len(feeds) == 1:
            return ParsedFeed("", [], warning, f"not a feed (an HTML page that names its feed: {feeds[0]}); "
                                               "use that URL")
        if feeds:
            return ParsedFeed("", [], warning, f"not a feed (an HTML page that names {len(feeds)} feeds: "
                                               f"{', '.join(feeds)}); use one of those URLs")
        return ParsedFeed("", [], warning, "not a feed (an HTML page); check the URL")
    base = content_location or url
    # An entry with no title, link or text (Le Cercle Psy's CMS lists one for a withdrawn article) has nothing to
    # show: Slack would get a bare "(untitled)".
    items = [i for e in parsed.entries if (i := _entry(e, base)).title or i.link or i.summary or i.content]
    title = clean(parsed.feed.get("title") or "")[:200]
    return ParsedFeed(title, items, warning, None)
