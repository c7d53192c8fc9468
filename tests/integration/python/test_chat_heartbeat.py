"""Heartbeat: the server pings every --ping-interval and drops connections that send nothing
at all for --idle-timeout. Runs with --ping-interval 200ms --idle-timeout 1s.

A peer still taking the backlog queued before its ping is forgiven and asked again, for at
most four idle timeouts of silence (net/heartbeat.h); tests/integration/python/
test_chat_heartbeat_load.py has the starved clients that rule keeps."""

import asyncio
import urllib.request

import pytest

from rawws import AsyncRawWebSocket
from test_chat_support import is_system, room_of, run, users

FAST = ("--ping-interval", "200ms", "--idle-timeout", "1s")
IDLE_TIMEOUT = 1.0
BACKLOG_GRACE = 4 * IDLE_TIMEOUT  # net/heartbeat.h: kBacklogGraceTimeouts


@pytest.fixture
def fast_server(make_server):
    return make_server(*FAST)


def test_server_sends_pings_at_the_ping_interval(fast_server):
    async def body():
        raw = await AsyncRawWebSocket.connect(fast_server.port)
        try:
            async def first_ping():
                while True:
                    frame = await raw.read_frame()
                    assert frame is not None, "server closed before sending a ping"
                    if frame[0] == 0x9:
                        return frame

            # Ten ping intervals is plenty of time for the first one.
            frame = await asyncio.wait_for(first_ping(), 2)
            raw.send_frame(0xA, frame[1])  # answer it, as a client must
        finally:
            raw.close()
    run(body())


def test_client_that_answers_pings_stays_connected_past_the_idle_timeout_and_still_chats(
        fast_server):
    async def body():
        a, b = await room_of(fast_server, "general", "alice", "bob")
        # Nobody sends application data for three idle timeouts; websockets answers pings.
        await asyncio.sleep(3 * IDLE_TIMEOUT)
        assert a.ws.open and b.ws.open
        await a.chat("still alive")
        msg, before = await b.recv_until(lambda m: m.get("message") == "still alive")
        assert msg["username"] == "alice"
        assert [m for m in before if "left the chat" in str(m.get("message"))] == []
    run(body())


def test_silent_raw_client_is_disconnected_by_the_server_after_the_idle_timeout(fast_server):
    async def body():
        raw = await AsyncRawWebSocket.connect(fast_server.port)
        try:
            deadline = IDLE_TIMEOUT + 2

            async def until_disconnected():
                while True:
                    frame = await raw.read_frame()  # never answered
                    if frame is None or frame[0] == 0x8:
                        return frame

            end = await asyncio.wait_for(until_disconnected(), deadline)
            assert end is None or end[0] == 0x8
        finally:
            raw.close()
    run(body())


def test_silent_member_is_announced_as_left_after_the_idle_timeout(fast_server):
    async def body():
        (a,) = await room_of(fast_server, "general", "alice")
        raw = await AsyncRawWebSocket.connect(fast_server.port)
        try:
            hello = await raw.read_json()
            assert hello["type"] == "connection_established"
            raw.send_json({"type": "join_room", "room": "general", "username": "bob"})
            await raw.writer.drain()
            await a.expect(is_system("general", "bob joined the chat"))
            await a.expect_user_list("general", users(a) + [{"id": hello["userId"],
                                                             "username": "bob"}])
            # bob now goes silent: no pongs, nothing.
            await a.expect(is_system("general", "bob left the chat"), timeout=IDLE_TIMEOUT + 3)
            await a.expect_user_list("general", users(a))
        finally:
            raw.close()
    run(body())


def test_default_flags_do_not_drop_a_quiet_client_within_seconds(server):
    async def body():
        raw = await AsyncRawWebSocket.connect(server.port)
        try:
            hello = await raw.read_json()
            assert hello["type"] == "connection_established"
            # Silent for 2 s: well inside the default 30 s idle timeout.
            try:
                frame = await asyncio.wait_for(raw.read_frame(), 2)
            except asyncio.TimeoutError:
                frame = "still open"
            assert frame == "still open" or (frame is not None and frame[0] == 0x9)
        finally:
            raw.close()
    run(body())


def counter(server, name):
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def busy_room_with_bob(server, bob_reads):
    """alice in "busy" sends chat messages of 450 characters 100 times a second (50 KB/s to
    each member, with the server's fields);
    bob, a raw client that never answers a ping, joins; `bob_reads` says whether he reads
    what arrives. Returns the seconds from bob's join until alice heard he left."""
    (a,) = await room_of(server, "busy", "alice")
    bob = await AsyncRawWebSocket.connect(server.port)
    try:
        assert (await bob.read_json())["type"] == "connection_established"
        bob.send_json({"type": "join_room", "room": "busy", "username": "bob"})
        await bob.writer.drain()
        await a.expect(is_system("busy", "bob joined the chat"))
        joined = asyncio.get_running_loop().time()

        async def send():
            n = 0
            while True:
                await a.chat(f"{n:06d} " + "x" * 443)
                n += 1
                await asyncio.sleep(0.01)

        async def read():
            while await bob.read_frame() is not None:
                pass  # pings included: never answered

        tasks = [asyncio.create_task(send())]
        if bob_reads:
            tasks.append(asyncio.create_task(read()))
        try:
            await a.expect(is_system("busy", "bob left the chat"), timeout=BACKLOG_GRACE + 5)
        finally:
            for t in tasks:
                t.cancel()
        return asyncio.get_running_loop().time() - joined
    finally:
        bob.close()


def test_a_member_that_reads_a_busy_room_but_never_answers_is_ended_after_the_grace(
        make_server):
    # He takes everything, so each unanswered ping is forgiven as "behind a backlog", until
    # his silence reaches the grace: a client that never answers is ended all the same.
    server = make_server(*FAST, "--rate-limit-messages", "0")
    ended_after = run(busy_room_with_bob(server, bob_reads=True))
    assert ended_after <= BACKLOG_GRACE + 3
    assert counter(server, "roomcast_pings_behind_backlog_total") >= 1
    assert counter(server, "roomcast_idle_timeouts_total") == 1


def test_a_frozen_member_of_a_busy_room_is_ended_once_it_takes_nothing(make_server):
    # He reads nothing: his buffers fill, the server sees him take nothing more, and ends
    # him (for silence, or as a slow consumer if his queue fills first), within the grace.
    server = make_server(*FAST, "--rate-limit-messages", "0")
    ended_after = run(busy_room_with_bob(server, bob_reads=False))
    assert ended_after <= BACKLOG_GRACE + 3
    assert (counter(server, "roomcast_idle_timeouts_total")
            + counter(server, "roomcast_slow_consumer_closes_total")) == 1
