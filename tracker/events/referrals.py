"""Which share channel brought a reader: the referrer's host, or the page's utm_source."""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qs, urlsplit

# Host (or a parent domain of it) -> channel.
REFERRER_HOSTS: Final = {
    "t.me": "telegram",
    "telegram.me": "telegram",
    "telegram.org": "telegram",
    "facebook.com": "facebook",
    "fb.com": "facebook",
    "fb.me": "facebook",
    "messenger.com": "facebook",
    "x.com": "twitter",
    "twitter.com": "twitter",
    "t.co": "twitter",
    "wa.me": "whatsapp",
    "whatsapp.com": "whatsapp",
    "vk.com": "vk",
    "vk.ru": "vk",
    "vk.cc": "vk",
    "linkedin.com": "linkedin",
    "lnkd.in": "linkedin",
    "reddit.com": "reddit",
    "redd.it": "reddit",
    "mail.google.com": "email",
    "outlook.live.com": "email",
    "outlook.office.com": "email",
    "outlook.office365.com": "email",
    "mail.yahoo.com": "email",
    "mail.yandex.ru": "email",
    "e.mail.ru": "email",
    "mail.proton.me": "email",
}
UTM_SOURCES: Final = {
    "telegram": "telegram",
    "tg": "telegram",
    "facebook": "facebook",
    "fb": "facebook",
    "twitter": "twitter",
    "x": "twitter",
    "whatsapp": "whatsapp",
    "wa": "whatsapp",
    "vk": "vk",
    "vkontakte": "vk",
    "linkedin": "linkedin",
    "reddit": "reddit",
    "email": "email",
    "e-mail": "email",
    "mail": "email",
    "newsletter": "email",
}


def _host_channel(host: str) -> str | None:
    host = host.lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    while host:
        channel = REFERRER_HOSTS.get(host)
        if channel is not None:
            return channel
        _, _, host = host.partition(".")
    return None


def referral_channel(referrer: str | None, page_url: str | None) -> str | None:
    """The channel a view came from, or None (direct, search, other sites)."""
    if page_url:
        try:
            query = parse_qs(urlsplit(page_url).query)
        except ValueError:
            query = {}
        for source in query.get("utm_source", ()):
            channel = UTM_SOURCES.get(source.strip().lower())
            if channel is not None:
                return channel
    if referrer:
        try:
            host = urlsplit(referrer).hostname
        except ValueError:
            return None
        if host:
            return _host_channel(host)
    return None
