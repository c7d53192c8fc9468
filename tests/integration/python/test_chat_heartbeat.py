"""Heartbeat: the server pings every --ping-interval and drops connections that send nothing
at all for --idle-timeout. Runs with --ping-interval 200ms --idle-timeout 1s."""

import asyncio

import pytest

from rawws import AsyncRawWebSocket
from test_chat_support import is_system, room_of, run, users

FAST = ("--ping-interval", "200ms", "--idle-timeout", "1s")
IDLE_TIMEOUT = 1.0


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
