"""A corpus of real feeds (tests/fixtures/feeds/realworld, provenance in its PROVENANCE.md), each read as the
relay reads it and rendered as Slack shows it: every entry with its own title (no mojibake), an absolute http(s)
link, and no HTML tags, entities or CDATA left in the title or summary a reader sees."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from feedrelay.ingest.parsing import ParsedFeed, parse_feed
from feedrelay.render import render
from feedrelay.render.mrkdwn import escape, fit, safe_url

CORPUS = Path(__file__).parent / "fixtures" / "feeds" / "realworld"

GOOGLE_NEWS_LINK = ('https://news.google.com/rss/articles/'
                    'CBMibGh0dHBzOi8vd3d3LnRhZzI0LmRlL2NoZW1uaXR6L2xva2FsZXMvcHJlaXNzY2hvY2stYmVpLWVpbnMtZW5lcm'
                    'dpZS1mZXJud2Flcm1lLXdpcmQtNzUtcHJvemVudC10ZXVyZXItMzAzMjA5MdIBcGh0dHBzOi8vd3d3LnRhZzI0LmRl'
                    'L2FtcC9jaGVtbml0ei9sb2thbGVzL3ByZWlzc2Nob2NrLWJlaS1laW5zLWVuZXJnaWUtZmVybndhZXJtZS13aXJkLT'
                    'c1LXByb3plbnQtdGV1cmVyLTMwMzIwOTE?oc=5'
                    )

# (file, the feed's URL, entries, first entry's title and link as the file has them, how its summary starts, the
# warning the feed deserves). Titles were read from each file by hand (in its declared encoding), not by feedparser.
FEEDS = [
    ('atom-4fsod-blogger.xml', 'http://4fsodonline.blogspot.com/feeds/posts/default',
     2, '4FSOD Documentary: Bloopers and Stuff', 'http://4fsodonline.blogspot.com/2007/12/4fsod-documentary-bloopers-and-stuff.html',
     "Even the 4 Fighting Serpents of Death don't", None),
    ('atom-ebmpapst-leading-newline.xml', 'http://www.ebmpapst.com/en/ebmpapst_productnews_atom_feed.xml',
     1, 'Connection with future', 'https://idt.ebmpapst.com/de/en/idt/campaign/simatic-micro-drive.html',
     'Working in perfect harmony: the ebm-papst drive', None),
    ('atom-github-commits.xml', 'https://github.com/miniflux/v2/commits/main.atom',
     3, 'Parse podcast categories', 'https://github.com/miniflux/v2/commit/6d97f8b4582414b6ce69467656824690057d4793',
     'Parse podcast categories', None),
    ('atom-github-releases.xml', 'https://github.com/feed-rs/feed-rs/releases.atom',
     2, '0.2.0', 'https://github.com/feed-rs/feed-rs/releases/tag/v0.2.0',
     'A range of maintenance work, including:\n\nmigrate', None),
    ('atom-qemu-relative-links.xml', 'https://www.qemu.org/feed.xml',
     2, 'QEMU version 10.1.0 released', 'https://www.qemu.org/2025/08/26/qemu-10-1-0/',
     'We’d like to announce the availability of the', None),
    ('atom-reddit-homelab.xml', 'https://ud.reddit.com/r/homelab/new/.rss',
     3, 'Any reason to keep 1G connections to my servers?', 'https://ud.reddit.com/r/homelab/comments/157kyrd/any_reason_to_keep_1g_connections_to_my_servers/',
     'Hello all, I recently acquired a 40G switch and', None),
    ('atom-reddit-kubernetes.xml', 'https://www.reddit.com/r/kubernetes.rss',
     5, 'Monthly: Who is hiring?', 'https://www.reddit.com/r/kubernetes/comments/18895rv/monthly_who_is_hiring/',
     'This monthly post can be used to share', None),
    ('atom-reddit-selfpost.xml', 'https://www.reddit.com/r/rust/.rss',
     1, 'Hey Rustaceans! Got an easy question? Ask here (21/2020)!', 'https://www.reddit.com/r/rust/comments/glvkc5/hey_rustaceans_got_an_easy_question_ask_here/',
     'Mystified about strings? Borrow checker have you', None),
    ('atom-stackoverflow-tag.xml', 'https://stackoverflow.com/feeds/tag?tagnames=kubernetes&sort=newest',
     2, 'Kubernetes Ingress behind Cloud Load Balancer', 'https://stackoverflow.com/questions/77635559/kubernetes-ingress-behind-cloud-load-balancer',
     'When using an Ingress Controller in Kubernetes', None),
    ('atom-youtube.xml', 'https://www.youtube.com/feeds/videos.xml?channel_id=UC7_gcs09iThXybpVgjHZ_7g',
     1, 'Navigating with Quantum Entanglement', 'https://www.youtube.com/watch?v=0A1ouV7iD8o',
     'Check Out Weathered on PBS Terra', None),
    ('json10-daringfireball.json', 'https://daringfireball.net/feeds/json',
     2, 'How Jeff Bezos’s iPhone X Was Hacked', 'https://daringfireball.net/linked/2020/01/24/bezos-iphone-x',
     'Good summary from The New York Times. Until this', None),
    ('json10-inessential.json', 'http://inessential.com/feed.json',
     2, 'James Dempsey and the Breakpoints Benefit App Camp for Girls', 'http://inessential.com/2017/06/02/james_dempsey_and_the_breakpoints_benefi',
     'On Wednesday night I know where I’ll be — playing', None),
    ('json10-pxlnv-http-version.json', 'https://pxlnv.com/feed/json/',
     3, 'Uber Lost $4.5 Billion in 2017', 'https://pxlnv.com/linklog/uber-losses-2017/',
     'Eric Newcomer, Bloomberg:\n\nAdjusted net revenue', None),
    ('json11-3960.json', 'https://journal.3960.org/feed.json',
     3, 'Lecker, lecker', 'https://journal.3960.org/posts/2020-02-21-lecker-lecker/',
     'Da ist es zwar nicht ganz billig, dafür', None),
    ('json11-influxdata.json', 'https://www.influxdata.com/blog/feed/json/',
     3, 'InfluxDB vs. Graphite for Time Series Data & Metrics Benchmark', 'https://www.influxdata.com/blog/influxdb-outperforms-graphite-in-time-series-data-metrics-benchmark',
     'This blog post has been updated on September 10,', None),
    ('rdf-biorxiv.xml', 'http://connect.biorxiv.org/biorxiv_xml/genomics',
     1, 'Complete genome of the Medicago anthracnose fungus, Colletotrichum destructivum, reveals a '
     'mini-chromosome-like region within a core chromosome.',
     'http://biorxiv.org/cgi/content/short/2023.12.16.571984v1?rss=1',
     'Colletotrichum destructivum (Cd) is a', None),
    ('rdf-debian-news.xml', 'https://www.debian.org/News/news',
     1, 'Updated Debian 11: 11.6 released', 'https://www.debian.org/News/2022/20221217',
     'The Debian project is pleased to announce the', None),
    ('rdf-golem-latin1.xml', 'https://rss.golem.de/rss.php?feed=RSS1.0',
     1, 'Digitalministerium: Neue Glasfaserförderung mit Schnellkasse', 'https://www.golem.de/news/digitalministerium-neue-glasfaserfoerderung-mit-schnellkasse-2301-171451.html',
     'Ab April soll es wieder Förderung für den Ausbau', None),
    ('rdf-heise.xml', 'https://www.heise.de/newsticker/heise.rdf',
     3, 'OLED-TVs: Vorsichtsmaßnahmen gegen Einbrennen', 'https://www.heise.de/newsticker/meldung/OLED-TVs-Vorsichtsmassnahmen-gegen-Einbrennen-4205274.html?wt_mc=rss.ho.beitrag.rdf',
     'Wer gerade einen neuen OLED-Fernseher gekauft hat', None),
    ('rss091-dicas-l-latin1.xml', 'http://www.dicas-l.com.br/index.xml',
     1, 'bash - Expansão de Parâmetros', 'http://www.dicas-l.com.br/dicas-l/20200406.php',
     'bash - Expansão de Parâmetros', None),
    ('rss091-tjrs-latin1.xml', 'http://www.tjrs.jus.br/site_php/noticias/rss.php',
     1, '13/08/2020 21:27 - Comitê completa 150 dias de atuação na prevenção contra o novo Coronavírus', 'http://www.tjrs.jus.br/site_php/noticias/mostranoticia.php?assunto=1&categoria=1&item=506095',
     'Comitê completa 150 dias de atuação na prevenção', None),
    ('rss2-aktuality-sk.xml', 'https://www.aktuality.sk/rss/',
     3, 'Analytici Goldman Sachs zvýšili odhad rastu ekonomiky USA', 'https://www.aktuality.sk/clanok/856577/analytici-goldman-sachs-zvysili-odhad-rastu-ekonomiky-usa/',
     'Očakávajú totiž, že plán fiškálnych stimulov', None),
    ('rss2-atp-podcast.xml', 'http://atp.fm/episodes?format=rss',
     2, '311: Mutually Assured Destruction', 'http://atp.fm/episodes/311',
     'Follow-up:\n\n👴🏻👴🏻👴🏻 screwed up "finsta"\n\nDebate', None),
    ('rss2-bbc-podcast.xml', 'http://www.bbc.co.uk/programmes/b006qykl/episodes/downloads.rss',
     1, 'Marcus Aurelius', 'http://www.bbc.co.uk/programmes/m000sjxt',
     'Melvyn Bragg and guests discuss...', None),
    ('rss2-bbc-urdu.xml', 'http://www.bbc.com/urdu/index.xml',
     3, 'امریکی عسکری امداد کی بندش کی وجوہات: انڈیا سے جنگ، جوہری پروگرام اور اب دہشت گردوں کی پشت پناہی', 'http://www.bbc.com/urdu/pakistan-42575603',
     'امریکہ اور پاکستان کے 70 سالہ تعلقات میں جب بھی', None),
    ('rss2-cercle-psy-misdeclared-latin1.xml', 'https://le-cercle-psy.scienceshumaines.com/rss',
     3, 'Perturbateurs endocriniens : quels effets sur le cerveau ?', 'https://le-cercle-psy.scienceshumaines.com/perturbateurs-endocriniens-quels-effets-sur-le-cerveau_sh_39995',
     'Si leur impact semble discret au premier abord,', 'CharacterEncodingOverride'),
    ('rss2-cloudflare-ghost.xml', 'https://blog.cloudflare.com/rss/',
     1, 'Privacy-Preserving Compromised Credential Checking', 'https://blog.cloudflare.com/privacy-preserving-compromised-credential-checking/',
     'Announcing a public demo and open-sourced', None),
    ('rss2-daringfireball.xml', 'http://daringfireball.net/feeds/main',
     3, 'Apple Product Event: Monday March 21', 'http://recode.net/2016/02/27/remark-your-calendars-apples-product-event-will-week-of-march-21/',
     'Kara Swisher, writing at Recode, broke the', None),
    ('rss2-dbengines-nbsp.xml', 'https://db-engines.com/en/blog_feed',
     1, 'Snowflake is the DBMS of the Year 2022, defending the title from last year', 'https://db-engines.com/en/blog_post/103',
     'Snowflake is the database management system that', 'undefined entity'),
    ('rss2-dcrainmaker-wordpress-table.xml', 'https://www.dcrainmaker.com/feed',
     1, 'Huge Fall Sale: 20% of All Trainers & Most Power Meters, $100 off Fenix 5, GoPro Hero6 deal!', 'https://www.dcrainmaker.com/2017/11/trainers-power-meters-fenix5-sale.html',
     'It’s that time of year again! The now annual 20%', None),
    ('rss2-element-blog.xml', 'https://element.io/blog/rss/',
     1, 'Simpler plans for Element, on-premise and cloud!', 'https://element.io/blog/simpler-plans-for-element-on-premise-and-cloud/',
     'There’s now just two plans. The prices are the', None),
    ('rss2-ghost-changelog.xml', 'https://ghost.org/changelog/rss/',
     1, 'Send emails without publishing', 'https://ghost.org/changelog/email-without-publishing/',
     'You can now choose whether or not to publish a', None),
    ('rss2-google-news-search.xml', 'https://news.google.com/rss/search?q=Chemnitz&hl=de&gl=DE&ceid=DE:de',
     2, 'Chemnitz: Preisschock bei "eins energie"! Fernwärme wird 75 Prozent teurer - TAG24', GOOGLE_NEWS_LINK,
     'Chemnitz: Preisschock bei "eins energie"!', None),
    ('rss2-gotime-podcast.xml', 'https://changelog.com/gotime/feed',
     2, 'Event-driven systems &architecture', 'https://changelog.com/gotime/297',
     'Event-driven systems may not be the go-to', None),
    ('rss2-ibash-windows-1251.xml', 'http://ibash.org.ru/rss.xml',
     2, 'Цитата #17703', 'http://ibash.org.ru/quote.php?id=17703',
     'xxx: есть у кого жаба программер\nxxx: кот немного', None),
    ('rss2-kc0011-gb2312.xml', 'http://www.kc0011.net/rss.asp?boardid=10',
     3, '建国35周年纪念，华表，和平鸽', 'http://www.kc0011.net/dispbbs.asp?BoardID=10&ID=25164257&Page=1',
     '建国35周年纪念，华表，和平鸽\n\n35周年1套520，华表60一个，和平鸽20一个\n一起出7枚680', None),
    ('rss2-kernel-org.xml', 'https://www.kernel.org/feeds/kdist.xml',
     1, '5.7-rc4: mainline', 'http://www.kernel.org/',
     'Version: 5.7-rc4 (mainline)\n\nReleased:', None),
    ('rss2-mastodon-tag-untitled.xml', 'https://hachyderm.io/tags/Kubernetes.rss',
     4, '', 'https://ioc.exchange/@jon404/111544891736153138',
     "Shameless blog series plug\n\nIf you're in to", None),
    ('rss2-medium-hodlhodl.xml', 'https://medium.com/feed/@hodlhodl',
     2, 'Hodl Hodl closes funding round', 'https://medium.com/@hodlhodl/hodl-hodl-closes-funding-round-417d97952d42',
     'For a long time Hodl Hodl remained self-funded.', None),
    ('rss2-nightvale-prx.xml', 'https://f.prxu.org/126/feed-rss.xml',
     1, '221 - The Glow Cloud, Explained', 'https://beta.prx.org/stories/441886',
     'The University of What It Is takes a special', None),
    ('rss2-scripting-news-untitled.xml', 'http://scripting.com/rss.xml',
     3, '', 'http://scripting.com/2017/06/26.html#a080605',
     'Good morning students and teachers! 🍏', None),
    ('rss2-spiegel-omny.xml', 'https://www.omnycontent.com/d/playlist/5ac1e950-45c7-4eb7-87c0-aa0f018441b8/bb17ca27-51f4-4349-bc1e-abc00102c975/4c18e072-24d2-4d60-9a42-abc00102c97e/podcast.rss',
     1, '07.02. – die Wochenvorschau: Lockdown-Verlängerung, Kriegsverbrecher vor Gericht, Super Bowl, Karneval', 'https://omny.fm/shows/spiegel-update-die-nachrichten/07-02-die-wochenvorschau-lockdown-verl-ngerung-kri',
     'Die wichtigsten Nachrichten aus der', None),
    ('rss2-substack-heated.xml', 'https://heated.world/feed',
     1, 'A conversation about Keystone XL', 'https://heated.world/p/a-conversation-about-keystone-xl',
     'This past weekend, I was interviewed by Walt', None),
    ('rss2-tumblr-entity-escaped-twice.xml', 'https://todayontumblr.tumblr.com/rss',
     4, 'NEIL WON BEST ACTOR AT THE GAME AWARDS!!!!!!', 'https://www.tumblr.com/todayontumblr/736339394445918208',
     'argetcross :\n\nNEIL WON BEST ACTOR AT THE GAME', None),
    ('rss2-wirecutter.xml', 'https://www.nytimes.com/wirecutter/feed/',
     1, 'How to Teach Someone a Board Game (and Even Have Fun Doing It)', 'https://www.nytimes.com/wirecutter/blog/how-to-teach-someone-a-board-game/',
     'Modern board games can be wonderfully complex and', None),
]

# What must not reach a Slack reader: markup, entities, CDATA, and UTF-8 read as Latin-1 or Windows-1252.
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>|<!--|-->")
_ENTITY = re.compile(r"&(?:[a-zA-Z][a-zA-Z0-9]{1,9}|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")
# Tags that posts name in prose (escaped in <code>, as they should be): text, not leftover markup.
PROSE = {"json10-pxlnv-http-version.json": "<font>", "rss2-daringfireball.xml": "<title>"}
_MOJIBAKE = re.compile("[\u00c2\u00c3][\u0080-\u00bf]|\u00e2\u20ac|\ufffd")


def read(name: str, url: str) -> ParsedFeed:
    return parse_feed((CORPUS / name).read_bytes(), url)


def test_the_corpus_is_small_and_each_file_is_in_the_table_and_the_provenance() -> None:
    files = sorted(p.name for p in CORPUS.iterdir() if p.name != "PROVENANCE.md")
    assert files == sorted(f[0] for f in FEEDS)
    provenance = (CORPUS / "PROVENANCE.md").read_text()
    assert [f for f in files if f"`{f}`" not in provenance] == []
    assert sum((CORPUS / f).stat().st_size for f in files) < 400_000


@pytest.mark.parametrize(("name", "url", "count", "title", "link", "summary", "warning"), FEEDS,
                         ids=[f[0] for f in FEEDS])
def test_what_a_slack_reader_sees_of_a_real_feed(name: str, url: str, count: int, title: str, link: str,
                                                   summary: str, warning: str | None) -> None:
    parsed = read(name, url)
    assert parsed.error is None
    # Only a real defect of the document is reported (an HTML entity XML lacks; a wrong declared charset).
    assert (warning in parsed.warning) if warning else parsed.warning is None, parsed.warning
    assert len(parsed.items) == count
    first = parsed.items[0]
    assert (first.title, first.link) == (title, link)
    assert first.summary.startswith(summary)
    for item in parsed.items:
        assert item.link.startswith(("http://", "https://")) and safe_url(item.link), item.link
        assert item.title or item.summary, item  # an untitled RSS item (Scripting News) shows its text
        for field in (item.title, item.summary.replace(PROSE.get(name, "\0"), "")):
            for bad in (_TAG, _ENTITY, _MOJIBAKE):
                assert not bad.search(field), (item.title, bad.search(field))
            assert "CDATA" not in field and "]]>" not in field
        blocks = render(item, "Feed").blocks
        heading = blocks[0]["text"]["text"]
        assert heading == f"*<{safe_url(item.link)}|{fit(' '.join((item.title or item.link).split()), 300)}>*"
        if item.summary:
            assert blocks[1]["text"]["text"] == fit(item.summary, 600)
            assert "<" not in blocks[1]["text"]["text"]  # nothing in the text can form a Slack link or mention


def test_the_feed_quirks_the_corpus_showed() -> None:
    """Each was wrong before a fix in feedrelay/ingest: the test of each fix says which feed it came from."""
    # JSON Feed 1.0 with "version": "http://jsonfeed.org/version/1": refused as "not a JSON Feed".
    assert read("json10-pxlnv-http-version.json", "https://pxlnv.com/feed/json/").items
    # Table cells ran together: "Version:5.7-rc4 (mainline)", "4iiii Power Meters2015-2017$399".
    (kernel,) = read("rss2-kernel-org.xml", "https://www.kernel.org/feeds/kdist.xml").items
    assert kernel.summary.startswith("Version: 5.7-rc4 (mainline)\n\nReleased: 2020-05-03")
    (sale,) = read("rss2-dcrainmaker-wordpress-table.xml", "https://www.dcrainmaker.com/feed").items
    assert "4iiii Power Meters 2015-2017 $399 DCR Post Here" in sale.content
    # A character reference escaped twice inside CDATA showed as "Filip&#233;ndula".
    quote = read("rss2-ibash-windows-1251.xml", "http://ibash.org.ru/rss.xml").items[1]
    assert "Лаба\u0301зник (лат. Filipéndula)" in quote.summary
    # A newline before <?xml made the feed "malformed" on every poll.
    assert read("atom-ebmpapst-leading-newline.xml", "http://www.ebmpapst.com/feed.xml").warning is None
    # An empty <item> became an "(untitled)" message.
    assert all(i.title for i in read("rss2-cercle-psy-misdeclared-latin1.xml",
                                     "https://le-cercle-psy.scienceshumaines.com/rss").items)
    # Reddit's link posts: the thumbnail's table cell and the text no longer run together.
    homelab = read("atom-reddit-homelab.xml", "https://ud.reddit.com/r/homelab/new/.rss").items
    assert all("submitted by /u/" in i.summary or i.summary for i in homelab)
    # Tumblr's titles escape their entities twice ("That &amp;rsquo;s"): read as the HTML they are.
    tumblr = read("rss2-tumblr-entity-escaped-twice.xml", "https://todayontumblr.tumblr.com/rss").items
    assert tumblr[1].title.startswith("That \u2019s why they were rushing everyone \u2019s speeches")
    assert escape("<") == "&lt;"  # (escape() is what keeps '<' in feed text from forming Slack markup)
