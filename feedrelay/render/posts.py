"""What a relayed post looks like in Slack: a pure function of an item."""

from __future__ import annotations

import re
from typing import Any

from feedrelay.ingest.text import one_line
from feedrelay.model import Item
from feedrelay.render.message import TEXT_LIMIT, Message
from feedrelay.render.mrkdwn import TITLE_LIMIT, context, fit, link, safe_url, section

SUMMARY_LIMIT = 600  # a glanceable summary, not the article


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
