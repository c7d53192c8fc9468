"""The server API (issue 16, item 1; docs/api.md): a backend holding --api-key publishes into
rooms, disconnects and unsubscribes users and asks who is where, over JSON. Every endpoint is
tried without the API enabled, without a key, with a wrong key, with the wrong method and with
bad bodies; what it does is checked through real WebSocket clients (Python websockets)."""

import asyncio
import json

import pytest
import websockets

from api_support import API_KEY, expect_error, get, post, request
from cluster_support import cluster, redis_server  # noqa: F401 (fixtures)
from roomcast_server import RoomcastServer
from security_support import SECRET, expect_close, make_token
from test_chat_support import ChatClient, is_chat, is_type, room_of, run

ENDPOINTS = [
    ("POST", "/api/publish", {"room": "r", "message": "hi"}),
    ("POST", "/api/broadcast", {"rooms": ["r"], "message": "hi"}),
    ("POST", "/api/disconnect", {"user": "u"}),
    ("POST", "/api/unsubscribe", {"user": "u", "room": "r"}),
    ("GET", "/api/rooms", None),
    ("GET", "/api/rooms/r/presence", None),
    ("GET", "/api/info", None),
]


@pytest.fixture(scope="module")
def server():
    # Two workers: a user's connections and a room's members spread over both.
    with RoomcastServer("--api-key", API_KEY, "--jwt-secret", SECRET, "--threads", "2") as s:
        yield s


def test_without_a_configured_key_the_api_is_not_found():
    with RoomcastServer() as s:
        for method, path, body in ENDPOINTS:
            expect_error(request(s, method, path, body), 404, "not_found")
            expect_error(request(s, method, path, body, key=None), 404, "not_found")
        # What existed before the API is untouched.
        status, _, _ = get(s, "/api/stats", key=None)
        assert status == 200


def test_a_missing_or_wrong_key_is_refused(server):
    for method, path, body in ENDPOINTS:
        expect_error(request(server, method, path, body, key=None), 401, "api_key_required")
        expect_error(request(server, method, path, body, key=""), 401, "api_key_required")
        expect_error(request(server, method, path, body, key=API_KEY + "x"), 401,
                     "invalid_api_key")
        expect_error(request(server, method, path, body, key=API_KEY[:-1]), 401,
                     "invalid_api_key")
        expect_error(request(server, method, path, body, key="wrong"), 401, "invalid_api_key")


def test_the_wrong_method_is_refused(server):
    for method, path, _ in ENDPOINTS:
        other = "GET" if method == "POST" else "POST"
        status, headers, body = request(server, other, path, {"x": 1} if other == "POST" else None)
        assert status == 405, (path, status, body)
        assert body["code"] == "method_not_allowed", body
        assert headers["Allow"] == ("POST" if method == "POST" else "GET, HEAD")
    status, _, _ = request(server, "DELETE", "/api/publish", key=API_KEY)
    assert status == 405


@pytest.mark.parametrize("raw, code, fragment", [
    ("", "invalid_json", "not JSON"),
    ("not json", "invalid_json", "not JSON"),
    ("[1, 2]", "invalid_json", "object"),
    ('"room"', "invalid_json", "object"),
    ('{"room": "r", "message": "hi"', "invalid_json", "not JSON"),
    ('{"message": "hi"}', "invalid_field", "'room'"),
    ('{"room": "r"}', "invalid_field", "'message'"),
    ('{"room": 5, "message": "hi"}', "invalid_field", "'room'"),
    ('{"room": "r", "message": ["hi"]}', "invalid_field", "'message'"),
    ('{"room": "r", "message": "   "}', "invalid_field", "empty"),
    ('{"room": "r", "message": "' + "x" * 501 + '"}', "invalid_field", "500"),
    ('{"room": "<b>", "message": "hi"}', "invalid_field", "room"),
    ('{"room": "' + "r" * 31 + '", "message": "hi"}', "invalid_field", "room"),
    ('{"room": "r", "message": "hi", "idempotency_key": ""}', "invalid_field", "idempotency_key"),
    ('{"room": "r", "message": "hi", "idempotency_key": 7}', "invalid_field", "idempotency_key"),
    ('{"room": "r", "message": "hi", "idempotency_key": "' + "k" * 65 + '"}', "invalid_field",
     "idempotency_key"),
    ('{"room": "r", "message": "hi", "username": "<script>"}', "invalid_field", "username"),
    ('{"room": "r", "message": "hi", "colour": "red"}', "invalid_field", "'colour'"),
    ('{"room": "r", "message": "hi", "x": ' + '{"a": ' * 9 + '1' + '}' * 9 + '}',
     "invalid_json", "not JSON"),
])
def test_publish_refuses_bad_bodies(server, raw, code, fragment):
    message = expect_error(post(server, "/api/publish", raw=raw), 400, code)
    assert fragment in message, message


