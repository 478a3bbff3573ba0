-- Raw events: the warehouse, kept for replay and ad-hoc questions.
-- Statements are idempotent so a file interrupted half-way can simply be applied again.
-- Tenant leads the sort key so every tenant-scoped read is a range scan.
-- The deduplication window lets a retried batch (same insert_deduplication_token) be dropped.
CREATE TABLE IF NOT EXISTS events
(
    tenant_id LowCardinality(String),
    site_id LowCardinality(String),
    ts DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    event_id FixedString(16),
    name LowCardinality(String),
    hostname LowCardinality(String),
    pathname String CODEC(ZSTD(1)),
    referrer String CODEC(ZSTD(1)),
    visitor_id UInt64,
    screen_width UInt16,
    props Map(String, String),
    kafka_partition UInt16,
    kafka_offset UInt64
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant_id, site_id, toDate(ts), name, visitor_id, ts)
SETTINGS non_replicated_deduplication_window = 10000;
