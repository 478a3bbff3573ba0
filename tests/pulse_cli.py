"""The `pulse` command in a process of its own, on a home of the test's.

chDB opens one data path per process and the suite's stack holds one, so commands that touch
ClickHouse run apart; the stack's service URLs are dropped so the command uses the home's
embedded defaults.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_pulse(home: Path, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PULSE_HOME": str(home)}
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL", "REDIS_URL", "DATABASE_URL"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "pulse", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
