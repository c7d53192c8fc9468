"""Sending without a WebSocket (issue 16, item 4; docs/api.md): POST /api/rooms/{room}/messages
with a user's token sends a chat message as that user, under the rules of a WebSocket member's
chat_message (validation, the user's rate budget, `id` and its ack's seq, room claims), so a
client that reads by long-polling or server-sent events takes part in the chat. Checked with
real WebSocket clients (Python websockets) and Python's http.client."""

import asyncio
import threading

import pytest

from api_support import API_KEY, expect_error, get, request
from cluster_support import cluster, redis_server  # noqa: F401 (fixtures)
from roomcast_server import RoomcastServer
from security_support import SECRET, make_token
from test_chat_support import ChatClient, is_chat, is_type, run


def send(server, room, body, token=None, raw=None, headers=None):
    """POST /api/rooms/{room}/messages as the token's user (no API key: a user's request)."""
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return request(server, "POST", f"/api/rooms/{room}/messages", body, key=None, headers=sent,
                   raw=raw)


def chats(messages, room=None):
    return [m for m in messages if m.get("type") == "chat_message"
            and (room is None or m.get("room") == room)]


async def connect_as(server, sub, name):
    return await ChatClient.connect(server, f"/?token={make_token(sub=sub, name=name)}")


@pytest.fixture(scope="module")
def server():
    # Two workers: the sender's request and the room's members on different ones.
    with RoomcastServer("--jwt-secret", SECRET, "--threads", "2") as s:
        yield s


def test_a_message_sent_over_http_reaches_the_room_as_the_tokens_user(server):
    async def body():
        ann = await connect_as(server, "u-ann", "ann")
        await ann.join("http-room")
        # The sender's own WebSocket gets its message too, as it would its own chat_message.
        ben_ws = await connect_as(server, "u-ben", "ben")
        await ben_ws.join("http-room")
        await ann.chat("hello", room="http-room")
        first = await ann.expect(is_chat("http-room", "hello"))

        token = make_token(sub="u-ben", name="ben")
        status, headers, answer = await asyncio.to_thread(
            send, server, "http-room", {"message": "from http", "id": "m-1"}, token)
        assert status == 200, answer
        assert headers["Cache-Control"] == "no-store"
        # What the WebSocket's ack says.
        assert answer == {"room": "http-room", "seq": first["seq"] + 1, "id": "m-1"}, answer
        for client in (ann, ben_ws):
            got = await client.expect(is_chat("http-room", "from http"))
            assert set(got) == set(first), got
            assert (got["userId"], got["username"], got["seq"]) == ("u-ben", "ben",
                                                                     answer["seq"]), got
        # Without an id the answer has none; the numbering goes on.
        status, _, plain = await asyncio.to_thread(
            send, server, "http-room", {"message": "no id"}, token)
        assert status == 200 and plain == {"room": "http-room", "seq": answer["seq"] + 1}, plain
        await ann.expect(is_chat("http-room", "no id"))
    run(body())


def test_a_retry_with_the_same_id_is_answered_with_the_first_seq_and_sent_once(server):
    async def body():
        ann = await connect_as(server, "u-ann2", "ann")
        await ann.join("retry-room")
        token = make_token(sub="u-cat", name="cat")
        message = {"message": "exactly once", "id": "retry-1"}
        first = await asyncio.to_thread(send, server, "retry-room", message, token)
        again = await asyncio.to_thread(send, server, "retry-room", message, token)
        assert first[0] == 200 and again == first, (first, again)
        # The same id from another user is another message.
        other = await asyncio.to_thread(send, server, "retry-room", message,
                                        make_token(sub="u-dan", name="dan"))
        assert other[2]["seq"] == first[2]["seq"] + 1, other
        seen = chats(await ann.collect(1.0), "retry-room")
        assert [(m["userId"], m["seq"]) for m in seen] == [
            ("u-cat", first[2]["seq"]), ("u-dan", other[2]["seq"])], seen
    run(body())


def test_an_id_sent_over_the_websocket_and_resent_over_http_is_one_message(server):
    """The user's WebSocket and their HTTP sends are one sender: a client that lost its socket
    before the ack and resends over HTTP gets the first seq."""
    async def body():
        eve = await connect_as(server, "u-eve", "eve")
        await eve.join("one-sender")
        await eve.chat("typed once", room="one-sender", id="dup-1")
        ack = await eve.expect(is_type("ack"))
        status, _, answer = await asyncio.to_thread(
            send, server, "one-sender", {"message": "typed once", "id": "dup-1"},
            make_token(sub="u-eve", name="eve"))
        assert status == 200 and answer["seq"] == ack["seq"], (ack, answer)
        assert not chats(await eve.collect(0.5))
    run(body())


