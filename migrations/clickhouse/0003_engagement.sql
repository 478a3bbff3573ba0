-- Visible time on a page, in milliseconds, carried by the tracker's `engagement` events
-- (0 on every other event). A sum over a page's engagement events is its total reading time.
ALTER TABLE events ADD COLUMN IF NOT EXISTS engagement_ms UInt32 DEFAULT 0 CODEC(T64, ZSTD(1));
