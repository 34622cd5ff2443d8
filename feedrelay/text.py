"""Turn untrusted feed HTML into bounded plain text (a real HTML parser; no regex tag-stripping)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

MAX_HTML_INPUT = 200_000  # characters of HTML we are willing to read per field
_BLOCK_TAGS = {
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "blockquote", "pre",
    "section", "article", "header", "footer", "hr", "dd", "dt", "figure", "figcaption",
}
_SKIP_TAGS = {"script", "style", "head", "title", "noscript", "template", "svg", "math", "iframe", "object"}
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u2000-\u200b\u2028\u2029\u202f\u205f\u3000]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
            self.pre += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")
            self.pre = max(0, self.pre - (tag == "pre"))

    def handle_data(self, data: str) -> None:
        if not self.skip:
            # Source line-wrapping inside a paragraph is a space, as a browser shows it; <pre> keeps lines.
            self.parts.append(data if self.pre else data.replace("\n", " "))


def clean(text: str) -> str:
    """Collapse whitespace, drop control and bidi-override characters, keep paragraph breaks."""
    text = _CONTROL.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def html_to_text(html: str | None) -> str:
    """Plain text of an HTML fragment; entities decoded, tags gone, whitespace tidied."""
    if not html:
        return ""
    html = html[:MAX_HTML_INPUT]
    if "<" not in html and "&" not in html:
        return clean(html)
    parser = _TextExtractor()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient, but never let one entry break a feed
        return clean(html)
    return clean("".join(parser.parts))


def truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    """At most ``limit`` characters, cut at a word boundary where one is near."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ellipsis)]
    space = cut.rfind(" ")
    if space > limit * 0.7:
        cut = cut[:space]
    return cut.rstrip() + ellipsis