BAD_BODIES = [
    ("", "invalid_json", "not JSON"),
    ("[1]", "invalid_json", "object"),
    ('{"message": "hi"', "invalid_json", "not JSON"),
    ("{}", "invalid_field", "'message'"),
    ('{"message": 5}', "invalid_field", "'message'"),
    ('{"message": "   "}', "invalid_field", "empty"),
    ('{"message": "' + "x" * 501 + '"}', "invalid_field", "500"),
    ('{"message": "hi", "room": "other"}', "invalid_field", "'room'"),
    ('{"message": "hi", "id": 7}', "invalid_field", "'id'"),
    ('{"message": "hi", "id": ""}', "invalid_field", "id"),
    ('{"message": "hi", "id": "' + "k" * 65 + '"}', "invalid_field", "id"),
]


@pytest.mark.parametrize("raw, code, fragment", BAD_BODIES)
def test_bad_bodies_are_refused_and_nothing_is_sent(server, raw, code, fragment):
    token = make_token(sub="u-bad", name="bad")
    message = expect_error(send(server, "bad-bodies", None, token, raw=raw), 400, code)
    assert fragment in message, message
    status, _, page = get(server, "/api/rooms/bad-bodies/messages", key=None)
    assert status == 200 and page["messages"] == [], page


def test_who_may_send_is_judged_as_a_join_and_needs_a_token(server):
    # No token: refused although --require-auth is off (an anonymous sender has no identity).
    message = expect_error(send(server, "gate", {"message": "hi"}), 401,
                           "authentication_required")
    assert "token" in message
    expect_error(send(server, "gate", {"message": "hi"}, token="not-a-jwt"), 401,
                 "invalid_token")
    expect_error(send(server, "gate", {"message": "hi"},
                      token=make_token(sub="u-x", name="x", expires_in=-120)), 401,
                 "invalid_token")
    expect_error(send(server, "gate", {"message": "hi"},
                      token=make_token(sub="u-x", name="x", key="another-secret-0123456789")),
                 401, "invalid_token")
    # No token may speak as the server user.
    expect_error(send(server, "gate", {"message": "hi"},
                      token=make_token(sub="roomcast:server", name="x")), 401, "invalid_token")
    # The token's room claims.
    limited = make_token(sub="u-lim", name="lim", rooms=["support:*"])
    expect_error(send(server, "gate", {"message": "hi"}, limited), 403, "forbidden_room")
    status, _, answer = send(server, "support:1", {"message": "hi"}, limited)
    assert status == 200 and answer["room"] == "support:1", answer
    # A room name breaking the rules.
    token = make_token(sub="u-y", name="y")
    expect_error(send(server, "%3Cb%3E", {"message": "hi"}, token), 400, "invalid_field")
    expect_error(send(server, "%zz", {"message": "hi"}, token), 400, "invalid_field")
    # Another method than GET (the history) or POST.
    status, headers, answer = request(server, "PUT", "/api/rooms/gate/messages",
                                      {"message": "hi"}, key=None)
    assert status == 405 and answer["code"] == "method_not_allowed", answer
    assert headers["Allow"] == "GET, HEAD, POST"
    status, _, page = get(server, "/api/rooms/gate/messages", key=None)
    assert status == 200 and page["messages"] == [], page


def test_a_name_that_looks_like_a_members_is_refused(server):
    async def body():
        ann = await connect_as(server, "u-real", "alice")
        await ann.join("lookalike")
        # Cyrillic а: the same skeleton as "alice", another user.
        impostor = make_token(sub="u-fake", name="\u0430lice")
        message = await asyncio.to_thread(
            lambda: expect_error(send(server, "lookalike", {"message": "trust me"}, impostor),
                                 400, "invalid_field"))
        assert "looks like" in message, message
        # The member herself may send over HTTP under her own name.
        status, _, answer = await asyncio.to_thread(
            send, server, "lookalike", {"message": "it is me"},
            make_token(sub="u-real", name="alice"))
        assert status == 200, answer
        seen = chats(await ann.collect(0.5))
        assert [m["message"] for m in seen] == ["it is me"], seen
    run(body())


def test_without_a_token_verifier_nobody_can_send():
    with RoomcastServer() as s:
        message = expect_error(send(s, "r", {"message": "hi"}, make_token()), 401,
                               "authentication_required")
        assert "verifies no tokens" in message


