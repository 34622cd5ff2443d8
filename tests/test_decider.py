"""What gets posted on each poll: pure decisions over items and known keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from feedrelay import render
from feedrelay.config import Feed, Filter, Route
from feedrelay.decide.decider import decide, decide_poll, moved_news, reissued
from feedrelay.model import Item, Lookalike

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def feed(backlog: int = 0, routes: tuple[Route, ...] = (Route("readings"),)) -> Feed:
    return Feed(name="Blog", url="https://example.com/feed", kind="rss", interval=900, backlog=backlog,
                routes=routes)


def posts(*indexes: int, dated: bool = True) -> list[Item]:
    """Items in the order given (feeds list newest first, so pass descending indexes)."""
    return [
        Item(key=f"post-{i}", title=f"Post {i}", link=f"https://example.com/posts/{i}",
             published=T0 + timedelta(hours=i) if dated else None)
        for i in indexes
    ]


def keys(plan_items: list[Item]) -> list[str]:
    return [i.key for i in plan_items]


def queued(plan) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(i.channel, i.item.key) for i in plan.intents]


def test_first_poll_remembers_everything_and_posts_nothing() -> None:
    plan = decide(feed(), posts(4, 3, 2, 1, 0), set(), first_poll=True)
    assert sorted(keys(plan.remember)) == [f"post-{i}" for i in range(5)]
    assert plan.intents == []


def test_first_poll_with_backlog_posts_newest_n_oldest_first() -> None:
    plan = decide(feed(backlog=2), posts(4, 3, 2, 1, 0), set(), first_poll=True)
    assert queued(plan) == [("readings", "post-3"), ("readings", "post-4")]
    assert len(plan.remember) == 5


def test_backlog_larger_than_feed_posts_all() -> None:
    plan = decide(feed(backlog=50), posts(2, 1, 0), set(), first_poll=True)
    assert [k for _, k in queued(plan)] == ["post-0", "post-1", "post-2"]


def test_backlog_uses_dates_not_feed_order() -> None:
    # A feed listing oldest first (some do): "newest" still means latest published.
    plan = decide(feed(backlog=1), posts(0, 1, 2), set(), first_poll=True)
    assert queued(plan) == [("readings", "post-2")]


def test_undated_items_use_feed_order_newest_first() -> None:
    plan = decide(feed(backlog=2), posts(9, 8, 7, dated=False), set(), first_poll=True)
    assert [k for _, k in queued(plan)] == ["post-8", "post-9"]


def test_later_poll_queues_only_new_keys_oldest_first() -> None:
    known = {"post-0", "post-1", "post-2"}
    plan = decide(feed(), posts(5, 4, 3, 2, 1, 0), known, first_poll=False)
    assert queued(plan) == [("readings", "post-3"), ("readings", "post-4"), ("readings", "post-5")]
    assert sorted(keys(plan.remember)) == ["post-3", "post-4", "post-5"]


def test_later_poll_with_nothing_new() -> None:
    plan = decide(feed(), posts(1, 0), {"post-0", "post-1"}, first_poll=False)
    assert plan.intents == [] and plan.remember == []


def test_backlog_ignored_after_first_poll() -> None:
    plan = decide(feed(backlog=1), posts(3, 2, 1, 0), {"post-0"}, first_poll=False)
    assert [k for _, k in queued(plan)] == ["post-1", "post-2", "post-3"]


def test_duplicate_keys_within_one_fetch_are_posted_once() -> None:
    items = posts(2, 1) + posts(1) + posts(0)
    plan = decide(feed(), items, {"post-0"}, first_poll=False)
    assert queued(plan) == [("readings", "post-1"), ("readings", "post-2")]
    assert sorted(keys(plan.remember)) == ["post-1", "post-2"]


def test_duplicate_keys_on_first_poll_are_remembered_once() -> None:
    plan = decide(feed(backlog=5), posts(1, 1, 0), set(), first_poll=True)
    assert sorted(keys(plan.remember)) == ["post-0", "post-1"]
    assert [k for _, k in queued(plan)] == ["post-0", "post-1"]


def test_each_route_filters_separately() -> None:
    routes = (
        Route("everything"),
        Route("pg", Filter(include=("postgres",))),
        Route("no-pg", Filter(exclude=("postgres",))),
    )
    items = [
        Item(key="b", title="Postgres 17", link="https://example.com/b", published=T0 + timedelta(hours=1)),
        Item(key="a", title="Redis 8", link="https://example.com/a", published=T0),
    ]
    plan = decide(feed(routes=routes), items, set(), first_poll=False)
    assert queued(plan) == [("everything", "a"), ("no-pg", "a"), ("everything", "b"), ("pg", "b")]
    # Every decision is recorded, with its reason, for `preview` and debug logs.
    assert len(plan.verdicts) == 6
    rejected = [(v.channel, v.item.key) for v in plan.verdicts if not v.decision.passed]
    assert rejected == [("pg", "a"), ("no-pg", "b")]


def test_a_plan_is_data_and_its_deliveries_carry_the_rendered_message_and_dedupe_key() -> None:
    plan = decide(feed(), posts(1), set(), first_poll=False)
    [intent] = plan.intents
    assert (intent.channel, intent.feed, intent.item.title) == ("readings", "Blog", "Post 1")
    [d] = render.deliveries(plan.intents)
    assert d.feed == "Blog" and d.dedupe_key == "//example.com/posts/1\tpost 1"
    assert "Post 1" in d.message["text"] and d.message["blocks"]
    assert "Post 1 <https://example.com/posts/1>" in d.message["plain"]  # the terminal shows the link, unescaped


def was(item: Item, *, previous: bool = True, dated: bool = True) -> Lookalike:
    """``item`` as the store remembers it."""
    return Lookalike(item.key, item.published.timestamp() if item.published and dated else None, previous)


def test_an_entry_back_under_a_new_id_is_remembered_not_posted() -> None:
    old = posts(2, 1)
    churned = [Item(key=f"https-{i.key}", title=i.title, link=i.link, published=i.published) for i in old]
    listing = [*posts(3), *churned]  # the old ids are gone from the listing, new ones stand in their place
    lookalikes = {c.dedupe_key: [was(o)] for c, o in zip(churned, old, strict=True)}
    reissues = reissued(listing, set(), lookalikes)
    assert reissues == {"https-post-2", "https-post-1"}
    plan = decide(feed(), listing, set(), first_poll=False, reissues=reissues)
    assert [i.key for i in plan.remember] == ["post-3", "https-post-2", "https-post-1"]  # all remembered
    assert queued(plan) == [("readings", "post-3")]  # only the really new one is posted
    # Without dates, the previous listing tells: an entry it had, gone now, is the one back under a new id.
    undated = {c.dedupe_key: [was(o, dated=False)] for c, o in zip(churned, old, strict=True)}
    assert reissued(listing, set(), undated) == {"https-post-2", "https-post-1"}


def mailbag(n: int, day: int) -> Item:
    return Item(key=f"ep-{n}", title="Mailbag", link="https://pod.example/", published=T0 + timedelta(days=day))


def test_a_new_entry_that_looks_like_an_old_one_is_news() -> None:
    # A podcast's weekly "Mailbag" links to the show's page like last week's.
    last, this = mailbag(101, 0), mailbag(105, 7)
    assert reissued([this, last], {"ep-101"}, {this.dedupe_key: [was(last)]}) == set()  # still listed beside it
    assert reissued([this], set(), {this.dedupe_key: [was(last)]}) == set()  # gone, but dated a week before
    # A listing of fixed length drops the oldest as it adds the newest: still news.
    listing = [mailbag(4, 28), mailbag(3, 21), mailbag(2, 14)]
    assert reissued(listing, {"ep-3", "ep-2"}, {listing[0].dedupe_key: [was(mailbag(1, 7)), was(listing[1]),
                                                                         was(listing[2])]}) == set()


def test_one_old_entry_stands_for_one_new_one_and_untitled_entries_are_never_recognised() -> None:
    old = mailbag(1, 0)
    twins = [Item(key=k, title="Mailbag", link="https://pod.example/", published=old.published) for k in ("a", "b")]
    assert len(reissued(twins, set(), {old.dedupe_key: [was(old)]})) == 1  # the other one is news
    note = Item(key="n2", title="", link="https://status.example/")
    assert reissued([note], set(), {note.dedupe_key: [Lookalike("n1", None, True)]}) == set()


def test_a_moved_feeds_news_is_what_it_lists_above_what_the_feed_had() -> None:
    listing = posts(5, 4, 3, 2, 1)  # the new URL lists more than the old one did (3 and 2)
    assert moved_news(listing, {"post-3", "post-2"}, {}) == {"post-5", "post-4"}
    assert moved_news(listing, set(), {listing[2].dedupe_key: [was(listing[2])]}) == {"post-5", "post-4"}


def test_entries_remembered_under_their_old_keys_are_not_new_after_an_upgrade() -> None:
    entry = Item(key="https://tool.example/changelog#v1.1", title="v1.1", link="https://tool.example/changelog#v1.1",
                 legacy_key="https://tool.example/changelog")
    assert reissued([entry], set(), {}, upgraded={entry.key}) == {entry.key}
    assert reissued([entry], set(), {}) == set()


def test_filtered_out_items_are_still_remembered() -> None:
    routes = (Route("pg", Filter(include=("postgres",))),)
    plan = decide(feed(routes=routes), posts(1, 0), set(), first_poll=False)
    assert plan.intents == []
    assert sorted(keys(plan.remember)) == ["post-0", "post-1"]


def test_a_first_poll_at_a_new_url_is_silent_unless_it_lists_what_the_feed_had() -> None:
    listing = posts(5, 4, 3, 2, 1)  # newest first; the feed had 3 and 2 at its old URL
    moved = decide_poll(feed(), listing, {"post-3", "post-2"}, first_poll=True, url_changed=True)
    assert moved.moved and not moved.first_poll
    assert queued(moved) == [("readings", "post-4"), ("readings", "post-5")]  # 1 is archive below: remembered
    assert keys(moved.remember) == ["post-5", "post-4", "post-1"]
    other = decide_poll(feed(), listing, set(), first_poll=True, url_changed=True)  # another feed altogether
    assert other.first_poll and not other.moved and queued(other) == []
    assert decide_poll(feed(), listing, set(), first_poll=True).first_poll  # a new feed
