"""Untrusted feed HTML to plain text."""

from __future__ import annotations

import random
from html.parser import HTMLParser

import pytest

from feedrelay.ingest.text import MAX_HTML_INPUT, clean, html_to_text, truncate


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("Fish &amp; Chips", "Fish & Chips"),
        ("Use &lt;b&gt;bold&lt;/b&gt; for bold", "Use <b>bold</b> for bold"),  # escaped markup in prose is text
        ("&lt;b&gt; is bold", "<b> is bold"),
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


# --- the tokenizer: HTML's own rules, checked against the standard library's parser -------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("a < b and c<3", "a < b and c<3"),  # "<" that opens no tag is text
        ('<img alt="a > b" src="x.png">after', "after"),  # ">" inside a quoted value does not end the tag
        ("<a title='it > is'>link</a>", "link"),
        ("x<!-- hidden <b>not bold</b> -->y", "xy"),
        ("x<!-->y<!--->z", "xyz"),  # empty comments
        ("x<!-- never closed <p>all of it", "x"),
        ("<!DOCTYPE html><?xml version='1.0'?>text", "text"),
        ("a<![CDATA[<b>x</b>]]>b", "ax]]>b"),  # in HTML, CDATA is a bogus comment: it ends at the first ">"
        ("a</>b</ 3>c", "abc"),
        ("<script>if (a</b) { x = '<p>' }</script>shown", "shown"),  # script text is never markup
        ("<svg><script>s</script><text>drawing</text></svg>after", "after"),  # a raw end tag closes no skip
        ("<STYLE type=text/css>p{}</STYLE >ok", "ok"),
        ("<a href='x' unterminated", ""),  # a tag cut off by the end of the input is dropped
        ("one<br/>two<br />three", "one\ntwo\nthree"),
        ("<pre>line 1\n  line 2</pre>", "line 1\nline 2"),
        ("a\u200bb\u00a0\u00a0c\u3000d", "ab c d"),
    ],
)
def test_tokenizer_follows_html_rules(html: str, text: str) -> None:
    assert html_to_text(html) == text


