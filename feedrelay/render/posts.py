"""What a relayed post looks like in Slack: a pure function of an item."""

from __future__ import annotations

import re
from typing import Any

from feedrelay.ingest.text import one_line
from feedrelay.model import Item
from feedrelay.render.message import TEXT_LIMIT, Message
from feedrelay.render.mrkdwn import TITLE_LIMIT, context, escape, fit, link, safe_url, section

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


def cve_badge(m: dict[str, Any]) -> str:
    """One mentioned CVE at a glance: "CVE-2026-1234 · 9.8 Critical (NVD) · 🚨 KEV due 2026-12-20 · EPSS 12.3% (96th
    percentile)". Every value came from a feed or NVD: escaped and bounded."""
    cve = str(m.get("cve", ""))[:40]
    parts = [link(f"https://nvd.nist.gov/vuln/detail/{cve}", cve)]
    if not (m.get("pending") or m.get("unknown")):
        score, severity = m.get("score"), m.get("severity")
        if severity:
            number = f"{score:.1f} " if isinstance(score, int | float) else ""
            parts.append(escape(f"{number}{str(severity).capitalize()} ({m.get('score_source') or 'NVD'})"[:60]))
        else:
            parts.append("unscored")
        if m.get("kev"):
            parts.append("🚨 KEV" + (f" due {escape(str(m['kev_due'])[:20])}" if m.get("kev_due") else ""))
        epss, percentile = m.get("epss"), m.get("epss_percentile")
        if isinstance(epss, int | float):
            parts.append(f"EPSS {epss * 100:.1f}%" + (f" ({percentile * 100:.0f}th percentile)"
                                                       if isinstance(percentile, int | float) else ""))
        if m.get("rejected"):
            parts.append("⛔ Rejected")
    return " · ".join(parts)


def cve_badges(mentions: list[dict[str, Any]], limit: int = 10) -> list[str]:
    """A badge per mentioned CVE, the first ``limit`` of them, then "and N more"."""
    shown = [cve_badge(m) for m in mentions[:limit]]
    if len(mentions) > limit:
        shown.append(f"and {len(mentions) - limit} more")
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
    if item.extra.get("mentions"):  # what feedrelay knows of each (the pipeline's _enrich)
        blocks.append(section("CVEs:\n" + "\n".join(cve_badges(item.extra["mentions"]))))
    elif (texts := [t for t in (item.title, item.summary, item.content) if "CVE-" in t]) and \
            (cves := cve_links("\n".join(texts))):
        blocks.append(section("CVEs: " + ", ".join(cves)))
    blocks.append(context(feed_name, item.link, item.published, item.author))
    fallback = f"{fit(title, TITLE_LIMIT)} — {fit(feed_name, 100)}"
    if url := safe_url(item.link):
        fallback += f" {url}"
    return Message(text=fallback[:TEXT_LIMIT], blocks=blocks)
