"""The built tracker (tracker-js/dist/p.js) in a real headless Chromium.

Fixture pages from tests/fixtures/tracker are served by TrackerSite, which also records
the beacons; the last tests load the snippet the dashboard prints through the real stack.
Every test fails if the tracker raised anything into a page (pageerror also catches
unhandled promise rejections).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import AsyncIterator, Iterator
from http import HTTPStatus

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page

from dashboard_client import login
from stack import Stack, Tenant
from tracker_site import FIXTURES, ROOT, TrackerSite
from visitor import USER_AGENT

pytestmark = pytest.mark.browser

SITE = "site-1"
README = ROOT / "README.md"
# Playwright's browser reports navigator.webdriver, which the tracker ignores without data-debug.
HUMAN = "Object.defineProperty(Navigator.prototype, 'webdriver', {get: () => false})"
DO_NOT_TRACK = "Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})"
GLOBAL_PRIVACY_CONTROL = (
    "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})"
)
# Init scripts also run in about:blank, where storage is off limits.
OPTED_OUT = "if (location.protocol === 'http:') localStorage.setItem('pulse_ignore', 'true')"
RESTORED = "addEventListener('pageshow', (e) => { if (e.persisted) window.restored = true })"
# Switching tabs cannot be driven in headless Chromium, so the page is told it is hidden.
SET_HIDDEN = """hidden => {
  Object.defineProperty(document, 'hidden', {value: hidden, configurable: true});
  Object.defineProperty(document, 'visibilityState', {value: hidden ? 'hidden' : 'visible', configurable: true});
  document.dispatchEvent(new Event('visibilitychange', {bubbles: true}));
}"""
PRERENDERING = """
  window.prerendering = true;
  Object.defineProperty(Document.prototype, 'prerendering', {get: () => window.prerendering});
  window.activate = () => {
    window.prerendering = false;
    document.dispatchEvent(new Event('prerenderingchange'));
  };
