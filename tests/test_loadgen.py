"""`pulse loadgen` drives the real collector at a set rate and reports what was accepted."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from pulse.loadgen.traffic import TrafficModel
from stack import Stack


async def test_loadgen_sends_the_requested_total_through_the_collector(stack: Stack, tmp_path: Path) -> None:
    site = (await stack.tenant("Loadgen")).site.id
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pulse",
        "loadgen",
        "--url",
        stack.collector,
        "--sites",
        f"{site}=shop.example",
        "--rate",
        "400",
        "--total",
        "200",
        "--quiet",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        # A home of its own: the command's settings would otherwise make ./.pulse where pytest runs.
        env={**os.environ, "PULSE_HOME": str(tmp_path)},
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    assert "sent 200 · accepted 200" in output.decode()


def test_demo_traffic_is_made_of_visits_that_walk_from_page_to_page() -> None:
    model = TrafficModel([("key", "shop.example")], seed=11)
    last_page: dict[tuple[str, str], str] = {}
    internal = 0
    hits = [model.next_hit() for _ in range(5000)]
    for hit in hits:
        visitor = (hit.ip, hit.user_agent)
        url, referrer = str(hit.body["u"]), str(hit.body["r"])
        if referrer.startswith("https://shop.example"):
            internal += 1
            # The previous page of the same visitor, as a browser would send it.
            assert last_page[visitor].split("?")[0] == referrer
        last_page[visitor] = url
    assert 0.5 < internal / len(hits) < 0.8
