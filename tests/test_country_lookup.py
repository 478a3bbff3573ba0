"""The collector's country lookup: iptocc by default, a MaxMind database when one is configured."""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from pulse.collector.geo import MaxMindCountries, RegistryCountries, country_lookup


def test_registry_lookup_knows_public_addresses_and_not_private_ones() -> None:
    countries = RegistryCountries()
    assert countries.country("81.2.69.160") == "GB"
    assert countries.country("8.8.8.8") == "US"
    assert countries.country("2a00:1450:4001::1") == "IE"
    for unknown in ("10.0.0.1", "127.0.0.1", "::1", "", "not an address"):
        assert countries.country(unknown) == ""


def test_a_configured_maxmind_database_is_used_instead(tmp_path: Path) -> None:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    writer.insert_network(IPSet(["81.2.69.0/24"]), {"country": {"iso_code": "NZ"}})
    writer.insert_network(IPSet(["192.0.2.0/24"]), {"continent": {"code": "EU"}})
    path = tmp_path / "countries.mmdb"
    writer.to_db_file(str(path))

    countries = country_lookup(path)
    assert isinstance(countries, MaxMindCountries)
    assert countries.country("81.2.69.160") == "NZ"
    assert countries.country("192.0.2.1") == ""
    assert countries.country("8.8.8.8") == ""
    assert countries.country("not an address") == ""
    assert isinstance(country_lookup(None), RegistryCountries)
