"""What the rollup worker derives from an event before storing it.

- `bots`: is a User-Agent a bot (crawlerdetect); the collector uses it too.
- `useragent`: browser, OS, their major versions and the device type, from the User-Agent.
- `referrer` and `utm`: traffic source and channel, from the referrer and the page URL's tags.
- `event`: all of it for one event, in the column order of the `events` table.

Every function here is pure, never raises on malformed input, and caches by its input, so
the cost per event is a few dictionary lookups. Importing this package loads nothing: the
collector imports `bots` alone.
"""
