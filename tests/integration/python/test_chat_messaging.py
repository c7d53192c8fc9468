"""Connecting, joining, chatting, leaving and disconnecting, seen by real websockets clients."""

import asyncio
import json

import websockets

from test_chat_support import (UUID_V4, ChatClient, assert_server_timestamp, is_chat,
                               is_system, is_type, room_of, run, users)

CHAT_FIELDS = {"type", "room", "userId", "username", "message", "timestamp", "seq"}


def test_server_greets_each_connection_with_a_distinct_uuid4_user_id(server):
    async def body():
        a = await ChatClient.connect(server)
        b = await ChatClient.connect(server)
        assert UUID_V4.match(a.user_id), a.user_id
        assert UUID_V4.match(b.user_id), b.user_id
        assert a.user_id != b.user_id
    run(body())


def test_greeting_has_exactly_type_and_user_id(server):
    async def body():
        async with websockets.connect(server.ws_url + "/", open_timeout=5) as ws:
            greeting = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert set(greeting) == {"type", "userId"}
            assert greeting["type"] == "connection_established"
    run(body())


def test_ws_path_is_also_a_chat_endpoint(server):
    async def body():
        c = await ChatClient.connect(server, path="/ws")
        assert UUID_V4.match(c.user_id)
        await c.join("general", "alice")
        await c.chat_roundtrip("general", "hello via /ws")
    run(body())


def test_joiner_receives_welcome_system_message_with_room_and_timestamp(server):
    async def body():
        a = await ChatClient.connect(server)
        welcome = await a.join("general", "alice")
        assert set(welcome) == {"type", "room", "message", "timestamp"}
        assert welcome["type"] == "system_message"
        assert welcome["room"] == "general"
        assert welcome["message"] == "Welcome to general!"
        assert_server_timestamp(welcome["timestamp"])
    run(body())


def test_existing_members_are_told_who_joined(server):
    async def body():
        (a,) = await room_of(server, "general", "alice")
        b = await ChatClient.connect(server)
        await b.join("general", "bob")
        note = await a.expect(is_type("system_message", "general"))
        assert set(note) == {"type", "room", "message", "timestamp"}
        assert note["message"] == "bob joined the chat"
        assert_server_timestamp(note["timestamp"])
    run(body())


def test_joiner_is_not_told_about_its_own_join(server):
    async def body():
        a = await ChatClient.connect(server)
        await a.join("general", "alice")
        # Everything up to our own chat message: no "alice joined the chat" among it.
        await a.chat("marker")
        _, before = await a.recv_until(is_chat("general", "marker"))
        assert [m for m in before if m.get("type") == "system_message"] == []
    run(body())


