"""One event's enrichment, in the column order of the `events` table (migration 0007)."""

from __future__ import annotations

import msgspec

from pulse.enrichment.referrer import TrafficSource, traffic_source
from pulse.enrichment.useragent import UserAgentInfo, parse_user_agent
from pulse.events.message import AnyEvent

COLUMNS = UserAgentInfo._fields + TrafficSource._fields


def enrich(event: AnyEvent, page_host: str, query: str) -> tuple[str, ...]:
    """`page_host` and `query` come from the page URL, which the caller has already split."""
    if event.enrichment is not None:
        return msgspec.structs.astuple(event.enrichment)
    return parse_user_agent(event.user_agent) + traffic_source(event.referrer, page_host, query)
