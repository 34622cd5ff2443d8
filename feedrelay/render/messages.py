"""What a Slack message looks like: a pure function of an item.

Everything that came from a feed is untrusted. It is turned into plain text first (which decodes
entities) and escaped last, so nothing in it can form ``<!channel>``, ``<@U…>`` or a link. Links are
built here only, from http(s) URLs only, and always shown beside their host so a label cannot hide
where it leads.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from feedrelay.ingest.text import truncate
from feedrelay.model import Item

SECTION_LIMIT = 3000  # Slack: section text ≤ 3,000 characters
SUMMARY_LIMIT = 600  # a glanceable summary, not the article
TITLE_LIMIT = 300
TEXT_LIMIT = 3000  # the notification fallback; Slack truncates at 40,000
MAX_URL = 2000  # longer links are not linked: they would not fit a section


@dataclass(frozen=True)
class Message:
    text: str  # plain-text fallback (notifications, screen readers)
    blocks: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


def escape(text: str) -> str:
    """Slack's three control characters; applied last, to text that is already plain."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(text: str, limit: int) -> str:
    """Escaped ``text`` cut so the *escaped* form is at most ``limit`` characters (never mid-entity)."""
    escaped = escape(truncate(text, limit))
    if len(escaped) <= limit:
        return escaped
    cut = escaped[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


_URL_SAFE = "/:?#[]@!$&()*+,;=%-._~"  # URL syntax that quote() keeps, beside letters and digits
_NEEDS_NO_QUOTING = frozenset(_URL_SAFE + string.ascii_letters + string.digits)


@lru_cache(maxsize=256)  # one message asks for the same item link three or four times
def safe_url(url: str) -> str:
    """An http(s) URL made safe inside ``<url|label>``; "" if it is not one."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ""
    # Keep URL syntax; percent-encode what would end or split Slack's <url|label> and all whitespace.
    # (Most URLs need no quoting: skip quote()'s encode/decode round trip for them.)
    encoded = url if _NEEDS_NO_QUOTING.issuperset(url) else quote(url, safe=_URL_SAFE)
    return encoded if len(encoded) <= MAX_URL else ""


@lru_cache(maxsize=256)
def host_of(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def link(url: str, label: str, limit: int = TITLE_LIMIT) -> str:
    """``<url|label>`` when the URL is http(s), else the escaped label alone."""
    target = safe_url(url)
    label = fit(label, limit).replace("|", "¦") or escape(url[:limit])
    return f"<{target}|{label}>" if target else label


CVE_ID = re.compile(r"\bCVE-\d{4}-\d{4,7}\b")


def cve_links(text: str, limit: int = 10) -> list[str]:
    """CVE ids mentioned in free text (e.g. a CISA advisory), each linked to NVD, in order, once."""
    seen: list[str] = []
    for match in CVE_ID.finditer(text):
        if match.group(0) not in seen:
            seen.append(match.group(0))
    shown = [link(f"https://nvd.nist.gov/vuln/detail/{c}", c) for c in seen[:limit]]
    if len(seen) > limit:
        shown.append(f"and {len(seen) - limit} more")
    return shown


def one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text else text


def when(dt: datetime | None) -> str:
    # (an f-string is 4x cheaper than strftime, and the same text)
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} {dt.hour:02d}:{dt.minute:02d} UTC" if dt else ""


def render(item: Item, feed_name: str) -> Message:
    """The Block Kit message (and fallback text) for a relayed item."""
    if item.kind in ("cve", "kev"):
        from feedrelay.render.security import render_security

        return render_security(item, feed_name)
    return render_post(item, feed_name)


def render_post(item: Item, feed_name: str) -> Message:
    # One line: Slack's *bold* ends at a newline, and a notification shows one line (feeds wrap long titles).
    title = one_line(item.title) or item.link or "(untitled)"
    heading = f"*{link(item.link, title)}*" if item.link else f"*{fit(title, TITLE_LIMIT)}*"
    blocks: list[dict[str, Any]] = [section(heading)]
    summary = item.summary or item.content
    if summary:
        blocks.append(section(fit(summary, SUMMARY_LIMIT)))
    # (a substring test first: most posts name no CVE, and content can be 20,000 characters)
    mentions = [t for t in (item.title, item.summary, item.content) if "CVE-" in t]
    if mentions and (cves := cve_links("\n".join(mentions))):
        blocks.append(section("CVEs: " + ", ".join(cves)))
    blocks.append(context(feed_name, item.link, item.published, item.author))
    fallback = f"{fit(title, TITLE_LIMIT)} — {fit(feed_name, 100)}"
    if url := safe_url(item.link):
        fallback += f" {url}"
    return Message(text=fallback[:TEXT_LIMIT], blocks=blocks)


def context(source: str, url: str, published: datetime | None, author: str = "") -> dict[str, Any]:
    """The small grey line: source · link host · time · author."""
    parts = [f"*{fit(source, 150)}*"]
    if host := host_of(safe_url(url)):
        parts.append(escape(host))
    if published:
        parts.append(when(published))
    if author:
        parts.append(fit(one_line(author), 100))
    return {"type": "context", "elements": [mrkdwn(" · ".join(parts))]}


def mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack must not auto-link channel names or @mentions in relayed text.
    return {"type": "mrkdwn", "text": text[:SECTION_LIMIT], "verbatim": True}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text)}

