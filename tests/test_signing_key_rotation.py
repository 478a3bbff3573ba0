"""Signing keys rotate without logging anybody out, and replicas agree on the ring.

Each test runs on SQLite and on PostgreSQL, with a clock the test moves by hand.
"""

from __future__ import annotations

import asyncio

import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from fake_clock import FakeClock
from pulse.auth.keyring import CLOCK_LEEWAY_S, Keyring, key_material
from pulse.auth.tokens import InvalidToken, TokenService
from pulse.oltp.accounts import Accounts, Membership
from pulse.settings import Settings

SETTINGS = Settings(
    secret_key="rotation-test-secret",
    jwt_ttl_s=3600,
    api_token_ttl_s=900,
    jwt_key_rotation_s=86_400,
    auth_cache_s=5.0,
)
# How long a replaced key keeps verifying: the longest token lifetime, the cache and the leeway.
RETIRE_AFTER_S = 3600 + 5 + CLOCK_LEEWAY_S
START = 1_700_000_000.0


@pytest.fixture
def clock() -> FakeClock:
    clock = FakeClock()
    clock.now = START
    return clock


@pytest.fixture
async def member(accounts: Accounts) -> Membership:
    tenant = await accounts.create_tenant("Rotation")
    return await accounts.create_user("rotation@example.com", "correct horse battery", tenant.id, "owner")


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


async def test_old_tokens_verify_until_their_key_retires_and_new_ones_carry_the_new_kid(
    oltp_engine: AsyncEngine, member: Membership, clock: FakeClock
) -> None:
    tokens = TokenService(SETTINGS, oltp_engine, clock)
    old = (await tokens.issue_user(member)).token
    old_kid = _kid(old)
    # Signed with the old key and valid far beyond its retirement: only the key's retirement refuses it.
    long_lived = jwt.encode(
        {**jwt.decode(old, options={"verify_signature": False}), "exp": int(START) + 10 * RETIRE_AFTER_S},
        key_material(SETTINGS.secret_key, old_kid),
        algorithm="HS256",
        headers={"kid": old_kid},
    )

    # `pulse signing-key rotate`, run by an operator: another process, the same store.
    clock.now += 2
    new, ring = await Keyring(oltp_engine, SETTINGS, clock).rotate()
    assert new.kid != old_kid
    assert [(k.kid, k.retire_at) for k in ring] == [
        (old_kid, int((START + 2 + RETIRE_AFTER_S) * 1000)),
        (new.kid, None),
    ]

    # This process still believes its ring for auth_cache_s, and then signs with the new key.
    assert _kid((await tokens.issue_user(member)).token) == old_kid
    clock.now = START + SETTINGS.auth_cache_s
    fresh = (await tokens.issue_user(member)).token
    assert _kid(fresh) == new.kid

    assert (await tokens.verify(old)).subject == member.user_id
    assert (await tokens.verify(long_lived)).subject == member.user_id
    # The last moment the old token lives: its expiry, before the key retires.
    clock.now = START + SETTINGS.jwt_ttl_s - 1
    assert (await tokens.verify(old)).subject == member.user_id
    clock.now = START + 2 + RETIRE_AFTER_S - 1
    assert (await tokens.verify(long_lived)).subject == member.user_id

    clock.now = START + 2 + RETIRE_AFTER_S
    for refused in (old, long_lived):
        with pytest.raises(InvalidToken, match="signed with a retired key"):
            await tokens.verify(refused)
    later = (await tokens.issue_user(member)).token
    assert _kid(later) == _kid(fresh)
    assert (await tokens.verify(later)).subject == member.user_id


async def test_the_key_rotates_by_itself_once_it_is_old(
    oltp_engine: AsyncEngine, member: Membership, clock: FakeClock
) -> None:
    tokens = TokenService(SETTINGS, oltp_engine, clock)
    first = (await tokens.issue_user(member)).token
    clock.now += SETTINGS.jwt_key_rotation_s - 1
    assert _kid((await tokens.issue_user(member)).token) == _kid(first)
    clock.now += 1
    second = (await tokens.issue_user(member)).token
    assert _kid(second) != _kid(first)
    # The first token expired long ago; its key still verifies until the tokens it signed lately expire.
    with pytest.raises(InvalidToken, match="token has expired"):
        await tokens.verify(first)
    clock.now += 1
    _, ring = await Keyring(oltp_engine, SETTINGS, clock).rotate()
    assert [k.kid for k in ring][:2] == [_kid(first), _kid(second)]
    assert ring[0].retire_at == int((START + SETTINGS.jwt_key_rotation_s + RETIRE_AFTER_S) * 1000)


async def test_replicas_share_the_ring_and_rotate_it_once(
    oltp_engine: AsyncEngine, member: Membership, clock: FakeClock
) -> None:
    one, two = TokenService(SETTINGS, oltp_engine, clock), TokenService(SETTINGS, oltp_engine, clock)
    first = (await one.issue_user(member)).token
    assert _kid((await two.issue_user(member)).token) == _kid(first)

    # Both find the key too old at the same moment: one new key, which both sign with.
    clock.now += SETTINGS.jwt_key_rotation_s
    a, b = await asyncio.gather(one.issue_user(member), two.issue_user(member))
    assert _kid(a.token) == _kid(b.token) != _kid(first)
    clock.now += 1
    _, ring = await Keyring(oltp_engine, SETTINGS, clock).rotate()
    assert len(ring) == 3
    assert [k.kid for k in ring][:2] == [_kid(first), _kid(a.token)]
    assert [k.retire_at is None for k in ring] == [False, False, True]

    # A replica whose cached ring predates a kid reads the ring again rather than refuse it.
    three = TokenService(SETTINGS, oltp_engine, clock)
    assert (await three.verify(a.token)).tenant_id == member.tenant_id
    clock.now += 1
    made_now, _ = await Keyring(oltp_engine, SETTINGS, clock).rotate()
    newest = (await TokenService(SETTINGS, oltp_engine, clock).issue_user(member)).token
    assert _kid(newest) == made_now.kid
    assert (await three.verify(newest)).tenant_id == member.tenant_id


async def test_a_kid_the_ring_never_had_is_refused_after_one_reread(
    oltp_engine: AsyncEngine, member: Membership, clock: FakeClock
) -> None:
    tokens = TokenService(SETTINGS, oltp_engine, clock)
    genuine = (await tokens.issue_user(member)).token
    claims = jwt.decode(genuine, options={"verify_signature": False})
    made_up = jwt.encode(
        claims, key_material(SETTINGS.secret_key, "ab" * 8), algorithm="HS256", headers={"kid": "ab" * 8}
    )
    with pytest.raises(InvalidToken, match="signed with an unknown key"):
        await tokens.verify(made_up)
    # Another secret derives other keys: the ring's kids sign nothing for a copy of the database.
    other = Settings(secret_key="another-secret", jwt_ttl_s=3600, api_token_ttl_s=900, auth_cache_s=5.0)
    with pytest.raises(InvalidToken, match="signature does not verify"):
        await TokenService(other, oltp_engine, clock).verify(genuine)
