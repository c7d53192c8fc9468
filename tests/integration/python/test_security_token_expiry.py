"""Token expiry and in-band refresh (docs/protocol.md, "Expiry and refresh"): a connection
opened with a token is closed with 4002 when the token expires, unless the client sent
{"type":"refresh","token":...} with a fresh token of the same user; every refused refresh
is an error that changes nothing. The server runs with --jwt-leeway 0, so a token's `exp`
is the moment of the close."""

import asyncio
import time

import jwt
import pytest
import websockets

from cluster_support import metric
from roomcast_server import RoomcastServer
from security_support import SECRET, make_token
from test_chat_support import ChatClient, is_system, is_type, run

# Seconds a short-lived token has left when it is made (less up to one: exp is whole seconds):
# enough for the upgrade, a join and a refresh on a loaded machine, yet quick.
SHORT_LIFE_S = 4
# How long past a token's exp a test waits for the close before it fails: the server checks
# every 20 ms, so this only absorbs a loaded machine.
CLOSE_GRACE_S = 10


@pytest.fixture(scope="module")
def server():
    """Tokens verified when given (anonymous users too), no clock skew tolerated."""
    with RoomcastServer("--jwt-secret", SECRET, "--jwt-leeway", "0") as s:
        yield s


def exp_of(token):
    return jwt.decode(token, options={"verify_signature": False})["exp"]


async def authed(server, token):
    return await ChatClient.connect(server, f"/?token={token}")


async def closed_by_server(client, deadline_s):
    """Reads until the server closes `client`; fails if that has not happened by the Unix
    time `deadline_s`. Returns the ConnectionClosed."""
    try:
        while True:
            left = deadline_s - time.time()
            if left <= 0:
                raise AssertionError("the server did not close the connection in time")
            try:
                await client.recv(timeout=left)
            except asyncio.TimeoutError:
                raise AssertionError("the server did not close the connection in time") from None
    except websockets.ConnectionClosed as closed:
        return closed


async def refresh(client, token):
    await client.send({"type": "refresh", "token": token})


async def expect_refreshed(client):
    msg = await client.expect(is_type("token_refreshed"))
    assert set(msg) == {"type", "expiresAt"}, msg
    return msg


async def sleep_until(unix_s):
    await asyncio.sleep(max(0.0, unix_s - time.time()))


def test_a_connection_is_closed_with_4002_when_its_token_expires(server):
    async def body():
        token = make_token(sub="u-short", name="shorty", expires_in=SHORT_LIFE_S)
        short = await authed(server, token)
        await short.join("general")
        long_lived = await authed(server, make_token(sub="u-long", name="longa"))
        await long_lived.join("general")
        anonymous = await ChatClient.connect(server)
        await anonymous.join("general", "guest")
        expirations = metric(server, "roomcast_token_expirations_total")

        closed = await closed_by_server(short, exp_of(token) + CLOSE_GRACE_S)
        assert (closed.code, closed.reason) == (4002, "Token expired")
        assert metric(server, "roomcast_token_expirations_total") >= expirations + 1
        # Not before its time (whole seconds: exp is one).
        assert time.time() >= exp_of(token) - 0.001
        # The others saw the user leave, and go on chatting.
        await anonymous.expect(is_system("general", "shorty left the chat"))
        await long_lived.chat_roundtrip("general", "still here")
        await anonymous.chat_roundtrip("general", "me too")
    run(body())


def test_a_refreshed_connection_outlives_its_first_token(server):
    async def body():
        first = make_token(sub="u-refresh", name="rita", expires_in=SHORT_LIFE_S)
        client = await authed(server, first)
        await client.join("general")
        fresh = make_token(sub="u-refresh", name="rita", expires_in=3600)
        await refresh(client, fresh)
        reply = await expect_refreshed(client)
        assert reply["expiresAt"] == exp_of(fresh) * 1000  # leeway 0: exp itself
        await sleep_until(exp_of(first) + 1.5)
        await client.chat_roundtrip("general", "past the first token's exp")
        assert client.ws.close_code is None
    run(body())


@pytest.mark.parametrize("token, code", [
    (make_token(sub="u-someone-else", name="rita"), "token_mismatch"),
    (make_token(sub="u-keep", name="rita", key="not-the-secret-not-the-secret-!!"),
     "invalid_token"),
    (make_token(sub="u-keep", name="rita", expires_in=-60), "invalid_token"),
    (make_token(sub="u-keep", name=None), "invalid_token"),
    ("garbage", "invalid_token"),
], ids=["other-sub", "bad-signature", "expired", "no-name", "garbage"])
def test_a_refused_refresh_is_an_error_and_the_old_expiry_stands(server, token, code):
    async def body():
        current = make_token(sub="u-keep", name="rita", expires_in=SHORT_LIFE_S)
        client = await authed(server, current)
        await client.join("general")
        await refresh(client, token)
        assert (await client.expect_error())["code"] == code
        # The connection is still open and still the same user...
        msg = await client.chat_roundtrip("general", "after the refusal")
        assert msg["userId"] == "u-keep"
        # ...and still closes when its current token expires.
        closed = await closed_by_server(client, exp_of(current) + CLOSE_GRACE_S)
        assert closed.code == 4002
    run(body())


def test_an_anonymous_connection_cannot_refresh(server):
    async def body():
        anonymous = await ChatClient.connect(server)
        await anonymous.join("general", "guest")
        await refresh(anonymous, make_token(sub="u-hijack", name="guest"))
        assert (await anonymous.expect_error())["code"] == "not_authenticated"
        msg = await anonymous.chat_roundtrip("general", "still anonymous")
        assert msg["userId"] == anonymous.user_id != "u-hijack"
    run(body())


@pytest.mark.parametrize("message", [
    {"type": "refresh"},
    {"type": "refresh", "token": None},
    {"type": "refresh", "token": 42},
    {"type": "refresh", "token": ["a.b.c"]},
    {"type": "refresh", "token": ""},
    {"type": "refresh", "token": "t" * 8193},
], ids=["missing", "null", "number", "array", "empty", "too-long"])
def test_a_malformed_refresh_is_invalid_field(server, message):
    async def body():
        client = await authed(server, make_token(sub="u-malformed", name="mal"))
        await client.join("general")
        await client.send(message)
        error = await client.expect_error()
        assert error["code"] == "invalid_field"
        assert "'token'" in error["message"]
        await client.chat_roundtrip("general", "still fine")
    run(body())
