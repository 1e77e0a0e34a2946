"""Who is a reader: real User-Agent strings classified, and what bots and preview
fetchers do to the counts over HTTP."""

from __future__ import annotations

import aiohttp
import pytest

from tests.helpers import Client, sample, share, stats, view
from tracker.events.bots import BOT, HUMAN, PREVIEWER, Agent, BotClassifier
from tracker.web.app_keys import BOTS

READER = Agent(HUMAN)


def crawler() -> Agent:
    return Agent(BOT, reason="crawler")


def preview(channel: str) -> Agent:
    return Agent(PREVIEWER, channel=channel)


# (name, User-Agent as sent by the real client, what it is)
AGENTS: list[tuple[str, str, Agent]] = [
    # Desktop browsers.
    (
        "chrome-windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        READER,
    ),
    (
        "chrome-macos",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        READER,
    ),
    (
        "firefox-windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
        READER,
    ),
    (
        "firefox-linux",
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        READER,
    ),
    (
        "safari-macos",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/18.1 Safari/605.1.15",
        READER,
    ),
    (
        "edge-windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70",
        READER,
    ),
    (
        "opera-windows",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Safari/537.36 OPR/115.0.0.0",
        READER,
    ),
    (
        "yandex-browser",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 YaBrowser/24.12.0.0 Safari/537.36",
        READER,
    ),
    # Mobile browsers.
    (
        "chrome-android",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        READER,
    ),
    (
        "chrome-ios",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_7 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
        READER,
    ),
    (
        "firefox-android",
        "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
        READER,
    ),
    (
        "safari-iphone",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        READER,
    ),
    (
        "safari-ipad",
        "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.7 Mobile/15E148 Safari/604.1",
        READER,
    ),
    (
        "edge-android",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36 EdgA/131.0.2903.87",
        READER,
    ),
    (
        "samsung-internet",
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 "
        "(KHTML, like Gecko) SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36",
        READER,
    ),
    # In-app browsers: readers, although the app's name is in the agent.
    (
        "facebook-ios-fban",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/476.0.0.39.109;FBBV/630010960;"
        "FBDV/iPhone15,3;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5;"
        "FBRV/632157217]",
        READER,
    ),
    (
        "facebook-android-fb-iab",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/128.0.6613.127 Mobile Safari/537.36 "
        "[FB_IAB/FB4A;FBAV/482.0.0.50.82;]",
        READER,
    ),
    (
        "instagram-ios",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 Instagram 350.0.4.19.93 (iPhone14,5; iOS 17_6_1; "
        "en_US; en; scale=3.00; 1170x2532; 641410379)",
        READER,
    ),
    (
        "instagram-android",
        "Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/129.0.6668.81 Mobile Safari/537.36 "
        "Instagram 352.0.0.38.100 Android (33/13; 450dpi; 1080x2177; samsung; SM-A536B; a53x; "
        "s5e8825; en_US; 649290961)",
        READER,
    ),
    (
        "telegram-android-in-app",
        "Mozilla/5.0 (Linux; Android 14; SM-G991B Build/UP1A.231005.007; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.107 Mobile Safari/537.36 "
        "Telegram-Android/11.4.2 (Samsung SM-G991B; Android 14; SDK 34; AVERAGE)",
        READER,
    ),
    (
        "snapchat-ios-in-app",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 Snapchat/12.62.0.36 (like Safari/8617.2.4.10.8, panda)",
        READER,
    ),
    # Search engines, SEO and AI crawlers.
    (
        "googlebot",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        crawler(),
    ),
    (
        "googlebot-smartphone",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 "
        "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        crawler(),
    ),
    (
        "bingbot",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
        "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
        crawler(),
    ),
    ("yandexbot", "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", crawler()),
    (
        "baiduspider",
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        crawler(),
    ),
    ("duckduckbot", "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", crawler()),
    ("ahrefsbot", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", crawler()),
    (
        "semrushbot",
        "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
        crawler(),
    ),
    (
        "gptbot",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
        "+https://openai.com/gptbot)",
        crawler(),
    ),
    (
        "claudebot",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; "
        "+claudebot@anthropic.com)",
        crawler(),
    ),
    ("ccbot", "CCBot/2.0 (https://commoncrawl.org/faq/)", crawler()),
    # HTTP libraries and command-line clients.
    ("curl", "curl/8.5.0", crawler()),
    ("python-requests", "python-requests/2.32.3", crawler()),
    ("go-http-client", "Go-http-client/1.1", crawler()),
    ("go-http-client-2", "Go-http-client/2.0", crawler()),
    ("wget", "Wget/1.21.4", crawler()),
    # Headless browsers.
    (
        "headless-chrome",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/131.0.0.0 Safari/537.36",
        Agent(BOT, reason="headless"),
    ),
    (
        "phantomjs",
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
        "PhantomJS/2.1.1 Safari/538.1",
        Agent(BOT, reason="headless"),
    ),
    # No agent at all.
    ("empty", "", Agent(BOT, reason="empty")),
    ("whitespace", "  \t ", Agent(BOT, reason="empty")),
    # Link-preview fetchers: counted per channel, apart from views.
    ("telegrambot", "TelegramBot (like TwitterBot)", preview("telegram")),
    (
        "facebookexternalhit",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        preview("facebook"),
    ),
    ("facebot", "Facebot", preview("facebook")),
    (
        "meta-externalagent",
        "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)",
        preview("facebook"),
    ),
    ("twitterbot", "Twitterbot/1.0", preview("twitter")),
    ("whatsapp-android", "WhatsApp/2.23.20.0 A", preview("whatsapp")),
    ("whatsapp-ios", "WhatsApp/2.24.25.83 i", preview("whatsapp")),
    ("vkshare", "Mozilla/5.0 (compatible; vkShare; +http://vk.com/dev/Share)", preview("vk")),
    (
        "linkedinbot",
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        preview("linkedin"),
    ),
    (
        "redditbot",
        "Mozilla/5.0 (compatible; redditbot/1.0; +http://www.reddit.com/feedback)",
        preview("reddit"),
    ),
    (
        "slackbot-linkexpanding",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        preview("other"),
    ),
    (
        "discordbot",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        preview("other"),
    ),
    (
        "snap-url-preview",
        "Snap URL Preview Service; bot; snapchat; https://developers.snap.com/robots",
        preview("other"),
    ),
]

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36"
)
TELEGRAM_BOT = "TelegramBot (like TwitterBot)"
FACEBOOK_HIT = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"


def test_the_table_is_large_and_covers_every_kind() -> None:
    assert len(AGENTS) >= 30
    assert len({name for name, _, _ in AGENTS}) == len(AGENTS)
    kinds = {(agent.kind, agent.reason) for _, _, agent in AGENTS}
    assert kinds >= {
        (HUMAN, None),
        (BOT, "crawler"),
        (BOT, "empty"),
        (BOT, "headless"),
        (PREVIEWER, None),
    }


@pytest.fixture(scope="module")
def classifier() -> BotClassifier:
    return BotClassifier()


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [pytest.param(ua, agent, id=name) for name, ua, agent in AGENTS],
)
def test_classify(classifier: BotClassifier, user_agent: str, expected: Agent) -> None:
    assert classifier.classify(user_agent) == expected


