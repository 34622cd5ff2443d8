"""Slack blocks as terminal text: what a reader would read in Slack, every visible text, no JSON.

The render stage stores this beside the blocks, so the console sink prints a message's own text and never
parses Block Kit itself.
"""

from __future__ import annotations

import re
from typing import Any

_SLACK_LINK = re.compile(r"<(https?://[^|>]+)\|([^>]*)>")


def plain_text(blocks: list[dict[str, Any]] | None, text: str = "") -> str:
    """The visible text of ``blocks``, a line each; the fallback ``text`` when there are no blocks (Slack shows
    the blocks, and the text only in notifications)."""
    lines: list[str] = []
    for block in blocks or []:
        if isinstance(block, dict):
            lines.extend(_block_lines(block))
    return "\n".join(lines) if lines else _unslack(text)


def _block_lines(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    if kind == "divider":
        return ["─" * 20]
    if kind == "section":
        lines = _texts(block.get("text"))
        # Slack shows each field as a bold label over its value; one "Label: value" line reads the same.
        lines += [_field(t) for f in block.get("fields") or [] for t in _texts(f)]
        return lines + _texts(block.get("accessory"))
    if kind == "context":
        # Context elements sit side by side in Slack: one line.
        parts = [t for e in block.get("elements") or [] for t in _texts(e)]
        return [" ".join(parts)] if parts else []
    return _texts(block)  # header, image, actions, rich_text and any newer type: their visible text, in order


_RICH_LINES = {"rich_text_section", "rich_text_preformatted", "rich_text_quote"}


def _texts(obj: Any) -> list[str]:
    """Visible text inside a block element, depth first: text objects, alt text, rich-text runs."""
    if isinstance(obj, list):
        return [t for o in obj for t in _texts(o)]
    if not isinstance(obj, dict):
        return []
    text = obj.get("text")
    if isinstance(text, str) and obj.get("type") != "link":
        if not text:
            return []
        # plain_text (headers, buttons) and rich-text runs are shown literally; only mrkdwn has links/entities.
        return [_unslack(text) if obj.get("type", "mrkdwn") == "mrkdwn" else text]
    if obj.get("type") == "link" and isinstance(obj.get("url"), str):
        return [f"{text} <{obj['url']}>" if isinstance(text, str) and text else obj["url"]]
    if obj.get("type") in _RICH_LINES:
        # A rich-text line is a run of styled pieces: one line, as Slack shows it.
        return ["".join(_texts(obj.get("elements")))]
    out: list[str] = []
    for key in ("title", "text", "alt_text", "elements", "fields", "accessory"):
        value = obj.get(key)
        if isinstance(value, str) and key == "alt_text" and value:
            out.append(f"[image: {value}]")
        else:
            out += _texts(value)
    return out


def _field(text: str) -> str:
    label, sep, value = text.partition("\n")
    if sep and len(label) > 2 and label.startswith("*") and label.endswith("*"):
        return f"{label[1:-1]}: " + value.replace("\n", "\n  ")
    return text


def _unslack(text: str) -> str:
    """Slack mrkdwn links and entities as a terminal reader wants them."""
    text = _SLACK_LINK.sub(r"\2 <\1>", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
