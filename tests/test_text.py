"""Untrusted feed HTML to plain text."""

from __future__ import annotations

import pytest

from feedrelay.text import MAX_HTML_INPUT, clean, html_to_text, truncate


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("Fish &amp; Chips", "Fish & Chips"),
        ("&lt;b&gt;not bold&lt;/b&gt;", "<b>not bold</b>"),
        ("caf&eacute; &#8212; &#x2603;", "café — ☃"),
        ("<b>bold</b> and <i>italic</i> and <a href='https://x'>a link</a>", "bold and italic and a link"),
        ("a<script>alert('x')</script>b", "ab"),
        ("a<style>p { color: red }</style>b", "ab"),
        ("<SCRIPT>evil()</SCRIPT>ok", "ok"),
        ("before<noscript>no</noscript><template>t</template>after", "beforeafter"),
        ("", ""),
        (None, ""),
    ],
)
def test_html_to_text(html: str | None, text: str) -> None:
    assert html_to_text(html) == text


def test_paragraphs_and_breaks_become_line_breaks() -> None:
    out = html_to_text("<p>First paragraph.</p><p>Second paragraph.</p>one<br>two<br/>three")
    lines = out.split("\n")
    assert lines[0] == "First paragraph."
    assert "Second paragraph." in lines
    assert lines[-3:] == ["one", "two", "three"]
    assert "\n\n\n" not in out


def test_source_newlines_inside_a_paragraph_are_spaces() -> None:
    # Static-site generators hard-wrap HTML source; a browser shows one flowing paragraph, and so must Slack.
    html = "<p>This paragraph was\nwrapped at eighty columns\n  by the generator.</p>"
    assert html_to_text(html) == "This paragraph was wrapped at eighty columns by the generator."


def test_list_items_on_their_own_lines() -> None:
    out = html_to_text("<ul><li>one</li><li>two</li></ul>")
    assert [line for line in out.split("\n") if line] == ["one", "two"]


def test_escaped_slack_mention_decodes_to_plain_text() -> None:
    # Plain text is the truth; messages.escape() makes it harmless later.
    assert html_to_text("Hey &lt;!channel&gt; look") == "Hey <!channel> look"
    assert html_to_text("&lt;@U123&gt;") == "<@U123>"


def test_double_escaped_entities_decode_once() -> None:
    assert html_to_text("&amp;lt;!channel&amp;gt;") == "&lt;!channel&gt;"


def test_unclosed_script_hides_the_rest_not_crash() -> None:
    assert "evil" not in html_to_text("ok<script>evil()")


def test_whitespace_collapsed() -> None:
    assert html_to_text("  lots \t of\u00a0\u00a0 space  ") == "lots of space"


def test_bidi_overrides_and_controls_removed() -> None:
    # U+202E would let a title display reversed ("moc.live" → "evil.com").
    assert html_to_text("safe\u202emoc.live\x00\x07") == "safemoc.live"
    assert clean("a\u2066b\u2069c\x1b") == "abc"


def test_plain_text_without_markup_is_just_cleaned() -> None:
    assert html_to_text("Ordinary   title") == "Ordinary title"


def test_huge_input_is_bounded() -> None:
    out = html_to_text("<p>" + "word " * 200_000 + "</p>")
    assert 0 < len(out) <= MAX_HTML_INPUT


# --- truncate -------------------------------------------------------------------------------------


def test_truncate_leaves_short_text_alone() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("exactly10!", 10) == "exactly10!"


def test_truncate_respects_limit_and_marks_the_cut() -> None:
    text = "The quick brown fox jumps over the lazy dog"
    out = truncate(text, 20)
    assert len(out) <= 20 and out.endswith("…")
    assert text.startswith(out[:-1]) and len(out) >= 14


def test_truncate_prefers_a_word_boundary() -> None:
    out = truncate("alpha beta gamma delta epsilon", 22)
    assert out == "alpha beta gamma…"


def test_truncate_cuts_mid_word_when_no_space_is_near() -> None:
    out = truncate("a " + "x" * 100, 20)
    assert len(out) == 20 and out.endswith("x…")


def test_truncate_custom_ellipsis() -> None:
    assert truncate("abcdefghij", 8, ellipsis="...") == "abcde..."
