"""An event may carry its own `id`: a retry with the same id within an hour is acknowledged
and not counted again, so a client may retry after a 503 whose write did happen."""

from __future__ import annotations

import time

from tests.helpers import Client, Clock, MakeClient, post_events, sample, stats, view
from tracker.core.settings import Settings
from tracker.web.app_keys import SNIPPET


async def test_a_retried_event_counts_once(client: Client) -> None:
    first = await post_events(client, view("idem", id="k3v9-1"))
    retry = await post_events(client, view("idem", id="k3v9-1"))
    other = await post_events(client, view("idem", id="k3v9-2"))

    assert (first, retry, other) == (202, 202, 202)
    assert (await stats(client, "idem"))["views"] == 2
    assert sample(client, "tracker_events_ignored_total", reason="retried") == 1


async def test_a_retried_engage_event_is_one_retried_event(
    settings: Settings, make_client: MakeClient
) -> None:
    """An engage event adds several counters (seconds, an engaged reader, quarters), each
    guarded by its part's id; a retry is still one event not counted, as accepted is one."""
    clock = Clock(time.time())
    client = await make_client(settings, clock=clock)
    assert await post_events(client, view("idem-e")) == 202
    clock.now += 60
    engage = {"type": "engage", "article_id": "idem-e", "engaged_s": 40, "depth": 50, "id": "e1"}
    assert await post_events(client, engage) == 202
    assert await post_events(client, engage) == 202

    assert sample(client, "tracker_events_ignored_total", reason="retried") == 1
    assert sample(client, "tracker_events_accepted_total", type="engage") == 2
    assert sample(client, "tracker_events_counted_total") == 2  # the view and the engage
    assert (await stats(client, "idem-e"))["engaged_avg_s"] == 40
    assert (await stats(client, "idem-e"))["engaged_readers"] == 1


async def test_the_same_id_on_another_article_is_another_event(client: Client) -> None:
    await post_events(client, view("idem-a", id="same"), view("idem-b", id="same"))
    assert [(await stats(client, a))["views"] for a in ("idem-a", "idem-b")] == [1, 1]


async def test_events_without_an_id_all_count(client: Client) -> None:
    await post_events(client, view("no-id"), view("no-id"))
    assert (await stats(client, "no-id"))["views"] == 2


async def test_an_id_is_validated(client: Client) -> None:
    response = await client.post("/api/v1/events", json=view("idem-bad", id="x" * 65))
    body = await response.json()
    assert response.status == 400
    assert body["detail"]["field"] == "id"


async def test_tracker_js_sends_an_id_with_each_event(client: Client) -> None:
    assert b"id:Math.random().toString(36)" in client.app[SNIPPET].script.replace(b" ", b"")
