"""Realistic beacons: pages, referrers, UTM campaigns, browsers, screens and custom events.

Deterministic for a given seed, so benchmarks and tests can reproduce a run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import msgspec

PAGES = [
    ("/", 30),
    ("/pricing", 12),
    ("/blog", 10),
    ("/blog/launch-week", 8),
    ("/docs", 9),
    ("/docs/install", 7),
    ("/signup", 5),
    ("/about", 4),
    ("/contact", 3),
    ("/changelog", 2),
]
REFERRERS = [
    ("", 40),
    ("https://www.google.com/", 25),
    ("https://news.ycombinator.com/", 8),
    ("https://duckduckgo.com/", 6),
    ("https://twitter.com/", 5),
    ("https://www.reddit.com/r/selfhosted/", 5),
    ("https://github.com/", 6),
    ("https://www.bing.com/", 5),
]
CAMPAIGNS = [
    ("", 80),
    ("?utm_source=newsletter&utm_medium=email&utm_campaign=november", 8),
    ("?utm_source=twitter&utm_medium=social&utm_campaign=launch", 7),
    ("?utm_source=google&utm_medium=cpc&utm_campaign=brand", 5),
]
AGENTS = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        40,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        20,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
        15,
    ),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0", 10),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36",
        15,
    ),
]
WIDTHS = [(1920, 35), (1440, 20), (390, 25), (412, 10), (768, 10)]
CUSTOM_EVENTS = [
    ("signup", {"plan": "pro"}),
    ("signup", {"plan": "free"}),
    ("download", {"file": "pulse.pdf"}),
]


class Hit(msgspec.Struct, frozen=True):
    body: dict[str, object]
    user_agent: str
    ip: str


def _pick[T](rng: random.Random, weighted: Sequence[tuple[T, int]]) -> T:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


class _Visit(msgspec.Struct):
    site: str
    domain: str
    ip: str
    agent: str
    width: int
    page: str
    pages_left: int


class TrafficModel:
    """Visits, not loose hits: a visitor arrives from a referrer or campaign, reads a few pages
    (each with the previous one as its referrer), and leaves; about two in five read one page.
    Several visits are under way at once and their pages interleave, as on a real site.
    """

    def __init__(
        self, sites: Sequence[tuple[str, str]], seed: int = 7, visitors: int = 2000, concurrent: int = 12
    ) -> None:
        """`sites` are (site key, domain) pairs; a pool of visitors returns across visits."""
        if visitors <= concurrent:
            raise ValueError("the pool needs more visitors than there are visits under way")
        self._rng = random.Random(seed)
        self._sites = list(sites)
        self._concurrent = concurrent
        self._visits: list[_Visit] = []
        self._visitors = [
            (
                f"203.0.{i // 250 % 256}.{i % 250 + 1}"
                if i % 2
                else f"198.51.{i // 250 % 256}.{i % 250 + 1}",
                _pick(self._rng, AGENTS),
            )
            for i in range(visitors)
        ]

    def next_hit(self) -> Hit:
        rng = self._rng
        if len(self._visits) < self._concurrent or rng.random() < 1 / (self._concurrent + 1):
            return self._arrive()
        visit = rng.choice(self._visits)
        referrer = f"https://{visit.domain}{visit.page}"
        visit.page = _pick(rng, PAGES)
        visit.pages_left -= 1
        if visit.pages_left <= 0:
            self._visits.remove(visit)
        return self._hit(visit, f"https://{visit.domain}{visit.page}", referrer)

    def _arrive(self) -> Hit:
        rng = self._rng
        site, domain = rng.choice(self._sites)
        browsing = {(v.ip, v.agent) for v in self._visits}
        ip, agent = rng.choice(self._visitors)
        while (ip, agent) in browsing:
            ip, agent = rng.choice(self._visitors)
        # Two in five visits read one page; the rest a few more, some many.
        pages = 1 if rng.random() < 0.4 else 1 + min(int(rng.expovariate(1 / 3)) + 1, 15)
        visit = _Visit(site, domain, ip, agent, _pick(rng, WIDTHS), _pick(rng, PAGES), pages - 1)
        if visit.pages_left > 0:
            self._visits.append(visit)
        url = f"https://{domain}{visit.page}{_pick(rng, CAMPAIGNS)}"
        return self._hit(visit, url, _pick(rng, REFERRERS))

    def _hit(self, visit: _Visit, url: str, referrer: str) -> Hit:
        body: dict[str, object] = {"s": visit.site, "u": url, "r": referrer, "w": visit.width}
        if self._rng.random() < 0.06:
            name, props = self._rng.choice(CUSTOM_EVENTS)
            body["n"], body["p"] = name, props
        return Hit(body=body, user_agent=visit.agent, ip=visit.ip)
