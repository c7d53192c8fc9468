"""Every bad request gets {"type":"error",...} and the connection stays open and keeps working."""

import pytest

from test_chat_support import ChatClient, is_chat, is_type, room_of, run, users


async def joined(server, room="general", name="alice"):
    c = await ChatClient.connect(server)
    await c.join(room, name)
    return c


def test_invalid_json_gives_invalid_json_error_and_connection_keeps_working(server):
    async def body():
        c = await joined(server)
        await c.send('{"type": "chat_message", "message": ')
        err = await c.expect_error()
        assert err["code"] == "invalid_json"
        await c.chat_roundtrip("general", "still here")
    run(body())


def test_invalid_json_before_joining_leaves_the_connection_usable(server):
    async def body():
        c = await ChatClient.connect(server)
        await c.send("not json at all")
        assert (await c.expect_error())["code"] == "invalid_json"
        await c.join("general", "alice")
        await c.chat_roundtrip("general", "recovered")
    run(body())


@pytest.mark.parametrize("payload", [
    '{"type": "leave_room", "type": "chat_message", "message": "smuggled"}',
    '{"type": "chat_message", "message": "first", "message": "second"}',
    '{"type": "chat_message", "message": "x", "meta": {"a": 1, "\\u0061": 2}}',
])
def test_a_name_twice_in_one_object_is_refused_and_reaches_nobody(server, payload):
    async def body():
        c = await joined(server)
        other = await joined(server, name="bob")
        await c.send(payload)
        err = await c.expect_error()
        assert err["code"] == "invalid_json" and "appears twice" in err["message"], err
        await c.chat_roundtrip("general", "still here")
        seen = [m["message"] for m in await other.collect(0.2) if is_type("chat_message")(m)]
        assert seen == ["still here"], seen
    run(body())


@pytest.mark.parametrize("payload", ["[]", '["join_room"]', '"join_room"', "42", "null", "true"])
def test_json_that_is_not_an_object_gives_unknown_type_error(server, payload):
    async def body():
        c = await joined(server)
        await c.send(payload)
        assert (await c.expect_error())["code"] == "unknown_type"
        await c.chat_roundtrip("general", "still here")
    run(body())


def test_message_without_type_gives_unknown_type_error(server):
    async def body():
        c = await joined(server)
        await c.send({"message": "hi", "room": "general"})
        assert (await c.expect_error())["code"] == "unknown_type"
        await c.chat_roundtrip("general", "still here")
    run(body())


def test_unknown_type_gives_unknown_type_error(server):
    async def body():
        c = await joined(server)
        await c.send({"type": "dance", "room": "general"})
        assert (await c.expect_error())["code"] == "unknown_type"
        await c.chat_roundtrip("general", "still here")
    run(body())


@pytest.mark.parametrize("request_", [
    {"type": "join_room", "username": "alice"},
    {"type": "join_room", "room": 7, "username": "alice"},
    {"type": "join_room", "room": None, "username": "alice"},
    {"type": "join_room", "room": ["general"], "username": "alice"},
    {"type": "join_room", "room": "general", "username": 7},
    {"type": "join_room", "room": "general"},  # a first join must name the user
], ids=["room-missing", "room-number", "room-null", "room-array", "username-number",
        "username-missing-on-first-join"])
def test_join_with_missing_or_mistyped_field_gives_invalid_field_error(server, request_):
    async def body():
        c = await ChatClient.connect(server)
        await c.send(request_)
        assert (await c.expect_error())["code"] == "invalid_field"
        await c.join("general", "alice")
        await c.chat_roundtrip("general", "still here")
    run(body())


@pytest.mark.parametrize("request_", [
    {"type": "leave_room"},
    {"type": "leave_room", "room": 7},
    {"type": "chat_message"},
    {"type": "chat_message", "message": 7},
    {"type": "chat_message", "message": "hi", "room": 7},
    {"type": "typing_start"},
    {"type": "typing_start", "room": 7},
    {"type": "typing_stop"},
    {"type": "typing_stop", "room": ["general"]},
], ids=["leave-room-missing", "leave-room-number", "chat-message-missing",
        "chat-message-number", "chat-room-number", "typing-start-room-missing",
        "typing-start-room-number", "typing-stop-room-missing", "typing-stop-room-array"])
