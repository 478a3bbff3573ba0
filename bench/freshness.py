"""Beacon-to-visible freshness of `pulse up`, next to a bare Kafka round trip on the same broker.

Runs the product exactly as a user does (`pulse up` in a temporary PULSE_HOME), then for
one beacon at a time measures:
  * beacon → 202 from the collector,
  * beacon → tick on the dashboard's live stream (SSE),
  * beacon → count visible in the stats API (ClickHouse rollups),
and, as the floor any Kafka pipeline pays, produce(acks=all) → consume on the same broker.
The last line of output is one JSON object with the figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pulse.embedded.services import free_port

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "100"))
BROWSER_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, values: list[float]) -> dict[str, float]:
    figures = {
        "p50": percentile(values, 0.5),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
    }
    print(
        f"{name:<34} p50 {figures['p50']:7.1f} ms   p95 {figures['p95']:7.1f} ms   p99 {figures['p99']:7.1f} ms"
    )
    return figures


def start_pulse(home: Path, collector_port: int, dashboard_port: int) -> tuple[subprocess.Popen[str], str]:
    env = {
        **os.environ,
        "PULSE_HOME": str(home),
        "PULSE_COLLECTOR_PORT": str(collector_port),
        "PULSE_DASHBOARD_PORT": str(dashboard_port),
        "PULSE_ROLLUP_PORT": str(free_port()),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "pulse", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    banner = ""
    deadline = time.monotonic() + 120
    while "Stop: Ctrl-C" not in banner and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            raise SystemExit("pulse up exited:\n" + banner)
        banner += line
    return process, banner


async def kafka_round_trips(bootstrap: str) -> list[float]:
    topic = "bench.baseline"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(topic, 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=2)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest")
    await producer.start()
    await consumer.start()
    await consumer.seek_to_end()
    latencies = []
    try:
        for i in range(SAMPLES):
            started = time.perf_counter()
            await producer.send_and_wait(topic, str(i).encode())
            await consumer.getone()
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        await producer.stop()
        await consumer.stop()
    return latencies


async def pipeline(
    collector: str, dashboard: str, email: str, password: str, site: str
) -> dict[str, list[float]]:
    accepted, ticked, counted = [], [], []
    async with (
        httpx.AsyncClient(base_url=dashboard, timeout=30) as browser,
        # A browser's User-Agent: the collector drops scripts as bots before they reach Kafka.
        httpx.AsyncClient(base_url=collector, timeout=30, headers={"user-agent": BROWSER_UA}) as beacons,
    ):
        form = await browser.get("/login")
        token_match = CSRF.search(form.text)
        assert token_match
        await browser.post(
            "/login", data={"email": email, "password": password, "_csrf_token": token_match[1]}
        )
        api_token = (await browser.post("/api/v1/token", json={"email": email, "password": password})).json()[
            "token"
        ]
        bearer = {"authorization": f"Bearer {api_token}"}

        async def pageviews() -> int:
            body = (
                await browser.get(f"/api/v1/sites/{site}/aggregate", params={"period": "30m"}, headers=bearer)
            ).json()
            return int(body["pageviews"])

        body = f'{{"s": "{site}", "u": "https://bench.example/"}}'
        async with browser.stream("GET", f"/sites/{site}/live") as stream:
            lines = stream.aiter_lines()
            while await anext(lines) != "event: ready":
                pass
            for _ in range(SAMPLES):
                started = time.perf_counter()
                response = await beacons.post("/api/event", content=body)
                assert response.status_code == 202
                accepted.append((time.perf_counter() - started) * 1000)
                while await anext(lines) != "event: tick":
                    pass
                ticked.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(0.02)
        for _ in range(max(10, SAMPLES // 4)):
            before = await pageviews()
            started = time.perf_counter()
            await beacons.post("/api/event", content=body)
            while await pageviews() == before:  # noqa: ASYNC110 - polling the API is what is measured
                await asyncio.sleep(0.005)
            counted.append((time.perf_counter() - started) * 1000)
    return {"accepted": accepted, "ticked": ticked, "counted": counted}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        collector_port, dashboard_port = free_port(), free_port()
        process, banner = start_pulse(Path(tmp), collector_port, dashboard_port)
        try:
            login = re.search(r"login\s+(\S+)\s+/\s+(\S+)", banner)
            site = re.search(r'data-site="([^"]+)"', banner)
            broker = re.search(r"Tansu on (\S+)", banner)
            if not (login and site and broker):
                raise SystemExit("unexpected banner:\n" + banner)
            print(f"pulse up on this machine ({os.cpu_count()} cores), {SAMPLES} beacons, one at a time\n")
            kafka = asyncio.run(kafka_round_trips(broker[1]))
            figures = asyncio.run(
                pipeline(
                    f"http://127.0.0.1:{collector_port}",
                    f"http://127.0.0.1:{dashboard_port}",
                    login[1],
                    login[2],
                    site[1],
                )
            )
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=60)
    base = summary("kafka produce→consume (baseline)", kafka)
    acc = summary("beacon → 202 accepted", figures["accepted"])
    tick = summary("beacon → live tick (SSE)", figures["ticked"])
    count = summary("beacon → count in stats API", figures["counted"])
    result = {
        "samples": SAMPLES,
        "kafka_rtt_p50_ms": round(base["p50"], 1),
        "accept_p50_ms": round(acc["p50"], 1),
        "tick_p50_ms": round(tick["p50"], 1),
        "tick_p99_ms": round(tick["p99"], 1),
        "count_p50_ms": round(count["p50"], 1),
        "count_p99_ms": round(count["p99"], 1),
        "tick_to_kafka_ratio": round(tick["p50"] / base["p50"], 1) if base["p50"] else None,
    }
    print(f"\nlive tick p50 is {result['tick_to_kafka_ratio']}x the bare Kafka round trip")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
