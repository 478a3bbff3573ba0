"""Whose address the collector derives the visitor from, behind zero, one or several proxies."""

from __future__ import annotations

import pytest

from pulse.collector.privacy import TrustedProxies, client_ip

VISITOR = "198.51.100.7"
FORGED = "203.0.113.66"
LB = "172.30.0.2"
CDN = "192.0.2.10"


@pytest.fixture
def trusted() -> TrustedProxies:
    return TrustedProxies(["127.0.0.1", "::1", LB, "192.0.2.0/24"])


def test_without_a_trusted_peer_the_header_is_ignored(trusted: TrustedProxies) -> None:
    assert client_ip(VISITOR, None, trusted) == VISITOR
    assert client_ip(VISITOR, FORGED, trusted) == VISITOR
    assert client_ip(None, FORGED, trusted) == ""


def test_one_proxy_the_address_it_appended_wins_over_what_the_visitor_sent(trusted: TrustedProxies) -> None:
    assert client_ip(LB, VISITOR, trusted) == VISITOR
    # HAProxy's option forwardfor appends a line after the visitor's own header.
    assert client_ip(LB, f"{FORGED},{VISITOR}", trusted) == VISITOR
    assert client_ip(LB, f"{FORGED}, 10.9.9.9, {VISITOR}", trusted) == VISITOR


def test_a_chain_of_trusted_proxies_is_walked_from_the_right(trusted: TrustedProxies) -> None:
    # visitor -> CDN (192.0.2.0/24, trusted as a network) -> HAProxy -> collector
    assert client_ip(LB, f"{VISITOR}, {CDN}", trusted) == VISITOR
    assert client_ip(LB, f"{FORGED}, {VISITOR}, {CDN}", trusted) == VISITOR
    # every hop trusted: the furthest one is the best the header can tell
    assert client_ip(LB, f"{CDN}, 127.0.0.1", trusted) == CDN


def test_unreadable_hops_stop_at_the_last_proxy_that_passed_them_on(trusted: TrustedProxies) -> None:
    assert client_ip(LB, "not-an-address", trusted) == LB
    assert client_ip(LB, f"{VISITOR}, unknown, {CDN}", trusted) == CDN
    assert client_ip(LB, "", trusted) == LB


def test_addresses_are_returned_canonical(trusted: TrustedProxies) -> None:
    assert client_ip("::1", " 2001:DB8:0:0::1 ", trusted) == "2001:db8::1"


def test_trusted_proxies_match_addresses_and_networks() -> None:
    trusted = TrustedProxies(["10.0.0.0/8", "172.30.0.2", "2001:db8::/32", "::1"])
    for address in ("10.1.2.3", "172.30.0.2", "2001:db8::5", "2001:DB8::5", "::1", "0:0::1"):
        assert trusted.peer(address), address
    for address in ("172.30.0.3", "11.0.0.1", "2001:db9::5", "garbage", ""):
        assert not trusted.peer(address), address
    # an address written with host bits set names its network
    assert TrustedProxies(["192.168.7.1/24"]).peer("192.168.7.200")
    assert not TrustedProxies([]).peer("127.0.0.1")


def test_an_invalid_entry_fails_when_parsed() -> None:
    with pytest.raises(ValueError, match="haproxy"):
        TrustedProxies(["haproxy"])
