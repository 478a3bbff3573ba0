"""Referrer and campaign tags → traffic source and channel.

The known referring sites are a compact table in code: PyPI has no maintained referrer list
(referer-parser was last released in 2016, pyreferrer in 2021). The table is data, host
suffix → (source, channel), plus brands that own a domain under many country TLDs (google.de,
google.co.uk…) and app ids for Android's ``android-app://`` referrers. Adding a site is adding
a line.

Channel, first rule that applies wins:

1. Campaign tags of the page URL override the referrer:
   - ``utm_medium`` cpc, ppc, cpm, cpv, cpa, display, banner, ads or ``paid*`` → ``paid``;
     email, e-mail, newsletter → ``email``; ``social*``, sm → ``social``; organic → ``search``;
     referral → ``referral``;
   - otherwise a click id (gclid, gbraid, wbraid, dclid, msclkid, ttclid, twclid,
     li_fat_id) → ``paid``;
   - otherwise the referrer's channel (below) when there is an outside referrer, else the
     channel of a known ``utm_source`` (``google`` → search), else ``referral``.
   The source is then the ``utm_source`` (a known name or host is spelled as in the table:
   ``fb`` → Facebook), else the click id's network, else the referrer's source.
2. No referrer, or one that is not a web or app address (``about:blank``, garbage) → ``direct``,
   source ''.
3. The referrer's host is the page's host (``www.`` aside) → ``internal``: a same-site
   navigation is not a referral. Source is the host.
4. A known host → its table entry (``search``, ``social``, ``email``, ``paid`` or ``referral``);
   an unknown host whose first label is ``mail`` or ``webmail`` → ``email``.
5. Any other host → ``referral``, the source being the host without ``www.``; an unknown app
   is its package id.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from pulse.enrichment.utm import NO_TAGS, CampaignTags, campaign_tags

DIRECT = "direct"
SEARCH = "search"
SOCIAL = "social"
EMAIL = "email"
PAID = "paid"
REFERRAL = "referral"
INTERNAL = "internal"

MAX_SOURCE = 253

# Host suffix → (source, channel). The longest suffix of a host found here wins.
SITES: dict[str, tuple[str, str]] = {
    # search
    "bing.com": ("Bing", SEARCH),
    "duckduckgo.com": ("DuckDuckGo", SEARCH),
    "baidu.com": ("Baidu", SEARCH),
    "ecosia.org": ("Ecosia", SEARCH),
    "search.brave.com": ("Brave Search", SEARCH),
    "startpage.com": ("Startpage", SEARCH),
    "qwant.com": ("Qwant", SEARCH),
    "kagi.com": ("Kagi", SEARCH),
    "naver.com": ("Naver", SEARCH),
    "seznam.cz": ("Seznam", SEARCH),
    "ya.ru": ("Yandex", SEARCH),
    "search.aol.com": ("AOL", SEARCH),
    "ask.com": ("Ask", SEARCH),
    "perplexity.ai": ("Perplexity", SEARCH),
    "you.com": ("You.com", SEARCH),
    # Google properties that are not its search
    "news.google.com": ("Google News", REFERRAL),
    "play.google.com": ("Google Play", REFERRAL),
    "mail.google.com": ("Gmail", EMAIL),
    "docs.google.com": ("Google Docs", REFERRAL),
    "googleadservices.com": ("Google Ads", PAID),
    "doubleclick.net": ("Google Ads", PAID),
    "syndicatedsearch.goog": ("Google Ads", PAID),
    # social
    "facebook.com": ("Facebook", SOCIAL),
    "fb.com": ("Facebook", SOCIAL),
    "fb.me": ("Facebook", SOCIAL),
    "messenger.com": ("Facebook", SOCIAL),
    "instagram.com": ("Instagram", SOCIAL),
    "threads.net": ("Threads", SOCIAL),
    "threads.com": ("Threads", SOCIAL),
    "twitter.com": ("X", SOCIAL),
    "x.com": ("X", SOCIAL),
    "t.co": ("X", SOCIAL),
    "linkedin.com": ("LinkedIn", SOCIAL),
    "lnkd.in": ("LinkedIn", SOCIAL),
    "reddit.com": ("Reddit", SOCIAL),
    "redd.it": ("Reddit", SOCIAL),
    "news.ycombinator.com": ("Hacker News", SOCIAL),
    "lobste.rs": ("Lobsters", SOCIAL),
    "youtube.com": ("YouTube", SOCIAL),
    "youtu.be": ("YouTube", SOCIAL),
    "tiktok.com": ("TikTok", SOCIAL),
    "bsky.app": ("Bluesky", SOCIAL),
    "mastodon.social": ("Mastodon", SOCIAL),
    "mastodon.online": ("Mastodon", SOCIAL),
    "tumblr.com": ("Tumblr", SOCIAL),
    "quora.com": ("Quora", SOCIAL),
    "vk.com": ("VK", SOCIAL),
    "weibo.com": ("Weibo", SOCIAL),
    "t.me": ("Telegram", SOCIAL),
    "web.telegram.org": ("Telegram", SOCIAL),
    "whatsapp.com": ("WhatsApp", SOCIAL),
    "discord.com": ("Discord", SOCIAL),
    "slack.com": ("Slack", SOCIAL),
    "producthunt.com": ("Product Hunt", SOCIAL),
    "snapchat.com": ("Snapchat", SOCIAL),
    # email and newsletters
    "outlook.live.com": ("Outlook", EMAIL),
    "outlook.office.com": ("Outlook", EMAIL),
    "outlook.office365.com": ("Outlook", EMAIL),
    "mail.yahoo.com": ("Yahoo Mail", EMAIL),
    "mail.proton.me": ("Proton Mail", EMAIL),
    "mail.aol.com": ("AOL Mail", EMAIL),
    "mail.zoho.com": ("Zoho Mail", EMAIL),
    "fastmail.com": ("Fastmail", EMAIL),
    "substack.com": ("Substack", EMAIL),
    "buttondown.email": ("Buttondown", EMAIL),
    "buttondown.com": ("Buttondown", EMAIL),
    "beehiiv.com": ("beehiiv", EMAIL),
    "mailchi.mp": ("Mailchimp", EMAIL),
    "list-manage.com": ("Mailchimp", EMAIL),
    "ck.page": ("Kit", EMAIL),
    "convertkit-mail.com": ("Kit", EMAIL),
    "ghost.io": ("Ghost", EMAIL),
    # referral, named
    "github.com": ("GitHub", REFERRAL),
    "gitlab.com": ("GitLab", REFERRAL),
    "stackoverflow.com": ("Stack Overflow", REFERRAL),
    "wikipedia.org": ("Wikipedia", REFERRAL),
    "medium.com": ("Medium", REFERRAL),
    "dev.to": ("DEV", REFERRAL),
    "chatgpt.com": ("ChatGPT", REFERRAL),
    "chat.openai.com": ("ChatGPT", REFERRAL),
}

# A label that names the site whatever country TLD follows it: google.de, google.co.uk,
# google.com.br, yandex.ru. Only when nothing but TLD-like labels follow (not google.example.com).
BRANDS: dict[str, tuple[str, str]] = {
    "google": ("Google", SEARCH),
    "bing": ("Bing", SEARCH),
    "yahoo": ("Yahoo", SEARCH),
    "yandex": ("Yandex", SEARCH),
    "pinterest": ("Pinterest", SOCIAL),
}
_TLD_LIKE = frozenset({"com", "co", "net", "org", "gov", "edu", "ac"})

# Android app id (an ``android-app://ID/...`` referrer) → (source, channel).
APPS: dict[str, tuple[str, str]] = {
    "com.google.android.googlequicksearchbox": ("Google", SEARCH),
    "com.google.android.gm": ("Gmail", EMAIL),
    "com.microsoft.office.outlook": ("Outlook", EMAIL),
    "com.google.android.youtube": ("YouTube", SOCIAL),
    "com.facebook.katana": ("Facebook", SOCIAL),
    "com.facebook.orca": ("Facebook", SOCIAL),
    "com.instagram.android": ("Instagram", SOCIAL),
    "com.twitter.android": ("X", SOCIAL),
    "com.linkedin.android": ("LinkedIn", SOCIAL),
    "com.reddit.frontpage": ("Reddit", SOCIAL),
    "org.telegram.messenger": ("Telegram", SOCIAL),
    "com.whatsapp": ("WhatsApp", SOCIAL),
    "com.slack": ("Slack", SOCIAL),
    "com.discord": ("Discord", SOCIAL),
}

# What a lower-cased utm_source may say for a site of the table, besides its host.
SOURCE_ALIASES: dict[str, tuple[str, str]] = {
    "google": BRANDS["google"],
    "bing": BRANDS["bing"],
    "yahoo": BRANDS["yahoo"],
    "duckduckgo": SITES["duckduckgo.com"],
    "facebook": SITES["facebook.com"],
    "fb": SITES["facebook.com"],
    "instagram": SITES["instagram.com"],
    "ig": SITES["instagram.com"],
    "twitter": SITES["x.com"],
    "x": SITES["x.com"],
    "linkedin": SITES["linkedin.com"],
    "reddit": SITES["reddit.com"],
    "hackernews": SITES["news.ycombinator.com"],
    "hacker news": SITES["news.ycombinator.com"],
    "hn": SITES["news.ycombinator.com"],
    "youtube": SITES["youtube.com"],
    "tiktok": SITES["tiktok.com"],
    "bluesky": SITES["bsky.app"],
    "mastodon": SITES["mastodon.social"],
    "github": SITES["github.com"],
    "substack": SITES["substack.com"],
    "newsletter": ("Newsletter", EMAIL),
    "email": ("Email", EMAIL),
}

_PAID_MEDIA = frozenset({"cpc", "ppc", "cpm", "cpv", "cpa", "display", "banner", "ad", "ads"})
_EMAIL_MEDIA = frozenset({"email", "e-mail", "e_mail", "mail", "newsletter"})

# scheme://[userinfo@]host — the host up to a port, path, query or fragment.
_ADDRESS = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://(?:[^/?#@]*@)?(\[[^\]/?#]*\]|[^/?#:]*)")
_HOST = re.compile(r"^(?:[a-z0-9_-]+\.)*[a-z0-9_-]+$|^\[[0-9a-f:.]+\]$")
_WEB = frozenset({"http", "https"})
_APP = frozenset({"android-app", "ios-app"})


class TrafficSource(NamedTuple):
    source: str
    channel: str
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_content: str = ""
    utm_term: str = ""


def traffic_source(referrer: str, page_host: str, query: str = "") -> TrafficSource:
    """`page_host` is the page's lower-case host, `query` its URL's query string. Never raises."""
    untagged = _untagged(referrer, page_host)
    if not query:
        return untagged
    tags = campaign_tags(query)
    return untagged if tags is NO_TAGS else _tagged(untagged.source, untagged.channel, tags)


# Keyed by the whole referrer: the same links are followed again and again, and a hit then costs
# one lookup. A referrer is at most 2 KiB (the collector's limit), so the cache is bounded too.
@functools.lru_cache(maxsize=8_192)
def _untagged(referrer: str, page_host: str) -> TrafficSource:
    if not referrer:
        return _DIRECT
    address = _address(referrer)
    if address is None:
        return _DIRECT
    scheme, host = address
    if scheme == "app":
        return TrafficSource(*APPS.get(host, (host, REFERRAL)))
    if host == page_host or _bare(host) == _bare(page_host):
        return TrafficSource(_bare(host), INTERNAL)
    return TrafficSource(*classify_host(host))


_DIRECT = TrafficSource("", DIRECT)


def _address(referrer: str) -> tuple[str, str] | None:
    """("web" | "app", lower-case host) of a referrer, None when it is neither."""
    match = _ADDRESS.match(referrer)
    if match is None:
        return None
    scheme = match[1].lower()
    host = match[2].lower().rstrip(".")
    if not host or len(host) > MAX_SOURCE or not _HOST.match(host):
        return None
    if scheme in _WEB:
        return "web", host
    if scheme in _APP:
        return "app", host
    return None


@functools.lru_cache(maxsize=8_192)
def classify_host(host: str) -> tuple[str, str]:
    """(source, channel) of an outside web host, lower case: the table, else (host, referral)."""
    labels = host.split(".")
    for i in range(len(labels) - 1):
        if known := SITES.get(".".join(labels[i:])):
            return known
    for i, label in enumerate(labels[:-1]):
        tail = labels[i + 1 :]
        if label in BRANDS and all(len(t) == 2 or t in _TLD_LIKE for t in tail):
            return BRANDS[label]
    bare = _bare(host)
    if labels[0] in ("mail", "webmail"):
        return bare, EMAIL
    return bare, REFERRAL


def _bare(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


@functools.lru_cache(maxsize=4_096)
def _tagged(source: str, channel: str, tags: CampaignTags) -> TrafficSource:
    """The rule 1 of the module docstring; `source` and `channel` are the referrer's."""
    named = _named_source(tags.utm_source) if tags.utm_source else None
    if tags.utm_source:
        source = named[0] if named else tags.utm_source
    elif tags.click_network:
        source = tags.click_network
    tagged_channel = _medium_channel(tags.utm_medium.lower()) if tags.utm_medium else None
    if tagged_channel is None:
        if tags.click_network:
            tagged_channel = PAID
        elif channel not in (DIRECT, INTERNAL):
            tagged_channel = channel
        else:
            tagged_channel = named[1] if named else REFERRAL
    return TrafficSource(
        source[:MAX_SOURCE],
        tagged_channel,
        tags.utm_source,
        tags.utm_medium,
        tags.utm_campaign,
        tags.utm_content,
        tags.utm_term,
    )


def _named_source(utm_source: str) -> tuple[str, str] | None:
    lowered = utm_source.lower()
    if known := SOURCE_ALIASES.get(lowered):
        return known
    if "." in lowered and _HOST.match(lowered):
        source, channel = classify_host(lowered)
        if source != _bare(lowered):
            return source, channel
    return None


def _medium_channel(medium: str) -> str | None:
    if medium in _PAID_MEDIA or medium.startswith("paid"):
        return PAID
    if medium in _EMAIL_MEDIA:
        return EMAIL
    if medium.startswith("social") or medium == "sm":
        return SOCIAL
    if medium == "organic":
        return SEARCH
    if medium == "referral":
        return REFERRAL
    return None
