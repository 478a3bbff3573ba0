"""The access-log parser on lines as Apache and nginx write them, well-formed and not."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from pulse.connect.access_log import is_page_view, page_view, parse_line
from pulse.connect.server_events import InvalidEvent

NOW_MS = int(datetime(2026, 11, 21, 12, tzinfo=UTC).timestamp() * 1000)
DAY_MS = 86_400_000
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"

# Apache's combined format (LogFormat "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-agent}i\"").
APACHE = f'192.0.2.10 - frank [21/Nov/2026:10:15:02 +0100] "GET /pricing?plan=pro HTTP/1.1" 200 2326 "https://www.google.com/" "{CHROME}"'
# nginx's default `combined`, which escapes a quote as \x22.
NGINX = f'2001:db8::7 - - [21/Nov/2026:09:15:02 +0000] "GET /say/\\x22hi\\x22 HTTP/2.0" 304 0 "-" "{CHROME}"'
# The common format: no referrer, no User-Agent.
COMMON = '198.51.100.4 - - [21/Nov/2026:09:00:00 +0000] "GET /index.html HTTP/1.0" 200 1043'


def test_combined_line_from_apache() -> None:
    line = parse_line(APACHE)
    assert line.ip == "192.0.2.10"
    assert line.ts_ms == int(datetime(2026, 11, 21, 9, 15, 2, tzinfo=UTC).timestamp() * 1000)
    assert (line.method, line.target, line.status) == ("GET", "/pricing?plan=pro", 200)
    assert line.referrer == "https://www.google.com/"
    assert line.user_agent == CHROME


def test_combined_line_from_nginx_with_an_escaped_quote_and_ipv6() -> None:
    line = parse_line(NGINX)
    assert line.ip == "2001:db8::7"
    assert line.target == '/say/"hi"'
    assert line.status == 304
    assert line.referrer == ""
    assert is_page_view(line)


def test_apache_escaped_quote_inside_the_user_agent() -> None:
    line = parse_line('192.0.2.1 - - [21/Nov/2026:09:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "say \\"hi\\""')
    assert line.user_agent == 'say "hi"'


def test_common_format_line_has_no_referrer_or_user_agent() -> None:
    line = parse_line(COMMON)
    assert (line.referrer, line.user_agent) == ("", "")
    assert is_page_view(line)


@pytest.mark.parametrize(
    ("line", "is_view"),
    [
        ('1.2.3.4 - - [21/Nov/2026:09:00:00 +0000] "GET /docs/ HTTP/1.1" 200 10 "-" "x"', True),
        ('1.2.3.4 - - [21/Nov/2026:09:00:00 +0000] "GET /about.php?id=3 HTTP/1.1" 200 10 "-" "x"', True),
        ('1.2.3.4 - - [21/Nov/2026:09:00:00 +0000] "GET /app.js HTTP/1.1" 200 10 "-" "x"', False),
        ('1.2.3.4 - - [21/Nov/2026:09:00:00 +0000] "GET /logo.PNG HTTP/1.1" 200 10 "-" "x"', False),
        ('1.2.3.4 - - [21/Nov/2026:09:00:00 +0000] "GET /gone HTTP/1.1" 404 10 "-" "x"', False),
        ('1.2.3.4 - - [21/Nov/2026:09:00:00 +0000] "GET /old HTTP/1.1" 301 0 "-" "x"', False),
        ('1.2.3.4 - - [21/Nov/2026:09:00:00 +0000] "POST /login HTTP/1.1" 200 10 "-" "x"', False),
        ('1.2.3.4 - - [21/Nov/2026:09:00:00 +0000] "HEAD / HTTP/1.1" 200 0 "-" "x"', False),
        ('1.2.3.4 - - [21/Nov/2026:09:00:00 +0000] "-" 408 0 "-" "-"', False),
        (
            '1.2.3.4 - - [21/Nov/2026:09:00:00 +0000] "GET http://proxy.example/ HTTP/1.1" 200 1 "-" "x"',
            False,
        ),
    ],
)
def test_only_successful_page_gets_are_views(line: str, is_view: bool) -> None:
    assert is_page_view(parse_line(line)) is is_view


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("", "not a line in common or combined log format"),
        ("GET / HTTP/1.1", "not a line in common or combined log format"),
        (
            '1.2.3.4 - - [21/Nov/2026:09:00:00 +0000] "GET / HTTP/1.1',
            "not a line in common or combined log format",
        ),
        (
            '1.2.3.4 - - [21/Nov/2026:09:00:00 +0000] "GET / HTTP/1.1" OK 10',
            "not a line in common or combined",
        ),
        (
            '1.2.3.4 - - [2026-11-21T09:00:00Z] "GET / HTTP/1.1" 200 10',
            "is not like 10/Oct/2026:13:55:36 +0000",
        ),
        ('1.2.3.4 - - [31/Feb/2026:09:00:00 +0000] "GET / HTTP/1.1" 200 10', "is not like"),
        ("x" * 20_000, "longer than 16384 characters"),
    ],
)
def test_malformed_lines_are_refused_with_a_reason(line: str, reason: str) -> None:
    with pytest.raises(InvalidEvent, match=re.escape(reason)):
        parse_line(line)


def test_page_view_is_a_checked_beacon_at_the_sites_origin() -> None:
    view = page_view(APACHE, "site-key", "https://shop.example", NOW_MS, DAY_MS)
    assert view is not None
    assert view.beacon.u == "https://shop.example/pricing?plan=pro"
    assert view.beacon.r == "https://www.google.com/"
    assert view.context.ip == "192.0.2.10"
    assert view.context.user_agent == CHROME
    assert view.ts_ms == int(datetime(2026, 11, 21, 9, 15, 2, tzinfo=UTC).timestamp() * 1000)


def test_page_view_skips_what_is_not_a_view_and_refuses_what_is_out_of_bounds() -> None:
    asset = '192.0.2.10 - - [21/Nov/2026:10:15:02 +0000] "GET /a.css HTTP/1.1" 200 9 "-" "x"'
    assert page_view(asset, "k", "https://shop.example", NOW_MS, DAY_MS) is None
    old = APACHE.replace("21/Nov/2026", "01/Nov/2026")
    with pytest.raises(InvalidEvent, match="s old"):
        page_view(old, "k", "https://shop.example", NOW_MS, DAY_MS)
    named_host = APACHE.replace("192.0.2.10", "crawler.example.net")
    with pytest.raises(InvalidEvent, match="not an IP address"):
        page_view(named_host, "k", "https://shop.example", NOW_MS, DAY_MS)
    long_path = APACHE.replace("/pricing?plan=pro", "/" + "p" * 3000)
    with pytest.raises(InvalidEvent, match="length <= 2048"):
        page_view(long_path, "k", "https://shop.example", NOW_MS, DAY_MS)