def test_a_polling_client_chats_with_a_websocket_client(server):
    """Pat has no WebSocket: Pat long-polls the room and sends over HTTP; Wes uses a
    WebSocket. Each sees what the other says, in the room's order."""
    pat = make_token(sub="u-pat", name="pat")
    auth = {"Authorization": f"Bearer {pat}"}

    def poll(since):
        status, _, page = get(server, f"/api/rooms/mixed/poll?since={since}&timeout=10s",
                              key=None, headers=auth, timeout=20)
        assert status == 200, page
        return page

    async def body():
        wes = await connect_as(server, "u-wes", "wes")
        await wes.join("mixed")
        last = poll(0)["last_seq"]
        # Pat waits for Wes's message (the poll is parked in the room's Hub).
        answer = {}
        waiter = threading.Thread(target=lambda: answer.update(page=poll(last)))
        waiter.start()
        await wes.chat("hi pat", room="mixed")
        await asyncio.to_thread(waiter.join, 20)
        assert not waiter.is_alive()
        got = answer["page"]["messages"]
        assert [(m["userId"], m["message"]) for m in got] == [("u-wes", "hi pat")], got
        # Pat answers over HTTP; Wes gets it; Pat's next poll sees it after Wes's.
        status, _, sent = await asyncio.to_thread(
            send, server, "mixed", {"message": "hi wes", "id": "p-1"}, pat)
        assert status == 200 and sent["seq"] == got[0]["seq"] + 1, sent
        reply = await wes.expect(is_chat("mixed", "hi wes"))
        assert reply["userId"] == "u-pat" and reply["seq"] == sent["seq"], reply
        page = await asyncio.to_thread(poll, last)
        assert [(m["username"], m["message"]) for m in page["messages"]] == [
            ("wes", "hi pat"), ("pat", "hi wes")], page
    run(body())


def test_with_production_defaults_http_sends_spend_the_users_message_budget(tmp_path):
    """The server's own defaults: 10 messages a minute per person, SQLite history. A user's
    WebSocket and HTTP sends share one budget; the 11th is refused (429) and not stored."""
    with RoomcastServer("--jwt-secret", SECRET, production_defaults=True,
                        data_dir=str(tmp_path)) as s:
        token = make_token(sub="u-busy", name="busy")

        async def body():
            ws = await connect_as(s, "u-busy", "busy")
            await ws.join("budget")
            for i in range(5):
                await ws.chat(f"ws{i}", room="budget", id=f"w{i}")
                await ws.expect(is_type("ack"))
            for i in range(5):
                status, _, answer = await asyncio.to_thread(
                    send, s, "budget", {"message": f"http{i}", "id": f"h{i}"}, token)
                assert status == 200, (i, answer)
            message = await asyncio.to_thread(
                lambda: expect_error(send(s, "budget", {"message": "one too many"}, token), 429,
                                     "rate_limited"))
            assert "slow down" in message
            # Another user is not limited by it.
            status, _, _ = await asyncio.to_thread(
                send, s, "budget", {"message": "other"}, make_token(sub="u-calm", name="calm"))
            assert status == 200
        run(body())
        _, _, page = get(s, "/api/rooms/budget/messages?limit=100", key=None)
        texts = [m["message"] for m in page["messages"]]
        assert texts == [f"ws{i}" for i in range(5)] + [f"http{i}" for i in range(5)] + [
            "other"], texts


def test_cluster_a_message_sent_on_one_node_reaches_members_on_another(cluster):
    node1, node2 = cluster(2, "--jwt-secret", SECRET)
    token = make_token(sub="u-far", name="far")

    async def body():
        member = await connect_as(node2, "u-near", "near")
        await member.join("c-send")
        status, _, answer = await asyncio.to_thread(
            send, node1, "c-send", {"message": "across", "id": "x-1"}, token)
        assert status == 200, answer
        got = await member.expect(is_chat("c-send", "across"))
        assert got["seq"] == answer["seq"] and got["userId"] == "u-far", got
        # A retry on the other node is the same message (the id lives in the shared store).
        status, _, again = await asyncio.to_thread(
            send, node2, "c-send", {"message": "across", "id": "x-1"}, token)
        assert status == 200 and again == answer, (answer, again)
        assert not chats(await member.collect(0.5))
    run(body())


def test_the_api_key_is_not_what_sends_as_a_user():
    """The endpoint is the users': the API key neither replaces a token nor is needed."""
    with RoomcastServer("--api-key", API_KEY, "--jwt-secret", SECRET) as s:
        expect_error(request(s, "POST", "/api/rooms/k/messages", {"message": "hi"}), 401,
                     "authentication_required")
        status, _, answer = send(s, "k", {"message": "hi"}, make_token())
        assert status == 200 and answer == {"room": "k", "seq": 1}, answer