@pytest.mark.parametrize("body, fragment", [
    ({"message": "hi"}, "'rooms'"),
    ({"rooms": "r", "message": "hi"}, "'rooms'"),
    ({"rooms": [], "message": "hi"}, "'rooms'"),
    ({"rooms": [f"r{i}" for i in range(101)], "message": "hi"}, "'rooms'"),
    ({"rooms": ["ok", 3], "message": "hi"}, "'rooms'"),
    ({"rooms": ["ok", "<bad>"], "message": "hi"}, "room"),
    ({"room": "r", "message": "hi"}, "'room'"),
])
def test_broadcast_refuses_bad_bodies(server, body, fragment):
    message = expect_error(post(server, "/api/broadcast", body), 400, "invalid_field")
    assert fragment in message, message


@pytest.mark.parametrize("path, body, fragment", [
    ("/api/disconnect", {}, "'user'"),
    ("/api/disconnect", {"user": ""}, "'user'"),
    ("/api/disconnect", {"user": "u" * 65}, "'user'"),
    ("/api/disconnect", {"user": 12}, "'user'"),
    ("/api/disconnect", {"user": "u", "reason": "r" * 124}, "'reason'"),
    ("/api/disconnect", {"user": "u", "room": "r"}, "'room'"),
    ("/api/unsubscribe", {"user": "u"}, "'room'"),
    ("/api/unsubscribe", {"user": "u", "room": "  "}, "room"),
    ("/api/unsubscribe", {"room": "r"}, "'user'"),
])
def test_disconnect_and_unsubscribe_refuse_bad_bodies(server, path, body, fragment):
    message = expect_error(post(server, path, body), 400, "invalid_field")
    assert fragment in message, message


def test_room_queries_refuse_bad_names_and_parameters(server):
    expect_error(get(server, "/api/rooms/%3Cb%3E/presence"), 400, "invalid_field")
    expect_error(get(server, "/api/rooms/%ZZ/presence"), 400, "invalid_field")
    for query in ("limit=0", "limit=1001", "limit=x", "limit=-1", "after=%ZZ"):
        expect_error(get(server, f"/api/rooms?{query}"), 400, "invalid_field")


def test_a_publication_reaches_every_member_as_a_chat_message(server):
    async def body():
        alice = await ChatClient.connect(server)
        await alice.join("news", "alice")
        bob = await ChatClient.connect(server)
        await bob.join("news", "bob")
        await alice.chat("first", room="news")
        first = await bob.expect(is_chat("news", "first"))

        status, headers, answer = await asyncio.to_thread(
            post, server, "/api/publish", {"room": "news", "message": "Deploy at 5"})
        assert status == 200, answer
        assert headers["Cache-Control"] == "no-store"
        assert answer == {"room": "news", "seq": first["seq"] + 1}
        for client in (alice, bob):
            got = await client.expect(is_chat("news", "Deploy at 5"))
            # The shape of any chat message, from the server user.
            assert set(got) == set(first), got
            assert got["userId"] == "roomcast:server" and got["username"] == "server", got
            assert got["seq"] == answer["seq"], got

        # A name of the backend's choosing; the numbering goes on.
        status, _, named = await asyncio.to_thread(
            post, server, "/api/publish",
            {"room": "news", "message": "Welcome!", "username": "Moderator"})
        assert status == 200 and named["seq"] == answer["seq"] + 1, named
        got = await bob.expect(is_chat("news", "Welcome!"))
        assert got["username"] == "Moderator" and got["userId"] == "roomcast:server", got
    run(body())


