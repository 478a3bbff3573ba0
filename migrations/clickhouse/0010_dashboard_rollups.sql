-- Rollups the stats query engine answers from (pulse.stats.rollup_plan), at hour and day grain.
-- Distinct visitors and visits are uniqCombined sketches: a state has a bounded size whatever the
-- count (the `uniq` states of 0002 and 0008 grow to 256 KB, and a month of pages cost seconds to
-- merge). The whole site's, few per range, are precise (uniqCombined(16): about 0.4% error, 100 µs
-- a merge); those per page, country and the like, many per range, are smaller (uniqCombined(13):
-- about 1.2%, 18 µs).
-- Rows are ordered by dimension and value before time, and granules are small, so a query that
-- needs a few values (the top pages of a month) reads only their rows.

-- totals_*: every event of the site other than engagement pings.
CREATE TABLE IF NOT EXISTS totals_hour
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    bucket DateTime('UTC'),
    pageviews SimpleAggregateFunction(sum, UInt64),
    events SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniqCombined(16), UInt64),
    visits AggregateFunction(uniqCombined(16), UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, site_id, bucket)
TTL bucket + INTERVAL 400 DAY;

CREATE TABLE IF NOT EXISTS totals_day
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    bucket Date,
    pageviews SimpleAggregateFunction(sum, UInt64),
    events SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniqCombined(16), UInt64),
    visits AggregateFunction(uniqCombined(16), UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, site_id, bucket);

CREATE MATERIALIZED VIEW IF NOT EXISTS totals_hour_mv TO totals_hour AS
SELECT
    tenant_id,
    site_id,
    toStartOfHour(ts) AS bucket,
    countIf(name = 'pageview') AS pageviews,
    count() AS events,
    uniqCombinedState(16)(visitor_id) AS visitors,
    uniqCombinedState(16)(session_id) AS visits
FROM events
WHERE name != 'engagement'
GROUP BY tenant_id, site_id, bucket;

CREATE MATERIALIZED VIEW IF NOT EXISTS totals_day_mv TO totals_day AS
SELECT
    tenant_id,
    site_id,
    toDate(ts) AS bucket,
    countIf(name = 'pageview') AS pageviews,
    count() AS events,
    uniqCombinedState(16)(visitor_id) AS visitors,
    uniqCombinedState(16)(session_id) AS visits
FROM events
WHERE name != 'engagement'
GROUP BY tenant_id, site_id, bucket;

-- traffic_*: per event attribute (`dimension`, `value`), the site's events other than engagement
-- pings: pageviews, events, distinct visitors and distinct visits (sessions).
CREATE TABLE IF NOT EXISTS traffic_hour
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    dimension LowCardinality(String),
    bucket DateTime('UTC'),
    value String,
    pageviews SimpleAggregateFunction(sum, UInt64),
    events SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniqCombined(13), UInt64),
    visits AggregateFunction(uniqCombined(13), UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, site_id, dimension, bucket, value)
TTL bucket + INTERVAL 400 DAY
SETTINGS index_granularity = 256;

CREATE TABLE IF NOT EXISTS traffic_day
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    dimension LowCardinality(String),
    value String,
    bucket Date,
    pageviews SimpleAggregateFunction(sum, UInt64),
    events SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniqCombined(13), UInt64),
    visits AggregateFunction(uniqCombined(13), UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, site_id, dimension, value, bucket)
SETTINGS index_granularity = 256;

CREATE MATERIALIZED VIEW IF NOT EXISTS traffic_hour_mv TO traffic_hour AS
SELECT
    tenant_id,
    site_id,
    dimension_value.1 AS dimension,
    toStartOfHour(ts) AS bucket,
    dimension_value.2 AS value,
    countIf(name = 'pageview') AS pageviews,
    count() AS events,
    uniqCombinedState(13)(visitor_id) AS visitors,
    uniqCombinedState(13)(session_id) AS visits
FROM events
ARRAY JOIN [
    ('page', pathname),
    ('hostname', toString(hostname)),
    ('country', toString(country)),
    ('device', toString(device)),
    ('browser', toString(browser)),
    ('browser_version', toString(browser_version)),
    ('os', toString(os)),
    ('os_version', toString(os_version)),
    ('event', toString(name))
] AS dimension_value
WHERE name != 'engagement'
GROUP BY tenant_id, site_id, dimension, bucket, value;

CREATE MATERIALIZED VIEW IF NOT EXISTS traffic_day_mv TO traffic_day AS
SELECT
    tenant_id,
    site_id,
    dimension_value.1 AS dimension,
    dimension_value.2 AS value,
    toDate(ts) AS bucket,
    countIf(name = 'pageview') AS pageviews,
    count() AS events,
    uniqCombinedState(13)(visitor_id) AS visitors,
    uniqCombinedState(13)(session_id) AS visits
