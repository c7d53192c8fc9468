"""--rejoin-grace: a member who drops and comes back within the grace (a reconnect, a page reload)
says nothing to the room; a leave is announced once the member has been gone that long; joins in
the grace after the server starts (the members of before a restart) are not announced. The
user_list stays current throughout."""

import asyncio

from roomcast_server import RoomcastServer
from test_chat_support import ChatClient, is_type, run, users

GRACE_S = 1.5


def system_lines(messages):
    return [m["message"] for m in messages if m["type"] == "system_message"]


async def past_the_start(server_started_at_grace=GRACE_S):
    # Joins in the grace after the start are not announced (see the last test).
    await asyncio.sleep(server_started_at_grace + 0.2)


async def ann_then_bob(server):
    """Once past the start's grace: ann in room r, then bob, announced to ann."""
    await past_the_start()
    ann = await ChatClient.connect(server)
    await ann.join("r", "ann")
    bob = await ChatClient.connect(server)
    await bob.join("r", "bob")
    await ann.expect(lambda m: m.get("message") == "bob joined the chat")
    return ann, bob


def test_a_reconnect_within_the_grace_says_nothing_and_the_list_stays_current():
    with RoomcastServer("--rejoin-grace", f"{GRACE_S}s") as server:
        async def body():
            ann, bob = await ann_then_bob(server)
            await ann.expect_user_list("r", users(ann, bob))
            # The network drops bob; his page reconnects (a new anonymous connection, a new
            # userId) and rejoins with since, as the JS library does.
            bob.abort()
            await ann.expect_user_list("r", users(ann))
            bob2 = await ChatClient.connect(server)
            await bob2.join("r", "bob", since=0)
            _, seen = await ann.recv_until(
                lambda m: m["type"] == "user_list" and m["users"] == users(ann, bob2))
            seen += await ann.collect(GRACE_S + 0.5)  # past the grace: still nothing said
            assert system_lines(seen) == [], seen
            # Gone for good: announced once the grace has passed.
            await bob2.close()
            left, skipped = await ann.recv_until(
                lambda m: m.get("message") == "bob left the chat", timeout=GRACE_S + 5)
            assert left["type"] == "system_message" and left["room"] == "r"
            assert system_lines(skipped) == [], skipped
        run(body())


def test_a_leave_is_announced_after_the_grace_and_a_new_member_at_once():
    with RoomcastServer("--rejoin-grace", f"{GRACE_S}s") as server:
        async def body():
            ann, bob = await ann_then_bob(server)
            await bob.send({"type": "leave_room", "room": "r"})
            await ann.expect_user_list("r", users(ann))
            early = await ann.collect(GRACE_S / 3)
            assert "bob left the chat" not in system_lines(early), early
            await ann.expect(lambda m: m.get("message") == "bob left the chat",
                             timeout=GRACE_S + 5)
            # Someone else is news at once.
            cat = await ChatClient.connect(server)
            await cat.join("r", "cat")
            await ann.expect(lambda m: m.get("message") == "cat joined the chat", timeout=1)
        run(body())


def test_joins_right_after_the_start_are_not_announced():
    with RoomcastServer("--rejoin-grace", "30s") as server:
        async def body():
            ann = await ChatClient.connect(server)
            await ann.join("r", "ann")
            bob = await ChatClient.connect(server)
            await bob.join("r", "bob")
            _, seen = await ann.recv_until(
                lambda m: m["type"] == "user_list" and m["users"] == users(ann, bob))
            seen += await ann.collect(0.5)
            assert system_lines(seen) == [], seen
        run(body())


def test_with_the_servers_defaults_a_reconnect_adds_no_system_lines():
    with RoomcastServer(production_defaults=True) as server:
        async def body():
            ann = await ChatClient.connect(server)
            await ann.join("r", "ann")
            bob = await ChatClient.connect(server)
            await bob.join("r", "bob")
            await ann.expect_user_list("r", users(ann, bob))
            for _ in range(2):
                bob.abort()
                await ann.expect_user_list("r", users(ann))
                bob = await ChatClient.connect(server)
                await bob.join("r", "bob", since=0)
                await ann.expect_user_list("r", users(ann, bob))
            await bob.chat("back", room="r")
            _, seen = await ann.recv_until(is_type("chat_message", "r"))
            assert system_lines(seen) == [], seen
        run(body())
