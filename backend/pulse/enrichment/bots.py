"""Obvious bots, recognised by User-Agent: by the collector before anything is stored, and by
the rollup worker, whose device type says ``bot`` for the same User-Agents.

crawlerdetect carries the maintained pattern list of the CrawlerDetect project (crawlers,
headless browsers, HTTP libraries, monitoring services). Matching is a large regular
expression, so verdicts are cached: real traffic repeats a small set of User-Agents.
"""

from __future__ import annotations

import functools

from crawlerdetect import CrawlerDetect

_detector = CrawlerDetect()


@functools.lru_cache(maxsize=16_384)
def is_bot(user_agent: str) -> bool:
    """No User-Agent at all is a script, never a browser."""
    return not user_agent.strip() or bool(_detector.isCrawler(user_agent))
