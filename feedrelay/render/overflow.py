"""The "N more from <feed>" message of a capped route (``max_per_poll``): each folded entry, linked."""

from __future__ import annotations

from feedrelay.model import Item
from feedrelay.render.message import TEXT_LIMIT, Message
from feedrelay.render.mrkdwn import SECTION_LIMIT, TITLE_LIMIT, escape, fit, link, section

MAX_BLOCKS = 49  # Slack's limit is 50 per message
PER_SECTION = SECTION_LIMIT - 200  # room for a last line cut short


def render_overflow(item: Item) -> Message:
    entries = item.extra.get("entries") or []
    blocks = [section(f"*{fit(item.title, TITLE_LIMIT)}*")]
    lines: list[str] = []
    size = 0
    shown = 0
    for title, url in entries:
        line = "• " + (link(url, title or url or "(untitled)") if url else fit(title or "(untitled)", TITLE_LIMIT))
        if size + len(line) + 1 > PER_SECTION:
            if len(blocks) >= MAX_BLOCKS - 1:
                break
            blocks.append(section("\n".join(lines)))
            lines, size = [], 0
        lines.append(line)
        size += len(line) + 1
        shown += 1
    if lines:
        blocks.append(section("\n".join(lines)))
    if shown < len(entries):
        blocks.append(section(f"…and {len(entries) - shown} more ({escape(str(item.extra.get('feed', '')))})"))
    return Message(text=fit(item.title, TEXT_LIMIT), blocks=blocks)
