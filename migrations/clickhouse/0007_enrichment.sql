-- What the rollup worker derives from each event (backend/pulse/enrichment), '' when unknown
-- and on rows stored before this migration.
-- From the User-Agent: browser and OS names with their major versions, and the device type
-- (desktop, mobile, tablet, bot or other).
-- From the referrer and the page URL: the traffic source (a site's name, or the referring
-- host), the channel (direct, search, social, email, paid, referral or internal), and the
-- page URL's UTM tags. Campaign names are few per site; content and term can be anything.
-- One ALTER, so the columns appear together.
ALTER TABLE events
    ADD COLUMN IF NOT EXISTS browser LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS browser_version LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS os LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS os_version LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS device LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS channel LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS utm_source LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS utm_medium LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS utm_campaign LowCardinality(String) DEFAULT '',
    ADD COLUMN IF NOT EXISTS utm_content String DEFAULT '' CODEC(ZSTD(1)),
    ADD COLUMN IF NOT EXISTS utm_term String DEFAULT '' CODEC(ZSTD(1));
