"""Rendered Slack messages: nothing from a feed can ping a channel, forge a link or break the layout."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedrelay.model import Item
from feedrelay.render import Message, render
from feedrelay.render.mrkdwn import SECTION_LIMIT, escape, fit, safe_url

HOSTILE = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<#C123>",
    "<!subteam^S1>",
    "<!subteam^S1|@oncall>",
    "&lt;!channel&gt;",
    "<https://evil.example|https://bank.example>",
    "&amp;lt;!here&amp;gt;",
]


def mrkdwn_texts(message: Message) -> list[str]:
    texts = []
    for block in message.blocks:
        if "text" in block:
            texts.append(block["text"])
        texts.extend(block.get("elements", []))
        texts.extend(block.get("fields", []))
    assert all(t["type"] == "mrkdwn" for t in texts)
    return [t["text"] for t in texts]


def context_text(message: Message) -> str:
    [ctx] = [b for b in message.blocks if b["type"] == "context"]
    return ctx["elements"][0]["text"]


def link_targets(it: Item) -> set[str]:
    """The links feedrelay may build for an item: its own link, and NVD pages of CVE ids in its text."""
    text = "\n".join((it.title, it.summary, it.content))
    nvd = {safe_url(f"https://nvd.nist.gov/vuln/detail/{c}") for c in re.findall(r"CVE-\d{4}-\d{4,7}", text)}
    return {t for t in {safe_url(it.link), *nvd} if t}


def assert_only_our_links(text: str, targets: set[str]) -> None:
    """Every "<" opens a link feedrelay built, to an http(s) URL, and that link is whole."""
    for m in re.finditer("<", text):
        rest = text[m.start():]
        assert any(rest.startswith(f"<{t}|") for t in targets), f"unexpected '<' at {m.start()} in {text!r}"
        # One <url|label> with nothing in the URL that could end it or split it, and a closing ">".
        assert re.match(r"<https?:[^|<>\s]*\|[^|<>]*>", rest, re.IGNORECASE), f"broken link in {text!r}"


def assert_safe(message: Message, it: Item) -> None:
    raw = json.dumps(message.slack())
    for token in ("<!", "<@", "<#"):
        assert token not in raw
    for text in mrkdwn_texts(message):
        assert len(text) <= SECTION_LIMIT
        assert_only_our_links(text, link_targets(it))
    assert message.text and "<" not in message.text


def item(title: str = "A title", link: str = "https://example.com/post", summary: str = "", **kw: Any) -> Item:
    return Item(key="k", title=title, link=link, summary=summary, **kw)


@pytest.mark.parametrize("hostile", HOSTILE)
@pytest.mark.parametrize("where", ["title", "summary", "author", "feed"])
def test_hostile_text_cannot_mention_or_link(hostile: str, where: str) -> None:
    text = f"Breaking {hostile} news"
    fields = {"title": "Title", "summary": "Summary", "author": "Ann"} | ({where: text} if where != "feed" else {})
    feed = text if where == "feed" else "Feed"
    it = Item(key="k", title=fields["title"], link="https://example.com/p", summary=fields["summary"],
              author=fields["author"])
    msg = render(it, feed)
    assert_safe(msg, it)
    # The text is still there for people to read, escaped.
    assert escape(hostile) in json.dumps(msg.slack(), ensure_ascii=False) or escape(hostile) in msg.text


def test_hostile_title_without_link() -> None:
    it = item(title="<!channel> <@U1> <#C1>", link="")
    msg = render(it, "Feed")
    assert_safe(msg, it)
    assert "&lt;!channel&gt;" in mrkdwn_texts(msg)[0]


def test_double_escaped_mention_shows_literally() -> None:
    it = item(title="&lt;!channel&gt;")
    msg = render(it, "Feed")
    assert_safe(msg, it)
    assert "&amp;lt;!channel&amp;gt;" in mrkdwn_texts(msg)[0]


def test_blocks_are_verbatim_so_slack_does_not_autolink_names() -> None:
    msg = render(item(summary="see #general and @here"), "Feed")
    for block in msg.blocks:
        for t in [block.get("text"), *block.get("elements", [])]:
            if t:
                assert t["verbatim"] is True


def test_link_is_built_with_the_title_as_label() -> None:
    msg = render(item(title="Hello world", link="https://example.com/a?x=1"), "Feed")
    assert mrkdwn_texts(msg)[0] == "*<https://example.com/a?x=1|Hello world>*"
    assert "https://example.com/a?x=1" in msg.text


@pytest.mark.parametrize("link", [
    "javascript:alert(1)",
    "JAVASCRIPT:alert(1)",
    "data:text/html;base64,PHNjcmlwdD4=",
    "vbscript:msgbox",
    "mailto:a@example.com",
    "ftp://example.com/x",
])
def test_non_http_links_are_never_linked(link: str) -> None:
    msg = render(item(title="Click me", link=link), "Feed")
    raw = json.dumps(msg.slack())
    assert "<" not in raw
    assert "Click me" in mrkdwn_texts(msg)[0]
    assert link.split(":")[0].lower() + ":" not in msg.text.lower()


@pytest.mark.parametrize("link", [
    "https://example.com/a|b",
    "https://example.com/a>b",
    "https://example.com/a<b",
    "https://example.com/a b",
    "https://example.com/a\nb",
    "https://example.com/x|<!channel>",
])
def test_url_cannot_split_the_link(link: str) -> None:
    it = item(title="Label", link=link)
    msg = render(it, "Feed")
    heading = mrkdwn_texts(msg)[0]
    m = re.fullmatch(r"\*<([^|<> \n]+)\|Label>\*", heading)
    assert m, heading
    assert m.group(1).startswith("https://example.com/a") or m.group(1).startswith("https://example.com/x")
    assert "%" in m.group(1)
    assert_safe(msg, it)


def test_pipe_in_label_cannot_split_the_link() -> None:
    msg = render(item(title="real|https://evil.example"), "Feed")
    heading = mrkdwn_texts(msg)[0]
    assert heading.count("|") == 1


def test_link_host_shown_in_context() -> None:
    msg = render(item(link="https://news.example.org/2024/post"), "My Feed")
    ctx = context_text(msg)
    assert "news.example.org" in ctx and "My Feed" in ctx


def test_disguised_host_shows_the_real_one() -> None:
    msg = render(item(title="Your bank", link="https://bank.example.com@evil.example/login"), "Feed")
    ctx = context_text(msg)
    assert "evil.example" in ctx
    assert "bank.example.com" not in ctx


def test_context_has_date_and_author() -> None:
    msg = render(item(published=datetime(2024, 3, 1, 12, 30, tzinfo=UTC), author="Ann <ann@x>"), "Feed")
    ctx = context_text(msg)
    assert "2024-03-01 12:30 UTC" in ctx
    assert "Ann &lt;ann@x&gt;" in ctx


def test_summary_falls_back_to_content() -> None:
    msg = render(Item(key="k", title="T", link="", content="from content"), "Feed")
    assert any("from content" in t for t in mrkdwn_texts(msg))


def test_untitled_item_still_has_a_heading() -> None:
    msg = render(Item(key="k", title="", link=""), "Feed")
    assert mrkdwn_texts(msg)[0].strip("*")
    assert msg.text


@pytest.mark.parametrize("filler", ["x", "& ", "<", "word ", "é"])
def test_enormous_fields_fit_slack_limits(filler: str) -> None:
    big = filler * 100_000
    it = Item(key="k", title=big, link="https://example.com/p", summary=big, author=big)
    msg = render(it, big)
    for text in mrkdwn_texts(msg):
        assert 0 < len(text) <= SECTION_LIMIT
    assert 0 < len(msg.text) <= 3000
    assert_safe(msg, it)


@pytest.mark.parametrize("slug", ["я" * 520, "|" * 1100, "日本" * 300])
def test_long_escaped_url_is_never_cut_mid_link(slug: str) -> None:
    # Percent-encoding makes a URL up to 9× longer; a heading cut at 3,000 characters would leave
    # "<https://…" dangling and lose the title.
    link = "https://ru.example.org/wiki/" + slug
    msg = render(item(title="Readable title", link=link), "Feed")
    heading = mrkdwn_texts(msg)[0]
    assert len(heading) <= SECTION_LIMIT
    assert "Readable title" in heading
    assert_only_our_links(heading, {safe_url(link)})


# --- fit ------------------------------------------------------------------------------------------

ENTITY_SAFE = re.compile(r"^(?:[^&]|&amp;|&lt;|&gt;)*$")


@pytest.mark.parametrize("limit", [1, 2, 5, 6, 7, 9, 10, 50, 299, 300])
@pytest.mark.parametrize("text", ["a & b & c & d " * 40, "&" * 500, "<>" * 300, "x<y" * 200, "plain " * 100])
def test_fit_never_cuts_an_entity(text: str, limit: int) -> None:
    out = fit(text, limit)
    assert len(out) <= limit
    assert ENTITY_SAFE.match(out), out


def test_fit_leaves_short_text_whole() -> None:
    assert fit("Q&A", 100) == "Q&amp;A"


def test_fit_keeps_as_much_as_fits() -> None:
    # A summary full of ampersands must not shrink to a fraction of the space it has.
    assert len(fit("AT&T " * 200, 600)) >= 450
    assert "&amp;" in fit("&" * 1000, 600)


# --- property ------------------------------------------------------------------------------------

urls = st.one_of(
    st.text(),
    st.builds(
        lambda scheme, host, rest: f"{scheme}://{host}/{rest}",
        st.sampled_from(["http", "https", "HTTPS", "javascript", "data", "ftp", "mailto", ""]),
        st.text(max_size=30),
        st.text(),
    ),
    st.builds(lambda rest: f"https://example.com/{rest}", st.text(alphabet="<>|!@#&;*_~` \n%\"'", max_size=40)),
)
hostile_text = st.one_of(
    st.text(),
    st.lists(st.sampled_from([*HOSTILE, "&", "<", ">", "|", "*", " ", "\n", "amp;", "lt;", "x", "CVE-2024-12345"]),
             max_size=30)
    .map("".join),
)


@pytest.mark.e2e  # (at full scale: the slow tier)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=hostile_text, summary=hostile_text, link=urls, feed=hostile_text, author=hostile_text)
def test_property_no_mentions_and_only_our_links(title: str, summary: str, link: str, feed: str,
                                                 author: str) -> None:
    it = Item(key="k", title=title, link=link, summary=summary, author=author)
    msg = render(it, feed)
    raw = json.dumps(msg.slack())
    for token in ("<!", "<@", "<#"):
        assert token not in raw
    for text in [*mrkdwn_texts(msg), msg.text]:
        assert "<!" not in text and "<@" not in text and "<#" not in text
        assert_only_our_links(text, link_targets(it))
    assert "<" not in msg.text
    assert msg.text


@pytest.mark.parametrize("link", ["http:", "https:", "https:///path", "http:evil"])
def test_hostless_http_url_is_not_linked(link: str) -> None:
    # "http:" is a scheme, not a place to go: no link to nowhere, and no host to show.
    msg = render(item(title="Title", link=link), "Feed")
    assert "<" not in json.dumps(msg.slack())


# --- links feedrelay adds, and security items ------------------------------------------------------


def test_cve_ids_in_a_post_link_to_nvd_and_stay_inert() -> None:
    it = item(title="Patch now: CVE-2024-3094|<!channel>", summary="See CVE-2024-3094 and <@U1> CVE-2023-44487.")
    msg = render(it, "Advisories")
    assert_safe(msg, it)
    texts = "\n".join(mrkdwn_texts(msg))
    assert "<https://nvd.nist.gov/vuln/detail/CVE-2024-3094|CVE-2024-3094>" in texts
    assert "<https://nvd.nist.gov/vuln/detail/CVE-2023-44487|CVE-2023-44487>" in texts
    assert texts.count("vuln/detail/CVE-2024-3094") == 1  # once, however often it is mentioned


def test_cve_only_in_the_content_is_linked_and_a_post_without_one_has_no_cve_line() -> None:
    with_cve = render(item(title="Weekly roundup", summary="Links.", content="... fixed in CVE-2025-1234 ..."), "Blog")
    assert "CVEs: <https://nvd.nist.gov/vuln/detail/CVE-2025-1234|CVE-2025-1234>" in mrkdwn_texts(with_cve)
    plain = render(item(title="Weekly roundup", summary="Links about cve handling.", content="x" * 20000), "Blog")
    assert not any(t.startswith("CVEs:") for t in mrkdwn_texts(plain))


H = "<!channel>"


def test_hostile_nvd_record_cannot_mention() -> None:
    from feedrelay.sources.nvd import cve_item

    record = {
        "id": "CVE-2024-0001",
        "vulnStatus": H,
        "descriptions": [{"lang": "en", "value": f"Overflow {H} <@U1>"}],
        "metrics": {"cvssMetricV31": [{"type": "Primary", "cvssData": {
            "version": "3.1", "baseScore": 9.8, "baseSeverity": f"CRITICAL {H}", "vectorString": H}}]},
        "weaknesses": [{"description": [{"value": f"CWE-79{H}"}]}],
        "references": [{"url": f"https://example.com/{H}"}, {"url": "javascript:alert(1)"}],
        "cisaExploitAdd": H, "cisaActionDue": H, "cisaRequiredAction": H, "cisaVulnerabilityName": H,
    }
    it = cve_item(record)
    assert it is not None
    msg = render(it, f"NVD {H}")
    raw = json.dumps(msg.slack())
    for token in ("<!", "<@", "<#"):
        assert token not in raw, msg.text
    assert "javascript" not in raw


def test_hostile_kev_entry_cannot_mention() -> None:
    extra = {"cve": f"CVE-2024-0002{H}", "vendors": [H], "products": [f"<@U1>{H}"], "name": H, "kev_added": H,
             "kev_due": H, "ransomware": H, "cwes": [H], "kev_action": H,
             "references": [f"https://example.com/{H}", "data:text/html,x"]}
    it = Item(key="CVE-2024-0002", title=H, link="https://nvd.nist.gov/vuln/detail/CVE-2024-0002", summary=H,
              kind="kev", extra=extra)
    msg = render(it, H)
    raw = json.dumps(msg.slack())
    for token in ("<!", "<@", "<#"):
        assert token not in raw
    assert "data:text" not in raw
    for text in mrkdwn_texts(msg):
        assert len(text) <= SECTION_LIMIT


def test_console_shows_the_text_of_every_block_type_slack_shows() -> None:
    from feedrelay.delivery.sinks import format_console

    message = Message(text="fallback only", blocks=[
        {"type": "header", "text": {"type": "plain_text", "text": "Patch Tuesday & more"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "See <https://example.com/a|the advisory> &amp; act"},
         "fields": [{"type": "mrkdwn", "text": "*Due date*\n2025-08-20"}, {"type": "plain_text", "text": "free"}],
         "accessory": {"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": "https://x.test"}},
        {"type": "divider"},
        {"type": "image", "image_url": "https://example.com/i.png", "alt_text": "a chart"},
        {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [
            {"type": "text", "text": "Read "}, {"type": "link", "url": "https://example.com/b", "text": "this"}]}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "*Feed*"}, {"type": "mrkdwn", "text": "host"}]},
    ]).to_json()
    out = format_console("sec", message)
    assert out.rstrip("\n").splitlines()[1:] == [
        "Patch Tuesday & more",
        "See the advisory <https://example.com/a> & act",
        "Due date: 2025-08-20",
        "free",
        "Open",
        "─" * 20,
        "[image: a chart]",
        "Read this <https://example.com/b>",
        "*Feed* host",
    ]
    assert "fallback only" not in out  # Slack shows the blocks; the text is only the notification
    assert format_console("sec", Message("just text", []).to_json()).splitlines()[1] == "just text"
    # A row queued before messages carried their terminal text still shows its text.
    assert format_console("sec", {"text": "old row", "blocks": []}).splitlines()[1] == "old row"


@pytest.mark.parametrize("title", [b"<title>\n    Patch Tuesday: a long title\n    that wraps in the source\n</title>",
                                   b"<title type='html'>Patch Tuesday: a long title&lt;br&gt;that wraps in the "
                                   b"source</title>"])
def test_a_title_on_several_lines_is_one_bold_line(title: bytes) -> None:
    # Slack's *bold* (and a notification's one line) ends at a newline: a title that a feed wraps (pretty-printed
    # XML, a <br>) would show its asterisks and read as two lines. Atom, so the html title type counts.
    from feedrelay.ingest.parsing import parse_feed

    body = (b"<?xml version='1.0'?><feed xmlns='http://www.w3.org/2005/Atom'><title>F</title><entry>" + title
            + b"<link href='https://example.com/p'/><id>1</id><author><name>Ann\nLee</name></author></entry></feed>")
    [it] = parse_feed(body, "https://example.com/feed").items
    msg = render(it, "Feed")
    heading = "Patch Tuesday: a long title that wraps in the source"
    assert mrkdwn_texts(msg)[0] == f"*<https://example.com/p|{heading}>*"
    assert msg.text == f"{heading} — Feed https://example.com/p"
    assert "\n" not in context_text(msg)
