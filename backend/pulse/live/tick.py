"""What the live layer publishes: one tick per site per counted batch, and the events it lists."""

from __future__ import annotations

import msgspec

# A tick carries at most this many of its batch's events: the live view shows a stream, not a log.
RECENT_PER_TICK = 20
# The live view renders this many rows; Redis keeps as many for a page that opens.
RECENT_KEPT = 50
# The live view's chart window: a tick's per-second counts older than this are drawn by no one.
CHART_WINDOW_S = 300
# A stream row is one line on a screen; paths are cut here so a tick stays small.
MAX_PATH = 512


class LiveEvent(msgspec.Struct, frozen=True):
    """One pageview or custom event as the live view lists it."""

    ts_ms: int
    name: str
    path: str
    # The traffic source after enrichment ('' for direct), ISO country, device type, browser name.
    source: str
    country: str
    device: str
    browser: str


class Tick(msgspec.Struct, frozen=True):
    site_id: str
    ts_ms: int
    pageviews: int
    events: int
    newest_ms: int
    # Visitors seen in the last five minutes, this batch included.
    visitors: int = 0
    # (epoch second, events) this batch added within the chart window, oldest first.
    seconds: list[tuple[int, int]] = []
    # The batch's newest events, newest first, at most RECENT_PER_TICK; engagement pings are not listed.
    recent: list[LiveEvent] = []
