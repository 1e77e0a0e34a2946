"""The stats cache answers every read after the first without waiting: past its time an
entry is still answered while one refresh per article runs in the background, until the
answers' max-age; then a read waits for fresh counts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest

from tests.conftest import wait_until
from tests.helpers import MakeClient, post_events, stats, view
from tracker.core.settings import Settings
from tracker.reports.stats import ArticleStats
from tracker.reports.statscache import REFRESH_GATHER_S, Fetch, StatsCache, _zero_stats


class Source:
    """What the cache reads: counts that grow by one each time they are read."""

    def __init__(self) -> None:
        self.views = 0
        self.fetches: list[list[str]] = []
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self, ids: list[str]) -> list[ArticleStats]:
        self.fetches.append(ids)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("PostgreSQL went away")
        self.views += 1
        return [msgspec.structs.replace(_zero_stats(a), views=self.views) for a in ids]


def views_of(body: bytes) -> int:
    return int(msgspec.json.decode(body)["views"])


MakeCache = Callable[..., StatsCache]


@pytest.fixture
async def make_cache() -> AsyncIterator[MakeCache]:
    """StatsCaches closed when the test ends (no refresh outlives its loop)."""
    made: list[StatsCache] = []

    def make(fetch: Fetch, **options: float) -> StatsCache:
        made.append(StatsCache(fetch, **options))
        return made[-1]

    yield make
    for cache in made:
        await cache.close()


async def settle() -> None:
    """Past the time refreshes gather in, and the steps their fetches take."""
    await asyncio.sleep(REFRESH_GATHER_S + 0.01)
    for _ in range(5):
        await asyncio.sleep(0)


async def test_past_its_time_an_entry_is_answered_and_refreshed_once(make_cache: MakeCache) -> None:
    source = Source()
    cache = make_cache(source, ttl_s=0.05, max_age_s=5.0)
    assert views_of((await cache.one("a")).body) == 1
    await asyncio.sleep(0.06)
    source.gate = asyncio.Event()

    # 50 reads past the entry's time: all answered at once, from the entry; one refresh.
    answers = [cache.found("a") for _ in range(50)]
    assert all(a is not None and views_of(a.body) == 1 for a in answers)
    await settle()
    assert len(source.fetches) == 2
    assert cache.refreshes == 1

    source.gate.set()
    await settle()
    fresh = await cache.one("a")
    assert views_of(fresh.body) == 2
    assert fresh.etag != answers[0].etag  # type: ignore[union-attr]
    assert len(source.fetches) == 2


async def test_past_max_age_a_read_waits_for_fresh_counts(make_cache: MakeCache) -> None:
    source = Source()
    cache = make_cache(source, ttl_s=0.02, max_age_s=0.05)
    await cache.one("a")
    await asyncio.sleep(0.06)

    assert cache.found("a") is None
    assert views_of((await cache.one("a")).body) == 2


async def test_a_failed_refresh_leaves_the_entry_served_and_is_not_raised(
    make_cache: MakeCache,
) -> None:
    source = Source()
    cache = make_cache(source, ttl_s=0.02, max_age_s=5.0)
    await cache.one("a")
    await asyncio.sleep(0.03)
    source.fail = True

    answer = await cache.one("a")  # answered from the entry; its refresh fails
    await settle()
    assert views_of(answer.body) == 1
    again = await cache.one("a")  # still served, and a refresh tried again
    await settle()
    assert views_of(again.body) == 1
    assert cache.refreshes == 2

    source.fail = False
    await cache.one("a")
    await settle()
    assert views_of((await cache.one("a")).body) == 2


async def test_a_miss_does_not_wait_for_the_refreshes_gathering(make_cache: MakeCache) -> None:
    source = Source()
    cache = make_cache(source, ttl_s=0.02, max_age_s=5.0)
    await cache.get(["a"])
    await asyncio.sleep(0.03)

    results = await cache.get(["a", "b", "a"])
    assert results[0].body == results[2].body
    assert source.fetches[-1] == ["b"]  # at once; "a" is answered from its entry
    await settle()
    assert source.fetches[-1] == ["a"]


async def test_many_ids_past_their_time_refresh_together(make_cache: MakeCache) -> None:
    source = Source()
    cache = make_cache(source, ttl_s=0.02, max_age_s=5.0)
    ids = [f"a{n}" for n in range(250)]
    await cache.get(ids)
    await asyncio.sleep(0.03)

    await cache.get(ids)  # answered from the entries
    await settle()
    assert cache.refreshes == 250
    assert sorted(len(f) for f in source.fetches[-3:]) == [50, 100, 100]


@pytest.mark.parametrize("article_id", ["a", 'news/2026/ü "quoted"', "x" * 128])
def test_the_zero_answer_is_the_encoded_zero_stats(article_id: str) -> None:
    from tracker.reports.statscache import Cached, _zero

    shared = Cached(b"", b"", "", 1.0, 2.0)
    assert _zero(article_id, shared).body == msgspec.json.encode(_zero_stats(article_id))


async def test_an_article_with_nothing_counted_has_one_etag_first_read_and_after(
    make_cache: MakeCache,
) -> None:
    """Its answer is made on each read (one shared empty entry): the ETag is a constant,
    not a hash made per read, and the first read (a miss) answers the same one."""
    from tracker.reports.statscache import ZERO_ETAG

    async def nothing_counted(ids: list[str]) -> list[ArticleStats]:
        return [_zero_stats(a) for a in ids]

    cache = make_cache(nothing_counted, ttl_s=5.0, max_age_s=5.0)
    first = await cache.one("zero-a")
    again = cache.found("zero-a")
    assert again is not None
    assert first.etag == again.etag == ZERO_ETAG
    assert first.body == again.body == msgspec.json.encode(_zero_stats("zero-a"))
    counted = await make_cache(Source(), ttl_s=5.0, max_age_s=5.0).one("zero-a")
    assert counted.etag != ZERO_ETAG


async def test_closing_cancels_refreshes_in_flight(make_cache: MakeCache) -> None:
    source = Source()
    cache = make_cache(source, ttl_s=0.02, max_age_s=5.0)
    await cache.one("a")
    await asyncio.sleep(0.03)
    source.gate = asyncio.Event()
    cache.found("a")
    await settle()

    await cache.close()
    assert not cache._tasks


async def test_a_listing_is_reused_for_the_caches_time_from_when_it_was_made(
    make_cache: MakeCache,
) -> None:
    from tracker.reports.listings import Listings

    source = Source()
    cache = make_cache(source, ttl_s=0.2, max_age_s=5.0)
    listings = Listings(cache)
    query, ids = "ids=a,b,never-counted", ["a", "b", "never-counted"]
    first = listings.keep(query, await cache.get(ids))

    assert listings.found(query) is first
    assert listings.found("ids=a,b") is None  # another list
    await asyncio.sleep(0.21)
    assert listings.found(query) is None  # its time is past: made again
    again = listings.keep(query, await cache.get(ids))
    assert again.body == first.body  # from the entries, served while they refresh
    await settle()
    # Its articles refreshed meanwhile; the listing is kept for its own time still.
    assert listings.found(query) is again
    await asyncio.sleep(0.21)
    assert listings.found(query) is None
    fresh = listings.keep(query, await cache.get(ids))
    assert fresh.body != first.body
    assert fresh.etag != first.etag


async def test_a_listing_is_not_kept_past_its_entries_expiry(make_cache: MakeCache) -> None:
    from tracker.reports.listings import Listings

    cache = make_cache(Source(), ttl_s=0.05, max_age_s=0.05)
    listings = Listings(cache)
    await cache.get(["a"])
    await asyncio.sleep(0.03)
    listing = listings.keep("ids=a", await cache.get(["a"]))  # an entry 30 ms old
    assert listing.refresh_at - time.monotonic() < 0.03


async def test_listings_are_bounded(make_cache: MakeCache) -> None:
    from tracker.reports.listings import Listings

    cache = make_cache(Source(), ttl_s=5.0, max_age_s=5.0)
    listings = Listings(cache, max_listings=3)
    for n in range(10):
        listings.keep(f"ids=a{n}", await cache.get([f"a{n}"]))
    assert listings.found("ids=a9") is not None
    assert listings.found("ids=a0") is None
    assert len(listings._listings) == 3


async def test_through_http_a_page_and_a_listing_see_new_counts_one_refresh_later(
    settings: Settings, make_client: MakeClient
) -> None:
    client = await make_client(settings.with_overrides(stats_cache_s=0.2, stats_max_age_s=5))
    await post_events(client, view("fresh-1"), view("fresh-2"))
    listing = "/api/v1/articles/stats?ids=fresh-1,fresh-2"
    first = await (await client.get(listing)).json()
    assert (await stats(client, "fresh-1"))["views"] == 1

    await post_events(client, view("fresh-1", url="https://news.example/1"))
    await asyncio.sleep(0.25)
    # Past the cache's time: answered at once from what it holds, and refreshed meanwhile.
    assert await (await client.get(listing)).json() == first
    assert (await stats(client, "fresh-1"))["views"] == 1

    async def refreshed() -> bool:
        body = await (await client.get(listing)).json()
        page = await stats(client, "fresh-1")
        return bool(body["articles"][0]["views"] == 2 and page["views"] == 2)

    await wait_until(refreshed, timeout_s=2)
