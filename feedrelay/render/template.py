"""What a route's messages show: the ``full`` layout (posts.py, security.py), the one-line ``compact`` preset, or the
operator's own template with placeholders. And the route's mentions. Pure functions.

A template is the operator's mrkdwn; placeholders are filled with feed text that is already escaped (or with links
built by :func:`~feedrelay.render.mrkdwn.link`), so no template lets feed content ping anyone or disguise a link.
The template is parsed here and nowhere else, and checked when the config is loaded (:func:`check`).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from feedrelay.ingest.text import one_line
from feedrelay.model import SECURITY_KINDS, Item
from feedrelay.render.message import TEXT_LIMIT, Message
from feedrelay.render.mrkdwn import SECTION_LIMIT, TITLE_LIMIT, escape, fit, host_of, link, safe_url, section, when
from feedrelay.render.posts import SUMMARY_LIMIT, cve_links
from feedrelay.render.security import _affected, epss_badge, severity_label, ssvc_label

PRESETS = ("full", "compact")
MAX_TEMPLATE = 3000  # characters of template text (a message, not a document)
MAX_SECTIONS = 10  # a template repeating {summary} must not outgrow Slack's 50 blocks


class TemplateError(ValueError):
    """A template that cannot be used; ``placeholder`` names the offending one, where there is one."""

    def __init__(self, message: str, placeholder: str = "") -> None:
        super().__init__(message)
        self.placeholder = placeholder


def _cves(item: Item) -> str:
    # (a substring test first: most posts name no CVE, and content can be 20,000 characters)
    texts = [t for t in (item.title, item.summary, item.content) if "CVE-" in t]
    return ", ".join(cve_links("\n".join(texts))) if texts else ""


def _title_link(item: Item) -> str:
    """The linked title with the link's host beside it: a title cannot pass for another site's link."""
    title = one_line(item.title) or item.link or "(untitled)"
    if not safe_url(item.link):
        return fit(title, TITLE_LIMIT)
    return f"{link(item.link, title)} ({escape(host_of(item.link))})"


def _score(x: dict[str, Any]) -> str:
    return f"{x['score']:.1f}" if isinstance(x.get("score"), int | float) else ""


def _severity(x: dict[str, Any]) -> str:
    label = severity_label({"severity": x.get("severity")})  # the emoji and the word; {score} has the number
    return escape(label)


# Each placeholder and what fills it: escaped feed text, or links built by mrkdwn.link.
_FIELDS: dict[str, Callable[[Item, str], str]] = {
    "title": lambda i, f: fit(one_line(i.title), TITLE_LIMIT),
    "title_link": lambda i, f: _title_link(i),
    "link": lambda i, f: link(i.link, i.link) if safe_url(i.link) else "",
    "summary": lambda i, f: fit(i.summary or i.content, SUMMARY_LIMIT),
    "feed": lambda i, f: fit(f, 150),
    "date": lambda i, f: when(i.published),
    "author": lambda i, f: fit(one_line(i.author), 100),
    "categories": lambda i, f: fit(", ".join(i.categories[:20]), 300),
    "cves": lambda i, f: _cves(i),
}
# Only security items (NVD, KEV, CVE List) carry these; a template using them is for routes of security feeds.
_SECURITY_FIELDS: dict[str, Callable[[Item, str], str]] = {
    "cve": lambda i, f: escape(str(i.extra.get("cve", ""))[:40]),
    "severity": lambda i, f: _severity(i.extra),
    "score": lambda i, f: _score(i.extra),
    "kev": lambda i, f: "🚨 CISA KEV" if i.extra.get("kev") else "",
    "affected": lambda i, f: _affected(i.extra),
    "vector": lambda i, f: fit(str(i.extra.get("vector") or ""), 200),
    "cwes": lambda i, f: fit(", ".join(i.extra.get("cwes") or []), 200),
    "status": lambda i, f: fit(str(i.extra.get("status") or ""), 100),
    "kev_due": lambda i, f: fit(str(i.extra.get("kev_due") or ""), 40),
    "ssvc": lambda i, f: fit(ssvc_label(i.extra), 200),  # CISA's SSVC (cvelist items), or nothing
    "epss": lambda i, f: epss_badge(i.extra),
}
PLACEHOLDERS = tuple(_FIELDS)
SECURITY_PLACEHOLDERS = tuple(_SECURITY_FIELDS)


@lru_cache(maxsize=256)
def parse(template: str) -> tuple[tuple[str, str], ...]:
    """``template`` as (literal text, placeholder) pairs; raises :class:`TemplateError` for anything but plain
    ``{name}`` placeholders of :data:`PLACEHOLDERS` or :data:`SECURITY_PLACEHOLDERS` (``{{`` is a literal brace)."""
    if len(template) > MAX_TEMPLATE:
        raise TemplateError(f"a template may be at most {MAX_TEMPLATE} characters (got {len(template)})")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"{exc}; write {{{{ and }}}} for a literal brace") from None
    out: list[tuple[str, str]] = []
    inside = False  # within an operator's <…>: a link or a mention
    for literal, name, spec, conversion in parts:
        if literal:
            opened, closed = literal.rfind("<"), literal.rfind(">")
            inside = opened > closed if opened != closed else inside
        if name is None:
            out.append((literal, ""))
            continue
        if name not in _FIELDS and name not in _SECURITY_FIELDS:
            import difflib

            close = difflib.get_close_matches(name, PLACEHOLDERS + SECURITY_PLACEHOLDERS, n=1)
            hint = f" (did you mean {{{close[0]}}}?)" if close else ""
            raise TemplateError(f"unknown placeholder {{{name}}}{hint}; placeholders: "
                                + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
                                + "; on nvd and kev feeds also " + ", ".join(f"{{{p}}}" for p in SECURITY_PLACEHOLDERS),
                                name)
        if spec or conversion:
            raise TemplateError(f"placeholder {{{name}}} takes no format or conversion (write {{{name}}})", name)
        if inside:
            # Feed text inside <…> would choose where a link leads, or what it pings.
            raise TemplateError(f"placeholder {{{name}}} is inside <…>: feed text cannot be part of a Slack link or "
                                "mention; {link} and {title_link} are links already, write them on their own", name)
        out.append((literal, name))
    if not any(name for _, name in out):
        raise TemplateError("a template needs at least one placeholder such as {title} or {title_link} (or use a "
                            "preset: full, compact)")
    return tuple(out)


def check(template: str) -> frozenset[str]:
    """The placeholders a preset name or custom template uses; raises :class:`TemplateError` if it is not usable."""
    if template in PRESETS:
        return frozenset()
    return frozenset(name for _, name in parse(template) if name)


def uses_security_fields(template: str) -> list[str]:
    return sorted(check(template) & set(SECURITY_PLACEHOLDERS))


def describe(template: str) -> str:
    """How `preview` names a route's template: the preset, or the custom template's first line."""
    if template in PRESETS:
        return template
    first = one_line(template)
    return f"custom: {first[:60]}{'…' if len(first) > 60 else ''}"


def render_compact(item: Item, feed_name: str) -> Message:
    """One line: the linked title (a CVE's severity beside it) and the source."""
    parts = [f"*{_title_link(item)}*"]
    if item.kind == "cve":
        parts.append(escape(severity_label(item.extra)) + ("  🚨 CISA KEV" if item.extra.get("kev") else ""))
    if item.kind in SECURITY_KINDS and (epss := epss_badge(item.extra)):
        parts.append(epss)
    parts.append(fit(feed_name, 150))
    line = " · ".join(parts)
    fallback = f"{fit(one_line(item.title) or item.link or '(untitled)', TITLE_LIMIT)} — {fit(feed_name, 100)}"
    return Message(text=fallback[:TEXT_LIMIT], blocks=[section(line)])


def render_custom(item: Item, feed_name: str, template: str) -> Message:
    fields = _FIELDS | _SECURITY_FIELDS if item.kind in SECURITY_KINDS else _FIELDS
    values: dict[str, str] = {}
    out: list[str] = []
    for literal, name in parse(template):
        out.append(literal)
        if name:
            if name not in values:
                fill = fields.get(name)
                values[name] = fill(item, feed_name) if fill else ""
            out.append(values[name])
    text = "".join(out).strip()
    if not text:
        return render_compact(item, feed_name)  # every placeholder empty: Slack refuses an empty message
    blocks = [section(chunk) for chunk in _sections(text)]
    return Message(text=_cut(text, TEXT_LIMIT), blocks=blocks)


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters, never ending inside a ``<link|label>`` or an ``&entity;``."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if (opened := cut.rfind("<")) > cut.rfind(">"):
        cut = cut[:opened]
    if (amp := cut.rfind("&")) > cut.rfind(";"):
        cut = cut[:amp]
    return cut + "…"


def _sections(text: str) -> list[str]:
    """Lines packed into sections of at most Slack's 3,000 characters, at most :data:`MAX_SECTIONS`."""
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= SECTION_LIMIT:
            current = candidate
            continue
        if current:
            chunks.append(current)
        current = _cut(line, SECTION_LIMIT)
    if current.strip():
        chunks.append(current)
    chunks = [c for c in chunks if c.strip()]
    if len(chunks) > MAX_SECTIONS:
        chunks = [*chunks[: MAX_SECTIONS - 1], _cut(chunks[MAX_SECTIONS - 1] + "\n…", SECTION_LIMIT)]
    return chunks


def with_mentions(message: Message, mentions: tuple[str, ...]) -> Message:
    """The route's own mentions (validated Slack syntax from the config, never feed text) before the message, in
    the notification text too, so the people pinged see why."""
    if not mentions:
        return message
    prefix = " ".join(mentions)
    blocks = list(message.blocks)
    first = blocks[0] if blocks else None
    text_obj = first.get("text") if isinstance(first, dict) and first.get("type") == "section" else None
    if isinstance(text_obj, dict) and len(text_obj.get("text", "")) + len(prefix) + 1 <= SECTION_LIMIT:
        blocks[0] = {**first, "text": {**text_obj, "text": f"{prefix} {text_obj['text']}"}}  # type: ignore[dict-item]
    else:
        blocks.insert(0, section(prefix))
    return Message(text=_cut(f"{prefix} {message.text}", TEXT_LIMIT), blocks=blocks)