def test_each_distinct_agent_is_classified_once() -> None:
    classifier = BotClassifier()
    first = classifier.classify(GOOGLEBOT)
    second = classifier.classify(GOOGLEBOT)
    assert first == second == crawler()
    assert (classifier.hits, classifier.misses, len(classifier)) == (1, 1, 1)


async def test_bot_views_are_acknowledged_not_counted_and_metered(client: Client) -> None:
    sent = [
        (GOOGLEBOT, {"events": [view("bot-a"), view("bot-a"), share("bot-a", "telegram")]}),
        ("curl/8.5.0", view("bot-a")),
        (HEADLESS, {"events": [view("bot-a"), view("bot-a")]}),
        ("", view("bot-a")),
        ("   ", view("bot-a")),
    ]
    for user_agent, body in sent:
        response = await client.post(
            "/api/v1/events", json=body, headers={"User-Agent": user_agent}
        )
        expected = len(body["events"]) if "events" in body else 1
        assert response.status == 202, await response.text()
        assert await response.json() == {"accepted": expected}

    body = await stats(client, "bot-a")
    assert body["views"] == 0
    assert body["uniques"] == 0
    assert body["shares_total"] == 0
    assert sum(body["previews"].values()) == 0
    assert (
        sample(client, "tracker_events_ignored_total", reason="crawler") == 4.0
    )  # three from Googlebot, one from curl
    assert sample(client, "tracker_events_ignored_total", reason="headless") == 2.0
    assert sample(client, "tracker_events_ignored_total", reason="empty") == 2.0
    assert sample(client, "tracker_events_ignored_total", reason="duplicate") == 0.0
    accepted = sample(client, "tracker_events_accepted_total", type="view")
    assert accepted == 0.0


