"""What the tracker's additions change downstream: old messages still decode, ids are keyed."""

from __future__ import annotations

import msgspec

from pulse.collector.privacy import first_party_visitor_id
from pulse.enrichment.event import COLUMNS as ENRICHMENT_COLUMNS
from pulse.events.message import Enrichment, EventV1, decode, encode
from pulse.rollup.rows import COLUMNS, to_row

SECRET = "s3cret"


def _event(**fields: object) -> EventV1:
    base: dict[str, object] = {
        "event_id": b"\x01" * 16,
        "tenant_id": "t",
        "site_id": "site",
        "ts_ms": 1_700_000_000_000,
        "name": "engagement",
        "url": "https://shop.example/p",
        "referrer": "",
        "visitor_id": 7,
        "user_agent": "ua",
        "screen_width": 1280,
        "props": {},
    }
    return EventV1(**{**base, **fields})  # type: ignore[arg-type]


def test_messages_written_before_engagement_existed_still_decode() -> None:
    current = msgspec.msgpack.decode(encode(_event(engagement_ms=1500, country="GB")))
    old = msgspec.msgpack.encode(current[:12])  # tag + the original eleven fields
    assert decode(old) == _event()
    assert decode(old).engagement_ms == 0
    assert decode(encode(_event(engagement_ms=1500))).engagement_ms == 1500


def test_messages_written_before_country_existed_still_decode() -> None:
    current = msgspec.msgpack.decode(encode(_event(engagement_ms=1500, country="GB")))
    # The fields after engagement_ms: country, then enrichment.
    old = msgspec.msgpack.encode(current[:-2])
    assert decode(old) == _event(engagement_ms=1500)
    assert decode(old).country == ""


def test_a_replayed_event_carries_its_enrichment_and_the_worker_keeps_it() -> None:
    derived = Enrichment(
        "Firefox", "128", "Linux", "", "desktop", "Google", "search", "", "", "autumn", "", ""
    )
    replayed = msgspec.structs.replace(_event(), user_agent="", enrichment=derived)
    assert decode(encode(replayed)) == replayed
    row = dict(zip(COLUMNS, to_row(replayed, 0, 0), strict=True))
    assert tuple(row[c] for c in ENRICHMENT_COLUMNS) == msgspec.structs.astuple(derived)
    # Field for field, the carried enrichment is the events table's enrichment columns.
    assert Enrichment.__struct_fields__ == ENRICHMENT_COLUMNS


def test_engagement_and_country_reach_their_columns() -> None:
    row = dict(zip(COLUMNS, to_row(_event(engagement_ms=1500, country="GB"), 0, 0), strict=True))
    assert (row["engagement_ms"], row["country"]) == (1500, "GB")


def test_first_party_visitor_id_is_stable_and_keyed_by_site_and_secret() -> None:
    same = first_party_visitor_id(SECRET, "site", "0.42")
    assert same == first_party_visitor_id(SECRET, "site", "0.42")
    assert same != first_party_visitor_id(SECRET, "other-site", "0.42")
    assert same != first_party_visitor_id("another secret", "site", "0.42")
