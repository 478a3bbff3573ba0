-- Today's visits that are over, folded as the UTC day goes on (pulse.stats.live_visits): a visit
-- with no event for 30 minutes gets none more (pulse.rollup.sessions). A filtered overview of a
-- range that includes today then folds from raw events only the visits still under way, instead
-- of every visit of the day for each of its queries. Each fold adds the visits over since the
-- last one, up to its cutoff; a generation is one chain of folds of the day, begun again when an
-- event arrives late into what was folded. Rows are needed until the day is folded whole into
-- visit_rows (5 minutes after midnight UTC), and kept two days.
CREATE TABLE IF NOT EXISTS visit_rows_live
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    day Date,
    generation UInt64,
    cutoff DateTime64(3, 'UTC'),
    session_id UInt64,
    visitor_id UInt64,
    pageviews UInt32,
    events UInt32,
    engagement_ms UInt64,
    duration_ms UInt64,
    pages Array(LowCardinality(String)),
    page_views Array(UInt64),
    page_events Array(UInt64),
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
    os_version LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY day
ORDER BY (tenant_id, site_id, day, generation, session_id)
TTL day + INTERVAL 2 DAY;

-- One row per fold that completed: up to which cutoff a generation's rows are whole, and a
-- fingerprint of the day's events before it, as day_versions sums them: an event arriving late
-- changes it, and the day's folds begin again in a new generation.
CREATE TABLE IF NOT EXISTS visit_rows_live_marks
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    day Date,
    generation UInt64,
    cutoff DateTime64(3, 'UTC'),
    fingerprint UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant_id, site_id, day, generation, cutoff)
TTL day + INTERVAL 2 DAY;
