"""Rate limits: the chapter's policy (10 messages per 60 s, then blocked for twice the window,
answered "Rate limit exceeded. Please slow down."), per person: a token's user over all their
connections, an anonymous connection alone; anonymous users of one client address also share
a much larger budget (against reconnecting); the client address comes from X-Forwarded-For only
from --trusted-proxies; typing signals on a budget of their own; 0 turns a limit off. The
limited user's neighbours chat on undisturbed."""

import asyncio
import time

import pytest

from cluster_support import cluster, nginx_proxy, redis_server  # noqa: F401 (fixtures)
from roomcast_server import RoomcastServer
from security_support import SECRET, expect_http_refusal, make_token
from test_chat_support import ChatClient, is_chat, is_type, run

RATE_LIMITED = "Rate limit exceeded. Please slow down."


async def joined(server, name, room="general", token=None, **kwargs):
    path = f"/?token={token}" if token else "/"
    c = await ChatClient.connect(server, path, **kwargs)
    await c.join(room, None if token else name)
    return c


async def expect_rate_limited(client, max_wait_ms=None):
    """The chapter's refusal, which also says how long to wait (positive, whole ms, at most
    `max_wait_ms`); returns that wait."""
    err = await client.expect_error()
    wait = err.pop("retryAfterMs", None)
    assert err == {"type": "error", "code": "rate_limited", "message": RATE_LIMITED}, err
    assert isinstance(wait, int) and not isinstance(wait, bool) and wait > 0, wait
    if max_wait_ms is not None:
        assert wait <= max_wait_ms, (wait, max_wait_ms)
    return wait


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


def test_anonymous_users_of_one_address_are_limited_per_connection():
    # Two browser tabs (or two people behind one NAT): each has the chapter's budget.
    with RoomcastServer(production_defaults=True) as server:
        async def body():
            a = await joined(server, "a")
            b = await joined(server, "b")  # same address as a
            for i in range(10):
                await a.chat_roundtrip("general", f"a{i}")
            await a.chat("over")
            await expect_rate_limited(a)
            for i in range(10):
                await b.chat_roundtrip("general", f"b{i}")
        run(body())


def test_reconnecting_for_a_fresh_budget_is_capped_by_the_addresss_budget():
    with RoomcastServer("--rate-limit-messages", "4", "--rate-limit-address-messages", "6") as server:
        async def body():
            first = await joined(server, "flooder")
            other = await joined(server, "other", local_addr=("127.0.0.4", 0))
            for i in range(4):
                await first.chat_roundtrip("general", f"f{i}")
            await first.chat("over")
            await expect_rate_limited(first)
            await first.close()
            again = await joined(server, "flooder2")
            for i in range(2):  # the address's 5th and 6th
                await again.chat_roundtrip("general", f"again{i}")
            await again.chat("over the address's budget")
            await expect_rate_limited(again)
            for i in range(4):  # another address is not affected
                await other.chat_roundtrip("general", f"other{i}")
        run(body())


def test_sixty_people_behind_one_address_are_served_and_a_flooder_is_limited_alone():
    """The server's default flags: 60 anonymous users on one address (a NAT, a company
    proxy), each sending a few messages, all delivered; the one flooding among them gets
    rate_limited and nobody else does."""
    with RoomcastServer(production_defaults=True) as server:
        async def body():
            people = [await joined(server, f"user{i}") for i in range(60)]
            flooder = await joined(server, "flooder")
            watcher = await joined(server, "watcher", local_addr=("127.0.0.6", 0))
            for i in range(30):
                await flooder.chat(f"flood {i}")
            await expect_rate_limited(flooder)
            for round_ in range(4):
                await asyncio.gather(*(p.chat_roundtrip("general", f"{p.username} says {round_}")
                                       for p in people))
            for p in people:
                errors = [m for m in await p.collect(0) if is_type("error")(m)]
                assert errors == [], (p.username, errors)
            expected = {f"user{i} says {r}" for i in range(60) for r in range(4)}
            seen = set()
            while not expected <= seen:
                m = await watcher.expect(is_type("chat_message"))
                seen.add(m["message"])
            flood = {t for t in seen if t.startswith("flood ")}
            assert flood == {f"flood {i}" for i in range(10)}, sorted(flood)
        run(body(), timeout=90)


