"""Campaign tags of a page URL: the five UTM parameters and the ad networks' click ids."""

from __future__ import annotations

import functools
import re
from typing import NamedTuple
from urllib.parse import parse_qsl, urlencode

MAX_TAG = 200

# Query parameters an ad network appends to the links of its paid placements → that network.
# Not fbclid: Meta appends it to every outbound link, organic posts included, so it does not
# mean paid; such visits fall back to their referrer (Facebook, social).
CLICK_IDS = {
    "gclid": "Google",
    "gbraid": "Google",
    "wbraid": "Google",
    "dclid": "Google",
    "msclkid": "Bing",
    "ttclid": "TikTok",
    "twclid": "X",
    "li_fat_id": "LinkedIn",
}

_UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
# Every query with a tag holds one of these: most pages' queries hold none and are not parsed.
_MARKER = re.compile("|".join(re.escape(key) for key in ("utm_", *CLICK_IDS)), re.IGNORECASE)


class CampaignTags(NamedTuple):
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_content: str = ""
    utm_term: str = ""
    # The network of the first click id in the query, '' when there is none. Not a column.
    click_network: str = ""


NO_TAGS = CampaignTags()


# Keyed by the whole query: visitors of one campaign follow the same tagged link.
@functools.lru_cache(maxsize=4_096)
def campaign_tags(query: str) -> CampaignTags:
    """UTM values decoded, trimmed, at most MAX_TAG characters; the first of a repeated key wins."""
    if not query or _MARKER.search(query) is None:
        return NO_TAGS
    found: dict[str, str] = {}
    click = ""
    for key, value in parse_qsl(query, errors="replace"):
        name = key.strip().lower()
        if name.startswith("utm_"):
            if name in _UTM_KEYS and name not in found and (value := value.strip()):
                found[name] = value[:MAX_TAG]
        elif not click and name in CLICK_IDS and value:
            click = CLICK_IDS[name]
    if not found and not click:
        return NO_TAGS
    return CampaignTags(**found, click_network=click)


def tagged_query(query: str) -> str:
    """Only the parameters enrichment reads (UTM tags and click ids), in their order.

    What leaves the pipeline to be kept (archives, webhooks) carries no other query parameter:
    those can hold anything a site puts in its links, e-mail addresses and tokens included.
    """
    if not query or _MARKER.search(query) is None:
        return ""
    kept = [
        (key, value)
        for key, value in parse_qsl(query, keep_blank_values=True, errors="replace")
        if (name := key.strip().lower()).startswith("utm_") or name in CLICK_IDS
    ]
    return urlencode(kept)
