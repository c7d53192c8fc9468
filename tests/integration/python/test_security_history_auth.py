"""The HTTP history API (GET /api/rooms/{room}/messages) asks what the chat WebSocket asks
(issue 12, item 1): a valid token (Authorization: Bearer or ?token=) whose `rooms` claim
allows the room, and no token only where anonymous users could join. Each server holds real
messages in two rooms, so an answer that leaks shows them."""

import json
import urllib.error
import urllib.request

import pytest

from roomcast_server import RoomcastServer
from security_support import SECRET, make_token, unsigned_token
from test_chat_support import ChatClient, run

ROOMS = ("board", "general", "support:1")


def seed(server):
    """One message in each of ROOMS, sent by a user whose token allows every room."""
    async def body():
        token = make_token(sub="u-seed", name="seeder")
        c = await ChatClient.connect(server, f"/?token={token}")
        for room in ROOMS:
            await c.join(room, "seeder")
        for room in ROOMS:
            await c.chat(f"secret of {room}", room=room)
        delivered = set()  # once delivered, a message is stored: the history has it
        while len(delivered) < len(ROOMS):
            delivered.add((await c.expect(lambda m: m.get("type") == "chat_message"))["room"])
        await c.close()
    run(body())


@pytest.fixture(scope="module")
def auth_server():
    with RoomcastServer("--jwt-secret", SECRET, "--require-auth") as s:
        seed(s)
        yield s


@pytest.fixture(scope="module")
def open_server():
    """A key to verify tokens, anonymous users welcome."""
    with RoomcastServer("--jwt-secret", SECRET) as s:
        seed(s)
        yield s


def get(server, room, token=None, via="header", method="GET"):
    """(status, headers, parsed body or None) of a history request."""
    path = f"/api/rooms/{urllib.request.quote(room, safe='')}/messages"
    headers = {}
    if token is not None and via == "header":
        headers["Authorization"] = f"Bearer {token}"
    elif token is not None:
        path += f"?limit=10&token={urllib.request.quote(token, safe='')}"
    request = urllib.request.Request(server.http_url + path, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            status, headers, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    return status, headers, (json.loads(raw) if raw else None)


def assert_history(answer, room):
    status, _, body = answer
    assert status == 200, body
    assert body["room"] == room
    assert [m["message"] for m in body["messages"]] == [f"secret of {room}"]


def assert_refused(answer, status, code):
    got, headers, body = answer
    assert got == status, (got, body)
    assert body["type"] == "error" and body["code"] == code, body
    assert body["message"], body
    assert "messages" not in body
    assert "secret" not in json.dumps(body)
    assert headers["Cache-Control"] == "no-store"
    return headers


def test_no_token_reads_nothing_under_require_auth(auth_server):
    for room in ROOMS:
        headers = assert_refused(get(auth_server, room), 401, "authentication_required")
        assert headers["WWW-Authenticate"] == "Bearer"
    # HEAD too: the status and headers, no body.
    status, headers, body = get(auth_server, "board", method="HEAD")
    assert status == 401 and body is None
    assert headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("via", ["header", "query"])
def test_a_token_for_one_room_reads_it_and_no_other(auth_server, via):
    token = make_token(sub="u-board", name="boarder", rooms=["board"])
    assert_history(get(auth_server, "board", token, via), "board")
    for room in ("general", "support:1", "board2"):
        assert_refused(get(auth_server, room, token, via), 403, "forbidden_room")


def test_room_claims_are_the_websockets_prefixes_and_no_claim_reads_every_room(auth_server):
    support = make_token(sub="u-support", name="helper", rooms=["support:*"])
    assert_history(get(auth_server, "support:1", support), "support:1")
    assert_refused(get(auth_server, "board", support), 403, "forbidden_room")
    everything = make_token(sub="u-all", name="all")
    for room in ROOMS:
        assert_history(get(auth_server, room, everything), room)


@pytest.mark.parametrize("token", [
    make_token(key="not-the-secret-not-the-secret-!!"),
    make_token(expires_in=-3600),
    unsigned_token(),
    make_token(sub=None),
    "not-a-jwt",
], ids=["bad-signature", "expired", "alg-none", "no-sub", "garbage"])
@pytest.mark.parametrize("which", ["auth_server", "open_server"])
def test_an_invalid_token_gets_401_with_or_without_require_auth(request, which, token):
    server = request.getfixturevalue(which)
    headers = assert_refused(get(server, "board", token), 401, "invalid_token")
    assert headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert token not in server.log()  # the reason is logged, never the token


def test_without_require_auth_anonymous_reads_but_a_token_still_limits_rooms(open_server):
    for room in ROOMS:
        assert_history(get(open_server, room), room)
    token = make_token(sub="u-board", name="boarder", rooms=["board"])
    assert_history(get(open_server, "board", token, "query"), "board")
    assert_refused(get(open_server, "general", token, "query"), 403, "forbidden_room")


def test_a_server_without_a_key_ignores_tokens_as_the_websocket_does(server):
    seed(server)
    assert_history(get(server, "board"), "board")
    assert_history(get(server, "board", "not-a-jwt"), "board")


def test_access_is_judged_on_the_room_name_the_history_is_read_for(auth_server):
    # " board" is read as "board" (names are trimmed, as in join_room), and judged as such.
    token = make_token(sub="u-board", name="boarder", rooms=["board"])
    assert_history(get(auth_server, " board ", token), "board")
    spaced = make_token(sub="u-spaced", name="spaced", rooms=[" board"])
    assert_refused(get(auth_server, " board", spaced), 403, "forbidden_room")
    # A bad room name is still a 400 for whoever may read, and a 401 for whoever may not.
    assert_refused(get(auth_server, "a<b", token), 400, "invalid_field")
    assert_refused(get(auth_server, "a<b"), 401, "authentication_required")


@pytest.mark.parametrize("claims,room", [
    (["board"], "board"), (["board"], "general"), (["support:*"], "support:1"),
    (["support:*"], "support"), (["*"], "general"), ([], "board"),
])
def test_http_and_the_websocket_agree_on_every_claim(auth_server, claims, room):
    token = make_token(sub="u-same", name="same", rooms=claims)

    async def ws_join_allowed():
        c = await ChatClient.connect(auth_server, f"/?token={token}")
        await c.send({"type": "join_room", "room": room})
        reply = await c.expect(lambda m: m.get("type") == "error" or
                               (m.get("type") == "system_message" and m.get("room") == room))
        await c.close()
        if reply["type"] == "error":
            assert reply["code"] == "forbidden_room", reply
            return False
        return True

    status, _, body = get(auth_server, room, token)
    assert status in (200, 403), (status, body)
    assert (status == 200) == run(ws_join_allowed())