def test_a_publication_to_an_empty_room_is_kept_for_whoever_joins(server):
    status, _, answer = post(server, "/api/publish", {"room": "quiet", "message": "note"})
    assert status == 200 and answer == {"room": "quiet", "seq": 1}, answer

    async def body():
        c = await ChatClient.connect(server)
        await c.join("quiet", "carol")
        history = await c.expect(is_type("history", "quiet"))
        texts = [m["message"] for m in history["messages"]]
        assert texts == ["note"], history
    run(body())


def test_a_retry_with_the_same_idempotency_key_publishes_once(server):
    async def body():
        c = await ChatClient.connect(server)
        await c.join("orders", "dave")
        publication = {"room": "orders", "message": "Order 7 shipped",
                       "idempotency_key": "order-7"}
        first = await asyncio.to_thread(post, server, "/api/publish", publication)
        again = await asyncio.to_thread(post, server, "/api/publish", publication)
        assert first[0] == 200 and again[0] == 200, (first, again)
        assert first[2] == again[2], (first, again)
        # The same key for another text is still the first message (the key decides).
        other = await asyncio.to_thread(post, server, "/api/publish",
                                        {**publication, "message": "different"})
        assert other[2] == first[2], other
        # A new key is a new message.
        fresh = await asyncio.to_thread(post, server, "/api/publish",
                                        {**publication, "idempotency_key": "order-8"})
        assert fresh[2]["seq"] == first[2]["seq"] + 1, fresh
        seen = await c.collect(1.0)
        shipped = [m for m in seen if m.get("type") == "chat_message"]
        assert [(m["message"], m["seq"]) for m in shipped] == [
            ("Order 7 shipped", first[2]["seq"]), ("Order 7 shipped", fresh[2]["seq"])], shipped
    run(body())


def test_a_client_id_cannot_collide_with_an_idempotency_key(server):
    async def body():
        c = await ChatClient.connect(server)
        await c.join("keys", "erin")
        await c.chat("from erin", room="keys", id="k-1")
        ack = await c.expect(is_type("ack"))
        status, _, answer = await asyncio.to_thread(
            post, server, "/api/publish",
            {"room": "keys", "message": "from the server", "idempotency_key": "k-1"})
        assert status == 200 and answer["seq"] == ack["seq"] + 1, (ack, answer)
        await c.expect(is_chat("keys", "from the server"))
    run(body())


def test_broadcast_publishes_to_each_room_once(server):
    async def body():
        a = await ChatClient.connect(server)
        await a.join("b1", "frank")
        b = await ChatClient.connect(server)
        await b.join("b2", "grace")
        status, _, answer = await asyncio.to_thread(
            post, server, "/api/broadcast",
            {"rooms": ["b1", "b2", "b1", "b3"], "message": "Maintenance tonight"})
        assert status == 200, answer
        results = answer["results"]
        assert [r["room"] for r in results] == ["b1", "b2", "b3"], results
        assert all(isinstance(r["seq"], int) and r["seq"] >= 1 for r in results), results
        got_a = await a.expect(is_chat("b1", "Maintenance tonight"))
        got_b = await b.expect(is_chat("b2", "Maintenance tonight"))
        assert got_a["seq"] == results[0]["seq"] and got_b["seq"] == results[1]["seq"]
        # Once: nothing more arrives in b1.
        assert not [m for m in await a.collect(0.5) if m.get("type") == "chat_message"]
    run(body())


async def connect_as(server, sub, name):
    return await ChatClient.connect(server, f"/?token={make_token(sub=sub, name=name)}")


