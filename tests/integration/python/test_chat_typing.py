"""Typing indicators: relayed to the other members only, and stopped by the server when the
typist goes quiet for 5 s, leaves or disconnects."""

import time

from test_chat_support import ChatClient, is_chat, is_type, room_of, run


def typing(kind, room, who):
    return {"type": kind, "room": room, "userId": who.user_id, "username": who.username}


def test_typing_start_reaches_the_others_with_room_user_id_and_username(server):
    async def body():
        a, b, c = await room_of(server, "general", "alice", "bob", "carol")
        await a.send({"type": "typing_start", "room": "general"})
        for other in (b, c):
            assert await other.expect(is_type("typing_start")) == typing("typing_start",
                                                                         "general", a)
    run(body())


def test_typing_stop_reaches_the_others_with_room_user_id_and_username(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await a.send({"type": "typing_start", "room": "general"})
        await b.expect(is_type("typing_start"))
        await a.send({"type": "typing_stop", "room": "general"})
        assert await b.expect(is_type("typing_stop")) == typing("typing_stop", "general", a)
    run(body())


def test_typing_is_not_echoed_to_the_sender(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await a.send({"type": "typing_start", "room": "general"})
        await a.send({"type": "typing_stop", "room": "general"})
        await a.chat("marker")
        # Anything the server sent a for its typing would come before a's own chat message.
        _, before = await a.recv_until(is_chat("general", "marker"))
        later = await a.collect(0.3)
        assert [m for m in before + later if m.get("type", "").startswith("typing")] == []
        await b.expect(is_type("typing_start"))
        await b.expect(is_type("typing_stop"))
    run(body())


def test_typing_goes_only_to_the_named_room(server):
    async def body():
        (r,) = await room_of(server, "red", "rita")
        (u,) = await room_of(server, "blue", "ursula")
        a = await ChatClient.connect(server)
        await a.join("red", "alice")
        await a.join("blue")
        await a.send({"type": "typing_start", "room": "red"})
        assert await r.expect(is_type("typing_start")) == typing("typing_start", "red", a)
        await u.chat("blue marker")
        _, before = await u.recv_until(is_chat("blue", "blue marker"))
        assert [m for m in before if m.get("type", "").startswith("typing")] == []
    run(body())


def test_server_sends_typing_stop_after_5_seconds_of_silence(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await a.send({"type": "typing_start", "room": "general"})
        await b.expect(is_type("typing_start"))
        started = time.monotonic()
        stop = await b.expect(is_type("typing_stop"), timeout=8)
        waited = time.monotonic() - started
        assert stop == typing("typing_stop", "general", a)
        assert waited >= 4.0, f"typing expired after only {waited:.1f}s"
        # The expiry is relayed on a's behalf, never to a itself.
        await a.chat("marker")
        _, before = await a.recv_until(is_chat("general", "marker"))
        assert [m for m in before if m.get("type", "").startswith("typing")] == []
    run(body(), timeout=20)


def test_explicit_typing_stop_is_not_followed_by_a_second_expiry_stop(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await a.send({"type": "typing_start", "room": "general"})
        await b.expect(is_type("typing_start"))
        await a.send({"type": "typing_stop", "room": "general"})
        await b.expect(is_type("typing_stop"))
        later = await b.collect(6.5)
        assert [m for m in later if m.get("type", "").startswith("typing")] == []
    run(body(), timeout=20)


def test_leaving_while_typing_sends_typing_stop_to_the_others(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await a.send({"type": "typing_start", "room": "general"})
        await b.expect(is_type("typing_start"))
        await a.send({"type": "leave_room", "room": "general"})
        stop = await b.expect(is_type("typing_stop"), timeout=3)
        assert stop == typing("typing_stop", "general", a)
    run(body())


def test_disconnecting_while_typing_sends_typing_stop_to_the_others(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await a.send({"type": "typing_start", "room": "general"})
        await b.expect(is_type("typing_start"))
        a.abort()
        stop = await b.expect(is_type("typing_stop"), timeout=3)
        assert stop == typing("typing_stop", "general", a)
    run(body())


def test_closing_while_typing_sends_typing_stop_to_the_others(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        await a.send({"type": "typing_start", "room": "general"})
        await b.expect(is_type("typing_start"))
        await a.close()
        stop = await b.expect(is_type("typing_stop"), timeout=3)
        assert stop == typing("typing_stop", "general", a)
    run(body())
