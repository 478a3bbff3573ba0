"""`pulse up` as a new user runs it: starts everything, prints a working login, keeps data."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pulse.embedded.services import free_port
from up_process import UpProcess, login_from_banner
from visitor import BROWSER


def _token(dashboard: str, email: str, password: str) -> str:
    response = httpx.post(
        f"{dashboard}/api/v1/token", json={"email": email, "password": password}, timeout=30
    )
    response.raise_for_status()
    return str(response.json()["token"])


def _pageviews(dashboard: str, token: str, site: str) -> int | None:
    """None when the read timed out: embedded chDB runs one statement at a time, so a read can
    wait behind the worker's first inserts on a busy machine."""
    try:
        response = httpx.get(
            f"{dashboard}/api/v1/sites/{site}/aggregate",
            params={"period": "24h"},
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
        )
    except httpx.TimeoutException:
        return None
    return int(response.json()["pageviews"])


def _await_pageviews(dashboard: str, email: str, password: str, site: str, expected: int) -> None:
    token = _token(dashboard, email, password)
    deadline = time.monotonic() + 60
    seen = _pageviews(dashboard, token, site)
    while seen != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = _pageviews(dashboard, token, site)
    assert seen == expected


def test_pulse_up_serves_counts_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    collector_port, dashboard_port = free_port(), free_port()
    collector, dashboard = f"http://127.0.0.1:{collector_port}", f"http://127.0.0.1:{dashboard_port}"
    home = tmp_path / "pulse-home"

    first = UpProcess(home, collector_port, dashboard_port)
    try:
        assert f"dashboard  {dashboard}" in first.output
        email, password, site = login_from_banner(first.output)
        for i in range(50):
            body = f'{{"s": "{site}", "u": "https://shop.example/page/{i}"}}'
            assert (
                httpx.post(f"{collector}/api/event", content=body, headers=BROWSER, timeout=30).status_code
                == 202
            )
        _await_pageviews(dashboard, email, password, site, 50)
    finally:
        code, rest = first.interrupt()
    assert code == 0, rest
    assert "Stopped." in rest

    second = UpProcess(home, collector_port, dashboard_port)
    try:
        assert login_from_banner(second.output) == (email, password, site)
        _await_pageviews(dashboard, email, password, site, 50)
    finally:
        code, rest = second.interrupt()
    assert code == 0, rest


def test_pulse_up_names_the_variable_when_a_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The collector's port is checked first: a free one, not the default 8000 someone may be using.
        env = {
            **os.environ,
            "PULSE_HOME": str(tmp_path),
            "PULSE_COLLECTOR_PORT": str(free_port()),
            "PULSE_DASHBOARD_PORT": str(port),
        }
        result = subprocess.run(
            [sys.executable, "-m", "pulse", "up"], env=env, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is not available" in result.stdout
    assert "set PULSE_DASHBOARD_PORT" in result.stdout
    assert not (tmp_path / "logs").exists()
