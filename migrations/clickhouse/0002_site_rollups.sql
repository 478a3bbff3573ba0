-- Per-site rollups at minute, hour and day grain, maintained by materialized views.
-- uniq states merge across buckets, so visitors over any range come from one grain.
-- Minute grain serves the live and short ranges only, so it expires.
CREATE TABLE IF NOT EXISTS stats_minute
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    bucket DateTime('UTC'),
    pageviews SimpleAggregateFunction(sum, UInt64),
    events SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, site_id, bucket)
TTL bucket + INTERVAL 35 DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS stats_minute_mv TO stats_minute AS
SELECT
    tenant_id,
    site_id,
    toStartOfMinute(ts) AS bucket,
    countIf(name = 'pageview') AS pageviews,
    count() AS events,
    uniqState(visitor_id) AS visitors
FROM events
GROUP BY tenant_id, site_id, bucket;

CREATE TABLE IF NOT EXISTS stats_hour
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    bucket DateTime('UTC'),
    pageviews SimpleAggregateFunction(sum, UInt64),
    events SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, site_id, bucket);

CREATE MATERIALIZED VIEW IF NOT EXISTS stats_hour_mv TO stats_hour AS
SELECT
    tenant_id,
    site_id,
    toStartOfHour(ts) AS bucket,
    countIf(name = 'pageview') AS pageviews,
    count() AS events,
    uniqState(visitor_id) AS visitors
FROM events
GROUP BY tenant_id, site_id, bucket;

CREATE TABLE IF NOT EXISTS stats_day
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    bucket DateTime('UTC'),
    pageviews SimpleAggregateFunction(sum, UInt64),
    events SimpleAggregateFunction(sum, UInt64),
    visitors AggregateFunction(uniq, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(bucket)
ORDER BY (tenant_id, site_id, bucket);

CREATE MATERIALIZED VIEW IF NOT EXISTS stats_day_mv TO stats_day AS
SELECT
    tenant_id,
    site_id,
    toStartOfDay(ts) AS bucket,
    countIf(name = 'pageview') AS pageviews,
    count() AS events,
    uniqState(visitor_id) AS visitors
FROM events
GROUP BY tenant_id, site_id, bucket;
