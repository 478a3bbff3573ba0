-- Sessions: a visitor's events with no gap over 30 minutes. The rollup worker assigns each
-- event its session (id and start time, kept per visitor in Redis); this table folds a
-- session's events together, so bounce rate and visit duration are exact for any period and
-- any filter on the session's entry attributes. Retried inserts are deduplicated here too.
ALTER TABLE events
    ADD COLUMN IF NOT EXISTS session_id UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS session_start DateTime64(3, 'UTC') DEFAULT ts;

CREATE TABLE IF NOT EXISTS sessions
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    session_start DateTime64(3, 'UTC'),
    session_id UInt64,
    visitor_id SimpleAggregateFunction(any, UInt64),
    last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    pageviews SimpleAggregateFunction(sum, UInt64),
    events SimpleAggregateFunction(sum, UInt64),
    engagement_ms SimpleAggregateFunction(sum, UInt64),
    entry_page AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    exit_page AggregateFunction(argMax, String, DateTime64(3, 'UTC')),
    -- Where the visit came from and on what: its first event's attributes.
    source AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    channel AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    country AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    device AggregateFunction(argMin, String, DateTime64(3, 'UTC')),
    browser AggregateFunction(argMin, String, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(session_start)
ORDER BY (tenant_id, site_id, toDate(session_start), session_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS sessions_mv TO sessions AS
SELECT
    tenant_id,
    site_id,
    session_start,
    session_id,
    any(visitor_id) AS visitor_id,
    max(ts) AS last_seen,
    countIf(name = 'pageview') AS pageviews,
    countIf(name != 'engagement') AS events,
    sum(engagement_ms) AS engagement_ms,
    argMinStateIf(pathname, ts, name = 'pageview') AS entry_page,
    argMaxStateIf(pathname, ts, name = 'pageview') AS exit_page,
    argMinState(toString(source), ts) AS source,
    argMinState(toString(channel), ts) AS channel,
    argMinState(toString(country), ts) AS country,
    argMinState(toString(device), ts) AS device,
    argMinState(toString(browser), ts) AS browser
FROM events
WHERE session_id != 0
GROUP BY tenant_id, site_id, session_start, session_id;

-- Breakdowns: pageviews, events and visitors per dimension value, at hour and day grain, for
-- every table the dashboard shows (pages, sources, channels, countries, devices, browsers,
-- operating systems, campaigns, event names). One table per grain for all dimensions.
CREATE TABLE IF NOT EXISTS breakdowns_hour
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    bucket DateTime('UTC'),
    dimension LowCardinality(String),
    value String,
    pageviews SimpleAggregateFunction(sum, UInt64),
    events SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, site_id, dimension, bucket, value)
TTL bucket + INTERVAL 400 DAY;

CREATE TABLE IF NOT EXISTS breakdowns_day
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    bucket Date,
    dimension LowCardinality(String),
    value String,
    pageviews SimpleAggregateFunction(sum, UInt64),
    events SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, site_id, dimension, bucket, value);

CREATE MATERIALIZED VIEW IF NOT EXISTS breakdowns_hour_mv TO breakdowns_hour AS
SELECT
    tenant_id,
    site_id,
    toStartOfHour(ts) AS bucket,
    dimension_value.1 AS dimension,
    dimension_value.2 AS value,
    countIf(name = 'pageview') AS pageviews,
    count() AS events,
    uniqState(visitor_id) AS visitors
FROM events
ARRAY JOIN [
    ('page', pathname),
    ('source', toString(source)),
    ('channel', toString(channel)),
    ('country', toString(country)),
    ('device', toString(device)),
    ('browser', toString(browser)),
    ('os', toString(os)),
    ('utm_campaign', toString(utm_campaign)),
    ('event', toString(name))
] AS dimension_value
WHERE name != 'engagement'
GROUP BY tenant_id, site_id, bucket, dimension, value;

CREATE MATERIALIZED VIEW IF NOT EXISTS breakdowns_day_mv TO breakdowns_day AS
SELECT
    tenant_id,
    site_id,
    toDate(ts) AS bucket,
    dimension_value.1 AS dimension,
    dimension_value.2 AS value,
    countIf(name = 'pageview') AS pageviews,
    count() AS events,
    uniqState(visitor_id) AS visitors
FROM events
ARRAY JOIN [
    ('page', pathname),
    ('source', toString(source)),
    ('channel', toString(channel)),
    ('country', toString(country)),
    ('device', toString(device)),
    ('browser', toString(browser)),
    ('os', toString(os)),
    ('utm_campaign', toString(utm_campaign)),
    ('event', toString(name))
] AS dimension_value
WHERE name != 'engagement'
GROUP BY tenant_id, site_id, bucket, dimension, value;
