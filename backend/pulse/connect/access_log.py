"""Web server access logs (NCSA common and combined formats) → page views.

A line is a page view when it is a successful GET of a page: 2xx or 304 (a browser that had the
page cached still viewed it), and a path with no extension or a page extension. Everything else a
server logs (assets, redirects, errors, POSTs, health checks by bots) is not a view and is skipped,
not refused. A line that is not in the format is refused with the reason.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import msgspec

from pulse.collector.ingest import RequestContext
from pulse.connect.server_events import (
    MAX_USER_AGENT,
    Admissible,
    InvalidEvent,
    beacon_of,
    check_ip,
    check_time,
)

# host ident authuser [time] "request" status bytes ["referer" "user-agent"]; Apache escapes a quote
# inside a field as \", nginx as \x22, and both escape a backslash.
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
_LINE = re.compile(rf"^(\S+) \S+ \S+ \[([^\]]+)\] {_QUOTED} (\d{{3}}) (?:\d+|-)(?: {_QUOTED} {_QUOTED})?.*$")
_TIME_FORMAT = "%d/%b/%Y:%H:%M:%S %z"
MAX_LINE = 16 * 1024
PAGE_EXTENSIONS = frozenset({"", ".html", ".htm", ".php", ".asp", ".aspx", ".jsp", ".shtml"})


class LogLine(msgspec.Struct, frozen=True):
    ip: str
    ts_ms: int
    method: str
    target: str
    status: int
    referrer: str
    user_agent: str


def parse_line(line: str) -> LogLine:
    if len(line) > MAX_LINE:
        raise InvalidEvent(f"line is longer than {MAX_LINE} characters")
    match = _LINE.match(line.rstrip("\r\n"))
    if match is None:
        raise InvalidEvent("not a line in common or combined log format")
    ip, when, request, status, referrer, user_agent = match.groups()
    try:
        moment = datetime.strptime(when, _TIME_FORMAT)
    except ValueError:
        raise InvalidEvent(f"time {when!r} is not like 10/Oct/2026:13:55:36 +0000") from None
    parts = _unescape(request).split(" ")
    method, target = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
    return LogLine(
        ip=ip,
        ts_ms=int(moment.timestamp() * 1000),
        method=method,
        target=target,
        status=int(status),
        referrer=_dash(_unescape(referrer or "")),
        user_agent=_dash(_unescape(user_agent or ""))[:MAX_USER_AGENT],
    )


def is_page_view(line: LogLine) -> bool:
    if line.method != "GET" or not (200 <= line.status < 300 or line.status == 304):
        return False
    if not line.target.startswith("/"):
        return False
    return PurePosixPath(urlsplit(line.target).path).suffix.lower() in PAGE_EXTENSIONS


def page_view(line: str, site: str, origin: str, now_ms: int, max_age_ms: int) -> Admissible | None:
    """The line as a page view of `site` at `origin` (scheme and host), or None if it is not one."""
    parsed = parse_line(line)
    if not is_page_view(parsed):
        return None
    check_ip(parsed.ip)
    check_time(parsed.ts_ms, now_ms, max_age_ms)
    beacon = beacon_of(s=site, u=origin + parsed.target, r=parsed.referrer)
    return Admissible(beacon, RequestContext(ip=parsed.ip, user_agent=parsed.user_agent), parsed.ts_ms)


def _dash(value: str) -> str:
    return "" if value == "-" else value


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    return re.sub(r"\\x([0-9a-fA-F]{2})|\\(.)", lambda m: chr(int(m[1], 16)) if m[1] else m[2], value)