def test_the_client_address_comes_from_x_forwarded_for_only_from_a_trusted_proxy():
    with RoomcastServer("--trusted-proxies", "127.0.0.1", "--max-connections-per-ip", "1") as server:
        async def body():
            def via(address):
                return {"extra_headers": {"X-Forwarded-For": address}}
            # From the trusted proxy (127.0.0.1), the header names the client: one each.
            a = await ChatClient.connect(server, **via("198.51.100.1"))
            await expect_http_refusal(server, 503, **via("198.51.100.1"))
            b = await ChatClient.connect(server, **via("198.51.100.2"))
            # From anyone else the header is a claim, not an address: spoofing buys nothing.
            c = await ChatClient.connect(server, local_addr=("127.0.0.7", 0), **via("203.0.113.1"))
            await expect_http_refusal(server, 503, local_addr=("127.0.0.7", 0),
                                      **via("203.0.113.2"))
            for client in (a, b, c):
                await client.close()
        run(body())


@pytest.mark.parametrize("spelling", ["forwarded", "Forwarded"])
def test_with_client_address_header_forwarded_the_address_comes_from_forwarded_only(spelling):
    """--client-address-header forwarded (in any case, as HTTP header names): RFC 7239's
    Forwarded names the client, and X-Forwarded-For is a client's claim like any other."""
    with RoomcastServer("--trusted-proxies", "127.0.0.1", "--max-connections-per-ip", "1",
                        "--client-address-header", spelling) as server:
        async def body():
            def via(address):
                return {"extra_headers": {"Forwarded": f"for={address}"}}
            a = await ChatClient.connect(server, **via("198.51.100.1"))
            await expect_http_refusal(server, 503, **via("198.51.100.1"))
            b = await ChatClient.connect(server, **via("198.51.100.2"))
            # X-Forwarded-For is not read: both of these are the proxy's own address.
            c = await ChatClient.connect(server, extra_headers={"X-Forwarded-For": "203.0.113.1"})
            await expect_http_refusal(server, 503,
                                      extra_headers={"X-Forwarded-For": "203.0.113.2"})
            for client in (a, b, c):
                await client.close()
        run(body())


def test_an_address_named_by_a_trusted_proxy_has_its_own_budget():
    with RoomcastServer("--trusted-proxies", "127.0.0.0/8", "--rate-limit-messages", "2",
                        "--rate-limit-address-messages", "3") as server:
        async def body():
            async def behind(address, name):
                c = await ChatClient.connect(server, extra_headers={"X-Forwarded-For": address})
                await c.join("general", name)
                return c
            a1, a2 = await behind("198.51.100.1", "a1"), await behind("198.51.100.1", "a2")
            b = await behind("198.51.100.2", "b")
            for i in range(2):
                await a1.chat_roundtrip("general", f"a1 {i}")
            await a2.chat_roundtrip("general", "a2 0")
            await a2.chat("the address's fourth")
            await expect_rate_limited(a2)
            for i in range(2):
                await b.chat_roundtrip("general", f"b {i}")
        run(body())