FROM events
ARRAY JOIN [
    ('page', pathname),
    ('hostname', toString(hostname)),
    ('country', toString(country)),
    ('device', toString(device)),
    ('browser', toString(browser)),
    ('browser_version', toString(browser_version)),
    ('os', toString(os)),
    ('os_version', toString(os_version)),
    ('event', toString(name))
] AS dimension_value
WHERE name != 'engagement'
GROUP BY tenant_id, site_id, dimension, value, bucket;

-- visits_*: per visit attribute, the visits that started in the bucket, counted at their first
-- event: where they came from (its referrer, source, channel and UTM tags) and their entry page
-- (its path, when that event is a pageview). The raw path reads a visit's first event other than
-- an engagement ping, and its first pageview: the two differ only for a visit opened by an
-- engagement ping (not counted here) or by a custom event (entry page '' here).
CREATE TABLE IF NOT EXISTS visits_hour
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    dimension LowCardinality(String),
    bucket DateTime('UTC'),
    value String,
    visits SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniqCombined(13), UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, site_id, dimension, bucket, value)
TTL bucket + INTERVAL 400 DAY
SETTINGS index_granularity = 256;

CREATE TABLE IF NOT EXISTS visits_day
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    dimension LowCardinality(String),
    value String,
    bucket Date,
    visits SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniqCombined(13), UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, site_id, dimension, value, bucket)
SETTINGS index_granularity = 256;

CREATE MATERIALIZED VIEW IF NOT EXISTS visits_hour_mv TO visits_hour AS
SELECT
    tenant_id,
    site_id,
    dimension_value.1 AS dimension,
    toStartOfHour(ts) AS bucket,
    dimension_value.2 AS value,
    count() AS visits,
    uniqCombinedState(13)(visitor_id) AS visitors
FROM events
ARRAY JOIN [
    ('referrer', referrer),
    ('source', toString(source)),
    ('channel', toString(channel)),
    ('utm_source', toString(utm_source)),
    ('utm_medium', toString(utm_medium)),
    ('utm_campaign', toString(utm_campaign)),
    ('utm_content', utm_content),
    ('utm_term', utm_term),
    ('entry_page', if(name = 'pageview', pathname, ''))
] AS dimension_value
WHERE session_id != 0 AND ts = session_start AND name != 'engagement'
GROUP BY tenant_id, site_id, dimension, bucket, value;

CREATE MATERIALIZED VIEW IF NOT EXISTS visits_day_mv TO visits_day AS
SELECT
    tenant_id,
    site_id,
    dimension_value.1 AS dimension,
    dimension_value.2 AS value,
    toDate(ts) AS bucket,
    count() AS visits,
    uniqCombinedState(13)(visitor_id) AS visitors
FROM events
ARRAY JOIN [
    ('referrer', referrer),
    ('source', toString(source)),
    ('channel', toString(channel)),
    ('utm_source', toString(utm_source)),
    ('utm_medium', toString(utm_medium)),
    ('utm_campaign', toString(utm_campaign)),
    ('utm_content', utm_content),
    ('utm_term', utm_term),
    ('entry_page', if(name = 'pageview', pathname, ''))
] AS dimension_value
WHERE session_id != 0 AND ts = session_start AND name != 'engagement'
GROUP BY tenant_id, site_id, dimension, value, bucket;

-- Bounce rate, visit duration and exit pages need each visit whole, which no view sees (a visit's
-- events arrive over many inserts). Visits end at midnight UTC, so a past UTC day's visits are
-- final: visit_days holds them folded per day (pulse.stats.visit_days), written by the stats
-- engine the first time a day is asked for, and used only while it matches day_versions: the
-- day's events as the view last saw them, summed. An event arriving late, a replay or a folding
-- that ran ahead of the sessions table changes or mismatches them, and the day is folded again.
CREATE TABLE IF NOT EXISTS day_versions
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    day Date,
    version SimpleAggregateFunction(sum, UInt64),
    pageviews SimpleAggregateFunction(sum, UInt64),
    events SimpleAggregateFunction(sum, UInt64),
    engagement_ms SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, site_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS day_versions_mv TO day_versions AS
SELECT
    tenant_id,
    site_id,
    toDate(ts) AS day,
    sum(cityHash64(event_id, session_id, ts, name)) AS version,
    countIf(name = 'pageview') AS pageviews,
    countIf(name != 'engagement') AS events,
    sum(engagement_ms) AS engagement_ms
FROM events
WHERE session_id != 0
GROUP BY tenant_id, site_id, day;

-- Per UTC day and the version it was folded from: every visit (dimension '') and the visits by
-- exit page. Only the '' row carries the folded sessions' pageviews, events and engagement, which
-- must equal day_versions' for the fold to be used.
CREATE TABLE IF NOT EXISTS visit_days
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    dimension LowCardinality(String),
    value String,
    day Date,
    version UInt64,
    visits UInt64,
    bounces UInt64,
    duration_ms UInt64,
    pageviews UInt64,
    events UInt64,
    engagement_ms UInt64,
    visitors AggregateFunction(uniqCombined(13), UInt64)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (tenant_id, site_id, dimension, value, day, version)
TTL day + INTERVAL 400 DAY
SETTINGS index_granularity = 256;
