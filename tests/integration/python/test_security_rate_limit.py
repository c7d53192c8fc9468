"""Rate limits: the chapter's policy (10 messages per 60 s, then blocked for twice the window,
answered "Rate limit exceeded. Please slow down."), per user for token holders and per address
for anonymous users; typing signals on a budget of their own; 0 turns a limit off. The limited
user's neighbours chat on undisturbed."""

import asyncio
import time

import pytest

from roomcast_server import RoomcastServer
from security_support import SECRET, make_token
from test_chat_support import ChatClient, is_chat, is_type, run

RATE_LIMITED = "Rate limit exceeded. Please slow down."


async def joined(server, name, room="general", token=None, **kwargs):
    path = f"/?token={token}" if token else "/"
    c = await ChatClient.connect(server, path, **kwargs)
    await c.join(room, None if token else name)
    return c


async def expect_rate_limited(client):
    err = await client.expect_error()
    assert err == {"type": "error", "code": "rate_limited", "message": RATE_LIMITED}, err


def test_the_default_is_the_chapters_ten_messages_a_minute():
    with RoomcastServer(production_defaults=True) as server:
        async def body():
            alice = await joined(server, "alice")
            bob = await joined(server, "bob", local_addr=("127.0.0.2", 0))
            for i in range(10):
                await alice.chat_roundtrip("general", f"message {i}")
            await alice.chat("one too many")
            await expect_rate_limited(alice)
            await alice.chat("still blocked")
            await expect_rate_limited(alice)
            # Nobody saw the refused messages; bob (another address) chats on.
            seen = [m["message"] for m in await bob.collect(0.3) if is_type("chat_message")(m)]
            assert "one too many" not in seen and "still blocked" not in seen
            await bob.chat_roundtrip("general", "bob is not limited")
            await alice.expect(is_chat("general", "bob is not limited"))
        run(body())


def test_after_the_limit_a_user_is_blocked_for_twice_the_window():
    with RoomcastServer("--rate-limit-messages", "3", "--rate-limit-window", "1s") as server:
        async def body():
            alice = await joined(server, "alice")
            started = time.monotonic()
            for i in range(3):
                await alice.chat_roundtrip("general", f"m{i}")
            await alice.chat("over")
            await expect_rate_limited(alice)
            # The window (1 s) is over, the block (2 s) is not.
            await asyncio.sleep(max(0, started + 1.3 - time.monotonic()))
            await alice.chat("during the block")
            await expect_rate_limited(alice)
            await asyncio.sleep(max(0, started + 2.3 - time.monotonic()))
            await alice.chat_roundtrip("general", "free again")
        run(body())


def test_token_users_are_limited_per_user_across_connections_and_addresses():
    with RoomcastServer("--jwt-secret", SECRET, "--rate-limit-messages", "4") as server:
        async def body():
            token = make_token(sub="u-alice", name="alice")
            phone = await joined(server, "alice", token=token)
            laptop = await joined(server, "alice", token=token, local_addr=("127.0.0.3", 0))
            bob = await joined(server, "bob", token=make_token(sub="u-bob", name="bob"))
            for i in range(2):
                await phone.chat_roundtrip("general", f"phone {i}")
                await laptop.chat_roundtrip("general", f"laptop {i}")
            await laptop.chat("fifth")
            await expect_rate_limited(laptop)
            await phone.chat("sixth")
            await expect_rate_limited(phone)
            # Same address as alice's phone, another user: unaffected.
            for i in range(4):
                await bob.chat_roundtrip("general", f"bob {i}")
        run(body())


def test_anonymous_users_are_limited_per_address():
    with RoomcastServer("--rate-limit-messages", "4") as server:
        async def body():
            a = await joined(server, "a")
            b = await joined(server, "b")  # same address as a
            c = await joined(server, "c", local_addr=("127.0.0.4", 0))
            for i in range(2):
                await a.chat_roundtrip("general", f"a{i}")
                await b.chat_roundtrip("general", f"b{i}")
            await b.chat("over")
            await expect_rate_limited(b)
            # Reconnecting from the same address buys nothing.
            await b.close()
            again = await joined(server, "b2")
            await again.chat("after reconnecting")
            await expect_rate_limited(again)
            for i in range(4):
                await c.chat_roundtrip("general", f"c{i}")
        run(body())


def test_a_typing_flood_is_cut_with_one_error_and_chat_goes_on():
    with RoomcastServer("--rate-limit-signals", "10", "--rate-limit-signals-window", "10s") as server:
        async def body():
            flooder = await joined(server, "flooder")
            watcher = await joined(server, "watcher", local_addr=("127.0.0.5", 0))
            for _ in range(200):
                await flooder.send({"type": "typing_start", "room": "general"})
                await flooder.send({"type": "typing_stop", "room": "general"})
            await expect_rate_limited(flooder)
            seen = await watcher.collect(0.5)
            typing = [m for m in seen if m.get("type") in ("typing_start", "typing_stop")]
            assert len(typing) == 9, len(typing)  # 10 signals, the join among them
            await flooder.chat_roundtrip("general", "chat has its own budget")
            errors = [m for m in await flooder.collect(0.3) if is_type("error")(m)]
            assert errors == [], "one error per block, not one per refused signal"
            await watcher.chat_roundtrip("general", "the room is fine")
        run(body())


@pytest.mark.parametrize("flag", ["--rate-limit-messages", "--rate-limit-signals"])
def test_zero_turns_a_limit_off(flag):
    other = {"--rate-limit-messages": "--rate-limit-signals",
             "--rate-limit-signals": "--rate-limit-messages"}[flag]
    with RoomcastServer(flag, "0", other, "0", production_defaults=True) as server:
        async def body():
            alice = await joined(server, "alice")
            for i in range(100):
                await alice.chat(f"m{i}")
                await alice.send({"type": "typing_start", "room": "general"})
            await alice.expect(is_chat("general", "m99"))
            assert not [m for m in await alice.collect(0.3) if is_type("error")(m)]
        run(body())
