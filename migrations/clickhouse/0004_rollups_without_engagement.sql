-- The tracker's engagement pings measure reading time; they are not events a site owner
-- counts, so the rollups stop counting them as events (pageviews were never affected).
-- MODIFY QUERY swaps each view's query in place, so no insert falls between an old and a
-- new view. Rows rolled up before this migration keep their counts.
ALTER TABLE stats_minute_mv MODIFY QUERY
SELECT
    tenant_id,
    site_id,
    toStartOfMinute(ts) AS bucket,
    countIf(name = 'pageview') AS pageviews,
    countIf(name != 'engagement') AS events,
    uniqState(visitor_id) AS visitors
FROM events
GROUP BY tenant_id, site_id, bucket;

ALTER TABLE stats_hour_mv MODIFY QUERY
SELECT
    tenant_id,
    site_id,
    toStartOfHour(ts) AS bucket,
    countIf(name = 'pageview') AS pageviews,
    countIf(name != 'engagement') AS events,
    uniqState(visitor_id) AS visitors
FROM events
GROUP BY tenant_id, site_id, bucket;

ALTER TABLE stats_day_mv MODIFY QUERY
SELECT
    tenant_id,
    site_id,
    toStartOfDay(ts) AS bucket,
    countIf(name = 'pageview') AS pageviews,
    countIf(name != 'engagement') AS events,
    uniqState(visitor_id) AS visitors
FROM events
GROUP BY tenant_id, site_id, bucket;
