-- The breakdowns of 0008 were superseded by 0010's traffic_* and visits_* (bounded sketches, rows
-- ordered for top-N reads), and nothing reads them any more. Every view costs each insert of the
-- rollup worker a part of its own, so these two slowed every batch for nothing.
DROP VIEW IF EXISTS breakdowns_hour_mv;
DROP VIEW IF EXISTS breakdowns_day_mv;
DROP TABLE IF EXISTS breakdowns_hour;
DROP TABLE IF EXISTS breakdowns_day;