def test_other_requests_with_missing_or_mistyped_field_give_invalid_field_error(server,
                                                                                request_):
    async def body():
        c = await joined(server)
        await c.send(request_)
        assert (await c.expect_error())["code"] == "invalid_field"
        await c.chat_roundtrip("general", "still here")
    run(body())


def test_chat_before_joining_any_room_gives_not_in_room_error(server):
    async def body():
        c = await ChatClient.connect(server)
        await c.chat("anyone?")
        assert (await c.expect_error())["code"] == "not_in_room"
        await c.join("general", "alice")
        await c.chat_roundtrip("general", "now in a room")
    run(body())


@pytest.mark.parametrize("text", ["", " ", "   \t\n  "], ids=["empty", "space", "whitespace"])
def test_empty_or_whitespace_message_is_rejected_and_not_broadcast(server, text):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await a.chat(text)
        await a.expect_error()
        await a.chat_roundtrip("general", "real message")
        msg = await b.expect(is_type("chat_message"))
        assert msg["message"] == "real message"  # the rejected one never reached b
    run(body())


def test_message_of_500_characters_is_accepted(server):
    async def body():
        c = await joined(server)
        await c.chat_roundtrip("general", "x" * 500)
    run(body())


def test_message_limit_counts_characters_not_bytes(server):
    async def body():
        c = await joined(server)
        await c.chat_roundtrip("general", "é" * 500)
    run(body())