async def test_a_request_without_user_agent_header_is_a_bot(client: Client) -> None:
    # A session of its own: the test client's session always sends a browser's agent.
    async with aiohttp.ClientSession(skip_auto_headers=["User-Agent"]) as session:
        response = await session.post(client.make_url("/api/v1/events"), json=view("no-ua"))
        assert "User-Agent" not in response.request_info.headers
        assert response.status == 202
    assert (await stats(client, "no-ua"))["views"] == 0
    assert sample(client, "tracker_events_ignored_total", reason="empty") == 1.0


async def test_bot_pixel_request_is_not_counted(client: Client) -> None:
    response = await client.get(
        "/p.gif", params={"a": "bot-pixel"}, headers={"User-Agent": GOOGLEBOT}
    )
    assert response.status == 200
    assert response.content_type == "image/gif"
    assert (await stats(client, "bot-pixel"))["views"] == 0
    assert sample(client, "tracker_events_ignored_total", reason="crawler") == 1.0


async def test_preview_fetchers_count_previews_per_channel_not_views(client: Client) -> None:
    for user_agent in (TELEGRAM_BOT, TELEGRAM_BOT, FACEBOOK_HIT):
        response = await client.post(
            "/api/v1/events", json=view("previewed"), headers={"User-Agent": user_agent}
        )
        assert response.status == 202
    pixel = await client.get(
        "/p.gif", params={"a": "previewed"}, headers={"User-Agent": "WhatsApp/2.23.20.0 A"}
    )
    assert pixel.status == 200
    # And a reader, for contrast.
    response = await client.post("/api/v1/events", json=view("previewed"))
    assert response.status == 202

    body = await stats(client, "previewed")
    assert body["views"] == 1
    assert body["uniques"] == 1  # previews are not readers
    assert body["previews"]["telegram"] == 2
    assert body["previews"]["facebook"] == 1
    assert body["previews"]["whatsapp"] == 1
    assert sum(body["previews"].values()) == 4
    assert body["shares_total"] == 0
    assert sum(body["referrals"].values()) == 0
    for reason in ("crawler", "empty", "headless"):
        assert sample(client, "tracker_events_ignored_total", reason=reason) == 0.0


async def test_the_app_classifies_each_agent_once(client: Client) -> None:
    bots = client.app[BOTS]
    hits, misses = bots.hits, bots.misses
    for _ in range(3):
        response = await client.post(
            "/api/v1/events", json=view("cached"), headers={"User-Agent": GOOGLEBOT}
        )
        assert response.status == 202
    assert bots.misses - misses == 1
    assert bots.hits - hits == 2
