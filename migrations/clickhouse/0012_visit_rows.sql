-- Every visit of a past UTC day as one row with all its attributes, folded once from raw events
-- by the stats engine (pulse.stats.visit_days, beside visit_days). A filtered overview reads its
-- cards and breakdowns by where visits came from, entered and left, by page, or by country, device,
-- browser and OS from these rows instead of folding every session of the range again. A fold is used while
-- visit_days' 'visit_rows' marker for the day matches day_versions, as its '' row is.
-- Rows are kept as long as the raw events they were folded from (0009's retention, per tenant).
CREATE TABLE IF NOT EXISTS visit_rows
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    day Date,
    version UInt64,
    session_id UInt64,
    visitor_id UInt64,
    -- A visit made of engagement pings only has events = 0: kept so that the sums match
    -- day_versions', and left out by every read.
    pageviews UInt32,
    events UInt32,
    engagement_ms UInt64,
    duration_ms UInt64,
    -- Every path the visit has events on (engagement pings aside), sorted, and per path its
    -- pageviews and events: a breakdown by page, or a filter on pages, reads these.
    pages Array(LowCardinality(String)),
    page_views Array(UInt64),
    page_events Array(UInt64),
    -- Each of its custom events (not pageviews nor engagement pings) as (path, name): for goals.
    custom_events Array(Tuple(String, LowCardinality(String))),
    entry_page LowCardinality(String),
    exit_page LowCardinality(String),
    referrer String CODEC(ZSTD(1)),
    source LowCardinality(String),
    channel LowCardinality(String),
    utm_source LowCardinality(String),
    utm_medium LowCardinality(String),
    utm_campaign LowCardinality(String),
    utm_content String CODEC(ZSTD(1)),
    utm_term String CODEC(ZSTD(1)),
    country LowCardinality(String),
    device LowCardinality(String),
    browser LowCardinality(String),
    browser_version LowCardinality(String),
    os LowCardinality(String),
    os_version LowCardinality(String),
    retention_days UInt16
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, site_id, day, version, session_id)
TTL day + toIntervalDay(retention_days);