def test_disconnect_closes_every_connection_of_the_user(server):
    async def body():
        tabs = [await connect_as(server, "u-mallory", "mallory") for _ in range(4)]
        other = await connect_as(server, "u-oscar", "oscar")
        for tab in tabs[:2]:
            await tab.join("lobby", "mallory")
        await other.join("lobby", "oscar")
        status, _, answer = await asyncio.to_thread(
            post, server, "/api/disconnect", {"user": "u-mallory", "reason": "Banned"})
        assert status == 200 and answer == {"user": "u-mallory", "connections": 4}, answer
        for tab in tabs:
            try:
                while True:
                    await tab.recv(timeout=5)
            except websockets.ConnectionClosed as closed:
                assert (closed.code, closed.reason) == (4003, "Banned"), closed
        # The others see the user leave, and carry on.
        await other.expect(lambda m: m.get("type") == "user_list" and
                           [u["username"] for u in m["users"]] == ["oscar"])
        await other.chat_roundtrip("lobby", "still here")
        # Nobody left to close; the default reason for an unknown user.
        status, _, answer = await asyncio.to_thread(
            post, server, "/api/disconnect", {"user": "u-mallory"})
        assert answer == {"user": "u-mallory", "connections": 0}, answer
    run(body())


def test_a_disconnected_user_may_connect_again(server):
    async def body():
        c = await connect_as(server, "u-pat", "pat")
        await asyncio.to_thread(post, server, "/api/disconnect", {"user": "u-pat"})
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await c.recv(timeout=5)
        assert closed.value.code == 4003 and closed.value.reason == "Disconnected by the server"
        again = await connect_as(server, "u-pat", "pat")
        await again.join("back", "pat")
        await again.chat_roundtrip("back", "hello again")
    run(body())


def test_unsubscribe_takes_the_user_out_of_one_room(server):
    async def body():
        tabs = [await connect_as(server, "u-quinn", "quinn") for _ in range(2)]
        for tab in tabs:
            await tab.join("u-room", "quinn")
            await tab.join("u-other", "quinn")
        watcher = await connect_as(server, "u-rita", "rita")
        await watcher.join("u-room", "rita")
        status, _, answer = await asyncio.to_thread(
            post, server, "/api/unsubscribe", {"user": "u-quinn", "room": "u-room"})
        assert status == 200, answer
        assert answer == {"user": "u-quinn", "room": "u-room", "connections": 2}, answer
        for tab in tabs:
            removed = await tab.expect(is_type("error"))
            assert removed["code"] == "removed_from_room" and removed["room"] == "u-room", removed
            # Out of the room: sending there is refused; the other room still works.
            await tab.chat("sneaky", room="u-room")
            assert (await tab.expect(is_type("error")))["code"] == "not_in_room"
        await tabs[0].chat_roundtrip("u-other", "other room fine")
        await watcher.expect(lambda m: m.get("type") == "user_list" and m["room"] == "u-room" and
                             [u["username"] for u in m["users"]] == ["rita"])
        status, _, answer = await asyncio.to_thread(
            post, server, "/api/unsubscribe", {"user": "u-quinn", "room": "u-room"})
        assert answer["connections"] == 0, answer
    run(body())


def test_rooms_and_presence_list_who_is_where(server):
    async def body():
        tabs = [await connect_as(server, "u-sam", "sam") for _ in range(3)]
        for tab in tabs:
            await tab.join("p-a", "sam")
        tina = await connect_as(server, "u-tina", "tina")
        await tina.join("p-a", "tina")
        await tina.join("p-b", "tina")
        await tina.chat("hi", room="p-b")
        await tina.expect(is_chat("p-b", "hi"))

        status, _, presence = await asyncio.to_thread(get, server, "/api/rooms/p-a/presence")
        assert status == 200, presence
        assert presence == {"room": "p-a", "connections": 4, "members": [
            {"user_id": "u-sam", "username": "sam", "connections": 3},
            {"user_id": "u-tina", "username": "tina", "connections": 1}]}, presence
        status, _, empty = await asyncio.to_thread(get, server, "/api/rooms/nobody/presence")
        assert status == 200 and empty == {"room": "nobody", "connections": 0, "members": []}

        status, _, listing = await asyncio.to_thread(get, server, "/api/rooms?limit=1000")
        assert status == 200, listing
        by_name = {r["room"]: r for r in listing["rooms"]}
        assert by_name["p-a"] == {"room": "p-a", "users": 2, "connections": 4, "last_seq": 0}
        assert by_name["p-b"] == {"room": "p-b", "users": 1, "connections": 1, "last_seq": 1}
        assert listing["next"] is None
        names = [r["room"] for r in listing["rooms"]]
        assert names == sorted(names)

        # Page by page, one room a page: every room once, in order.
        paged, after = [], ""
        while True:
            _, _, page = await asyncio.to_thread(
                get, server, f"/api/rooms?limit=1&after={after}")
            paged += [r["room"] for r in page["rooms"]]
            if page["next"] is None:
                break
            assert page["next"] == page["rooms"][-1]["room"]
            after = page["next"]
        assert paged == names
    run(body())