class _Reference(HTMLParser):
    """The standard library's HTML parser, driven the same way: the oracle for ordinary feed HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = self.pre = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in {"script", "style", "head", "title", "noscript", "template", "svg", "math", "iframe", "object"}:
            self.skip += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")
            self.pre += tag == "pre"
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style", "head", "title", "noscript", "template", "svg", "math", "iframe", "object"}:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")
            self.pre = max(0, self.pre - (tag == "pre"))
        elif tag in ("td", "th"):
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data if self.pre else data.replace("\n", " "))


_BLOCKS = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "blockquote", "pre",
           "section", "article", "header", "footer", "hr", "dd", "dt", "figure", "figcaption"}

# What blog platforms put in feed summaries and content (WordPress, Ghost, Medium, Substack, Hugo, Jekyll).
_PIECES = [
    "<p>We shipped <strong>v2.0</strong> &mdash; read the <a href=\"https://example.com/notes?a=1&amp;b=2\">notes</a>.</p>",
    "<!-- wp:paragraph -->\n<p>Paragraph with a\nhard-wrapped line.</p>\n<!-- /wp:paragraph -->",
    '<figure class="wp-block-image"><img src="/a.png" alt="A &quot;diagram&quot; of x &gt; y"/>'
    "<figcaption>Figure 1: the pipeline</figcaption></figure>",
    "<pre><code>if (a &lt; b &amp;&amp; c) {\n    return &#x27;ok&#x27;;\n}</code></pre>",
    "<ul>\n<li>first</li>\n<li>second <em>item</em></li>\n</ul>",
    '<blockquote class="twitter-tweet"><p lang="en">A tweet &#8220;quoted&#8221;</p>&mdash; Someone</blockquote>'
    '<script async src="https://platform.twitter.com/widgets.js" charset="utf-8"></script>',
    "<style>.x > .y { color: red }</style>",
    '<iframe width="560" height="315" src="https://www.youtube.com/embed/x" allowfullscreen></iframe>',
    "<h2 id=\"why\">Why it matters</h2><p>Because caf&eacute; &amp; cr&egrave;me br&ucirc;l&eacute;e.</p>",
    "<table><tr><td>a</td><td>b</td></tr></table>",
    "<div><span style=\"font-weight: 400\">Styled</span><br><br><br>text</div>",
    "Plain text with 5 < 6 and AT&T and &copy; 2025",
    "<p>Emoji \U0001F680 and \u00a0non-breaking\u00a0spaces and a\ttab.</p>",
    "<hr/><p class='read-more'><a href='https://example.com/post'>Continue reading &rarr;</a></p>",
    "<noscript><img src='pixel.gif'></noscript><img src=\"https://feeds.example/~r/x\" height=\"1\" width=\"1\"/>",
    "<ol start=\"3\"><li><p>nested <code>&lt;tag&gt;</code></p></li></ol>",
    "<p>\n\n   \n</p><p>   </p>",
    "<DIV ALIGN=CENTER><B>Upper-case</B> markup</DIV>",
]


def _reference(html: str) -> str:
    parser = _Reference()
    parser.feed(html)
    parser.close()
    return clean("".join(parser.parts))


def test_tokenizer_agrees_with_the_stdlib_parser_on_real_feed_html() -> None:
    rng = random.Random(20261130)
    samples = list(_PIECES) + ["".join(rng.choices(_PIECES, k=rng.randint(2, 8))) for _ in range(1500)]
    for html in samples:
        assert html_to_text(html) == _reference(html), html


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<" * MAX_HTML_INPUT, "<" * MAX_HTML_INPUT),
        ('<a b="' * 40_000, ""),
        ("<!--" * 50_000, ""),
        ("<script>" * 25_000, ""),
        ("<a =\"x' <b" * 20_000, ""),
    ],
    ids=["lone-lt", "open-quotes", "open-comments", "open-scripts", "mixed"],
)
def test_hostile_markup_is_read_in_one_pass(html: str, text: str) -> None:
    # Each of these makes a backtracking tag-stripper quadratic (minutes for 200 KB); every token here either
    # ends or runs to the end of the input, so they take milliseconds.
    assert html_to_text(html) == text


def test_invisible_characters_are_dropped_and_joiners_kept() -> None:
    # A title of word joiners and byte-order marks would make an invisible link in Slack; the Arabic letter mark
    # reorders text like the other bidi marks. Zero-width joiners build emoji and scripts: they stay.
    assert clean("\u2060\ufeff\u00ad\u061c\u180e") == ""
    assert clean("pay\u2060pal \ufeffsupport\u00ad \u061cteam") == "paypal support team"
    joined = "👩\u200d💻 \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # a technologist; "I want" in Persian
    assert clean(joined) == joined


def test_table_cells_are_apart() -> None:
    # kernel.org's release feed and Reddit's link posts lay out their text in table cells.
    html = "<table><tr><th>Version:</th><td><strong>5.7-rc4</strong> (mainline)</td></tr>" \
           "<tr><td>a</td><td>b</td></tr></table>"
    assert html_to_text(html) == "Version: 5.7-rc4 (mainline)\n\na b"


@pytest.mark.parametrize(("html", "text"), [
    # Reddit's self-post HTML escaped twice: the field is nothing but escaped markup (and Reddit's &#39;).
    ('&lt;!-- SC_OFF --&gt;&lt;div class="md"&gt;&lt;p&gt;I&amp;#39;ve been asked to read a RFC I authored once.'
     '&lt;/p&gt; &lt;p&gt;See &lt;a href="https://play.rust-lang.org"&gt;the playground&lt;/a&gt;.&lt;/p&gt;'
     '&lt;/div&gt;&lt;!-- SC_ON --&gt;',
     "I've been asked to read a RFC I authored once.\n\nSee the playground."),
    ("  &lt;table&gt;&lt;tr&gt;&lt;td&gt;thumb&lt;/td&gt;&lt;td&gt;text&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;",
     "thumb text"),
    # A character reference escaped twice inside real markup (ibash.org.ru's quotes, in CDATA).
    ("yyy: Лаба&amp;#769;зник (лат. Filip&amp;#233;ndula)<br />", "yyy: Лаба\u0301зник (лат. Filipéndula)"),
    ("caf&amp;#xE9;", "café"),
    ("a&amp;#8238;b", "ab"),  # a bidi override decoded late is still dropped
])
def test_html_escaped_twice_by_the_publisher_is_read_as_html(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_escaped_markup_that_hides_a_mention_stays_harmless() -> None:
    assert html_to_text("&lt;b&gt;&lt;!channel&gt;&lt;/b&gt; hi") == "hi"  # <!channel> is a bogus comment: dropped
    assert html_to_text("&lt;!channel&gt;") == "<!channel>"  # plain text: messages.escape() disarms it later
