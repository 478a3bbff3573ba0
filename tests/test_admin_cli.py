"""`pulse site` and `pulse tenant`: operators restrict or stop a site by its key, set a tenant's retention."""

from __future__ import annotations

from pathlib import Path

from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.settings import load_settings
from pulse_cli import run_pulse


async def test_site_hosts_and_disable_change_what_the_collector_reads(tmp_path: Path) -> None:
    # In a process of its own: chDB opens one data path per process, and the suite's stack has one.
    assert run_pulse(tmp_path, "migrate").returncode == 0
    settings = load_settings({"PULSE_HOME": str(tmp_path)})
    engine = create_engine(settings.effective_database_url)
    accounts = Accounts(engine)
    try:
        tenant = await accounts.create_tenant("Cli")
        site = await accounts.create_site(tenant.id, "Shop", "shop.example")

        hosts = run_pulse(tmp_path, "site", "hosts", site.id, "Shop.example", "*.shop.example")
        assert hosts.returncode == 0, hosts.stderr
        assert "accepts events from shop.example, *.shop.example" in hosts.stdout
        assert (await accounts.find_site(site.id)).allowed_hosts == ("shop.example", "*.shop.example")  # type: ignore[union-attr]

        bad = run_pulse(tmp_path, "site", "hosts", site.id, "shop example")
        assert bad.returncode == 1
        assert "'shop example' is not a hostname" in bad.stderr

        assert "disabled" in run_pulse(tmp_path, "site", "disable", site.id).stdout
        assert (await accounts.find_site(site.id)).disabled  # type: ignore[union-attr]
        assert "any host" in run_pulse(tmp_path, "site", "hosts", site.id).stdout

        unknown = run_pulse(tmp_path, "site", "enable", "nosuchsite00")
        assert unknown.returncode == 1
        assert "no site with key 'nosuchsite00'" in unknown.stderr
    finally:
        await engine.dispose()


async def test_tenant_retention_is_set_by_id_within_limits(tmp_path: Path) -> None:
    assert run_pulse(tmp_path, "migrate").returncode == 0
    settings = load_settings({"PULSE_HOME": str(tmp_path)})
    engine = create_engine(settings.effective_database_url)
    try:
        tenant = await Accounts(engine).create_tenant("Plan")
        done = run_pulse(tmp_path, "tenant", "retention", tenant.id, "30")
        assert done.returncode == 0, done.stderr
        assert "raw events kept 30 days" in done.stdout
        assert await Accounts(engine).retention_by_tenant() == {tenant.id: 30}
        refused = run_pulse(tmp_path, "tenant", "retention", tenant.id, "0")
        assert refused.returncode == 1
        assert "retention must be 1 to 3650 days" in refused.stderr
    finally:
        await engine.dispose()
