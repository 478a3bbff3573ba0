-- A replay can read its days from an archive of events.raw (collectors/, `pulse replay
-- --from-archive`) instead of the raw table: the archive's root folder, '' for the raw table.
ALTER TABLE replay_jobs ADD COLUMN archive TEXT NOT NULL DEFAULT '';
