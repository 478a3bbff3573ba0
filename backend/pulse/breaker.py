"""A circuit breaker: a dependency that keeps failing is not asked again for a while.

Without one, every request to a process whose broker, ClickHouse or Redis is gone waits out
its own connect or request timeout, seconds each, and the requests pile up. Once `failures`
calls in a row have failed the breaker opens and calls fail at once with `DependencyDown`;
after `open_s` one call is let through to probe, and its outcome closes or reopens it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from pulse.telemetry.metrics import Metrics


class DependencyDown(Exception):
    """The breaker is open: the dependency failed recently and was not asked."""

    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(f"{name} is unavailable")
        self.name = name
        self.retry_after_s = retry_after_s


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        metrics: Metrics | None = None,
        failures: int = 3,
        open_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._metrics = metrics
        self._threshold = failures
        self._open_s = open_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def check(self) -> None:
        """Raises DependencyDown unless a call may go through now (closed, or the one probe)."""
        if self._opened_at is None:
            return
        waited = self._clock() - self._opened_at
        if waited < self._open_s or self._probing:
            raise DependencyDown(self.name, max(1.0, self._open_s - waited))
        self._probing = True

    def succeeded(self) -> None:
        if self._opened_at is not None and self._metrics is not None:
            self._metrics.breaker_transitions.add(1, {"dependency": self.name, "to": "closed"})
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failed(self) -> None:
        self._failures += 1
        if self._probing or (self._opened_at is None and self._failures >= self._threshold):
            if self._opened_at is None and self._metrics is not None:
                self._metrics.breaker_transitions.add(1, {"dependency": self.name, "to": "open"})
            self._opened_at = self._clock()
        self._probing = False

    async def call[T](
        self, attempt: Callable[[], Awaitable[T]], failure: tuple[type[BaseException], ...]
    ) -> T:
        """Runs `attempt` through the breaker; exceptions of the `failure` types count against it."""
        self.check()
        try:
            result = await attempt()
        except failure:
            self.failed()
            raise
        except BaseException:
            # Not the dependency's fault (a bad query, a cancelled request): the probe is over.
            self._probing = False
            raise
        self.succeeded()
        return result
