"""`pulse up` as a child process, driven the way a person at a terminal drives it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from pulse.embedded.services import free_port

BANNER_END = "Stop: Ctrl-C"


class UpProcess:
    def __init__(
        self, home: Path, collector_port: int, dashboard_port: int, extra_env: dict[str, str] | None = None
    ) -> None:
        env = {
            **os.environ,
            "PULSE_HOME": str(home),
            "PULSE_COLLECTOR_PORT": str(collector_port),
            "PULSE_DASHBOARD_PORT": str(dashboard_port),
            "PULSE_ROLLUP_PORT": str(free_port()),
            **(extra_env or {}),
        }
        for name in ("KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL", "REDIS_URL", "DATABASE_URL"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pulse", "up"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = self._read_until(BANNER_END, timeout_s=120)

    def _read_until(self, marker: str, timeout_s: float) -> str:
        assert self.process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if marker in line:
                return "".join(lines)
        self.process.kill()
        raise AssertionError("pulse up did not print its banner:\n" + "".join(lines))

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C as a terminal sends it: SIGINT to the supervisor."""
        self.process.send_signal(signal.SIGINT)
        rest, _ = self.process.communicate(timeout=60)
        return self.process.returncode, rest


def login_from_banner(output: str) -> tuple[str, str, str]:
    login = re.search(r"login\s+(\S+)\s+/\s+(\S+)", output)
    site = re.search(r'data-site="([^"]+)"', output)
    assert login, output
    assert site, output
    return login.group(1), login.group(2), site.group(1)
