"""Replies named by `ref` (extension): a request's ref comes back on the replies it causes (error,
ack, joined, token_refreshed), invalid_field names the field, and a request without ref gets
exactly the chapter's replies."""

import pytest

from test_chat_support import ChatClient, is_chat, is_system, is_type, room_of, run, users


def is_joined(room):
    return lambda m: m.get("type") == "joined" and m.get("room") == room


def test_a_join_with_ref_is_answered_by_joined_with_the_rooms_state(server):
    async def body():
        ann, bob = await room_of(server, "general", "ann", "bob")
        for text in ("one", "two"):
            await ann.chat(text, room="general")
            await bob.expect(is_chat("general", text))
        cat = await ChatClient.connect(server)
        await cat.send({"type": "join_room", "room": "general", "username": "cat", "ref": "j1"})
        joined, skipped = await cat.recv_until(is_joined("general"))
        # The welcome still comes first (the chapter's page shows it); no separate history.
        assert [m["type"] for m in skipped] == ["system_message"], skipped
        assert skipped[0]["message"] == "Welcome to general!"
        assert set(joined) == {"type", "room", "ref", "lastSeq", "users", "messages"}, joined
        assert joined["ref"] == "j1"
        assert joined["lastSeq"] == 2
        cat.username = "cat"
        assert joined["users"] == users(ann, bob, cat), joined
        assert [m["message"] for m in joined["messages"]] == ["one", "two"]
        # Live messages follow it.
        await bob.chat("three", room="general")
        live = await cat.expect(is_chat("general", "three"))
        assert live["seq"] == 3
    run(body())


def test_a_join_with_ref_and_since_carries_what_followed_and_recovered(server):
    async def body():
        (ann,) = await room_of(server, "r", "ann")
        for text in ("a", "b", "c"):
            await ann.chat(text, room="r")
            await ann.expect(is_chat("r", text))
        bob = await ChatClient.connect(server)
        await bob.send({"type": "join_room", "room": "r", "username": "bob", "since": 1,
                        "ref": "again"})
        joined = await bob.expect(is_joined("r"))
        assert joined["recovered"] is True and joined["lastSeq"] == 3
        assert [m["seq"] for m in joined["messages"]] == [2, 3]
    run(body())


def test_a_join_with_ref_into_an_empty_room_says_so(server):
    async def body():
        ann = await ChatClient.connect(server)
        await ann.send({"type": "join_room", "room": "quiet", "username": "ann", "ref": "x"})
        joined = await ann.expect(is_joined("quiet"))
        assert joined["lastSeq"] == 0 and joined["messages"] == []
        assert joined["users"] == [{"id": ann.user_id, "username": "ann"}]
    run(body())


def test_a_join_without_ref_gets_the_chapters_replies_and_no_joined(server):
    async def body():
        (ann,) = await room_of(server, "general", "ann")
        await ann.chat("hello", room="general")
        await ann.expect(is_chat("general", "hello"))
        bob = await ChatClient.connect(server)
        await bob.join("general", "bob")
        history = await bob.expect(is_type("history", "general"))
        assert "ref" not in history
        later = await bob.collect(0.3)
        assert not [m for m in later if m["type"] == "joined"], later
    run(body())


def test_errors_echo_the_ref_of_the_request_that_caused_them(server):
    async def body():
        (ann,) = await room_of(server, "general", "ann")
        await ann.send({"type": "leave_room", "room": "elsewhere", "ref": "leave-1"})
        err = await ann.expect_error(ref="leave-1")
        assert err["code"] == "not_in_room"
        await ann.send({"type": "join_room", "room": "general", "ref": "join-2"})
        assert (await ann.expect_error(ref="join-2"))["code"] == "already_in_room"
        await ann.send({"type": "no_such_type", "ref": "u"})
        assert (await ann.expect_error(ref="u"))["code"] == "unknown_type"
        # Refused for a bad field: still named, and the field is named too.
        await ann.send({"type": "chat_message", "message": "", "ref": "m-3"})
        err = await ann.expect_error(ref="m-3")
        assert err["code"] == "invalid_field" and err["field"] == "message", err
        # Requests without ref: errors without ref.
        await ann.send({"type": "leave_room", "room": "elsewhere"})
        await ann.expect_error()
    run(body())


