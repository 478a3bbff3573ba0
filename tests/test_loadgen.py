"""`pulse loadgen` drives the real collector at a set rate and reports what was accepted."""

from __future__ import annotations

import asyncio
import sys

from stack import Stack


async def test_loadgen_sends_the_requested_total_through_the_collector(stack: Stack) -> None:
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
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    assert "sent 200 · accepted 200" in output.decode()
