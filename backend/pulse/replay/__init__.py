"""Replay: rebuild a tenant's raw events and every projection of them for whole past days.

`pulse replay` asks (request.py); a rollup worker claims the job (coordinator.py), re-emits the
raw rows into `events.replay` (emit.py), the workers consume that topic whenever live traffic
has no lag and sessionize it into a staging table (staging.py), and when the staging table holds
every event the days are swapped in (swap.py), through the same materialized views as live rows.
"""
