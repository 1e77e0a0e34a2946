"""Which share channel brought a reader: the referrer's host, or the page's utm_source."""

from __future__ import annotations

import pytest

from tests.helpers import Client, MakeClient, flush, sample, stats, view
from tracker.core.settings import Settings
from tracker.events.referrals import referral_channel

PAGE = "https://news.example/2026/story"

# (referrer, the page's url, channel)
CASES: list[tuple[str | None, str | None, str | None]] = [
    # Telegram.
    ("https://t.me/somechannel/1234", None, "telegram"),
    ("https://telegram.me/somechannel", None, "telegram"),
    ("https://web.telegram.org/k/", None, "telegram"),
    # Facebook, its link shim and mobile site.
    ("https://l.facebook.com/l.php?u=https%3A%2F%2Fnews.example%2F", None, "facebook"),
    ("https://m.facebook.com/", None, "facebook"),
    ("https://www.facebook.com/", None, "facebook"),
    ("https://lm.facebook.com/l.php?u=x", None, "facebook"),
    # X / Twitter and its shortener.
    ("https://x.com/someone/status/1", None, "twitter"),
    ("https://t.co/AbCdEf", None, "twitter"),
    ("https://twitter.com/", None, "twitter"),
    ("https://mobile.twitter.com/", None, "twitter"),
    # WhatsApp.
    ("https://wa.me/15551234567", None, "whatsapp"),
    ("https://web.whatsapp.com/", None, "whatsapp"),
    # VK and its away page.
    ("https://vk.com/feed", None, "vk"),
    ("https://away.vk.com/away.php?to=x", None, "vk"),
    ("https://m.vk.com/", None, "vk"),
    # LinkedIn and its shortener.
    ("https://www.linkedin.com/feed/", None, "linkedin"),
    ("https://lnkd.in/abc", None, "linkedin"),
    # Reddit.
    ("https://www.reddit.com/r/news/", None, "reddit"),
    ("https://out.reddit.com/t3_x?url=y", None, "reddit"),
    ("https://old.reddit.com/", None, "reddit"),
    # Web mail.
    ("https://mail.google.com/mail/u/0/", None, "email"),
    ("https://outlook.live.com/mail/0/inbox", None, "email"),
    # Spelling: case, a trailing dot, a port.
    ("HTTPS://T.ME/x", None, "telegram"),
    ("https://t.me./x", None, "telegram"),
    ("https://t.me:443/x", None, "telegram"),
    # Not a share channel.
    ("https://www.google.com/", None, None),
    ("https://google.com/search?q=news", None, None),
    ("https://notvk.com/", None, None),
    ("https://vk.com.evil.example/", None, None),
    ("https://mail.google.com.evil.example/", None, None),
    ("https://google.com/mail", None, None),
    ("https://news.example/", None, None),
    ("android-app://org.telegram.messenger/", None, None),
    (None, None, None),
    ("", "", None),
    # utm_source on the page's address, any case; it wins over the referrer.
    (None, PAGE + "?utm_source=tg", "telegram"),
    (None, PAGE + "?utm_source=telegram&utm_medium=social", "telegram"),
    (None, PAGE + "?utm_source=Telegram", "telegram"),
    (None, PAGE + "?utm_source=newsletter", "email"),
    (None, PAGE + "?utm_medium=x&utm_source=fb", "facebook"),
    ("https://t.me/x", PAGE + "?utm_source=newsletter", "email"),
    # An unknown utm_source falls back to the referrer.
    ("https://t.me/x", PAGE + "?utm_source=partner", "telegram"),
    (None, PAGE + "?utm_source=partner", None),
    (None, PAGE + "?utm_source=", None),
    (None, PAGE, None),
    # Malformed addresses: no channel, no error.
    ("https://[::1/x", None, None),
    ("http://[not-an-ip]/", None, None),
    ("t.me/x", None, None),  # no scheme: no host
    ("not a url at all", None, None),
    ("https://", None, None),
    ("https://[::1/x", PAGE + "?utm_source=tg", "telegram"),
    (None, "https://[::1/?utm_source=tg", None),
    ("https://t.me/x", "https://[::1/?utm_source=newsletter", "telegram"),
]


@pytest.mark.parametrize(("referrer", "page_url", "expected"), CASES)
def test_referral_channel(referrer: str | None, page_url: str | None, expected: str | None) -> None:
    assert referral_channel(referrer, page_url) == expected


@pytest.fixture
async def deduping(settings: Settings, make_client: MakeClient) -> Client:
    return await make_client(settings.with_overrides(dedup_window_s=600))


async def test_view_from_telegram_counts_a_referral_once(deduping: Client) -> None:
    came = view("ref-1", referrer="https://t.me/newsroom/812", url=PAGE)
    assert (await deduping.post("/api/v1/events", json=came)).status == 202

    body = await stats(deduping, "ref-1")
    assert body["views"] == 1
    assert body["referrals"]["telegram"] == 1
    assert sum(body["referrals"].values()) == 1
    assert body["shares_total"] == 0  # a referral is not a share

    # A reload: neither the view nor the referral counts again.
    assert (await deduping.post("/api/v1/events", json=came)).status == 202
    await flush(deduping)
    assert (await deduping.post("/api/v1/events", json=came)).status == 202

    body = await stats(deduping, "ref-1")
    assert body["views"] == 1
    assert body["referrals"]["telegram"] == 1
    assert sample(deduping, "tracker_events_ignored_total", reason="duplicate") == 2.0


async def test_direct_view_counts_no_referral(deduping: Client) -> None:
    direct = view("ref-2", referrer="https://www.google.com/", url=PAGE)
    assert (await deduping.post("/api/v1/events", json=direct)).status == 202
    body = await stats(deduping, "ref-2")
    assert body["views"] == 1
    assert sum(body["referrals"].values()) == 0


async def test_referrals_per_channel_from_several_readers(client: Client) -> None:
    sent = [
        ("https://t.me/a", PAGE),
        ("https://l.facebook.com/l.php", PAGE),
        (None, PAGE + "?utm_source=newsletter"),
        ("https://away.vk.com/away.php", PAGE),
        (None, PAGE),
    ]
    for referrer, url in sent:
        event = (
            view("ref-3", url=url)
            if referrer is None
            else view("ref-3", referrer=referrer, url=url)
        )
        assert (await client.post("/api/v1/events", json=event)).status == 202

    await flush(client)

    body = await stats(client, "ref-3")
    assert body["views"] == 5
    assert {k: v for k, v in body["referrals"].items() if v} == {
        "telegram": 1,
        "facebook": 1,
        "email": 1,
        "vk": 1,
    }
