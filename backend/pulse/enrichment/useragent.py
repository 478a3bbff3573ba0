"""User-Agent → browser, OS, their major versions, and a device type.

Parsing uses ua-parser with the precompiled uap-core rules of ua-parser-builtins, matched by
the ua-parser-rs native resolver (one Rust regex set per domain): 15-25 µs for a User-Agent
it has not seen (measured on 3,000 distinct ones), against about 700 µs for ua-parser's
pure-Python resolver. Answers are cached by the User-Agent string, and real traffic repeats a
small set of them, so a cached answer costs a dictionary lookup (under 0.1 µs).

ua-parser names a device *family* (iPhone, SM-X700, Spider…), not a type. The type is derived,
first rule that applies wins:

1. ``bot``: ua-parser's device family is ``Spider``, or crawlerdetect calls it a bot
   (`pulse.enrichment.bots.is_bot`, which also holds an empty User-Agent to be a script).
2. ``tablet``: an iPad, an Android device ua-parser files as a generic Android tablet, or a
   ``Tablet``, ``Kindle``, ``Silk`` or ``PlayBook`` token (but not Windows' ``Tablet PC``).
3. ``other``: televisions, set-top boxes and game consoles (``SmartTV``, ``CrKey``, ``Xbox``…).
4. ``mobile``: a ``Mobi`` token (what browsers put in every phone User-Agent), or a phone-only
   OS (iOS outside iPads, Windows Phone, KaiOS…).
5. ``tablet``: Android without ``Mobile``: Android phones say ``Mobile``, tablets do not.
6. ``desktop``: a desktop OS (Windows, macOS, Linux, Chrome OS, the BSDs…).
7. ``other``: everything else, including User-Agents nothing recognises.

Known limits of any User-Agent reading: iPadOS Safari asks for desktop sites by default and
sends a Mac User-Agent, so those iPads count as desktop; Windows 11 still says Windows NT 10.0,
so it reports as Windows 10; Safari freezes macOS at 10.15, so macOS reports major and minor
(``10.15``) and newer versions are not told apart.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from ua_parser import OS, Device, Domain, UserAgent, load_lazy_builtins
from ua_parser.regex import Resolver

from pulse.enrichment.bots import is_bot

BOT = "bot"
DESKTOP = "desktop"
MOBILE = "mobile"
TABLET = "tablet"
OTHER = "other"

# Longer User-Agents are cut before matching: no real browser sends one, and the rules are
# regular expressions whose cost grows with the input.
MAX_PARSED = 1024
_MAX_NAME = 64
_MAX_VERSION = 16

_resolver = Resolver(load_lazy_builtins())

# ua-parser names a browser's mobile build separately; the device column already says so.
_BROWSER_NAMES = {
    "Chrome Mobile": "Chrome",
    "Chrome Mobile iOS": "Chrome",
    "Mobile Safari": "Safari",
    "Mobile Safari UI/WKWebView": "Safari (in-app)",
    "Firefox Mobile": "Firefox",
    "Firefox iOS": "Firefox",
    "Edge Mobile": "Edge",
    "Opera Mobile": "Opera",
    "Chrome Mobile WebView": "Chrome WebView",
}
_OS_NAMES = {"Mac OS X": "macOS"}

# Substrings, not regular expressions: `in` is ten times faster than one alternation.
_TABLET_TOKENS = ("iPad", "Kindle", "Silk/", "PlayBook")
_TV_OR_CONSOLE_TOKENS = (
    "SmartTV",
    "Smart-TV",
    "SMART-TV",
    "HbbTV",
    "AppleTV",
    "GoogleTV",
    "Android TV",
    "AndroidTV",
    "CrKey",
    "Roku",
    "BRAVIA",
    "Web0S",
    "NetCast",
    "; AFT",  # Amazon Fire TV: "Android 9; AFTMM Build/…"
    "Xbox",
    "PlayStation",
    "Nintendo",
)
_PHONE_OS = frozenset(
    {"iOS", "Windows Phone", "BlackBerry OS", "BlackBerry Tablet OS", "KaiOS", "Firefox OS", "Symbian OS"}
)
_DESKTOP_OS = frozenset(
    {
        "Windows",
        "Mac OS X",
        "Linux",
        "Ubuntu",
        "Debian",
        "Fedora",
        "Red Hat",
        "SUSE",
        "Mint",
        "Arch Linux",
        "Gentoo",
        "Chrome OS",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
        "Solaris",
    }
)


class UserAgentInfo(NamedTuple):
    """Browser and OS names ('' when unknown), their major versions, and the device type."""

    browser: str
    browser_version: str
    os: str
    os_version: str
    device: str


@functools.lru_cache(maxsize=16_384)
def parse_user_agent(user_agent: str) -> UserAgentInfo:
    """Never raises: a User-Agent no rule recognises is '' names on an ``other`` device."""
    ua = user_agent[:MAX_PARSED]
    try:
        result = _resolver(ua, Domain.ALL)
    except Exception:  # a malformed input must not stop the worker; it is just unknown
        return UserAgentInfo("", "", "", "", BOT if is_bot(ua) else OTHER)
    browser, browser_version = _browser(result.user_agent)
    os, os_version = _os(result.os)
    device = device_type(ua, result.os.family if result.os else "", result.device)
    return UserAgentInfo(browser, browser_version, os, os_version, device)


def _browser(agent: UserAgent | None) -> tuple[str, str]:
    if agent is None or agent.family == "Other":
        return "", ""
    name = _BROWSER_NAMES.get(agent.family, agent.family)[:_MAX_NAME]
    return name, (agent.major or "")[:_MAX_VERSION]


def _os(os: OS | None) -> tuple[str, str]:
    if os is None or os.family == "Other":
        return "", ""
    version = os.major or ""
    if os.family == "Mac OS X" and version == "10" and os.minor:
        version = f"10.{os.minor}"
    return _OS_NAMES.get(os.family, os.family)[:_MAX_NAME], version[:_MAX_VERSION]


def device_type(user_agent: str, os_family: str, device: Device | None) -> str:
    """The rule of the module docstring, from ua-parser's OS family and device."""
    family = device.family if device else ""
    if family == "Spider" or is_bot(user_agent):
        return BOT
    if family == "iPad" or (device and device.brand == "Generic_Android_Tablet"):
        return TABLET
    if any(token in user_agent for token in _TABLET_TOKENS):
        return TABLET
    if "Tablet" in user_agent and "Tablet PC" not in user_agent:
        return TABLET
    if any(token in user_agent for token in _TV_OR_CONSOLE_TOKENS):
        return OTHER
    if "Mobi" in user_agent or os_family in _PHONE_OS:
        return MOBILE
    if os_family == "Android":
        return TABLET
    if os_family in _DESKTOP_OS or os_family.startswith("Windows") or family == "Mac":
        return DESKTOP
    return OTHER
