"""Collector throughput with metrics on and off, measured in the same run.

Starts a Tansu broker and `pulse run collector` (one process, as in production) and
drives it with wrk from a separate process: single-event POSTs to /api/event over
keep-alive connections. Runs alternate on/off/on/off so drift in the machine's load
hits both sides. The last line of output is one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

from harness import (
    HEADERS,
    RATE_LIMITS_OFF,
    embedded_broker,
    lua_post,
    prepare_home,
    require_wrk,
    start_collector,
    stop_server,
    wrk,
)
from pulse.embedded.services import free_port

DURATION_S = int(os.environ.get("BENCH_DURATION_S", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CONNECTIONS = 64

BEACON = '{"s": "%s", "u": "https://bench.example/pricing?utm_source=news", "r": "https://www.google.com/"}'


def main() -> None:
    require_wrk()
    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        home = Path(tmp)
        with embedded_broker(home) as bootstrap:
            site = prepare_home(home, bootstrap)
            script = home / "post.lua"
            script.write_text(lua_post(BEACON % site, HEADERS))
            figures: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(ROUNDS):
                for metrics in (True, False):
                    port = free_port()
                    url = f"http://127.0.0.1:{port}/api/event"
                    process = start_collector(
                        home,
                        bootstrap,
                        port,
                        {"PULSE_METRICS_ENABLED": str(metrics).lower(), **RATE_LIMITS_OFF},
                    )
                    try:
                        # Warm-up: connections, the site cache, the producer's batches.
                        wrk(url, script, DURATION_S, CONNECTIONS)
                        result = wrk(url, script, DURATION_S, CONNECTIONS)
                    finally:
                        stop_server(process)
                    print(f"metrics {'on ' if metrics else 'off'}  {result.rps:8.0f} req/s")
                    if result.refused:
                        raise SystemExit(
                            f"{result.refused} requests were refused or failed; figures are not comparable"
                        )
                    figures[metrics].append(result.rps)
    on, off = statistics.median(figures[True]), statistics.median(figures[False])
    cost = 1 - on / off
    print(f"\nmedian of {ROUNDS}: metrics on {on:.0f} req/s, off {off:.0f} req/s, cost {cost:.1%}")
    print(json.dumps({"metrics_on_rps": round(on), "metrics_off_rps": round(off), "cost": round(cost, 4)}))


if __name__ == "__main__":
    main()
