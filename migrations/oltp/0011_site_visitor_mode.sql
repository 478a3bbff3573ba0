-- How a site tells its visitors apart. 'cookieless' (the default): a hash of IP, User-Agent and a
-- salt that rotates daily, so nothing is stored on the visitor's device. 'cookie': the tracker keeps
-- a random first-party id in the browser (data-visitor="cookie"), so a returning visitor is
-- recognised across days; the collector honours a browser's id only for such a site.
ALTER TABLE sites ADD COLUMN visitor_mode TEXT NOT NULL DEFAULT 'cookieless'
    CHECK (visitor_mode IN ('cookieless', 'cookie'));
