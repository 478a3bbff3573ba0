"""IP → country, offline, before the IP is dropped.

The default is iptocc (the regional registries' delegation files compiled into a Rust lookup,
shipped in the wheel and released with fresh data every few days), so a fresh install knows
countries without an account anywhere. An operator with a MaxMind database points
PULSE_GEOIP_DATABASE at it and that is used instead.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Protocol

import iptocc
import maxminddb

UNKNOWN = ""


class CountryLookup(Protocol):
    def country(self, ip: str) -> str: ...


class RegistryCountries:
    def country(self, ip: str) -> str:
        return _registry_country(ip)


@functools.lru_cache(maxsize=65_536)
def _registry_country(ip: str) -> str:
    code = iptocc.country_code(ip)
    return code if code is not None and len(code) == 2 else UNKNOWN


class MaxMindCountries:
    def __init__(self, path: Path) -> None:
        self._reader = maxminddb.open_database(str(path))

    def country(self, ip: str) -> str:
        try:
            record = self._reader.get(ip)
        except ValueError:
            return UNKNOWN
        if not isinstance(record, dict):
            return UNKNOWN
        country = record.get("country")
        code = country.get("iso_code") if isinstance(country, dict) else None
        return code if isinstance(code, str) and len(code) == 2 else UNKNOWN


def country_lookup(database: Path | None) -> CountryLookup:
    return MaxMindCountries(database) if database is not None else RegistryCountries()
