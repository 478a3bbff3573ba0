"""`pulse up`: the whole product on one machine, with embedded defaults for what is not configured.

Order of start: broker and Redis → migrations → demo data → collector → rollup+dashboard.
Order of stop is the reverse, so in-flight events drain before the broker goes away.
Children run in their own process groups: a terminal Ctrl-C reaches only this
supervisor, which then stops everything in order.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from pulse.demo import DemoLogin, ensure_demo
from pulse.embedded.services import EmbeddedService, start_broker, start_valkey
from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.settings import Settings, load_settings
from pulse.tracker_asset import load_tracker, snippets

Say = Callable[[str], None]


class Child:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pulse", *args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def exit_report(self, lines: int = 15) -> str:
        """Why it stopped, in its own words: the end of its log, so nobody has to go looking."""
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        shown = "\n".join(f"    {line}" for line in tail)
        return f"{self.name} exited with code {self.process.returncode}; the end of {self.log_path}:\n{shown}"


def _wait_healthy(url: str, child: Child, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(child.exit_report())
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} was not healthy at {url} within {timeout_s:.0f}s")


class Stack:
    """Everything `pulse up` started, stopped in reverse order."""

    def __init__(self, settings: Settings, say: Say) -> None:
        self.settings = settings
        self.say = say
        self.services: list[EmbeddedService] = []
        self.children: list[Child] = []
        self.env = dict(os.environ)
        self.env["PULSE_HOME"] = str(settings.home.resolve())
        self.env["PULSE_SECRET_KEY"] = settings.secret_key

    def start_infrastructure(self) -> Settings:
        home = self.settings.home
        if not self.settings.kafka_bootstrap_servers:
            broker, url = start_broker(home)
            self.services.append(broker)
            self.env["KAFKA_BOOTSTRAP_SERVERS"] = url
            # The embedded broker starts empty: its offsets are not those ClickHouse already holds.
            self.env["PULSE_KAFKA_EPOCH"] = secrets.token_hex(6)
            self.say(f"  kafka broker   embedded Tansu on {url} (memory storage)")
        if not self.settings.redis_url:
            valkey, url = start_valkey(home)
            self.services.append(valkey)
            self.env["REDIS_URL"] = url
            self.say(f"  redis          embedded Valkey on {url}")
        self.settings = load_settings(self.env)
        self.say(f"  clickhouse     {self.settings.effective_clickhouse_url}")
        self.say(f"  database       {self.settings.effective_database_url}")
        return self.settings

    def migrate(self) -> None:
        # A child process, because a chDB data path may be open in only one process at a time.
        result = subprocess.run(
            [sys.executable, "-m", "pulse", "migrate"],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"migrations failed:\n{result.stdout}{result.stderr}")
        self.say("  migrations     " + (result.stdout.strip().splitlines() or ["up to date"])[-1])

    def start_roles(self) -> None:
        logs = self.settings.home / "logs"
        collector = Child("collector", ["run", "collector"], self.env, logs)
        self.children.append(collector)
        _wait_healthy(f"{self.settings.collector_url}/healthz", collector)
        backend = Child("rollup-dashboard", ["run", "rollup", "dashboard"], self.env, logs)
        self.children.append(backend)
        _wait_healthy(f"{self.settings.dashboard_url}/healthz", backend)

    def dead_child(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop(self) -> None:
        for child in self.children:
            child.stop()
        for service in reversed(self.services):
            service.stop()


def banner(settings: Settings, demo: DemoLogin) -> str:
    site = demo.sites[0]
    snippet = snippets(
        load_tracker(settings.tracker_path), settings.collector_url, site.id, site.visitor_mode
    )
    return "\n".join(
        [
            "",
            "Pulse is running.",
            f"  dashboard  {settings.dashboard_url}",
            f"  login      {demo.email}  /  {demo.password}",
            f"  tenant     {demo.tenant_id}   (API keys: pulse api-key create --tenant {demo.tenant_id} ...)",
            f"  collector  {settings.collector_url}",
            "",
            f"Paste into the <head> of your site ({site.name}):",
            f"  {snippet.latest}",
            "or, pinned to this build with Subresource Integrity:",
            f"  {snippet.pinned}",
            "",
            f"Data and logs: {settings.home.resolve()}   Stop: Ctrl-C",
        ]
    )


def up(settings: Settings, demo_traffic: bool, rate: float, say: Say = print) -> int:
    settings.home.mkdir(parents=True, exist_ok=True)
    stack = Stack(settings, say)
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    say("Starting Pulse…")
    try:
        _check_ports_free(settings)
        settings = stack.start_infrastructure()
        stack.migrate()
        demo = asyncio.run(_seed(settings))
        stack.start_roles()
        say(banner(settings, demo))
        if demo_traffic:
            stack.children.insert(0, _start_demo_traffic(settings, demo, rate, stack.env))
            say(f"Demo traffic: {rate:g} events/s through the collector.")
        while not stopping:
            dead = stack.dead_child()
            if dead is not None:
                say(dead.exit_report() + "\nstopping the rest")
                return 1
            time.sleep(0.2)
        say("\nStopping…")
        return 0
    except RuntimeError as exc:
        say(f"error: {exc}")
        return 1
    finally:
        stack.stop()
        say("Stopped.")


def _check_ports_free(settings: Settings) -> None:
    """Fail before starting anything, naming the variable that moves the port."""
    for variable, port in (
        ("PULSE_COLLECTOR_PORT", settings.collector_port),
        ("PULSE_DASHBOARD_PORT", settings.dashboard_port),
        ("PULSE_ROLLUP_PORT", settings.rollup_port),
    ):
        with socket.socket() as sock:
            try:
                sock.bind((settings.bind_host, port))
            except OSError as exc:
                raise RuntimeError(
                    f"{settings.bind_host}:{port} is not available ({exc.strerror}); "
                    f"another program uses it, or set {variable} to a free port"
                ) from exc


async def _seed(settings: Settings) -> DemoLogin:
    engine = create_engine(settings.effective_database_url)
    try:
        return await ensure_demo(Accounts(engine), settings.home)
    finally:
        await engine.dispose()


def _start_demo_traffic(settings: Settings, demo: DemoLogin, rate: float, env: dict[str, str]) -> Child:
    sites = ",".join(f"{s.id}={s.domain}" for s in demo.sites)
    args = ["loadgen", "--url", settings.collector_url, "--sites", sites, "--rate", str(rate), "--quiet"]
    return Child("demo-traffic", args, env, settings.home / "logs")
