"""`@pytest.mark.serial` tests run while no other test runs, when pytest-xdist runs the suite in
parallel (pytest plugin, see conftest.py; `make test` runs the suite on several workers).

Some tests hold answers to a wall-clock bound (a refusal within the produce timeout, a breaker
that answers at once, a live view within seconds) or load the whole machine (chaos and load runs).
Beside another worker's Chromium and brokers on two cores, the first would measure their
neighbours, and the second would push every neighbour past its own deadlines.

Every test runs holding a lock file shared, a serial test holding it exclusively. Both pass a
turnstile first, which a serial test keeps while it waits, so that workers taking turns with
shared holds cannot starve it. A worker keeps its exclusive hold across consecutive serial tests
(a serial module runs in one piece) instead of waiting for the other workers to drain each time.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

# The workerinput key under which the controller hands every worker the run's lock directory.
LOCKS = "pulse_serial_locks"
_created = pytest.StashKey[Path]()
_turns = pytest.StashKey["Turns"]()


class Turns:
    """This worker's side of the run's reader-writer lock."""

    def __init__(self, locks: Path) -> None:
        self._turnstile = (locks / "turnstile").open("a")
        self._running = (locks / "running").open("a")
        self.exclusive: bool | None = None  # None: not held

    def take(self, exclusive: bool) -> None:
        if self.exclusive == exclusive:
            return
        self.give_back()
        fcntl.flock(self._turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._running, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)
        self.exclusive = exclusive

    def give_back(self) -> None:
        if self.exclusive is not None:
            fcntl.flock(self._running, fcntl.LOCK_UN)
            self.exclusive = None

    def close(self) -> None:
        self._turnstile.close()
        self._running.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "serial: runs while no other test runs when xdist runs the suite in parallel (tests/serial.py)",
    )
    locks = getattr(config, "workerinput", {}).get(LOCKS)
    if locks is not None:
        config.stash[_turns] = Turns(Path(locks))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """On the xdist controller, once per worker: one lock directory for the whole run."""
    stash = node.config.stash
    if _created not in stash:
        stash[_created] = Path(tempfile.mkdtemp(prefix="pulse-serial-"))
    node.workerinput[LOCKS] = str(stash[_created])


def pytest_unconfigure(config: pytest.Config) -> None:
    if (turns := config.stash.get(_turns, None)) is not None:
        turns.close()
    if (locks := config.stash.get(_created, None)) is not None:
        shutil.rmtree(locks, ignore_errors=True)


def _is_serial(item: pytest.Item | None) -> bool:
    return item is not None and item.get_closest_marker("serial") is not None


# tryfirst: outside pytest-timeout's wrapper, so waiting for a turn is not counted as the test's time.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    turns = item.config.stash.get(_turns, None)
    if turns is None:  # not an xdist worker: nothing runs beside this test
        return (yield)
    turns.take(exclusive=_is_serial(item))
    try:
        return (yield)
    finally:
        if not (turns.exclusive and _is_serial(nextitem)):
            turns.give_back()
