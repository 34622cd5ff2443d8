"""What a change to a story already posted looks like: a reply in its thread, or (where a channel cannot
thread) a new message that names the first. A pure function of the item and the lines the lifecycle found."""

from __future__ import annotations

from typing import Any

from feedrelay.ingest.text import one_line
from feedrelay.model import Item
from feedrelay.render.message import TEXT_LIMIT, Message
from feedrelay.render.mrkdwn import TITLE_LIMIT, context, escape, fit, link, section


def story_label(item: Item) -> str:
    """How a reply names the message it follows: the CVE ID, or the entry's title."""
    return str(item.extra.get("cve") or one_line(item.title) or item.link or "(untitled)")[:TITLE_LIMIT]


def render_change(item: Item, feed_name: str, changes: tuple[str, ...], *, in_thread: bool) -> Message:
    label = story_label(item)
    named = link(item.link, label) if item.link else escape(label)
    heading = f"🔄 *{named}*: what changed" if in_thread else f"🔄 *Update to {named}*"
    # Each line quotes feed data (a title, CISA's ransomware field): escaped, one line each, bounded.
    lines = "\n".join(f"• {fit(one_line(c), 500)}" for c in changes[:10])
    blocks: list[dict[str, Any]] = [section(heading), section(lines)]
    if item.kind == "post" and (item.summary or item.content) and any(c.startswith("The text") for c in changes):
        blocks.append(section(fit(item.summary or item.content, 600)))
    blocks.append(context(feed_name, item.link, None))
    text = f"{escape(label)}: " + "; ".join(escape(one_line(c)) for c in changes[:10])
    return Message(text=text[:TEXT_LIMIT], blocks=blocks)
