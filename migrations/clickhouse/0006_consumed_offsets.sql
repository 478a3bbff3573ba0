-- ClickHouse, not Kafka, is the source of truth for what has been consumed: every row carries
-- its partition and offset, and a worker that is assigned a partition starts after the highest
-- offset stored here. The same INSERT feeds this view, so an event and its offset are durable
-- together. kafka_epoch names the topic's incarnation: a broker that starts empty (the embedded
-- one under `pulse up`) numbers offsets from 0 again, and must not be read as already consumed.
ALTER TABLE events ADD COLUMN IF NOT EXISTS kafka_epoch LowCardinality(String) DEFAULT '';

CREATE TABLE IF NOT EXISTS consumed_offsets
(
    kafka_epoch LowCardinality(String),
    kafka_partition UInt16,
    next_offset SimpleAggregateFunction(max, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (kafka_epoch, kafka_partition);

CREATE MATERIALIZED VIEW IF NOT EXISTS consumed_offsets_mv TO consumed_offsets AS
SELECT kafka_epoch, kafka_partition, max(kafka_offset) + 1 AS next_offset
FROM events
GROUP BY kafka_epoch, kafka_partition;

-- Rows written before this view existed; max() makes running it twice harmless.
INSERT INTO consumed_offsets
SELECT kafka_epoch, kafka_partition, max(kafka_offset) + 1
FROM events
GROUP BY kafka_epoch, kafka_partition;