def test_info_describes_the_node(server):
    status, _, info = get(server, "/api/info")
    assert status == 200, info
    assert info["node"] == "standalone" and info["threads"] == 2, info
    assert isinstance(info["version"], str) and info["version"]
    assert isinstance(info["commit"], str) and info["commit"]
    assert info["uptime_seconds"] >= 0
    # A single node lists itself, with the figures the cluster's node list has.
    [node] = info["nodes"]
    assert node["node"] == "standalone" and node["connections"] == info["connections"], node
    assert node["version"] == info["version"] and node["commit"] == info["commit"], node
    assert node["threads"] == 2 and node["rooms"] == info["rooms"], node
    assert node["uptime_seconds"] >= 0 and node["started_at"] > 1.6e9, node
    assert "cluster_reachable" not in info, info
    status, _, _ = request(server, "HEAD", "/api/info")
    assert status == 200


def test_no_token_may_pass_for_the_server_user(server):
    async def body():
        token = make_token(sub="roomcast:server", name="server")
        await expect_close(server, f"/?token={token}", code=4001)
    run(body())


def test_the_key_may_come_from_the_environment():
    with RoomcastServer(env={"ROOMCAST_API_KEY": "from-env"}) as s:
        status, _, answer = post(s, "/api/publish", {"room": "e", "message": "hi"},
                                 key="from-env")
        assert status == 200 and answer == {"room": "e", "seq": 1}, answer
        expect_error(post(s, "/api/publish", {"room": "e", "message": "hi"}), 401,
                     "invalid_api_key")


def test_with_production_defaults_publications_are_durable_and_not_rate_limited(tmp_path):
    """The server's own defaults: rate limits on (10 messages a minute per person) and SQLite
    history. The backend is not a person: 15 publications pass, and survive a restart."""
    data = str(tmp_path)
    with RoomcastServer("--api-key", API_KEY, production_defaults=True, data_dir=data) as s:
        seqs = []
        for i in range(15):
            status, _, answer = post(s, "/api/publish", {"room": "durable", "message": f"m{i}"})
            assert status == 200, answer
            seqs.append(answer["seq"])
        assert seqs == list(range(1, 16))
        # A client under the same defaults is limited: the limits are on.

        async def body():
            c = await ChatClient.connect(s)
            await c.join("durable", "uma")
            for i in range(11):
                await c.chat(f"c{i}", room="durable")
            error = await c.expect(is_type("error"))
            assert error["code"] == "rate_limited", error
        run(body())
    with RoomcastServer("--api-key", API_KEY, production_defaults=True, data_dir=data) as s:
        status, _, page = get(s, "/api/rooms/durable/messages?limit=100", key=None)
        assert status == 200, page
        texts = [m["message"] for m in page["messages"] if m["userId"] == "roomcast:server"]
        assert texts == [f"m{i}" for i in range(15)], page
        # Numbering goes on after the restart; a retry of a key from before is still one.
        status, _, answer = post(s, "/api/publish", {"room": "durable", "message": "after"})
        assert answer["seq"] == page["last_seq"] + 1, answer


