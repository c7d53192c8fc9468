"""Graceful shutdown: on SIGTERM every client is closed with 1001 (going away) and the process
exits 0 within 5 s."""

import asyncio
import signal
import subprocess

from test_chat_support import ChatClient, room_of, run

GOING_AWAY = 1001


def test_sigterm_closes_every_connected_client_with_1001(server):
    async def body():
        a, b = await room_of(server, "general", "alice", "bob")
        (c,) = await room_of(server, "other", "carol")
        lurker = await ChatClient.connect(server)  # connected, in no room
        clients = [a, b, c, lurker]
        server.signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*(x.ws.wait_closed() for x in clients)), 5)
        assert [x.ws.close_code for x in clients] == [GOING_AWAY] * len(clients)
    run(body())


def test_sigterm_with_clients_connected_exits_with_code_0_within_5_seconds(server):
    async def body():
        clients = await room_of(server, "general", "alice", "bob")
        server.signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(server.wait, 5)
        except subprocess.TimeoutExpired:
            raise AssertionError("roomcast still running 5 s after SIGTERM")
        assert code == 0
        for c in clients:
            await asyncio.wait_for(c.ws.wait_closed(), 5)
    run(body())


def test_sigterm_with_no_clients_exits_with_code_0_within_5_seconds(server):
    server.signal(signal.SIGTERM)
    assert server.wait(5) == 0