def test_user_list_after_join_lists_every_member_in_join_order(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        c = await ChatClient.connect(server)
        await c.join("general", "carol")
        expected = [{"id": a.user_id, "username": "alice"},
                    {"id": b.user_id, "username": "bob"},
                    {"id": c.user_id, "username": "carol"}]
        for member in (a, b, c):
            msg = await member.expect_user_list("general", expected)
            assert msg["type"] == "user_list"
    run(body())


def test_two_users_in_a_room_both_receive_a_chat_message_with_all_fields(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await a.send({"type": "chat_message", "message": "hi", "timestamp": 123})
        for member in (a, b):
            msg = await member.expect(is_type("chat_message"))
            assert set(msg) == CHAT_FIELDS, msg
            assert msg["room"] == "general"
            assert msg["userId"] == a.user_id
            assert msg["username"] == "alice"
            assert msg["message"] == "hi"
            assert msg["seq"] == 1
            assert_server_timestamp(msg["timestamp"])  # the server's clock, not the 123 sent
    run(body())


def test_chat_message_without_client_timestamp_is_accepted(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await a.send({"type": "chat_message", "message": "no clock"})
        msg = await b.expect(is_type("chat_message"))
        assert msg["message"] == "no clock"
        assert_server_timestamp(msg["timestamp"])
    run(body())


def test_chat_seq_starts_at_one_and_increases_by_room(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        (c,) = await room_of(server, "other", "carol")
        seqs = []
        for sender, text in ((a, "one"), (a, "two"), (b, "three")):
            await sender.chat(text)
            seqs.append((await b.expect(is_chat("general", text)))["seq"])
        assert seqs == [1, 2, 3]
        await c.chat("elsewhere")
        assert (await c.expect(is_chat("other", "elsewhere")))["seq"] == 1
    run(body())


def test_message_text_is_delivered_verbatim(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        text = '  <b>"quotes" & ünïcödé ✓ \\ / 🎉</b>  '
        await a.chat(text)
        msg = await b.expect(is_type("chat_message"))
        assert msg["message"] == text
    run(body())


def test_rooms_are_isolated(server):
    async def body():
        (a,) = await room_of(server, "room-a", "alice")
        (b,) = await room_of(server, "room-b", "bob")
        await a.chat_roundtrip("room-a", "only for room a")
        # b's own message comes after anything the server routed to b before it.
        await b.chat("b speaks")
        _, before = await b.recv_until(is_chat("room-b", "b speaks"))
        later = await b.collect(0.3)
        leaked = [m for m in before + later
                  if m.get("type") == "chat_message" and m.get("room") != "room-b"]
        assert leaked == []
        assert [m for m in before + later if m.get("message") == "only for room a"] == []
    run(body())


def test_members_of_another_room_are_not_told_about_joins(server):
    async def body():
        (a,) = await room_of(server, "room-a", "alice")
        b = await ChatClient.connect(server)
        await b.join("room-b", "bob")
        await a.chat("marker")
        _, before = await a.recv_until(is_chat("room-a", "marker"))
        assert [m for m in before if m.get("room") == "room-b"] == []
        assert [m for m in before if m.get("message") == "bob joined the chat"] == []
    run(body())


def test_connection_in_two_rooms_receives_its_own_message_once_per_room(server):
    async def body():
        a = await ChatClient.connect(server)
        await a.join("red", "alice")
        await a.join("blue")
        await a.chat("to both")
        first = await a.expect(is_type("chat_message"))
        second = await a.expect(is_type("chat_message"))
        assert {first["room"], second["room"]} == {"red", "blue"}
        for msg in (first, second):
            assert msg["message"] == "to both"
            assert msg["userId"] == a.user_id
            assert msg["username"] == "alice"
        extra = [m for m in await a.collect(0.3) if m.get("type") == "chat_message"]
        assert extra == []
    run(body())


def test_username_from_first_join_is_used_in_later_rooms(server):
    async def body():
        (b,) = await room_of(server, "blue", "bob")
        a = await ChatClient.connect(server)
        await a.join("red", "alice")
        await a.join("blue")  # no username this time
        a.username = "alice"
        await b.expect(is_system("blue", "alice joined the chat"))
        await b.expect_user_list("blue", users(b, a))
        await a.chat("hi blue", room="blue")
        msg = await b.expect(is_chat("blue", "hi blue"))
        assert msg["username"] == "alice"
    run(body())


def test_later_join_may_repeat_the_same_username(server):
    async def body():
        a = await ChatClient.connect(server)
        await a.join("red", "alice")
        await a.join("blue", "alice")
        await a.expect_user_list("blue", users(a))
    run(body())


def test_chat_with_room_goes_only_to_that_room(server):
    async def body():
        (b,) = await room_of(server, "blue", "bob")
        a = await ChatClient.connect(server)
        await a.join("red", "alice")
        await a.join("blue")
        await a.chat("red only", room="red")
        mine = await a.expect(is_chat("red", "red only"))
        assert mine["seq"] == 1
        later = await a.collect(0.3)
        assert [m for m in later if m.get("type") == "chat_message"] == []
        await b.chat("blue marker")
        _, before = await b.recv_until(is_chat("blue", "blue marker"))
        assert [m for m in before if m.get("message") == "red only"] == []
    run(body())


def test_leaving_tells_the_others_and_updates_their_user_list(server):
    async def body():
        a, b, c = await room_of(server, "general", "alice", "bob", "carol")
        await b.send({"type": "leave_room", "room": "general"})
        for member in (a, c):
            note = await member.expect(is_system("general", "bob left the chat"))
            assert set(note) == {"type", "room", "message", "timestamp"}
            assert_server_timestamp(note["timestamp"])
            await member.expect_user_list("general", users(a, c))
    run(body())


def test_after_leaving_a_member_no_longer_receives_the_rooms_messages(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await b.join("lobby")
        await b.send({"type": "leave_room", "room": "general"})
        await a.expect_user_list("general", users(a))
        await a.chat_roundtrip("general", "b is gone")
        await b.chat("b marker")
        _, before = await b.recv_until(is_chat("lobby", "b marker"))
        assert [m for m in before if m.get("message") == "b is gone"] == []
    run(body())


def test_member_can_rejoin_a_room_after_leaving_it(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await b.send({"type": "leave_room", "room": "general"})
        await a.expect_user_list("general", users(a))
        await b.join("general")
        await a.expect(is_system("general", "bob joined the chat"))
        await a.expect_user_list("general", users(a, b))
    run(body())


def test_clean_close_tells_the_others_and_updates_their_user_list(server):
    async def body():
        a, b, c = await room_of(server, "general", "alice", "bob", "carol")
        await b.close()
        for member in (a, c):
            await member.expect(is_system("general", "bob left the chat"))
            await member.expect_user_list("general", users(a, c))
    run(body())


def test_abrupt_disconnect_tells_the_others_and_updates_their_user_list(server):
    async def body():
        a, b, c = await room_of(server, "general", "alice", "bob", "carol")
        b.abort()
        for member in (a, c):
            await member.expect(is_system("general", "bob left the chat"))
            await member.expect_user_list("general", users(a, c))
    run(body())


def test_disconnect_is_announced_in_every_room_of_the_connection(server):
    async def body():
        (r,) = await room_of(server, "red", "rita")
        (u,) = await room_of(server, "blue", "ursula")
        a = await ChatClient.connect(server)
        await a.join("red", "alice")
        await a.join("blue")
        a.abort()
        await r.expect(is_system("red", "alice left the chat"))
        await r.expect_user_list("red", users(r))
        await u.expect(is_system("blue", "alice left the chat"))
        await u.expect_user_list("blue", users(u))
    run(body())


def test_user_list_settles_on_latest_membership_after_a_burst_of_joins(server):
    async def body():
        (a,) = await room_of(server, "general", "alice")
        others = []
        for i in range(5):
            c = await ChatClient.connect(server)
            await c.join("general", f"user{i}")
            others.append(c)
        everyone = [a] + others
        for c in everyone:
            await c.expect_user_list("general", users(*everyone))
        # Coalesced or not, nothing older than the latest membership follows it.
        for c in everyone:
            late = [m for m in await c.collect(0.2) if m.get("type") == "user_list"]
            assert all(m["users"] == users(*everyone) for m in late), late
    run(body())