def test_a_retry_after_a_restart_is_still_published_once(tmp_path):
    data = str(tmp_path)
    publication = {"room": "once", "message": "exactly once", "idempotency_key": "evt-1"}
    with RoomcastServer("--api-key", API_KEY, data_dir=data) as s:
        status, _, first = post(s, "/api/publish", publication)
        assert status == 200, first
    with RoomcastServer("--api-key", API_KEY, data_dir=data) as s:
        status, _, again = post(s, "/api/publish", publication)
        assert status == 200 and again == first, (first, again)
        _, _, page = get(s, "/api/rooms/once/messages", key=None)
        assert [m["message"] for m in page["messages"]] == ["exactly once"], page


def test_messages_from_the_api_keep_their_json_shape_in_history(server):
    post(server, "/api/publish", {"room": "shape", "message": "x \"quoted\" <b>"})
    _, _, page = get(server, "/api/rooms/shape/messages", key=None)
    (message,) = page["messages"]
    assert message["message"] == "x \"quoted\" <b>" and message["type"] == "chat_message"
    assert json.loads(json.dumps(message)) == message


def test_cluster_a_publication_on_one_node_reaches_members_on_another(cluster):
    """Numbered once by Redis, delivered on every node; a retry on the other node is still
    the first publication (the key lives in the shared store)."""
    node1, node2 = cluster(2, "--api-key", API_KEY)

    async def body():
        far = await ChatClient.connect(node2)
        await far.join("c-room", "faye")
        near = await ChatClient.connect(node1)
        await near.join("c-room", "nate")
        publication = {"room": "c-room", "message": "to every node", "idempotency_key": "c-1"}
        status, _, answer = await asyncio.to_thread(post, node1, "/api/publish", publication)
        assert status == 200, answer
        for client in (far, near):
            got = await client.expect(is_chat("c-room", "to every node"))
            assert got["seq"] == answer["seq"] and got["userId"] == "roomcast:server", got
        status, _, again = await asyncio.to_thread(post, node2, "/api/publish", publication)
        assert status == 200 and again == answer, (answer, again)
        assert not [m for m in await far.collect(0.5) if m.get("type") == "chat_message"]
        status, _, info = await asyncio.to_thread(get, node2, "/api/info")
        assert info["node"].startswith("node2"), info
    run(body())


# --- app events in publish (issue 14's --app-events) -------------------------------------

APP_EVENTS = "document_change:durable,price_update,player_moved:no-echo"


@pytest.fixture(scope="module")
def events_server():
    with RoomcastServer("--api-key", API_KEY, "--app-events", APP_EVENTS,
                        "--max-event-bytes", "2048", "--threads", "2") as s:
        yield s


def test_a_durable_app_event_is_published_with_a_seq_once(events_server):
    async def body():
        ann = await ChatClient.connect(events_server)
        await ann.join("doc", "ann")
        change = {"ops": [{"insert": "hi", "at": 0}], "version": 1}
        publication = {"room": "doc", "event": {"type": "document_change", "change": change},
                       "idempotency_key": "ev-1"}
        status, _, answer = await asyncio.to_thread(post, events_server, "/api/publish",
                                                    publication)
        assert status == 200 and answer == {"room": "doc", "seq": 1}, answer
        got = await ann.expect(is_type("document_change", "doc"))
        assert got["change"] == change and got["seq"] == 1, got
        assert (got["userId"], got["username"]) == ("roomcast:server", "server"), got
        assert set(got) == {"type", "room", "userId", "username", "timestamp", "seq", "change"}
        # A retry is the first publication; the event is in the room's history once.
        status, _, again = await asyncio.to_thread(post, events_server, "/api/publish",
                                                   publication)
        assert status == 200 and again == answer, again
        assert not [m for m in await ann.collect(0.5) if m.get("type") == "document_change"]
        _, _, page = await asyncio.to_thread(get, events_server, "/api/rooms/doc/messages",
                                             key=None)
        assert [(m["type"], m["seq"]) for m in page["messages"]] == [("document_change", 1)]
    run(body())


