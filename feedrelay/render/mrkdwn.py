"""Slack mrkdwn building blocks: escaping, links, sections. Pure functions.

Everything that came from a feed is untrusted. It is turned into plain text first (which decodes
entities) and escaped last, so nothing in it can form ``<!channel>``, ``<@U…>`` or a link. Links are
built here only, from http(s) URLs only, and always shown beside their host so a label cannot hide
where it leads.
"""

from __future__ import annotations

import string
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from feedrelay.ingest.text import one_line, truncate

SECTION_LIMIT = 3000  # Slack: section text ≤ 3,000 characters
TITLE_LIMIT = 300
MAX_URL = 2000  # longer links are not linked: they would not fit a section


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


def when(dt: datetime | None) -> str:
    # (an f-string is 4x cheaper than strftime, and the same text)
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d} {dt.hour:02d}:{dt.minute:02d} UTC" if dt else ""


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