"""


def tracker_tag(**attrs: str | bool) -> str:
    """<script defer data-site=... data-debug src="/p.js">; True writes a bare attribute."""
    attrs = {"site": SITE, "debug": True, **attrs}
    rendered = " ".join(
        f"data-{k}" if v is True else f'data-{k}="{html.escape(v)}"'
        for k, v in attrs.items()
        if v is not False
    )
    return f'<script defer {rendered} src="/p.js"></script>'


class Browsing:
    """One browser context (its own storage) over the fixture site, collecting page errors."""

    def __init__(self, site: TrackerSite, context: BrowserContext) -> None:
        self.site = site
        self.context = context
        self.errors: list[str] = []
        context.on("page", self.watch)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    async def open(self, fixture: str = "page.html", host: str = "shop.test", **attrs: str | bool) -> Page:
        page = await self.context.new_page()
        await page.goto(self.site.url(fixture, host, tracker=tracker_tag(**attrs)))
        return page

    async def quiet(self, page: Page) -> None:
        """Long enough for a beacon to have arrived, so that an absence can be asserted.

        The tracker starts its requests in the same task as the action that causes them, and
        loopback delivers them in milliseconds. (Playwright's "networkidle" never settles:
        keepalive requests are not reported as finished.)
        """
        await page.wait_for_timeout(400)

    async def pageviews(self, count: int) -> list[str]:
        await self.site.wait_for(lambda: len(self.site.events("pageview")) >= count)
        return [e["u"] for e in self.site.events("pageview")]


@pytest.fixture
def tracker_site() -> Iterator[TrackerSite]:
    """One per test: beacons a closing page sends late cannot land in the next test."""
    site = TrackerSite()
    site.start()
    yield site
    site.stop()


@pytest.fixture
async def browsing(tracker_site: TrackerSite, browser: Browser) -> AsyncIterator[Browsing]:
    context = await browser.new_context(user_agent=USER_AGENT)
    session = Browsing(tracker_site, context)
    yield session
    await context.close()
    assert session.errors == []


async def test_pageview_on_load_goes_to_the_scripts_origin_as_text_plain(browsing: Browsing) -> None:
    page = await browsing.open()
    assert await browsing.pageviews(1) == [page.url]
    [beacon] = browsing.site.recorded
    assert beacon.host == f"shop.test:{browsing.site.port}"
    assert beacon.content_type.startswith("text/plain")
    assert beacon.payload == {"s": SITE, "n": "pageview", "u": page.url, "r": "", "w": 1280}


async def test_every_event_carries_its_own_random_id(browsing: Browsing) -> None:
    page = await browsing.open()
    await browsing.pageviews(1)
    await page.evaluate("pulse('one'); pulse('two')")
    await browsing.site.wait_for(lambda: len(browsing.site.recorded) == 3)
    ids = [r.sent_id for r in browsing.site.recorded]
    assert all(isinstance(i, float) and 0 <= i < 1 for i in ids)
    assert len(set(ids)) == 3


@pytest.mark.parametrize("status", [HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.TOO_MANY_REQUESTS])
async def test_a_refused_beacon_is_sent_again_later_with_the_same_id(
    browsing: Browsing, status: HTTPStatus
) -> None:
    browsing.site.answer_next(status)
    page = await browsing.open()
    await browsing.site.wait_for(lambda: len(browsing.site.recorded) == 1)
    first = browsing.site.recorded[0]
    await browsing.quiet(page)
    assert browsing.site.events("pageview") == []
    # Ten seconds later, once, as a beacon.
    await browsing.site.wait_for(lambda: len(browsing.site.recorded) == 2, timeout_s=15)
    resent = browsing.site.recorded[1]
    assert (resent.payload, resent.sent_id) == (first.payload, first.sent_id)
    assert browsing.site.events("pageview") == [first.payload]


async def test_a_beacon_refused_for_what_it_is_is_not_sent_again(browsing: Browsing) -> None:
    browsing.site.answer_next(HTTPStatus.BAD_REQUEST, HTTPStatus.SERVICE_UNAVAILABLE)
    page = await browsing.open()
    await browsing.site.wait_for(lambda: len(browsing.site.recorded) == 1)
    # The 503 that was queued next goes to the next event, so that one comes again.
    await page.evaluate("pulse('later')")
    await browsing.site.wait_for(lambda: len(browsing.site.recorded) == 3, timeout_s=15)
    assert [r.payload["n"] for r in browsing.site.recorded] == ["pageview", "later", "later"]


async def test_data_api_overrides_the_endpoint(browsing: Browsing) -> None:
    api = f"http://elsewhere.test:{browsing.site.port}/api/event"
    await browsing.open(api=api)
    await browsing.pageviews(1)
    assert [r.host for r in browsing.site.recorded] == [f"elsewhere.test:{browsing.site.port}"]


async def test_spa_navigation_counts_each_new_url_once(browsing: Browsing) -> None:
    page = await browsing.open()
    first = page.url
    origin = f"http://shop.test:{browsing.site.port}"
    await page.evaluate("history.pushState({}, '', '/a')")
    await page.evaluate("history.replaceState({}, '', '/a')")  # the same URL: no new view
    await page.evaluate("history.pushState({}, '', '/b')")
    await page.evaluate("history.pushState({}, '', '/b#reviews')")  # a fragment, without data-hash
    await page.go_back()  # back to /b: popstate, but the same page
    await page.go_back()
    await page.go_forward()
    views = [first, f"{origin}/a", f"{origin}/b", f"{origin}/a", f"{origin}/b"]
    assert await browsing.pageviews(5) == views
    await browsing.quiet(page)
    assert await browsing.pageviews(5) == views
    # Each navigation ends the previous page's visible time.
    assert [e["u"] for e in browsing.site.events("engagement")] == views[:-1]
    assert all(isinstance(e["e"], int) and e["e"] >= 0 for e in browsing.site.events("engagement"))


async def test_hash_routing_with_data_hash(browsing: Browsing) -> None:
    page = await browsing.open(hash=True)
    await page.evaluate("location.hash = '#/cart'")
    await page.evaluate("location.hash = '#/cart'")  # unchanged: no event at all
    await page.evaluate("history.pushState({}, '', '#/checkout')")
    base = page.url.split("#")[0]
    assert await browsing.pageviews(3) == [base, f"{base}#/cart", f"{base}#/checkout"]


async def test_prerendered_page_waits_until_shown(browsing: Browsing) -> None:
    await browsing.context.add_init_script(PRERENDERING)
    page = await browsing.open()
    await browsing.quiet(page)
    assert browsing.site.recorded == []
    await page.evaluate("activate()")
    assert await browsing.pageviews(1) == [page.url]


async def test_back_forward_cache_restore_is_a_new_view(browsing: Browsing) -> None:
    await browsing.context.add_init_script(RESTORED)
    page = await browsing.open()
    await page.goto(browsing.site.url("landing.html", "elsewhere.test"))
    # A restore fires no load event, so wait for the commit only.
    await page.go_back(wait_until="commit")
    await page.wait_for_function("window.restored")
    assert await browsing.pageviews(2) == [page.url, page.url]


async def test_custom_event_with_props(browsing: Browsing) -> None:
    page = await browsing.open()
    await page.evaluate("pulse('signup', {props: {plan: 'pro', seats: '3'}})")
    await page.evaluate("pulse('newsletter')")
    await browsing.site.wait_for(lambda: len(browsing.site.recorded) == 3)
    [signup] = browsing.site.events("signup")
    assert signup["p"] == {"plan": "pro", "seats": "3"}
    assert signup["u"] == page.url
    assert "p" not in browsing.site.events("newsletter")[0]


async def test_calls_queued_before_the_script_loads_are_sent(browsing: Browsing) -> None:
    stub = re.search(r"<script>window\.pulse=.*?</script>", README.read_text())
    assert stub, "the README shows the queue stub"
    assert stub[0] in (FIXTURES / "queue.html").read_text()  # the README's stub is the one tested
    await browsing.open("queue.html")
    await browsing.site.wait_for(lambda: len(browsing.site.recorded) == 3)
    assert sorted(e["n"] for e in browsing.site.events()) == ["cart", "checkout", "pageview"]
    assert browsing.site.events("cart")[0]["p"] == {"items": "3"}


async def test_tagged_element_click_sends_its_event_and_props(browsing: Browsing) -> None:
    page = await browsing.open()
    await page.click("#signup-label")  # a child of the tagged button
    await browsing.site.wait_for(lambda: bool(browsing.site.events("signup")))
    [signup] = browsing.site.events("signup")
    assert signup["p"] == {"plan": "pro", "billing-cycle": "yearly"}


async def test_outbound_link_is_sent_and_followed(browsing: Browsing) -> None:
    page = await browsing.open()
    source = page.url
    await page.click("#outbound")
    await page.wait_for_url("http://elsewhere.test:*/landing.html")
    await browsing.site.wait_for(lambda: bool(browsing.site.events("outbound")))
    [outbound] = browsing.site.events("outbound")
    assert outbound["u"] == source
    assert outbound["p"] == {"url": page.url}


async def test_outbound_counts_new_tab_clicks_but_not_prevented_or_right_clicks(browsing: Browsing) -> None:
    page = await browsing.open()
    await page.click("#prevented")
    await page.click("#outbound", button="right")
    await page.click("#outbound", button="middle")
    await page.click("#outbound", modifiers=["ControlOrMeta"])
    await browsing.site.wait_for(lambda: len(browsing.site.events("outbound")) == 2)
    await browsing.quiet(page)
    assert len(browsing.site.events("outbound")) == 2
    assert page.url.startswith("http://shop.test")  # the new-tab clicks left this page alone


async def test_download_links_with_the_default_and_a_configured_list(browsing: Browsing) -> None:
    page = await browsing.open()
    async with page.expect_download():
        await page.click("#report")
    await browsing.site.wait_for(lambda: bool(browsing.site.events("download")))
    assert browsing.site.events("download")[0]["p"]["url"].endswith("/files/report.pdf")

    browsing.site.clear()
    page = await browsing.open(downloads="zip")
    for link in ("#report", "#archive"):
        async with page.expect_download():
            await page.click(link)
    await browsing.site.wait_for(lambda: bool(browsing.site.events("download")))
    await browsing.quiet(page)
    assert [e["p"]["url"].rsplit("/", 1)[1] for e in browsing.site.events("download")] == ["export.zip"]


async def test_engagement_is_sent_when_hidden_and_when_left(browsing: Browsing) -> None:
    page = await browsing.open()
    await page.wait_for_timeout(300)
    await page.evaluate(SET_HIDDEN, True)
    await browsing.site.wait_for(lambda: len(browsing.site.events("engagement")) == 1)
    await page.wait_for_timeout(200)  # hidden time does not count
    await page.evaluate(SET_HIDDEN, False)
    await page.wait_for_timeout(100)
    await page.goto(browsing.site.url("landing.html", "elsewhere.test"))
    await browsing.site.wait_for(lambda: len(browsing.site.events("engagement")) == 2)
    hidden, left = browsing.site.events("engagement")
    assert hidden["u"] == left["u"] == browsing.site.events("pageview")[0]["u"]
    assert 300 <= hidden["e"] < 2000
    assert 100 <= left["e"] < hidden["e"]


@pytest.mark.parametrize(
    "opt_out", [DO_NOT_TRACK, GLOBAL_PRIVACY_CONTROL, OPTED_OUT], ids=["dnt", "gpc", "flag"]
)
async def test_opt_outs_stop_all_sending(browsing: Browsing, opt_out: str) -> None:
    await browsing.context.add_init_script(opt_out)
    page = await browsing.open(visitor="cookie")
    await page.evaluate("pulse('signup')")
    await page.click("#signup")
    await page.click("#outbound", button="middle")
    await page.evaluate("history.pushState({}, '', '/a')")
    await browsing.quiet(page)
    assert browsing.site.recorded == []
    assert await page.evaluate("localStorage.getItem('pulse_id')") is None


async def test_opt_out_flag_takes_effect_at_once(browsing: Browsing) -> None:
    page = await browsing.open()
    await browsing.pageviews(1)
    await page.evaluate("localStorage.pulse_ignore = 'true'")
    await page.evaluate("pulse('ignored')")
    await page.evaluate("localStorage.removeItem('pulse_ignore'); pulse('counted')")
    await browsing.site.wait_for(lambda: bool(browsing.site.events("counted")))
    assert browsing.site.events("ignored") == []


@pytest.mark.parametrize(
    ("host", "human", "debug", "sends"),
    [
        ("localhost", True, False, False),
        ("127.0.0.1", True, False, False),
        ("shop.test", False, False, False),  # an automated browser
        ("shop.test", True, False, True),
        ("localhost", False, True, True),
    ],
)
async def test_localhost_and_automation_send_only_with_data_debug(
    browsing: Browsing, host: str, human: bool, debug: bool, sends: bool
) -> None:
    if human:
        await browsing.context.add_init_script(HUMAN)
    page = await browsing.open(host=host, debug=debug)
    await browsing.quiet(page)
    assert len(browsing.site.events("pageview")) == (1 if sends else 0)


async def test_first_party_visitor_id_only_with_data_visitor(browsing: Browsing) -> None:
    await browsing.open(visitor="cookie")
    await browsing.open(visitor="cookie")
    await browsing.pageviews(2)
    ids = {e["i"] for e in browsing.site.events("pageview")}
    assert len(ids) == 1
    assert re.fullmatch(r"[0-9A-Za-z._-]{1,32}", ids.pop())

    browsing.site.clear()
    page = await browsing.open()
    await browsing.open(visitor="yes")  # only "cookie" asks for an id
    await browsing.pageviews(2)
    assert all("i" not in e for e in browsing.site.events("pageview"))
    assert await page.evaluate("localStorage.getItem('pulse_id')") is not None  # kept from above


async def test_a_policy_that_blocks_the_endpoint_raises_nothing(browsing: Browsing) -> None:
    page = await browsing.open("csp.html")
    await page.evaluate("pulse('blocked', {props: {by: 'csp'}})")
    await page.click("#outbound", button="middle")
    await browsing.quiet(page)
    assert browsing.site.recorded == []
    # The fixture's teardown asserts that no error reached the page.


async def test_tracker_errors_never_reach_the_page(browsing: Browsing) -> None:
    page = await browsing.open()
    await browsing.pageviews(1)
    # A failing fetch hands over to sendBeacon.
    await page.evaluate("window.fetch = () => Promise.reject(new TypeError('offline')); pulse('via-beacon')")
    await browsing.site.wait_for(lambda: bool(browsing.site.events("via-beacon")))
    assert browsing.site.recorded[-1].content_type == "text/plain;charset=UTF-8"
    # A fetch that throws, hostile arguments and a click on no element at all.
    await page.evaluate("window.fetch = () => { throw new Error('broken fetch') }; pulse('lost')")
    await page.evaluate("pulse('hostile', {get props() { throw new Error('hostile') }})")
    await page.evaluate("document.dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    await page.evaluate("history.pushState({}, '', '/after-broken-fetch')")
    # The page's own mistakes still reach it: the history hook is transparent.
    with pytest.raises(Exception, match="SecurityError"):
        await page.evaluate("history.pushState({}, '', 'http://elsewhere.test/')")


async def test_snippets_from_the_dashboard_count_in_the_real_collector(
    stack: Stack, browsing: Browsing, browser: Browser
) -> None:
    tenant = await stack.tenant("Tracker")
    latest, pinned = await _snippets(stack, tenant)
    assert f'src="{stack.collector}/p.js"' in latest

    # Playwright's browser is automated, so the pages carry data-debug.
    for snippet in (latest, pinned):
        page = await browsing.context.new_page()
        await page.goto(
            browsing.site.url("page.html", tracker=snippet.replace("<script ", "<script data-debug "))
        )

    assert await stack.counts(tenant, {"pageviews": 2}, period="30m", timeout_s=15) == {"pageviews": 2}


async def test_pinned_script_is_immutable_and_matches_its_integrity_hash(stack: Stack) -> None:
    tenant = await stack.tenant("Pinned")
    _, pinned = await _snippets(stack, tenant)
    src = _attribute(pinned, "src")
    integrity = _attribute(pinned, "integrity")
    assert re.fullmatch(rf"{re.escape(stack.collector)}/p\.[0-9a-f]{{16}}\.js", src)
    async with httpx.AsyncClient() as client:
        response = await client.get(src)
        latest = await client.get(f"{stack.collector}/p.js")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert latest.headers["cache-control"] == "public, max-age=300"
    assert response.content == latest.content
    assert integrity == "sha384-" + base64.b64encode(hashlib.sha384(response.content).digest()).decode()


async def _snippets(stack: Stack, tenant: Tenant) -> tuple[str, str]:
    """The two snippets exactly as the site's install page shows them."""
    async with httpx.AsyncClient(base_url=stack.dashboard, follow_redirects=True, timeout=30) as client:
        await login(client, tenant.email, tenant.password)
        page = (await client.get(f"/sites/{tenant.site.id}/install")).text
    latest, pinned = (
        html.unescape(re.findall(rf'<pre[^>]* id="snippet-{which}"><code>(.*?)</code>', page)[0])
        for which in ("latest", "pinned")
    )
    return latest, pinned


def _attribute(tag: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]+)"', tag)
    assert match, f"{name} in {tag}"
    return match[1]