def test_message_over_500_characters_is_rejected_and_not_broadcast(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await a.chat("x" * 501)
        await a.expect_error()
        await a.chat_roundtrip("general", "short one")
        msg = await b.expect(is_type("chat_message"))
        assert msg["message"] == "short one"
    run(body())


def test_chat_to_a_room_not_joined_is_rejected(server):
    async def body():
        (b,) = await room_of(server, "blue", "bob")
        a = await joined(server, "red", "alice")
        await a.chat("sneaky", room="blue")
        await a.expect_error()
        await a.chat_roundtrip("red", "still here")
        await b.chat("blue marker")
        _, before = await b.recv_until(is_chat("blue", "blue marker"))
        assert [m for m in before if m.get("message") == "sneaky"] == []
    run(body())


def test_joining_a_room_already_joined_is_an_error(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await a.send({"type": "join_room", "room": "general", "username": "alice"})
        await a.expect_error()
        await a.chat("after double join")
        msg = await a.expect(is_type("chat_message"))
        assert msg["message"] == "after double join"
        extra = [m for m in await a.collect(0.3) if m.get("type") == "chat_message"]
        assert extra == []  # still a member exactly once
        # The refused join announced nothing to the room.
        _, before = await b.recv_until(is_chat("general", "after double join"))
        assert [m for m in before if m.get("type") == "system_message"] == []
    run(body())


def test_join_with_a_different_username_is_an_error(server):
    async def body():
        (b,) = await room_of(server, "blue", "bob")
        a = await joined(server, "red", "alice")
        await a.send({"type": "join_room", "room": "blue", "username": "mallory"})
        await a.expect_error()
        await a.chat_roundtrip("red", "still alice")
        # The failed join did not put a into blue.
        await b.chat("blue marker")
        _, before = await b.recv_until(is_chat("blue", "blue marker"))
        assert [m for m in before if m.get("type") == "system_message"] == []
        await a.join("blue")
        await b.expect_user_list("blue", users(b, a))
    run(body())


def test_leaving_a_room_not_joined_is_an_error(server):
    async def body():
        c = await joined(server)
        await c.send({"type": "leave_room", "room": "elsewhere"})
        await c.expect_error()
        await c.chat_roundtrip("general", "still here")
    run(body())


def test_leaving_before_joining_anything_is_an_error(server):
    async def body():
        c = await ChatClient.connect(server)
        await c.send({"type": "leave_room", "room": "general"})
        await c.expect_error()
        await c.join("general", "alice")
    run(body())


@pytest.mark.parametrize("kind", ["typing_start", "typing_stop"])
def test_typing_in_a_room_not_joined_is_an_error(server, kind):
    async def body():
        (b,) = await room_of(server, "blue", "bob")
        a = await joined(server, "red", "alice")
        await a.send({"type": kind, "room": "blue"})
        await a.expect_error()
        await a.chat_roundtrip("red", "still here")
        await b.chat("blue marker")
        _, before = await b.recv_until(is_chat("blue", "blue marker"))
        assert [m for m in before if m.get("type", "").startswith("typing")] == []
    run(body())


def test_username_of_20_characters_is_accepted(server):
    async def body():
        c = await ChatClient.connect(server)
        await c.join("general", "u" * 20)
        msg = await c.chat_roundtrip("general", "hi")
        assert msg["username"] == "u" * 20
    run(body())


def test_username_limit_counts_characters_not_bytes(server):
    async def body():
        c = await ChatClient.connect(server)
        await c.join("general", "ü" * 20)
        msg = await c.chat_roundtrip("general", "hi")
        assert msg["username"] == "ü" * 20
    run(body())


def test_room_name_of_30_characters_is_accepted(server):
    async def body():
        c = await ChatClient.connect(server)
        await c.join("r" * 30, "alice")
        await c.chat_roundtrip("r" * 30, "hi")
    run(body())


BAD_NAMES = {
    "empty": "",
    "newline": "al\nice",
    "tab": "al\tice",
    "nul": "al\x00ice",
    "escape": "al\x1bice",
    "delete": "al\x7fice",
    "less-than": "a<b",
    "greater-than": "a>b",
    "ampersand": "a&b",
    "double-quote": 'a"b',
    "single-quote": "a'b",
    "backtick": "a`b",
}


@pytest.mark.parametrize("username", list(BAD_NAMES.values()) + ["u" * 21],
                         ids=list(BAD_NAMES) + ["21-characters"])
def test_bad_username_gives_invalid_field_error(server, username):
    async def body():
        c = await ChatClient.connect(server)
        await c.send({"type": "join_room", "room": "general", "username": username})
        assert (await c.expect_error())["code"] == "invalid_field"
        await c.join("general", "alice")
        await c.chat_roundtrip("general", "still here")
    run(body())


@pytest.mark.parametrize("room", list(BAD_NAMES.values()) + ["r" * 31],
                         ids=list(BAD_NAMES) + ["31-characters"])
def test_bad_room_name_gives_invalid_field_error(server, room):
    async def body():
        c = await ChatClient.connect(server)
        await c.send({"type": "join_room", "room": room, "username": "alice"})
        assert (await c.expect_error())["code"] == "invalid_field"
        await c.join("general", "alice")
        await c.chat_roundtrip("general", "still here")
    run(body())


def test_binary_frame_gives_unsupported_binary_error_and_connection_keeps_working(server):
    async def body():
        c = await joined(server)
        await c.send(b'{"type":"chat_message","message":"as bytes"}')
        assert (await c.expect_error())["code"] == "unsupported_binary"
        msg = await c.chat_roundtrip("general", "as text")
        assert msg["seq"] == 1  # the binary frame was not taken as a chat message
    run(body())


def test_errors_go_only_to_the_offending_connection(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await a.send("{broken")
        await a.expect_error()
        await a.chat("marker")
        _, before = await b.recv_until(is_chat("general", "marker"))
        assert [m for m in before if m.get("type") == "error"] == []
    run(body())


def test_many_errors_in_a_row_do_not_close_the_connection(server):
    async def body():
        c = await joined(server)
        for bad in ["{", "[]", '{"type":"nope"}', '{"type":"chat_message"}'] * 5:
            await c.send(bad)
            await c.expect_error()
        await c.chat_roundtrip("general", "survived")
    run(body())
