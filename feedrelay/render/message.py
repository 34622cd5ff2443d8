"""A rendered message: what Slack gets (Block Kit and the notification text) and what a terminal shows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from feedrelay.render.plain import plain_text

TEXT_LIMIT = 3000  # the notification fallback; Slack truncates at 40,000


@dataclass(frozen=True)
class Message:
    text: str  # plain-text fallback (notifications, screen readers)
    blocks: list[dict[str, Any]]

    @property
    def plain(self) -> str:
        """The message as a reader sees it in Slack, as terminal text: what the console sink prints."""
        return plain_text(self.blocks, self.text)

    def slack(self) -> dict[str, Any]:
        """What Slack gets: the blocks and the notification text (feed text in them is escaped)."""
        return {"text": self.text, "blocks": self.blocks}

    def to_json(self) -> dict[str, Any]:
        """What the outbox stores: sinks send ``text`` and ``blocks``, the console prints ``plain``."""
        return {**self.slack(), "plain": self.plain}
