-- A site's own settings beyond its name and domain.

-- The IANA time zone (such as Europe/Paris) its days start in for reports; the application checks
-- the name against the zone database, so a stored zone is always one the stats can use.
ALTER TABLE sites ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';
