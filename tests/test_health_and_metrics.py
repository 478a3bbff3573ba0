"""Every role answers /healthz and exports Prometheus metrics at /metrics."""

from __future__ import annotations

import httpx

from stack import Stack
from visitor import BROWSER


async def test_each_role_reports_health_and_metrics(stack: Stack) -> None:
    site = (await stack.tenant("Metrics")).site.id
    rollup = f"http://127.0.0.1:{stack.settings.rollup_port}"
    async with httpx.AsyncClient(headers=BROWSER) as client:
        await client.post(
            f"{stack.collector}/api/event", content=f'{{"s": "{site}", "u": "https://m.example/"}}'
        )
        await client.post(
            f"{stack.collector}/api/event", content='{"s": "missing", "u": "https://m.example/"}'
        )
        for url, role in ((stack.collector, "collector"), (stack.dashboard, "dashboard"), (rollup, "rollup")):
            health = await client.get(f"{url}/healthz")
            assert health.status_code == 200
            assert health.json()["role"] == role
        text = (await client.get(f"{stack.collector}/metrics")).text
    assert "events_accepted_total" in text
    assert "events_dropped_total{" in text
    assert 'reason="unknown_site"' in text
    assert "kafka_produce_latency_milliseconds_bucket" in text