@pytest.mark.parametrize("value", ["localhost", "10.0.0.0/33", "10.0.0.1/x", ""])
def test_a_bad_trusted_proxy_is_refused_at_start(value):
    with pytest.raises(RuntimeError, match="trusted-proxies"):
        RoomcastServer("--trusted-proxies", value).start()


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
def test_behind_real_nginx_each_client_keeps_its_own_address(nginx_proxy):
    """The nginx configuration of docs/operations.md with --trusted-proxies: clients from two
    addresses are two addresses to the server, not one proxy."""
    with RoomcastServer("--trusted-proxies", "127.0.0.1", "--max-connections-per-ip", "1") as server:
        proxy = nginx_proxy([server])

        async def body():
            first = await ChatClient.connect(proxy, local_addr=("127.0.0.2", 0))
            second = await ChatClient.connect(proxy, local_addr=("127.0.0.3", 0))
            await expect_http_refusal(proxy, 503, local_addr=("127.0.0.2", 0))
            # A client's own X-Forwarded-For is kept left of what nginx appends: ignored.
            await expect_http_refusal(proxy, 503, local_addr=("127.0.0.2", 0),
                                      extra_headers={"X-Forwarded-For": "198.51.100.9"})
            await first.close()
            await second.close()
        run(body())


def test_cluster_nodes_share_a_users_budget_and_its_block(cluster):
    """Moving to another node resets nothing: a user's messages count on every node, and a
    block started on one node holds on the others. A node hears what the others spent within
    a tick (20 ms) and a Redis round trip: the test gives it a second before each move (it
    asserts no time; docs/operations.md says what the moment allows)."""
    node1, node2 = cluster(2, "--jwt-secret", SECRET, "--rate-limit-messages", "4")

    async def body():
        token = make_token(sub="u-mover", name="mover")
        on1 = await joined(node1, "mover", token=token)
        for i in range(4):
            await on1.chat_roundtrip("general", f"on node1 {i}")
        await on1.close()
        await asyncio.sleep(1)
        on2 = await joined(node2, "mover", token=token)
        await asyncio.sleep(1)
        await on2.chat("the fifth, on node2, starts a block")
        await expect_rate_limited(on2)
        await on2.close()
        await asyncio.sleep(1)
        back = await joined(node1, "mover", token=token)
        await asyncio.sleep(1)
        await back.chat("blocked on node1 too")
        await expect_rate_limited(back)
        # Another user is unaffected on both nodes.
        other = await joined(node2, "other", token=make_token(sub="u-other", name="other"))
        await other.chat_roundtrip("general", "other is fine")
    run(body())


def test_cluster_nodes_share_an_addresss_budget(cluster):
    node1, node2 = cluster(2, "--rate-limit-messages", "10", "--rate-limit-address-messages", "5")

    async def body():
        a = await joined(node1, "a")
        for i in range(5):
            await a.chat_roundtrip("general", f"a{i}")
        await asyncio.sleep(1)
        b = await joined(node2, "b")
        await asyncio.sleep(1)
        await b.chat("the address's sixth, on node2")
        await expect_rate_limited(b)
    run(body())


def test_a_message_without_room_costs_one_message_per_room_it_reaches():
    """Being in many rooms must not multiply what one person can make the server store: with
    the server's defaults, a room-less message to 3 rooms costs 3 of the 10 a minute, and one
    to 50 rooms is refused (name a room) without blocking the sender."""
    with RoomcastServer(production_defaults=True) as server:
        async def body():
            c = await ChatClient.connect(server)
            for room in ("a", "b", "c"):
                await c.join(room, "alice")
            for i in range(3):
                await c.chat(f"to all three {i}")
                for room in ("a", "b", "c"):
                    await c.expect(is_chat(room, f"to all three {i}"))
            await c.chat("the 10th to 12th")
            await expect_rate_limited(c)

            many = await ChatClient.connect(server, local_addr=("127.0.0.8", 0))
            for i in range(25):
                await many.join(f"room{i}", "bob")
            await asyncio.sleep(10.5)  # the signal budget: 30 joins per 10 s
            for i in range(25, 50):
                await many.join(f"room{i}", "bob")
            await many.chat("to fifty rooms")
            err = await many.expect_error()
            assert err["code"] == "invalid_field" and "name a 'room'" in err["message"], err
            await many.chat("to one room", room="room7")
            await many.expect(is_chat("room7", "to one room"))
        run(body(), timeout=60)
