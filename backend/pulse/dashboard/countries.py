"""ISO 3166 country code → English name, from the time zone database's iso3166.tab.

The table ships with every tz database (the system's /usr/share/zoneinfo, or the tzdata
package Python's zoneinfo falls back to), so no list of our own has to be kept up to date.
Without either the code is its own name.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import zoneinfo
from pathlib import Path


@functools.cache
def _names() -> dict[str, str]:
    for text in _tables():
        names = {}
        for line in text.splitlines():
            code, _, name = line.partition("\t")
            if len(code) == 2 and not code.startswith("#") and name:
                names[code] = name.strip()
        if names:
            return names
    return {}


def _tables() -> list[str]:
    found = []
    for directory in zoneinfo.TZPATH:
        table = Path(directory) / "iso3166.tab"
        if table.is_file():
            found.append(table.read_text(encoding="utf-8"))
    with contextlib.suppress(ModuleNotFoundError, FileNotFoundError):
        found.append(importlib.resources.files("tzdata.zoneinfo").joinpath("iso3166.tab").read_text("utf-8"))
    return found


def country_name(code: str) -> str:
    return _names().get(code.upper(), code)