def test_an_ephemeral_app_event_is_delivered_now_without_a_seq(events_server):
    async def body():
        # Two members: with two workers, the room may have members on both.
        ann, bob = await room_of(events_server, "ticker", "ann", "bob")
        status, _, answer = await asyncio.to_thread(
            post, events_server, "/api/publish",
            {"room": "ticker", "event": {"type": "price_update", "symbol": "ACME", "price": 3},
             "username": "Prices"})
        assert status == 200 and answer == {"room": "ticker"}, answer
        for client in (ann, bob):
            got = await client.expect(is_type("price_update", "ticker"))
            assert (got["symbol"], got["price"], got["username"]) == ("ACME", 3, "Prices"), got
            assert "seq" not in got and got["userId"] == "roomcast:server", got
        # To several rooms at once; a room nobody is in is answered the same.
        status, _, answer = await asyncio.to_thread(
            post, events_server, "/api/broadcast",
            {"rooms": ["ticker", "empty-ticker"], "event": {"type": "price_update", "price": 4}})
        assert status == 200, answer
        assert answer == {"results": [{"room": "ticker"}, {"room": "empty-ticker"}]}, answer
        got = await bob.expect(is_type("price_update", "ticker"))
        assert got["price"] == 4
        # Not stored.
        _, _, page = await asyncio.to_thread(get, events_server, "/api/rooms/ticker/messages",
                                             key=None)
        assert page["messages"] == [], page
    run(body())


@pytest.mark.parametrize("publication, status, code, fragment", [
    ({"room": "r", "event": {"type": "teleport"}}, 400, "unknown_type", "teleport"),
    ({"room": "r", "event": {"type": "chat_message", "message": "x"}}, 400, "unknown_type", ""),
    ({"room": "r", "event": "document_change"}, 400, "invalid_field", "object"),
    ({"room": "r", "event": {"change": 1}}, 400, "invalid_field", "'type'"),
    ({"room": "r", "event": {"type": 5}}, 400, "invalid_field", "'type'"),
    ({"room": "r", "event": {"type": "price_update", "room": "other"}}, 400, "invalid_field",
     "'room'"),
    ({"room": "r", "event": {"type": "price_update", "seq": 9}}, 400, "invalid_field", "'seq'"),
    ({"room": "r", "event": {"type": "price_update", "id": "x"}}, 400, "invalid_field",
     "idempotency_key"),
    ({"room": "r", "event": {"type": "price_update", "pad": "x" * 3000}}, 400, "too_large",
     "2048"),
    ({"room": "r", "event": {"type": "price_update"}, "idempotency_key": "k"}, 400,
     "invalid_field", "ephemeral"),
    ({"room": "r", "event": {"type": "price_update"}, "message": "both"}, 400,
     "invalid_field", "Exactly one"),
    ({"room": "r"}, 400, "invalid_field", "Exactly one"),
])
def test_bad_app_events_are_refused(events_server, publication, status, code, fragment):
    message = expect_error(post(events_server, "/api/publish", publication), status, code)
    assert fragment in message, message


def test_without_app_events_an_event_is_an_unknown_type(server):
    expect_error(post(server, "/api/publish", {"room": "r", "event": {"type": "price_update"}}),
                 400, "unknown_type")


def test_cluster_an_app_event_published_on_one_node_reaches_another(cluster):
    node1, node2 = cluster(2, "--api-key", API_KEY, "--app-events", APP_EVENTS)

    async def body():
        far = await ChatClient.connect(node2)
        await far.join("c-events", "faye")
        status, _, answer = await asyncio.to_thread(
            post, node1, "/api/publish",
            {"room": "c-events", "event": {"type": "price_update", "price": 1}})
        assert status == 200 and answer == {"room": "c-events"}, answer
        got = await far.expect(is_type("price_update", "c-events"))
        assert got["price"] == 1
        status, _, answer = await asyncio.to_thread(
            post, node1, "/api/publish",
            {"room": "c-events", "event": {"type": "document_change", "change": "x"}})
        assert status == 200 and answer["seq"] >= 1, answer
        got = await far.expect(is_type("document_change", "c-events"))
        assert got["seq"] == answer["seq"], got
    run(body())
