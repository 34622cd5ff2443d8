"""OPML, the subscription list every feed reader imports and exports (and lists like "engineering blogs" ship
as): read one into ``[[feeds]]`` tables for feeds.toml, and write the configured feeds back out as one.

Pure functions of data; the CLI reads and writes the files.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException, EntitiesForbidden

from feedrelay.config import Config, _valid_url
from feedrelay.ingest.identity import normalize_link
from feedrelay.ingest.text import clean, one_line
from feedrelay.model import comparable_link

MAX_OPML = 10 * 1024 * 1024  # the largest published lists are a few hundred KB
MAX_NAME = 100


class OPMLError(Exception):
    """The file is not an OPML subscription list; the message says why."""


@dataclass(frozen=True)
class Subscription:
    name: str
    url: str
    category: str = ""  # the title of the outline it sits in, if any


@dataclass
class Import:
    added: list[Subscription] = field(default_factory=list)
    subscribed: list[tuple[Subscription, str]] = field(default_factory=list)  # (entry, the feed that has its URL)
    unusable: list[str] = field(default_factory=list)  # outlines with no http(s) feed URL, by title


def _attr(element: ET.Element, name: str) -> str:
    # The spec says xmlUrl; exporters in the wild also write xmlurl and XMLURL.
    for key, value in element.attrib.items():
        if key.lower() == name:
            return value
    return ""


def read_opml(data: bytes) -> tuple[list[Subscription], list[str]]:
    """The feeds an OPML file lists, in document order, and the titles of outlines that name a feed URL this
    cannot use (not http or https). Raises :class:`OPMLError` for a file that is not OPML."""
    if len(data) > MAX_OPML:
        raise OPMLError(f"larger than {MAX_OPML // 1024 // 1024} MB; is it really an OPML subscription list?")
    # defusedxml refuses any entity the file declares (billion laughs, external files or URLs); a DOCTYPE
    # without entities, which some exporters write, is accepted.
    try:
        root = DET.fromstring(data)
    except ET.ParseError as exc:
        raise OPMLError(f"not well-formed XML ({exc})") from None
    except EntitiesForbidden as exc:
        raise OPMLError(f"the file declares an entity (<!ENTITY {(exc.name or '')[:40]} …>), which a subscription "
                        "list never needs and which is not expanded; remove the <!DOCTYPE …> block and try again"
                        ) from None
    except DefusedXmlException as exc:  # (an external reference or DTD: not expected with these settings)
        raise OPMLError(f"the file uses an XML feature a subscription list never needs ({type(exc).__name__})"
                        ) from None
    if root.tag.lower() != "opml" or root.find("body") is None:
        raise OPMLError(f"not OPML: the document is <{root.tag[:40]}>, not <opml> with a <body>")
    found: list[Subscription] = []
    unusable: list[str] = []

    def walk(parent: ET.Element, category: str) -> None:
        for outline in parent.findall("outline"):
            title = one_line(clean(_attr(outline, "title") or _attr(outline, "text")))
            url = _attr(outline, "xmlurl").strip()
            if url:
                if _valid_url(url):
                    found.append(Subscription(title[:MAX_NAME], url, category))
                else:
                    unusable.append(title or url[:100])
            walk(outline, title if not url else category)

    try:
        walk(root.find("body"), "")  # type: ignore[arg-type]
    except RecursionError:  # nested deeper than Python's stack: no subscription list is
        raise OPMLError("outlines nested too deeply to be a subscription list") from None
    return found, unusable


def _same_feed(url: str) -> str:
    return comparable_link(normalize_link(url) or url).rstrip("/")


def plan_import(config: Config, subscriptions: Sequence[Subscription]) -> Import:
    """Which subscriptions to add: not those whose URL a configured feed already polls (compared without scheme,
    fragment or trailing slash), nor a second copy of one in the file. Each added feed gets a name no other feed
    has, as feed names are unique (they key the feed's state in the database)."""
    result = Import()
    polled = {_same_feed(f.url): f.name for f in config.feeds}
    names = {f.name.casefold() for f in config.feeds}
    for sub in subscriptions:
        key = _same_feed(sub.url)
        if key in polled:
            result.subscribed.append((sub, polled[key]))
            continue
        base = sub.name or urlsplit(sub.url).hostname or sub.url[:MAX_NAME]
        name, n = base, 1
        while name.casefold() in names:
            n += 1
            name = f"{base} ({n})"
        names.add(name.casefold())
        polled[key] = name
        result.added.append(Subscription(name, sub.url, sub.category))
    return result


def toml_string(value: str) -> str:
    """A TOML basic string: quotes and backslashes escaped, control characters as \\u escapes."""
    out = []
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def feeds_toml(subscriptions: Sequence[Subscription], channels: Sequence[str], interval: str = "",
               source: str = "") -> str:
    """``[[feeds]]`` tables to append to feeds.toml, under a comment saying where they came from."""
    origin = one_line(clean(source))[:200]
    lines = [f"# --- imported from {origin} on {datetime.now(UTC):%Y-%m-%d} ---"] if source else []
    category = None
    for sub in subscriptions:
        if sub.category != category and sub.category:
            lines += ["", f"# {sub.category[:200]}"]
        category = sub.category
        lines += ["", "[[feeds]]", f"name = {toml_string(sub.name)}", f"url = {toml_string(sub.url)}"]
        if interval:
            lines.append(f"interval = {toml_string(interval)}")
        lines.append(f"channels = [{', '.join(toml_string(c) for c in channels)}]")
    return "\n".join(lines) + "\n"


def write_opml(config: Config, now: datetime | None = None) -> bytes:
    """The configured RSS/Atom/JSON feeds as an OPML 2.0 subscription list (NVD and KEV are APIs, not feeds
    a reader could follow), each in an outline named for the channel it goes to first."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = "feedrelay subscriptions"
    ET.SubElement(head, "dateCreated").text = format_datetime(now or datetime.now(UTC), usegmt=True)
    body = ET.SubElement(root, "body")
    groups: dict[str, ET.Element] = {}
    for feed in config.feeds:
        if feed.kind != "rss":
            continue
        channel = feed.routes[0].channel
        if channel not in groups:
            groups[channel] = ET.SubElement(body, "outline", text=channel, title=channel)
        ET.SubElement(groups[channel], "outline", type="rss", text=feed.name, title=feed.name, xmlUrl=feed.url)
    ET.indent(root)
    document = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + document + b"\n"
