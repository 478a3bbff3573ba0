"""The README's API examples, run as written with curl against the running stack."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import msgspec
import pytest

from pulse.oltp.api_keys import ApiKeys
from stack import Stack

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Stats API"


def readme_examples() -> str:
    """Every ```sh block of the Stats API section, in order, as one script."""
    text = README.read_text()
    start = text.index(f"\n{SECTION}\n")
    end = text.index("\n## ", start + 1)
    blocks = re.findall(r"^```sh\n(.*?)^```$", text[start:end], flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) >= 5, "the section lost its examples"
    return "\n".join(blocks)


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")), reason="needs curl and jq")
async def test_the_readme_api_examples_run_as_written(stack: Stack) -> None:
    tenant = await stack.tenant("Readme")
    _, key = await ApiKeys(stack.engine).create(
        tenant.tenant_id, "readme", ["stats:read", "events:write", "sites:write"], "test"
    )
    before = {site.id for site in await stack.accounts.list_sites(tenant.tenant_id)}
    env = os.environ | {"PULSE": stack.dashboard, "COLLECTOR": stack.collector, "PULSE_API_KEY": key}
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-eu",
        "-c",
        readme_examples(),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, f"stdout:\n{out.decode()}\nstderr:\n{err.decode()}"
    output = out.decode()
    assert '"results"' in output
    assert "event: ready" in output

    # The examples made a site, sent it two events, and those were counted.
    made = [s for s in await stack.accounts.list_sites(tenant.tenant_id) if s.id not in before]
    assert [(s.name, s.timezone, s.allowed_hosts) for s in made] == [
        ("Shop", "Europe/Berlin", ("shop.example", "*.shop.example"))
    ]
    shop = msgspec.structs.replace(tenant, site=made[0])
    assert await stack.counts(shop, {"pageviews": 1, "events": 2}) == {"pageviews": 1, "events": 2}
