"""Build small RSS 2.0 / Atom 1.0 documents for tests.

Items are plain dicts; every key is optional and an absent key omits the element, so tests can
build feeds with missing guids, links or dates:

    guid, title, link, description (HTML allowed, escaped as XML text), pubDate (datetime or a
    preformatted string used verbatim), categories (list of str), author, guid_is_permalink (bool,
    default False -> isPermaLink="false"; RSS only).

Naive datetimes are taken as UTC.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

Item = Mapping[str, Any]

#: pubDate of the item with index 0 in make_items(); item i is published i hours later.
BASE_DATE = datetime(2024, 1, 1, tzinfo=UTC)
ATOM_NS = "http://www.w3.org/2005/Atom"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _rfc822(value: datetime | str) -> str:
    return value if isinstance(value, str) else format_datetime(_aware(value))


def _rfc3339(value: datetime | str) -> str:
    return value if isinstance(value, str) else _aware(value).isoformat()


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    element.text = text
    return element


def _serialize(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def rss(items: Iterable[Item], *, title: str = "Test feed", link: str = "http://example.com/") -> bytes:
    """An RSS 2.0 document (UTF-8 bytes, with XML declaration) holding `items` in the given order."""
    root = ET.Element("rss", version="2.0")
    channel = _sub(root, "channel")
    _sub(channel, "title", title)
    _sub(channel, "link", link)
    _sub(channel, "description", f"{title} (generated for tests)")
    for item in items:
        node = _sub(channel, "item")
        for key in ("title", "link", "description", "author"):
            if key in item:
                _sub(node, key, str(item[key]))
        for category in item.get("categories", ()):
            _sub(node, "category", category)
        if "guid" in item:
            permalink = "true" if item.get("guid_is_permalink", False) else "false"
            _sub(node, "guid", str(item["guid"]), isPermaLink=permalink)
        if "pubDate" in item:
            _sub(node, "pubDate", _rfc822(item["pubDate"]))
    return _serialize(root)


def atom(
    items: Iterable[Item],
    *,
    title: str = "Test feed",
    link: str = "http://example.com/",
    feed_id: str | None = None,
    updated: datetime | str | None = None,
) -> bytes:
    """An Atom 1.0 document holding `items` in the given order.

    guid -> <id>, link -> <link rel="alternate">, description -> <summary type="html">,
    pubDate -> <published> and <updated>, author -> <author><name>, categories -> <category term>.
    The feed's <updated> defaults to the newest datetime pubDate (or BASE_DATE).
    """
    items = list(items)
    if updated is None:
        dates = [_aware(i["pubDate"]) for i in items if isinstance(i.get("pubDate"), datetime)]
        updated = max(dates, default=BASE_DATE)
    root = ET.Element("feed", xmlns=ATOM_NS)
    _sub(root, "id", feed_id or link)
    _sub(root, "title", title)
    _sub(root, "updated", _rfc3339(updated))
    _sub(root, "link", href=link, rel="alternate")
    for item in items:
        entry = _sub(root, "entry")
        if "guid" in item:
            _sub(entry, "id", str(item["guid"]))
        if "title" in item:
            _sub(entry, "title", str(item["title"]))
        if "link" in item:
            _sub(entry, "link", href=str(item["link"]), rel="alternate")
        if "description" in item:
            _sub(entry, "summary", str(item["description"]), type="html")
        if "pubDate" in item:
            _sub(entry, "published", _rfc3339(item["pubDate"]))
            _sub(entry, "updated", _rfc3339(item["pubDate"]))
        if "author" in item:
            _sub(_sub(entry, "author"), "name", str(item["author"]))
        for category in item.get("categories", ()):
            _sub(entry, "category", term=category)
    return _serialize(root)


def make_items(n: int, start: int = 0, prefix: str = "Post") -> list[dict[str, Any]]:
    """`n` distinct items with indexes start .. start+n-1, returned NEWEST FIRST (as real feeds are).

    Item i: guid "post-<i>", link "http://example.com/posts/<i>", title f"{prefix} {i}", an HTML
    description, pubDate BASE_DATE + i hours. So `make_items(2, start=3) + make_items(3)` is the
    feed of `make_items(3)` after two newer posts were published.
    """
    return [
        {
            "guid": f"post-{i}",
            "title": f"{prefix} {i}",
            "link": f"http://example.com/posts/{i}",
            "description": f"<p>Body of <b>{prefix} {i}</b> &amp; more</p>",
            "pubDate": BASE_DATE + timedelta(hours=i),
        }
        for i in reversed(range(start, start + n))
    ]