@pytest.mark.parametrize("request_, field", [
    ({"type": "join_room", "room": "r"}, "username"),
    ({"type": "join_room", "username": "ann"}, "room"),
    ({"type": "join_room", "room": "a<b", "username": "ann"}, "room"),
    ({"type": "join_room", "room": "r", "username": 7}, "username"),
    ({"type": "join_room", "room": "r", "username": "ann", "since": -1}, "since"),
    ({"type": "join_room", "room": "r", "username": "ann", "binary": "yes"}, "binary"),
    ({"type": "chat_message"}, "message"),
    ({"type": "chat_message", "message": "x" * 501}, "message"),
    ({"type": "chat_message", "message": "hi", "id": ""}, "id"),
    ({"type": "chat_message", "message": "hi", "timestamp": "now"}, "timestamp"),
    ({"type": "direct_message", "message": "hi"}, "to"),
    ({"type": "refresh"}, "token"),
    ({"type": "typing_start"}, "room"),
])
def test_invalid_field_names_the_field(server, request_, field):
    async def body():
        c = await ChatClient.connect(server)
        await c.send({**request_, "ref": "r1"})
        err = await c.expect_error(ref="r1")
        assert err["code"] == "invalid_field" and err["field"] == field, err
    run(body())


@pytest.mark.parametrize("ref", ["", 7, "x" * 65, ["a"], {"a": 1}, True])
def test_an_invalid_ref_is_refused_itself_and_not_echoed(server, ref):
    async def body():
        (ann,) = await room_of(server, "general", "ann")
        await ann.send({"type": "chat_message", "message": "hi", "room": "general", "ref": ref})
        err = await ann.expect_error()
        assert err["code"] == "invalid_field" and err["field"] == "ref", err
        # Nothing was sent: the next message is the first in the room.
        echo = await ann.chat_roundtrip("general", "after")
        assert echo["seq"] == 1
    run(body())


def test_acks_echo_the_ref_once_per_room(server):
    async def body():
        ann = await ChatClient.connect(server)
        await ann.join("a", "ann")
        await ann.join("b")
        await ann.send({"type": "chat_message", "message": "both", "id": "m1", "ref": "s1"})
        acks = []
        while len(acks) < 2:
            acks.append(await ann.expect(is_type("ack")))
        assert sorted(a["room"] for a in acks) == ["a", "b"]
        assert all(a["ref"] == "s1" and a["id"] == "m1" for a in acks), acks
        # A resend of a stored id is acked again, with the resend's ref.
        await ann.send({"type": "chat_message", "message": "both", "id": "m1", "room": "a",
                        "ref": "s2"})
        again = await ann.expect(is_type("ack"))
        assert again["ref"] == "s2" and again["seq"] == 1, again
        # Without ref: the ack has none.
        await ann.send({"type": "chat_message", "message": "plain", "id": "m2", "room": "a"})
        plain = await ann.expect(is_type("ack"))
        assert "ref" not in plain and plain["id"] == "m2"
    run(body())


def test_a_rate_limited_message_is_named_by_its_ref_under_default_limits(make_server):
    async def body(server):
        (ann,) = await room_of(server, "general", "ann")
        refused = None
        for i in range(30):  # the default budget is 10 messages a minute
            await ann.send({"type": "chat_message", "message": f"m{i}", "room": "general",
                            "ref": f"r{i}"})
        for _ in range(30):
            msg = await ann.expect(lambda m: m["type"] in ("error", "chat_message"))
            if msg["type"] == "error":
                refused = msg
                break
        assert refused is not None and refused["code"] == "rate_limited", refused
        assert refused["ref"].startswith("r") and int(refused["ref"][1:]) >= 10, refused
    run(body(make_server(production_defaults=True)))


def test_a_ref_on_an_app_event_is_not_relayed(make_server):
    async def body(server):
        ann, bob = await room_of(server, "doc", "ann", "bob")
        await ann.send({"type": "document_change", "room": "doc", "change": {"at": 1},
                        "ref": "e1"})
        event = await bob.expect(is_type("document_change", "doc"))
        assert "ref" not in event and event["change"] == {"at": 1}, event
    run(body(make_server("--app-events", "document_change")))
